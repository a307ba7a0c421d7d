package thing

import (
	"encoding/json"
	"strconv"
	"strings"

	"github.com/gatewayd/gatewayd/internal/topic"
)

// onenet is OneNET's OneJSON thing model (clouds.md 4.4): a set on
// $sys/<pid>/<dn>/thing/property/set is answered on …/property/set_reply with {"id","code"}: 200
// applied, 100 refused (the code the official SDK sends when a setter fails; the platform's
// exact failure code is UNVERIFIED). Reports go to …/thing/property/post with each value as
// {"value":v} and are answered on …/property/post/reply. A service call on
// …/thing/service/<name>/invoke is answered on …/invoke_reply with {"id","code","data"}.
type onenet struct{ t Topics }

func (o onenet) Name() string { return "onenet" }
func (o onenet) Form() Form   { return FormNumber }

func (o onenet) Filters() []string { return filters(o.t.Set, o.t.ReportReply, o.t.Service) }

func (o onenet) Parse(t string, payload []byte) (Request, bool, error) {
	switch {
	case o.t.Set != "" && topic.Match(o.t.Set, t):
		req, err := parseAlink(Request{Kind: Set, Topic: t}, payload)
		return req, true, err
	case o.t.ReportReply != "" && topic.Match(o.t.ReportReply, t):
		var m struct {
			ID   json.RawMessage `json:"id"`
			Code *int            `json:"code"`
			Msg  string          `json:"msg"`
		}
		if err := decode(payload, &m); err != nil {
			return Request{Kind: ReportReply, Topic: t}, true, err
		}
		code := -1
		if m.Code != nil {
			code = *m.Code
		}
		return Request{Kind: ReportReply, Topic: t, ID: idString(m.ID), Code: code, OK: code == 200, Text: m.Msg}, true, nil
	case o.t.Service != "" && topic.Match(o.t.Service, t) && strings.HasSuffix(t, "/invoke"):
		name := strings.TrimSuffix(t, "/invoke")
		req, err := parseAlink(Request{Kind: Call, Topic: t, Service: name[strings.LastIndexByte(name, '/')+1:]}, payload)
		return req, true, err
	}
	return Request{}, false, nil
}

func (o onenet) code(err error) int {
	if err == nil {
		return 200
	}
	return 100
}

func (o onenet) Reply(req Request, res Result) (Message, bool) {
	switch req.Kind {
	case Set:
		return Message{Topic: o.t.SetReply, Payload: mustJSON(object{{"id", req.ID}, {"code", o.code(res.Err)}})}, o.t.SetReply != ""
	case Call:
		var data any = emptyObject
		if res.Output != nil && res.Err == nil {
			data = res.Output
		}
		return Message{Topic: req.Topic + "_reply", Payload: mustJSON(object{{"id", req.ID}, {"code", o.code(res.Err)}, {"data", data}})}, true
	}
	return Message{}, false
}

func (o onenet) Report(seq uint64, ps []Prop) Message {
	wrap := func(v any) any { return object{{"value", v}} }
	return Message{Topic: o.t.Report, Payload: mustJSON(object{
		{"id", strconv.FormatUint(seq, 10)}, {"version", "1.0"}, {"params", props(ps, wrap)},
	})}
}

func (o onenet) Words(code int) string {
	switch code {
	case 200:
		return "success"
	case -1:
		return "no code in the reply"
	}
	return "code not documented (the reference lists only 200)"
}
