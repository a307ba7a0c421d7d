package config

import (
	"strings"
)

// locator finds the line that defines a key. The TOML library keeps key positions private, so the
// locator re-reads the (already successfully parsed) source: it notes each table header and each
// "key =" line with the full key path it defines. It only ever serves error messages; where it
// cannot tell (a key inside an inline table or a multi-line value), it gives the line of the
// nearest enclosing key or table, or 0.
type locator struct {
	entries []locEntry
	byPath  map[string][]int // entries by path without indices, for lookups in O(depth)
}

type locEntry struct {
	path keyPath
	line int
}

func newLocator(src string) *locator {
	l := &locator{byPath: map[string][]int{}}
	var (
		header   keyPath
		arrCount = map[string]int{}
		inMulti  string // the closing delimiter of the multi-line string being skipped
	)
	for n, line := range strings.Split(src, "\n") {
		lineNo := n + 1
		if inMulti != "" {
			if strings.Count(line, inMulti)%2 == 1 {
				inMulti = ""
			}
			continue
		}
		s := strings.TrimLeft(line, " \t")
		switch {
		case s == "" || s[0] == '#':
			continue
		case strings.HasPrefix(s, "[["):
			if names, _, ok := parseKey(s[2:]); ok {
				arrCount[strings.Join(names, ".")]++
				header = headerPath(names, arrCount)
				l.add(header, lineNo)
			}
			continue
		case s[0] == '[':
			if names, _, ok := parseKey(s[1:]); ok {
				header = headerPath(names, arrCount)
				l.add(header, lineNo)
			}
			continue
		}
		if names, rest, ok := parseKey(s); ok && strings.HasPrefix(rest, "=") {
			p := header
			for _, name := range names {
				p = p.add(name, -1)
			}
			l.add(p, lineNo)
		}
		for _, d := range []string{`"""`, `'''`} {
			if strings.Count(line, d)%2 == 1 {
				inMulti = d
				break
			}
		}
	}
	return l
}

func (l *locator) add(p keyPath, line int) {
	k := p.schemaString()
	l.byPath[k] = append(l.byPath[k], len(l.entries))
	l.entries = append(l.entries, locEntry{p, line})
}

// headerPath turns the names of a table header into a path, giving each prefix that names an
// array of tables the index of its latest element.
func headerPath(names []string, arrCount map[string]int) keyPath {
	p := make(keyPath, len(names))
	for i, name := range names {
		idx := -1
		if c, ok := arrCount[strings.Join(names[:i+1], ".")]; ok {
			idx = c - 1
		}
		p[i] = seg{name, idx}
	}
	return p
}

// parseKey reads a dotted key (bare, "basic" or 'literal' parts) from the start of s and returns
// its parts and the rest of s after any following blanks.
func parseKey(s string) (names []string, rest string, ok bool) {
	for {
		s = strings.TrimLeft(s, " \t")
		if s == "" {
			return nil, "", false
		}
		var name string
		switch s[0] {
		case '"':
			var b strings.Builder
			i := 1
			for ; i < len(s) && s[i] != '"'; i++ {
				if s[i] == '\\' && i+1 < len(s) {
					i++
				}
				b.WriteByte(s[i])
			}
			if i >= len(s) {
				return nil, "", false
			}
			name, s = b.String(), s[i+1:]
		case '\'':
			end := strings.IndexByte(s[1:], '\'')
			if end < 0 {
				return nil, "", false
			}
			name, s = s[1:1+end], s[2+end:]
		default:
			i := 0
			for i < len(s) && isBare(s[i]) {
				i++
			}
			if i == 0 {
				return nil, "", false
			}
			name, s = s[:i], s[i:]
		}
		names = append(names, name)
		s = strings.TrimLeft(s, " \t")
		if !strings.HasPrefix(s, ".") {
			return names, s, true
		}
		s = s[1:]
	}
}

func isBare(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-'
}

// line returns the line that defines target exactly, else the line of the longest key or table
// that encloses it (for a missing key: its table; for a key in an inline table: the key holding
// it), else 0.
func (l *locator) line(target keyPath) int {
	for n := len(target); n > 0; n-- {
		prefix := target[:n]
		for _, i := range l.byPath[prefix.schemaString()] {
			if e := l.entries[i]; prefixOf(e.path, prefix) {
				return e.line
			}
		}
	}
	return 0
}

// prefixOf reports whether p is target or a prefix of it. An index of -1 in p (a key holding an
// inline array of tables) matches any element.
func prefixOf(p, target keyPath) bool {
	for i, s := range p {
		if s.name != target[i].name || s.idx != -1 && s.idx != target[i].idx {
			return false
		}
	}
	return true
}
