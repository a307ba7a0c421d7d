package config

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"
)

// DropInDir is the directory of drop-ins for the configuration file at path:
// /etc/gatewayd/gatewayd.toml.d for /etc/gatewayd/gatewayd.toml, as systemd and Debian do it. A
// fleet image carries the base file; a device carries only what differs, in a drop-in.
func DropInDir(path string) string { return path + ".d" }

// dropIns lists the drop-ins in dir: regular files (or links to them) named *.toml, not hidden,
// in byte order of their names. A missing directory has none.
func dropIns(dir string) ([]string, error) {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("config: drop-in directory: %w", err)
	}
	var names []string
	for _, e := range entries {
		n := e.Name()
		if !strings.HasSuffix(n, ".toml") || strings.HasPrefix(n, ".") {
			continue
		}
		p := filepath.Join(dir, n)
		if st, err := os.Stat(p); err != nil || !st.Mode().IsRegular() {
			continue // a dangling link or a directory: not a drop-in
		}
		names = append(names, p)
	}
	sort.Strings(names)
	return names, nil
}

// source is one configuration file: the main file or a drop-in.
type source struct {
	name string
	data []byte
	raw  map[string]any
	loc  *locator
}

// merged is the files merged into one tree, with the file that set each key.
type merged struct {
	files     []source
	root      map[string]any
	origin    map[string]int // the file that set each key, by key path without indices
	conflicts []error
}

// merge merges the files in order into one tree. The rules:
//   - tables merge key by key, whichever files define them;
//   - a value (a string, number, boolean, date or inline array) set in more than one file takes
//     the last file's value: a drop-in overrides the base, a later drop-in an earlier one;
//   - an array of tables ([[mqtt.subscribe]], [[local.forward]]) must be set in one file only:
//     appending elements from several files would make the result depend on which files a
//     device happens to carry, and replacing would silently drop the base's; set in two, it is a
//     conflict;
//   - a key that is a table in one file and a value (or an array of tables) in another is a
//     conflict.
//
// Each conflict is a *Problem naming the later file and line and the earlier one.
func merge(files []source) *merged {
	m := &merged{files: files, root: map[string]any{}, origin: map[string]int{}}
	for i, f := range files {
		m.table(m.root, f.raw, nil, i)
	}
	return m
}

func (m *merged) table(dst, src map[string]any, path keyPath, fi int) {
	keys := make([]string, 0, len(src))
	for k := range src {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		v, p := src[k], path.add(k, -1)
		old, exists := dst[k]
		if !exists {
			if t, ok := v.(map[string]any); ok {
				sub := map[string]any{}
				dst[k] = sub
				m.origin[p.schemaString()] = fi
				m.table(sub, t, p, fi)
				continue
			}
			dst[k] = v
			m.set(p, fi)
			continue
		}
		oldKind, newKind := kindOfValue(old), kindOfValue(v)
		switch {
		case oldKind != newKind:
			m.conflict(p, fi, "is %s here but %s in %s; a drop-in may change a value, not what the key is", newKind, oldKind, m.at(p))
		case newKind == "a table":
			m.table(old.(map[string]any), v.(map[string]any), p, fi)
		case newKind == "an array of tables":
			first := path.add(k, 0) // the line of its first element
			m.conflict(first, fi, "is also set in %s; an array of tables must be set in one file only (move all its elements to one file)", m.at(first))
		default:
			dst[k] = v
			m.set(p, fi)
		}
	}
}

// set records fi as the origin of the value at p.
func (m *merged) set(p keyPath, fi int) { m.origin[p.schemaString()] = fi }

func kindOfValue(v any) string {
	switch v.(type) {
	case map[string]any:
		return "a table"
	case []map[string]any:
		return "an array of tables"
	}
	return "a value"
}

// at is "file:line" of where key p was set so far.
func (m *merged) at(p keyPath) string {
	f, line := m.where(p)
	return f + ":" + strconv.Itoa(line)
}

func (m *merged) conflict(p keyPath, fi int, format string, args ...any) {
	f := m.files[fi]
	m.conflicts = append(m.conflicts, &Problem{File: f.name, Line: f.loc.line(p), Key: keyPath.schemaString(p), Msg: fmt.Sprintf(format, args...)})
}

// where is the file and line that set key k: the file that set k or its nearest enclosing key,
// and the line in it.
func (m *merged) where(k keyPath) (string, int) {
	for n := len(k); n > 0; n-- {
		if fi, ok := m.origin[k[:n].schemaString()]; ok {
			f := m.files[fi]
			return f.name, f.loc.line(k)
		}
	}
	return m.files[0].name, m.files[0].loc.line(k)
}

// origins is Config.Origins: "file:line" of every value and array of tables, by dotted key.
func (m *merged) origins() map[string]string {
	out := map[string]string{}
	var walk func(t map[string]any, path keyPath)
	walk = func(t map[string]any, path keyPath) {
		for k, v := range t {
			p := path.add(k, -1)
			switch v := v.(type) {
			case map[string]any:
				walk(v, p)
				continue
			case []map[string]any:
				p = path.add(k, 0) // the line of its first element
			}
			out[p.schemaString()] = m.at(p)
		}
	}
	walk(m.root, nil)
	return out
}

// DescribeOrigins writes which files were read, in the order they were merged, and the file and
// line that set each key (the keys not listed have their defaults). It never writes a value. It
// is what `gatewayd check` prints after Describe.
func (c *Config) DescribeOrigins(w io.Writer) error {
	fmt.Fprintf(w, "\nread, in this order (a later file's value wins):\n")
	for _, f := range c.Files {
		fmt.Fprintf(w, "  %s\n", f)
	}
	fmt.Fprintf(w, "where each setting came from (settings not listed have their defaults):\n")
	keys := make([]string, 0, len(c.Origins))
	for k := range c.Origins {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	tw := tabwriter.NewWriter(w, 0, 8, 2, ' ', 0)
	for _, k := range keys {
		fmt.Fprintf(tw, "  %s\t%s\n", k, c.Origins[k])
	}
	return tw.Flush()
}
