// Command mangen writes the manual page gatewayd.toml(5) from the example configuration,
// deploy/gatewayd.example.toml, so that the two cannot drift: every table of the example is a
// subsection, every key (set, commented out, or shown as an indented alternative) an item, and the
// example's comments the text.
//
//	go run ./scripts/mangen -o docs/man/gatewayd.toml.5
//	go run ./scripts/mangen -check docs/man/gatewayd.toml.5
//
// The example is itself checked against the code (internal/config's TestExampleFile and friends);
// a test here checks that the committed page is what this program makes of it, and renders it.
package main

import (
	"bytes"
	"flag"
	"fmt"
	"io"
	"os"
	"regexp"
	"strings"
)

// Source is the example configuration, relative to the repository's root.
const Source = "deploy/gatewayd.example.toml"

// date is the page's .Dd: the day its layout was last changed by hand.
const date = "December 7, 2026"

func main() {
	if err := run(os.Args[1:], os.Stdout, os.Stderr); err != nil {
		fmt.Fprintf(os.Stderr, "mangen: %v\n", err)
		os.Exit(1)
	}
}

func run(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("mangen", flag.ContinueOnError)
	fs.SetOutput(stderr)
	in := fs.String("in", Source, "the example configuration `file`")
	out := fs.String("o", "", "write the page to this `file` (default: standard output)")
	check := fs.String("check", "", "compare with this `file` instead of writing; fail on a difference")
	if err := fs.Parse(args); err != nil {
		return err
	}
	src, err := os.ReadFile(*in)
	if err != nil {
		return err
	}
	page := Page(string(src))
	switch {
	case *check != "":
		have, err := os.ReadFile(*check)
		if err != nil {
			return err
		}
		if !bytes.Equal(have, page) {
			return fmt.Errorf("%s is not what %s gives: go run ./scripts/mangen -o %s", *check, *in, *check)
		}
		return nil
	case *out != "":
		return os.WriteFile(*out, page, 0o644)
	default:
		_, err := stdout.Write(page)
		return err
	}
}

var (
	// table is a table header, set or commented out: [serial], #[mqtt.tls], [[mqtt.subscribe]].
	table = regexp.MustCompile(`^#?(\[\[?[a-z_.]+\]\]?)\s*$`)
	// key is a key line: set ("port = 1"), commented out ("#apn = ...") or an indented
	// alternative ("#    password = ..."), with anything after the value.
	key = regexp.MustCompile(`^(#?)(\s*)([a-z_]+) = (.*)$`)
)

// Keys returns every "table.key" the example names (set, commented out or as an alternative),
// in order, each once; the keys before any table have no prefix.
func Keys(src string) []string {
	var out []string
	seen := map[string]bool{}
	section := ""
	for _, l := range strings.Split(src, "\n") {
		if m := table.FindStringSubmatch(l); m != nil {
			section = strings.Trim(m[1], "[]")
			continue
		}
		if m := key.FindStringSubmatch(l); m != nil && (m[1] == "" || m[2] != "" || !strings.HasPrefix(l, "# ")) {
			k := section + "." + m[3]
			if !seen[k] {
				seen[k] = true
				out = append(out, k)
			}
		}
	}
	return out
}

// page accumulates the mdoc source.
type page struct {
	b      bytes.Buffer
	inList bool
	inLit  bool
	text   []string // comment lines not yet written
}

func (p *page) line(s string) { p.b.WriteString(s + "\n") }

// flush writes the pending comment lines as text: indented lines as a literal block, a bare "#"
// as a paragraph break.
func (p *page) flush() {
	for len(p.text) > 0 && p.text[len(p.text)-1] == "" {
		p.text = p.text[:len(p.text)-1]
	}
	prevBlank := false
	for i, t := range p.text {
		if t == "" && (prevBlank || i+1 < len(p.text) && strings.HasPrefix(p.text[i+1], "  ")) {
			continue // no paragraph break twice, nor before a literal block (which has its own space)
		}
		prevBlank = t == ""
		lit := strings.HasPrefix(t, "  ")
		switch {
		case lit && !p.inLit:
			p.line(".Bd -literal -offset indent")
			p.inLit = true
		case !lit && p.inLit:
			p.line(".Ed")
			p.inLit = false
		}
		switch {
		case t == "" && !p.inLit:
			p.line(".Pp")
		case p.inLit:
			p.line(escape(strings.TrimPrefix(t, "  ")))
		default:
			for _, sentence := range sentences(t) {
				p.line(escape(sentence))
			}
		}
	}
	if p.inLit {
		p.line(".Ed")
		p.inLit = false
	}
	p.text = p.text[:0]
}

func (p *page) closeList() {
	if p.inList {
		p.line(".El")
		p.inList = false
	}
}

// sentenceEnd is where a sentence may end inside a line: roff wants each on a line of its own.
var sentenceEnd = regexp.MustCompile(`[.?!]["')]* +`)

