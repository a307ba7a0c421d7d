package thing

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"
)

// Kind says what a downlink on one of the thing model's topics is.
type Kind int

// Kinds of downlinks.
const (
	// Other is a message on a thing topic that is not for this device to act on (a method it
	// does not know on a shared topic, its own report echoed back). It is logged and ignored.
	Other Kind = iota
	// Set asks for properties to be set (Aliyun property/set, Tencent control, Huawei
	// properties/set, OneNET property/set, an Azure desired change, an AWS shadow delta, a
	// ThingsBoard shared attribute update).
	Set
	// Call invokes a service (Aliyun service, Tencent action, Huawei command, OneNET service
	// invoke, Azure direct method, ThingsBoard RPC).
	Call
	// ReportReply is the platform's answer to a property report (post_reply, report_reply,
	// twin response, shadow accepted/rejected).
	ReportReply
)

func (k Kind) String() string {
	switch k {
	case Set:
		return "property set"
	case Call:
		return "service call"
	case ReportReply:
		return "report reply"
	}
	return "other"
}

// Request is one downlink a dialect parsed.
type Request struct {
	Kind  Kind
	Topic string // the topic it came on
	// ID is the request id the reply must echo ("" when the platform has none, or when it could
	// not be read from a malformed message).
	ID string
	// Props are the properties a Set names, with their values as sent.
	Props map[string]json.RawMessage
	// Lenient is set when the platform sends more than this device's properties in a set
	// (a ThingsBoard attribute update carries every shared attribute that changed): names the
	// device does not have are ignored, not refused.
	Lenient bool
	// Version is the desired state's version an Azure set carries (the ack's "av").
	Version int64
	// Service and Args are a Call's name and parameters.
	Service string
	Args    json.RawMessage
	// Code, OK and Text are a ReportReply's code, whether it means success, and its message.
	Code int
	OK   bool
	Text string
}

// Message is one message to publish.
type Message struct {
	Topic   string
	Payload []byte
}

// Prop is one property of a report, its value already in the platform's form.
type Prop struct {
	Name  string
	Value any
}

// Result is how the device handled a Set or a Call, for the reply.
type Result struct {
	// Err is nil when the request was applied; otherwise one of the errors below (wrapped).
	Err error
	// Props are the device's values after the request (for a Set: the bound property with the
	// LED's real state, applied or not), in the platform's form.
	Props []Prop
	// Output is a Call's output (marshalled to JSON); nil for none.
	Output any
	// Seq is a number unique to this reply, for platforms whose reply needs a request id of
	// the device's own (Azure's $rid).
	Seq uint64
}

// Errors a request is refused with; each dialect answers each with its platform's code.
var (
	ErrMalformed       = errors.New("malformed message")
	ErrUnknownProperty = errors.New("unknown property")
	ErrWrongType       = errors.New("wrong type")
	ErrOutOfRange      = errors.New("value out of range")
	ErrUnknownService  = errors.New("unknown service")
	ErrBadArgs         = errors.New("bad service parameters")
	ErrBusy            = errors.New("device busy")
)

// Dialect is one platform's thing model: which topics carry what, how a request reads and how
// a reply and a report are written.
type Dialect interface {
	// Name is the platform's short name ("aliyun", "tencent", ...).
	Name() string
	// Filters are the topic filters the device must subscribe to for the dialect's downlinks.
	Filters() []string
	// Parse reads a downlink. ok is false when topic is none of the dialect's downlink topics.
	// A message that cannot be understood returns an error wrapping ErrMalformed (or another
	// of the errors above) with the request's Kind and whatever ID could be read, so that the
	// platform can still be answered.
	Parse(topic string, payload []byte) (req Request, ok bool, err error)
	// Reply answers a Set or a Call; ok is false when the platform has no reply for it (an
	// AWS delta, a ThingsBoard attribute update: the report of the real state is the answer).
	Reply(req Request, res Result) (m Message, ok bool)
	// Report is a property report with the request id seq.
	Report(seq uint64, props []Prop) Message
	// Form is how the platform's consoles usually type an on/off property.
	Form() Form
	// Words says what a report reply's code means.
	Words(code int) string
}

