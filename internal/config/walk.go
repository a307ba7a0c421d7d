package config

import (
	"fmt"
	"math"
	"sort"
	"strconv"
	"time"
)

// table reads the keys of one TOML table, records a problem for every value of the wrong type or
// out of range, and remembers which keys it was asked about so that done can name the rest.
type table struct {
	ps     *problems
	path   keyPath
	m      map[string]any  // nil when the table is absent
	known  []string        // keys gatewayd reads from this table, in the order it asks
	failed map[string]bool // keys with a problem already: one problem per key is enough
}

func newTable(ps *problems, path keyPath, m map[string]any) *table {
	return &table{ps: ps, path: path, m: m}
}

func (t *table) key(k string) keyPath { return t.path.add(k, -1) }

// fail records a problem with key k, unless k already has one (a value of the wrong type is not
// also reported as empty, say).
func (t *table) fail(k string, format string, args ...any) {
	if t.failed[k] {
		return
	}
	if t.failed == nil {
		t.failed = map[string]bool{}
	}
	t.failed[k] = true
	t.ps.add(t.key(k), false, format, args...)
}

// lookup returns the raw value of k and registers k as known.
func (t *table) lookup(k string) (any, bool) {
	t.mention(k)
	v, ok := t.m[k]
	return v, ok
}

// mention registers k as a key of this table without reading it.
func (t *table) mention(k string) {
	t.known = append(t.known, k)
	if t.ps.known != nil {
		t.ps.known[t.key(k).schemaString()] = true
	}
}

// has reports whether k is present, without registering it.
func (t *table) has(k string) bool {
	_, ok := t.m[k]
	return ok
}

// str returns the string at k, or def when k is absent or not a string.
func (t *table) str(k, def string) string {
	v, ok := t.lookup(k)
	if !ok {
		return def
	}
	s, ok := v.(string)
	if !ok {
		t.fail(k, "want a string, got %s", describeValue(v))
		return def
	}
	return s
}

// secret returns the string at k like str, but never quotes the value in a problem.
func (t *table) secret(k string) string {
	v, ok := t.lookup(k)
	if !ok {
		return ""
	}
	s, ok := v.(string)
	if !ok {
		t.fail(k, "want a string, got %s (value not shown: it is a secret)", typeName(v))
		return ""
	}
	return s
}

// integer returns the integer at k within [lo, hi], or def.
func (t *table) integer(k string, def, lo, hi int) int {
	v, ok := t.lookup(k)
	if !ok {
		return def
	}
	n, ok := v.(int64)
	if !ok {
		t.fail(k, "want an integer, got %s", describeValue(v))
		return def
	}
	if n < int64(lo) || n > int64(hi) {
		t.fail(k, "%d is out of range %d–%d", n, lo, hi)
		return def
	}
	return int(n)
}

// boolean returns the boolean at k, or def.
func (t *table) boolean(k string, def bool) bool {
	v, ok := t.lookup(k)
	if !ok {
		return def
	}
	b, ok := v.(bool)
	if !ok {
		t.fail(k, "want true or false, got %s", describeValue(v))
		return def
	}
	return b
}

// duration returns the duration written as a string such as "60s" at k, within [lo, hi] and, when
// whole is set, a whole number of seconds; else def.
func (t *table) duration(k string, def, lo, hi time.Duration, whole bool) time.Duration {
	v, ok := t.lookup(k)
	if !ok {
		return def
	}
	var d time.Duration
	switch x := v.(type) {
	case string:
		var err error
		if d, err = time.ParseDuration(x); err != nil {
			t.fail(k, `%q is not a duration (write e.g. "%s")`, x, fmtDuration(def))
			return def
		}
	case int64:
		t.fail(k, `%d has no unit; write a duration such as "%ds"`, x, x)
		return def
	default:
		t.fail(k, `want a duration such as "%s", got %s`, fmtDuration(def), describeValue(v))
		return def
	}
	if whole && d%time.Second != 0 {
		t.fail(k, "%s is not a whole number of seconds", v)
		return def
	}
	if d < lo || d > hi {
		t.fail(k, "%s is out of range %s–%s", v, fmtDuration(lo), fmtDuration(hi))
		return def
	}
	return d
}

