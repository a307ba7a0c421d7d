package config

import (
	"cmp"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// Problem is one thing wrong with a configuration file. Parse and Load return every problem they
// find, joined with errors.Join; errors.As(err, &p) finds the first.
type Problem struct {
	File string // the name given to Parse or Load
	Line int    // 1-based line of the key (or its table), 0 when not known
	Col  int    // 1-based column, for TOML syntax errors only
	Key  string // dotted key, e.g. "mqtt.keepalive" or "mqtt.subscribe[1].qos"; empty for the whole file
	// Unknown is set when the key itself is not one gatewayd knows.
	Unknown bool
	Msg     string // what is wrong
}

// Error renders the problem as "file:line: key: what is wrong", or "file:line: unknown key K ...".
func (p *Problem) Error() string {
	var b strings.Builder
	b.WriteString(p.File)
	if p.Line > 0 {
		b.WriteString(":" + strconv.Itoa(p.Line))
		if p.Col > 0 {
			b.WriteString(":" + strconv.Itoa(p.Col))
		}
	}
	b.WriteString(": ")
	switch {
	case p.Unknown:
		b.WriteString("unknown key " + p.Key)
		if p.Msg != "" {
			b.WriteString(" " + p.Msg)
		}
	case p.Key != "":
		b.WriteString(p.Key + ": " + p.Msg)
	default:
		b.WriteString(p.Msg)
	}
	return b.String()
}

// seg is one step of a key path: a table or key name, and an element index for arrays of tables
// (-1 when the step is not an array element).
type seg struct {
	name string
	idx  int
}

// keyPath names a value in the document, e.g. mqtt.subscribe[1].qos.
type keyPath []seg

func (k keyPath) String() string {
	var b strings.Builder
	for i, s := range k {
		if i > 0 {
			b.WriteByte('.')
		}
		b.WriteString(s.name)
		if s.idx >= 0 {
			b.WriteString("[" + strconv.Itoa(s.idx) + "]")
		}
	}
	return b.String()
}

// schemaString is String without element indices: mqtt.subscribe.qos.
func (k keyPath) schemaString() string {
	names := make([]string, len(k))
	for i, s := range k {
		names[i] = s.name
	}
	return strings.Join(names, ".")
}

// add returns a new path with one more step; k itself is not changed.
func (k keyPath) add(name string, idx int) keyPath {
	out := make(keyPath, len(k), len(k)+1)
	copy(out, k)
	return append(out, seg{name, idx})
}

// problems collects the problems of one file, with the line of each located in the source.
type problems struct {
	file string
	loc  *locator
	// where, when not nil, finds the file and line that set a key instead of file and loc: a
	// configuration merged from drop-ins.
	where func(k keyPath) (file string, line int)
	list  []*Problem
	// known, when not nil, collects every key path the builder asked about (without element
	// indices), so a test can check the example file documents them all.
	known map[string]bool
	files []string // the files merged, in order, for sorting problems; nil for one file
}

func (ps *problems) add(k keyPath, unknown bool, format string, args ...any) {
	file, line := ps.locate(k)
	ps.list = append(ps.list, &Problem{
		File: file, Line: line, Key: k.String(), Unknown: unknown, Msg: fmt.Sprintf(format, args...),
	})
}

// locate is the file and line that set key k (or its nearest enclosing table).
func (ps *problems) locate(k keyPath) (string, int) {
	if ps.where != nil {
		return ps.where(k)
	}
	return ps.file, ps.loc.line(k)
}

// fileOrder is the place of file among the files read (the main file first, then its drop-ins).
func (ps *problems) fileOrder(file string) int {
	if i := slices.Index(ps.files, file); i >= 0 {
		return i
	}
	return 0
}

// err returns the problems in document order (by line, then key), joined; nil when there are none.
func (ps *problems) err() error {
	if len(ps.list) == 0 {
		return nil
	}
	slices.SortStableFunc(ps.list, func(a, b *Problem) int {
		if c := cmp.Compare(ps.fileOrder(a.File), ps.fileOrder(b.File)); c != 0 {
			return c
		}
		la, lb := a.Line, b.Line
		if la == 0 {
			la = 1 << 30
		}
		if lb == 0 {
			lb = 1 << 30
		}
		return cmp.Or(cmp.Compare(la, lb), cmp.Compare(a.Key, b.Key))
	})
	errs := make([]error, len(ps.list))
	for i, p := range ps.list {
		errs[i] = p
	}
	return errors.Join(errs...)
}