// sentences splits a line of text after each sentence's end.
func sentences(t string) []string {
	var out []string
	for {
		loc := sentenceEnd.FindStringIndex(t)
		if loc == nil {
			return append(out, t)
		}
		end := strings.TrimRight(t[loc[0]:loc[1]], " ")
		out = append(out, t[:loc[0]]+end)
		t = t[loc[1]:]
	}
}

// escape makes a comment line roff text: a backslash is printed as one, and a line that starts
// with a period or apostrophe is not read as a request.
func escape(s string) string {
	s = strings.ReplaceAll(s, `\`, `\e`)
	if strings.HasPrefix(s, ".") || strings.HasPrefix(s, "'") {
		s = `\&` + s
	}
	return s
}

// arg makes s one quoted macro argument.
func arg(s string) string {
	s = strings.ReplaceAll(s, `\`, `\e`)
	s = strings.ReplaceAll(s, `"`, `\(dq`)
	return `"` + s + `"`
}

// Page returns gatewayd.toml(5) for the example configuration src.
func Page(src string) []byte {
	p := &page{}
	p.line(`.\" Generated by scripts/mangen from deploy/gatewayd.example.toml: edit that file, then run`)
	p.line(`.\" go run ./scripts/mangen -o docs/man/gatewayd.toml.5`)
	p.line(".Dd " + date)
	p.line(".Dt GATEWAYD.TOML 5")
	p.line(".Os")
	p.line(".Sh NAME")
	p.line(".Nm gatewayd.toml")
	p.line(".Nd configuration file of gatewayd, the EC600 MQTT gateway daemon")
	p.line(".Sh SYNOPSIS")
	p.line(".Pa /etc/gatewayd/gatewayd.toml")
	p.line(".Sh DESCRIPTION")
	p.line(".Xr gatewayd 8")
	p.line("reads its settings from a TOML file, by default")
	p.line(".Pa /etc/gatewayd/gatewayd.toml")
	p.line("(another with")
	p.line(".Fl config Ar file ) .")
	p.line("This page is made from the example configuration shipped as")
	p.line(".Pa /usr/share/doc/gatewayd/gatewayd.example.toml ,")
	p.line("whose comments follow, table by table and key by key.")
	p.line("Each key is shown with the value the example gives it; a key the example comments out is")
	p.line("optional or part of a variant, as its text says.")
	p.line(".Pp")

	started := false
	lines := strings.Split(strings.TrimRight(src, "\n"), "\n")
	for i, l := range lines {
		if i == 0 && strings.HasPrefix(l, "# gatewayd example configuration") {
			continue // the title line: the page has its own
		}
		if m := table.FindStringSubmatch(l); m != nil {
			p.closeList()
			if !started {
				p.flush()
				p.line(".Sh TABLES AND KEYS")
				started = true
			}
			p.line(".Ss " + m[1])
			if strings.HasPrefix(l, "#") {
				p.line("Commented out in the example: the table is optional.")
				if len(p.text) > 0 {
					p.line(".Pp")
				}
			}
			p.flush()
			continue
		}
		if m := key.FindStringSubmatch(l); m != nil && started && (m[1] == "" || m[2] != "" || !strings.HasPrefix(l, "# ")) {
			head := ".It Cm " + m[3] + " Li " + arg("= "+m[4])
			if !p.inList {
				p.line(".Bl -tag -width Ds")
				p.inList = true
			}
			p.line(head)
			switch {
			case m[2] != "":
				p.line("An alternative form, commented out in the example.")
			case m[1] != "":
				p.line("Commented out in the example.")
			}
			p.flush()
			continue
		}
		switch {
		case strings.HasPrefix(l, "# <<< end"):
			// the end of a variant: its table's items already say they are commented out
		case l == "#" || strings.TrimSpace(l) == "":
			if len(p.text) > 0 {
				p.text = append(p.text, "")
			}
		case strings.HasPrefix(l, "# "):
			p.text = append(p.text, strings.TrimRight(l[2:], " \t"))
		default:
			p.text = append(p.text, strings.TrimRight(strings.TrimPrefix(l, "#"), " \t"))
		}
	}
	p.flush()
	p.closeList()
	p.line(".Sh FILES")
	p.line(".Bl -tag -width Ds")
	p.line(".It Pa /etc/gatewayd/gatewayd.toml")
	p.line("The configuration, mode 0640, owner root, group gatewayd: it may hold secrets.")
	p.line(".It Pa /usr/share/doc/gatewayd/gatewayd.example.toml")
	p.line("The example this page is made from, as shipped.")
	p.line(".El")
	p.line(".Sh SEE ALSO")
	p.line(".Xr systemd-creds 1 ,")
	p.line(".Xr systemd.exec 5 ,")
	p.line(".Xr gatewayd 8")
	return p.b.Bytes()
}