// Topics are a dialect's topics, templates already expanded. An empty topic leaves that flow
// out (no services, no report replies), except where a dialect derives it from another.
type Topics struct {
	Set          string // filter the sets arrive on
	SetReply     string // where a set is answered (Aliyun, Tencent, OneNET)
	Report       string // where properties are reported
	ReportReply  string // filter the report replies arrive on
	Service      string // filter the service calls arrive on
	ServiceReply string // where a call is answered (Tencent; the others derive it from the call's topic)
	// ServiceID is the Huawei service the properties belong to.
	ServiceID string
}

// Fill returns t with r applied to every topic: a template's placeholders filled in (a
// registered device's name, known only at run time).
func (t Topics) Fill(r *strings.Replacer) Topics {
	t.Set, t.SetReply, t.Report = r.Replace(t.Set), r.Replace(t.SetReply), r.Replace(t.Report)
	t.ReportReply, t.Service, t.ServiceReply = r.Replace(t.ReportReply), r.Replace(t.Service), r.Replace(t.ServiceReply)
	return t
}

// Contains reports whether any topic of t holds s (a placeholder still to fill in).
func (t Topics) Contains(s string) bool {
	for _, v := range []string{t.Set, t.SetReply, t.Report, t.ReportReply, t.Service, t.ServiceReply} {
		if strings.Contains(v, s) {
			return true
		}
	}
	return false
}

// Names lists the dialects, in the order the docs show them.
func Names() []string {
	return []string{"aliyun", "tencent", "huawei", "onenet", "azure", "aws", "thingsboard"}
}

// New returns the dialect called name with its topics.
func New(name string, t Topics) (Dialect, error) {
	switch name {
	case "aliyun":
		return aliyun{t}, nil
	case "tencent":
		return tencent{t}, nil
	case "huawei":
		if t.ServiceID == "" {
			t.ServiceID = DefaultServiceID
		}
		return huawei{t}, nil
	case "onenet":
		return onenet{t}, nil
	case "azure":
		return azure{t}, nil
	case "aws":
		return aws{t}, nil
	case "thingsboard":
		return thingsboard{t}, nil
	}
	return nil, fmt.Errorf("no thing-model dialect %q (known: %s)", name, strings.Join(Names(), ", "))
}

// DefaultServiceID is the Huawei service the properties are reported under when none is named.
const DefaultServiceID = "gatewayd"

// Form is how an on/off value is typed.
type Form int

// Forms of an on/off value.
const (
	FormNumber Form = iota // 1 / 0
	FormBool               // true / false
	FormString             // "on" / "off"
)

// Value is on as a value of form f.
func (f Form) Value(on bool) any {
	switch f {
	case FormBool:
		return on
	case FormString:
		if on {
			return "on"
		}
		return "off"
	}
	if on {
		return 1
	}
	return 0
}

// ParseSwitch reads an on/off value: 1 or 0, true or false, "on" or "off" (any case; also
// "1"/"0" and "true"/"false" as strings). It returns the form the value was sent in, so the
// device can report in kind. Another number is ErrOutOfRange, another string too; an object,
// an array or null is ErrWrongType.
func ParseSwitch(raw json.RawMessage) (on bool, f Form, err error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 {
		return false, 0, fmt.Errorf("no value: %w", ErrWrongType)
	}
	switch raw[0] {
	case 't', 'f':
		var b bool
		if err := json.Unmarshal(raw, &b); err != nil {
			return false, 0, fmt.Errorf("%s: %w", raw, ErrWrongType)
		}
		return b, FormBool, nil
	case '"':
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return false, 0, fmt.Errorf("%s: %w", raw, ErrWrongType)
		}
		switch strings.ToLower(s) {
		case "on", "1", "true":
			return true, FormString, nil
		case "off", "0", "false":
			return false, FormString, nil
		}
		return false, 0, fmt.Errorf("%q is not \"on\" or \"off\": %w", s, ErrOutOfRange)
	case '{', '[', 'n':
		return false, 0, fmt.Errorf("%s is not a number, a boolean or \"on\"/\"off\": %w", short(raw), ErrWrongType)
	}
	v, perr := strconv.ParseFloat(string(raw), 64)
	var nerr *strconv.NumError
	switch {
	case errors.As(perr, &nerr) && errors.Is(nerr.Err, strconv.ErrRange):
		return false, 0, fmt.Errorf("%s is neither 0 nor 1: %w", short(raw), ErrOutOfRange)
	case perr != nil || math.IsNaN(v):
		return false, 0, fmt.Errorf("%s: %w", short(raw), ErrWrongType)
	case v == 1:
		return true, FormNumber, nil
	case v == 0:
		return false, FormNumber, nil
	}
	return false, 0, fmt.Errorf("%s is neither 0 nor 1: %w", short(raw), ErrOutOfRange)
}

