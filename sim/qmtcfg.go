package sim

import (
	"strconv"
	"strings"
)

// cfgParam is one value of an AT+QMTCFG sub-command.
type cfgParam struct {
	str     bool  // a quoted string (hi is then its maximum length)
	lo, hi  int   // numeric range
	allowed []int // explicit values instead of a range (version: 3 or 4)
	defNum  int
}

// cfgSpec describes one AT+QMTCFG sub-command: its line in the =? list, its values, and how many
// of them a set command may give (a set may give the first k values and keep the rest).
type cfgSpec struct {
	name   string
	test   string // the =? line after "+QMTCFG: "
	params []cfgParam
	counts []int // accepted numbers of values in a set
	data   bool  // willex: the last value is a length and that many bytes follow a "> " prompt
	// asrOnly: an ASR-family name (reference 8) that Unisoc firmware (Config.Unisoc) lacks.
	asrOnly bool
}

func pNum(lo, hi, def int) cfgParam     { return cfgParam{lo: lo, hi: hi, defNum: def} }
func pOneOf(def int, v ...int) cfgParam { return cfgParam{allowed: v, defNum: def} }
func pStr(maxLen int) cfgParam          { return cfgParam{str: true, hi: maxLen} }

// qmtcfgSpecs is the EC600S sub-command list in its =? order (reference section 1), with the
// ranges as logged and the defaults from the sub-command table. Where the reference gives no
// default (edit/timeout) the value chosen here is noted.
var qmtcfgSpecs = []cfgSpec{
	{name: "version", test: `"version",(0-5),(3,4)`, params: []cfgParam{pOneOf(4, 3, 4)}, counts: []int{1}},
	{name: "pdpcid", test: `"pdpcid",(0-5),(1-15)`, params: []cfgParam{pNum(1, 15, 1)}, counts: []int{1}},
	{name: "ssl", test: `"ssl",(0-5),(0,1),(0-5)`, params: []cfgParam{pNum(0, 1, 0), pNum(0, 5, 0)}, counts: []int{1, 2}},
	{name: "keepalive", test: `"keepalive",(0-5),(0-3600)`, params: []cfgParam{pNum(0, 3600, 120)}, counts: []int{1}},
	{name: "session", test: `"session",(0-5),(0,1)`, params: []cfgParam{pNum(0, 1, 1)}, counts: []int{1}},
	{name: "timeout", test: `"timeout",(0-5),(1-1200),(1-10),(0,1)`,
		params: []cfgParam{pNum(1, 1200, 5), pNum(1, 10, 3), pNum(0, 1, 0)}, counts: []int{1, 2, 3}},
	{name: "will", test: `"will",(0-5),(0,1),(0-2),(0,1),"willtopic","willmessage"`,
		params: []cfgParam{pNum(0, 1, 0), pNum(0, 2, 0), pNum(0, 1, 0), pStr(256), pStr(256)}, counts: []int{1, 5}},
	{name: "willex", test: `"willex",(0-5),(0,1),(0-2),(0,1),"willtopic",(0-256)`,
		params: []cfgParam{pNum(0, 1, 0), pNum(0, 2, 0), pNum(0, 1, 0), pStr(256), pNum(0, 256, 0)}, counts: []int{1, 5}, data: true},
	{name: "recv/mode", test: `"recv/mode",(0-5),(0,1),(0,1)`, params: []cfgParam{pNum(0, 1, 0), pNum(0, 1, 0)}, counts: []int{1, 2}},
	{name: "send/mode", test: `"send/mode",(0-5),(0,1)`, params: []cfgParam{pNum(0, 1, 0)}, counts: []int{1}},
	{name: "onenet", test: `"onenet",(0-5),"product id","access key"`, params: []cfgParam{pStr(256), pStr(256)}, counts: []int{2}},
	{name: "aliauth", test: `"aliauth",(0-5),"product key","device name","device secret"`,
		params: []cfgParam{pStr(64), pStr(64), pStr(64)}, counts: []int{3}},
	{name: "hwauth", test: `"hwauth",(0-5),"device id","device secret"`, params: []cfgParam{pStr(256), pStr(256)}, counts: []int{2}},
	{name: "hwprodid", test: `"hwprodid",(0-5),"product id","product secret","nodeid"`,
		params: []cfgParam{pStr(256), pStr(256), pStr(256)}, counts: []int{3}},
	{name: "qmtping", test: `"qmtping",(0-5),(5-60)`, params: []cfgParam{pNum(5, 60, 5)}, counts: []int{1}},
	{name: "dataformat", test: `"dataformat",(0-5),(0,1),(0,1)`, params: []cfgParam{pNum(0, 1, 0), pNum(0, 1, 0)}, counts: []int{2}},
	{name: "view/mode", test: `"view/mode",(0-5),(0,1)`, params: []cfgParam{pNum(0, 1, 0)}, counts: []int{1}},
	{name: "CTWing", test: `"CTWing",(0-5),"client_id","feature_string"`, params: []cfgParam{pStr(256), pStr(256)}, counts: []int{2}},
	// edit/timeout default: the reference has none; one driver assumes 30 s, enable defaults to 0.
	{name: "edit/timeout", test: `"edit/timeout",(0-5),(0,1),(1-180)`, params: []cfgParam{pNum(0, 1, 0), pNum(1, 180, 30)}, counts: []int{1, 2}},
}

