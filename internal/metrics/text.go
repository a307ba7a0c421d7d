package metrics

import (
	"math"
	"strconv"
	"strings"
)

// kind is a metric family's type, as the text format's TYPE line names it.
type kind string

const (
	gauge     kind = "gauge"
	counter   kind = "counter"
	summary   kind = "summary"
	histogram kind = "histogram"
	untyped   kind = "untyped"
)

// desc describes a metric family: its name, HELP text, type and label names.
type desc struct {
	name, help string
	kind       kind
	labels     []string
}

func newDesc(name, help string, k kind, labels ...string) desc {
	return desc{name: name, help: help, kind: k, labels: labels}
}

// text builds an exposition in the Prometheus text format, version 0.0.4. The series of a family
// must be written one after the other: its HELP and TYPE lines are written before its first
// series, and again whenever another family came in between (which the format forbids, and the
// tests would catch).
type text struct {
	b    []byte
	last string // the family whose HELP and TYPE were written last
}

// header writes the HELP and TYPE lines of d unless d's series are being written already.
func (t *text) header(d *desc) {
	if t.last == d.name {
		return
	}
	t.last = d.name
	t.b = append(t.b, "# HELP "...)
	t.b = append(t.b, d.name...)
	t.b = append(t.b, ' ')
	t.b = appendHelp(t.b, d.help)
	t.b = append(t.b, "\n# TYPE "...)
	t.b = append(t.b, d.name...)
	t.b = append(t.b, ' ')
	t.b = append(t.b, d.kind...)
	t.b = append(t.b, '\n')
}

// series writes one sample of d: the family's name with suffix (as "_sum"), d's labels with
// values (in the order of d.labels; a missing value is written empty), and v.
func (t *text) series(d *desc, suffix string, v float64, values ...string) {
	t.header(d)
	t.b = append(t.b, d.name...)
	t.b = append(t.b, suffix...)
	if len(d.labels) > 0 {
		t.b = append(t.b, '{')
		for i, name := range d.labels {
			if i > 0 {
				t.b = append(t.b, ',')
			}
			var value string
			if i < len(values) {
				value = values[i]
			}
			t.b = append(t.b, name...)
			t.b = append(t.b, `="`...)
			t.b = appendLabelValue(t.b, value)
			t.b = append(t.b, '"')
		}
		t.b = append(t.b, '}')
	}
	t.b = append(t.b, ' ')
	t.b = appendValue(t.b, v)
	t.b = append(t.b, '\n')
}

// appendHelp appends help escaped as a HELP line needs: backslash and newline.
func appendHelp(b []byte, help string) []byte {
	for i := 0; i < len(help); i++ {
		switch c := help[i]; c {
		case '\\':
			b = append(b, `\\`...)
		case '\n':
			b = append(b, `\n`...)
		default:
			b = append(b, c)
		}
	}
	return b
}

// appendLabelValue appends v escaped as a label value: backslash, double quote and newline, after
// replacing what is not UTF-8 (a module's garbage must not break the scrape).
func appendLabelValue(b []byte, v string) []byte {
	v = strings.ToValidUTF8(v, "\uFFFD")
	for i := 0; i < len(v); i++ {
		switch c := v[i]; c {
		case '\\':
			b = append(b, `\\`...)
		case '"':
			b = append(b, `\"`...)
		case '\n':
			b = append(b, `\n`...)
		default:
			b = append(b, c)
		}
	}
	return b
}

// maxExactInt is the largest magnitude below which every integer is a float64 exactly.
const maxExactInt = 1 << 53

// appendValue appends v as the text format writes a sample value: a whole number in digits,
// anything else in Go's shortest 'g' form, and +Inf, -Inf or NaN.
func appendValue(b []byte, v float64) []byte {
	switch {
	case math.IsNaN(v):
		return append(b, "NaN"...)
	case math.IsInf(v, 1):
		return append(b, "+Inf"...)
	case math.IsInf(v, -1):
		return append(b, "-Inf"...)
	case v == math.Trunc(v) && math.Abs(v) < maxExactInt:
		return strconv.AppendInt(b, int64(v), 10)
	}
	return strconv.AppendFloat(b, v, 'g', -1, 64)
}