// oneOf returns the string at k if it is one of allowed, else def.
func (t *table) oneOf(k, def string, allowed ...string) string {
	s := t.str(k, def)
	for _, a := range allowed {
		if s == a {
			return s
		}
	}
	t.fail(k, "%q is not one of %s", s, quoteList(allowed))
	return def
}

// sub returns the table at k; an absent table reads as empty.
func (t *table) sub(k string) *table {
	v, ok := t.lookup(k)
	if !ok {
		return newTable(t.ps, t.key(k), nil)
	}
	m, ok := v.(map[string]any)
	if !ok {
		t.fail(k, "want a table, got %s", describeValue(v))
		return newTable(t.ps, t.key(k), nil)
	}
	return newTable(t.ps, t.key(k), m)
}

// tables returns the elements of the array of tables at k.
func (t *table) tables(k string) []*table {
	v, ok := t.lookup(k)
	if !ok {
		return nil
	}
	var elems []map[string]any
	switch x := v.(type) {
	case []map[string]any:
		elems = x
	case []any:
		for i, e := range x {
			m, ok := e.(map[string]any)
			if !ok {
				t.ps.add(t.path.add(k, i), false, "want a table such as {topic = \"a/b\"}, got %s", describeValue(e))
				continue
			}
			elems = append(elems, m)
		}
	default:
		t.fail(k, "want an array of tables ([[%s]]), got %s", t.key(k), describeValue(v))
		return nil
	}
	out := make([]*table, len(elems))
	for i, m := range elems {
		out[i] = newTable(t.ps, t.path.add(k, i), m)
	}
	return out
}

// done reports every key of the table that nothing asked about.
func (t *table) done() {
	var unknown []string
	for k := range t.m {
		if !contains(t.known, k) {
			unknown = append(unknown, k)
		}
	}
	sort.Strings(unknown)
	for _, k := range unknown {
		msg := ""
		if s := closest(k, t.known); s != "" {
			msg = fmt.Sprintf("(did you mean %s?)", t.key(s))
		}
		t.ps.add(t.key(k), true, "%s", msg)
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// closest returns the known key nearest to k by edit distance, if it is near enough to be a typo.
func closest(k string, known []string) string {
	best, bestD := "", 3
	for _, c := range known {
		if d := editDistance(k, c); d < bestD {
			best, bestD = c, d
		}
	}
	return best
}

func editDistance(a, b string) int {
	if len(a) > 64 || len(b) > 64 {
		return math.MaxInt
	}
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

// describeValue names a TOML value's type, with the value when it is short and scalar.
func describeValue(v any) string {
	switch x := v.(type) {
	case string:
		if len(x) > 40 {
			return "a string"
		}
		return "string " + strconv.Quote(x)
	case int64:
		return "integer " + strconv.FormatInt(x, 10)
	case float64:
		return "float " + strconv.FormatFloat(x, 'g', -1, 64)
	case bool:
		return "boolean " + strconv.FormatBool(x)
	case map[string]any:
		return "a table"
	case []any, []map[string]any:
		return "an array"
	}
	return fmt.Sprintf("a %T", v) // dates and times
}

// typeName names a TOML value's type without showing the value.
func typeName(v any) string {
	switch v.(type) {
	case string:
		return "a string"
	case int64:
		return "an integer"
	case float64:
		return "a float"
	case bool:
		return "a boolean"
	case map[string]any:
		return "a table"
	case []any, []map[string]any:
		return "an array"
	}
	return "a date or time"
}

// fmtDuration prints whole seconds as "60s" rather than Go's "1m0s".
func fmtDuration(d time.Duration) string {
	if d%time.Second == 0 {
		return strconv.FormatInt(int64(d/time.Second), 10) + "s"
	}
	return d.String()
}

func quoteList(list []string) string {
	s := ""
	for i, x := range list {
		switch {
		case i == 0:
		case i == len(list)-1:
			s += " or "
		default:
			s += ", "
		}
		s += strconv.Quote(x)
	}
	return s
}