// short cuts a value for an error message.
func short(b []byte) string {
	if len(b) > 40 {
		return string(b[:40]) + "…"
	}
	return string(b)
}

// maxPayload is the largest downlink a dialect parses; the module's own limit is 4096 bytes.
const maxPayload = 16 << 10

// decode unmarshals payload into v, wrapping any failure in ErrMalformed.
func decode(payload []byte, v any) error {
	if len(payload) > maxPayload {
		return fmt.Errorf("%d bytes is more than %d: %w", len(payload), maxPayload, ErrMalformed)
	}
	if err := json.Unmarshal(payload, v); err != nil {
		return fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	return nil
}

// salvage reads the string or number member key at the top level of a JSON object that may be
// cut short or broken further on, so that a malformed request can still be answered with its
// id. It returns "" when the member is not there before the damage.
func salvage(payload []byte, key string) string {
	if len(payload) > maxPayload {
		payload = payload[:maxPayload]
	}
	d := json.NewDecoder(bytes.NewReader(payload))
	d.UseNumber()
	if t, err := d.Token(); err != nil || t != json.Delim('{') {
		return ""
	}
	for {
		t, err := d.Token()
		if err != nil {
			return ""
		}
		name, isKey := t.(string)
		if !isKey {
			return ""
		}
		if name == key {
			v, err := d.Token()
			if err != nil {
				return ""
			}
			switch v := v.(type) {
			case string:
				return v
			case json.Number:
				return v.String()
			}
			return ""
		}
		var skip json.RawMessage
		if err := d.Decode(&skip); err != nil {
			return ""
		}
	}
}

// idString reads a request id that may be a JSON string or number.
func idString(raw json.RawMessage) string {
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return s
	}
	var n json.Number
	if json.Unmarshal(raw, &n) == nil {
		return n.String()
	}
	return ""
}

// object is an ordered JSON object: the replies are written with their members in the order the
// reference prints them.
type object []member

type member struct {
	k string
	v any
}

// MarshalJSON writes the members in order.
func (o object) MarshalJSON() ([]byte, error) {
	var b bytes.Buffer
	b.WriteByte('{')
	for i, m := range o {
		if i > 0 {
			b.WriteByte(',')
		}
		k, _ := json.Marshal(m.k)
		b.Write(k)
		b.WriteByte(':')
		v, err := json.Marshal(m.v)
		if err != nil {
			return nil, err
		}
		b.Write(v)
	}
	b.WriteByte('}')
	return b.Bytes(), nil
}

// props is a report's properties as an ordered object, each value wrapped by wrap (nil: as is).
func props(ps []Prop, wrap func(any) any) object {
	o := make(object, 0, len(ps))
	for _, p := range ps {
		v := p.Value
		if wrap != nil {
			v = wrap(v)
		}
		o = append(o, member{p.Name, v})
	}
	return o
}

// mustJSON marshals v, which is built here from plain values and cannot fail; a failure
// (a Call output that cannot be marshalled) becomes a JSON error string.
func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		b, _ = json.Marshal(map[string]string{"error": err.Error()})
	}
	return b
}

// emptyObject is {} for "data":{}.
var emptyObject = struct{}{}

// sortedKeys lists m's keys in order, for messages.
func sortedKeys(m map[string]json.RawMessage) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}

// wordsFor says what err is, for a reply's status text.
func wordsFor(err error) string {
	if err == nil {
		return "success"
	}
	return err.Error()
}
