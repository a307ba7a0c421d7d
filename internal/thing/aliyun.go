package thing

import (
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/gatewayd/gatewayd/internal/topic"
)

// aliyun is Alibaba Cloud's Alink JSON (clouds.md 4.1 and 6, ec600-at.md 7.4): a set on
// …/thing/service/property/set is answered on …/property/set_reply with {"id","code","data"}
// (200 applied, 460 a parameter the device refuses, 429 busy); a service call on
// …/thing/service/<name> is answered on …/thing/service/<name>_reply; reports go to
// …/thing/event/property/post and are answered on …/post_reply (200 success).
type aliyun struct{ t Topics }

func (a aliyun) Name() string { return "aliyun" }
func (a aliyun) Form() Form   { return FormNumber }

func (a aliyun) Filters() []string { return filters(a.t.Set, a.t.Service, a.t.ReportReply) }

// alinkRequest is an Alink request: a set, a service call.
type alinkRequest struct {
	ID     json.RawMessage `json:"id"`
	Method string          `json:"method"`
	Params json.RawMessage `json:"params"`
}

// alinkReply is the platform's answer to a report.
type alinkReply struct {
	ID      json.RawMessage `json:"id"`
	Code    *int            `json:"code"`
	Message string          `json:"message"`
}

func (a aliyun) Parse(t string, payload []byte) (Request, bool, error) {
	switch {
	case a.t.Set != "" && topic.Match(a.t.Set, t):
		req, err := parseAlink(Request{Kind: Set, Topic: t}, payload)
		return req, true, err
	case a.t.ReportReply != "" && topic.Match(a.t.ReportReply, t):
		var m alinkReply
		if err := decode(payload, &m); err != nil {
			return Request{Kind: ReportReply, Topic: t}, true, err
		}
		if m.Code == nil {
			return Request{Kind: ReportReply, Topic: t, ID: idString(m.ID)}, true, fmt.Errorf("no code: %w", ErrMalformed)
		}
		return Request{Kind: ReportReply, Topic: t, ID: idString(m.ID), Code: *m.Code, OK: *m.Code == 200, Text: m.Message}, true, nil
	case a.t.Service != "" && topic.Match(a.t.Service, t) && !strings.HasSuffix(t, "_reply"):
		req, err := parseAlink(Request{Kind: Call, Topic: t, Service: t[strings.LastIndexByte(t, '/')+1:]}, payload)
		return req, true, err
	}
	return Request{}, false, nil
}

// parseAlink reads an Alink-shaped request ({"id","params",…}: Aliyun's and OneNET's sets and
// service calls) into req, whose Kind says which; a set's params must be an object. A broken
// message keeps the id salvaged from it.
func parseAlink(req Request, payload []byte) (Request, error) {
	var m alinkRequest
	if err := decode(payload, &m); err != nil {
		req.ID = salvage(payload, "id")
		return req, err
	}
	req.ID = idString(m.ID)
	if req.Kind == Call {
		req.Args = m.Params
		return req, nil
	}
	var err error
	req.Props, err = paramsObject(m.Params)
	return req, err
}

// paramsObject reads a set's params, which must be a JSON object.
func paramsObject(raw json.RawMessage) (map[string]json.RawMessage, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return nil, fmt.Errorf("no params: %w", ErrMalformed)
	}
	var p map[string]json.RawMessage
	if err := json.Unmarshal(raw, &p); err != nil {
		return nil, fmt.Errorf("params is not an object: %w", ErrMalformed)
	}
	return p, nil
}

// aliyunCode is the device-side code for how a request went (clouds.md 6.2, ALI-89309).
func aliyunCode(err error) int {
	switch {
	case err == nil:
		return 200
	case errors.Is(err, ErrBusy):
		return 429
	}
	return 460
}

func (a aliyun) Reply(req Request, res Result) (Message, bool) {
	var data any = emptyObject
	if res.Output != nil && res.Err == nil {
		data = res.Output
	}
	body := mustJSON(object{{"id", req.ID}, {"code", aliyunCode(res.Err)}, {"data", data}})
	switch req.Kind {
	case Set:
		return Message{Topic: a.t.SetReply, Payload: body}, a.t.SetReply != ""
	case Call:
		return Message{Topic: req.Topic + "_reply", Payload: body}, true
	}
	return Message{}, false
}

func (a aliyun) Report(seq uint64, ps []Prop) Message {
	return Message{Topic: a.t.Report, Payload: mustJSON(object{
		{"id", strconv.FormatUint(seq, 10)}, {"version", "1.0"}, {"params", props(ps, nil)},
		{"method", "thing.event.property.post"},
	})}
}

func (a aliyun) Words(code int) string {
	switch {
	case code == 200:
		return "success"
	case code == 400:
		return "request error: the platform failed while processing it"
	case code == 429:
		return "too many requests"
	case code == 460:
		return "request parameter error: the platform refused a property (unknown identifier, wrong type or range)"
	case code == 6106:
		return "too many properties in one report (map size must be less than 200)"
	case code == 6313:
		return "the thing model (TSL) service is unavailable"
	case code == 6813:
		return "topic illegal"
	case code >= 100000 && code <= 110000:
		return "device-defined error"
	}
	return "code not documented"
}

// filters lists the non-empty filters among fs.
func filters(fs ...string) []string {
	var out []string
	for _, f := range fs {
		if f != "" && !contains(out, f) {
			out = append(out, f)
		}
	}
	return out
}

func contains(ss []string, s string) bool {
	for _, x := range ss {
		if x == s {
			return true
		}
	}
	return false
}