func init() {
	for i, s := range qmtcfgSpecs {
		switch s.name {
		case "willex", "send/mode", "dataformat", "view/mode", "edit/timeout", "qmtping", "onenet", "hwauth", "hwprodid", "CTWing":
			qmtcfgSpecs[i].asrOnly = true
		}
	}
}

// lookupCfg finds a sub-command by name, case-insensitively.
func lookupCfg(name string) (*cfgSpec, bool) {
	for i := range qmtcfgSpecs {
		if strings.EqualFold(qmtcfgSpecs[i].name, name) {
			return &qmtcfgSpecs[i], true
		}
	}
	return nil, false
}

// cfgVal is one stored value: a number or a string.
type cfgVal struct {
	n int
	s string
}

// clientCfg is the AT+QMTCFG state of one client index. It lives in RAM only and is lost on
// reboot, as the reference assumes.
type clientCfg struct {
	vals     map[string][]cfgVal
	willData []byte // the willex message received in data mode
}

func newClientCfg() *clientCfg {
	c := &clientCfg{vals: make(map[string][]cfgVal, len(qmtcfgSpecs))}
	for _, s := range qmtcfgSpecs {
		v := make([]cfgVal, len(s.params))
		for i, p := range s.params {
			if !p.str {
				v[i].n = p.defNum
			}
		}
		c.vals[s.name] = v
	}
	return c
}

// n returns numeric value i of sub-command name.
func (c *clientCfg) n(name string, i int) int { return c.vals[name][i].n }

// s returns string value i of sub-command name.
func (c *clientCfg) s(name string, i int) string { return c.vals[name][i].s }

// parse checks the values of a set command against spec and returns them; ok is false for a
// wrong count, a wrong type or a value out of range.
func (spec *cfgSpec) parse(fs []field) ([]cfgVal, bool) {
	countOK := false
	for _, n := range spec.counts {
		if len(fs) == n {
			countOK = true
		}
	}
	if !countOK {
		return nil, false
	}
	out := make([]cfgVal, len(fs))
	for i, f := range fs {
		p := spec.params[i]
		switch {
		case p.str:
			s, ok := f.str(p.hi)
			if !ok {
				return nil, false
			}
			out[i].s = s
		case p.allowed != nil:
			n, ok := f.num(-1<<31, 1<<31-1)
			if !ok || !contains(p.allowed, n) {
				return nil, false
			}
			out[i].n = n
		default:
			n, ok := f.num(p.lo, p.hi)
			if !ok {
				return nil, false
			}
			out[i].n = n
		}
	}
	return out, true
}

// format renders the query answer `+QMTCFG: "<name>",<v1>[,<v2>...]` (name included, as on ASR).
func (spec *cfgSpec) format(vals []cfgVal) string {
	var b strings.Builder
	b.WriteString(`+QMTCFG: "`)
	b.WriteString(spec.name)
	b.WriteByte('"')
	for i, p := range spec.params {
		b.WriteByte(',')
		if p.str {
			b.WriteByte('"')
			b.WriteString(vals[i].s)
			b.WriteByte('"')
		} else {
			b.WriteString(strconv.Itoa(vals[i].n))
		}
	}
	return b.String()
}

func contains(xs []int, x int) bool {
	for _, v := range xs {
		if v == x {
			return true
		}
	}
	return false
}
