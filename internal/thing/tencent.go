package thing

import (
	"encoding/json"
	"strconv"

	"github.com/gatewayd/gatewayd/internal/topic"
)

// tencent is Tencent IoT Explorer's data template (clouds.md 4.2): control and report_reply
// share the topic $thing/down/property/… and are told apart by "method"; a control is answered
// on $thing/up/property/… with {"method":"control_reply","clientToken","code","status"}, code 0
// on success. An action on $thing/down/action/… is answered on $thing/up/action/… with
// "action_reply". The error code used for a value the device refuses is 406, the code the
// reference gives for the platform's own model validation error (the device-side codes other
// than 0 are not listed there).
type tencent struct{ t Topics }

func (c tencent) Name() string { return "tencent" }
func (c tencent) Form() Form   { return FormNumber }

func (c tencent) Filters() []string { return filters(c.t.Set, c.t.ReportReply, c.t.Service) }

// tencentMessage is any message of the data template protocol.
type tencentMessage struct {
	Method      string          `json:"method"`
	ClientToken json.RawMessage `json:"clientToken"`
	Params      json.RawMessage `json:"params"`
	ActionID    string          `json:"actionId"`
	Code        *int            `json:"code"`
	Status      string          `json:"status"`
}

// tencentRefused is the code a refused control or action is answered with.
const tencentRefused = 406

func (c tencent) Parse(t string, payload []byte) (Request, bool, error) {
	onProperty := (c.t.Set != "" && topic.Match(c.t.Set, t)) || (c.t.ReportReply != "" && topic.Match(c.t.ReportReply, t))
	onAction := c.t.Service != "" && topic.Match(c.t.Service, t)
	if !onProperty && !onAction {
		return Request{}, false, nil
	}
	var m tencentMessage
	if err := decode(payload, &m); err != nil {
		// Which kind it was is in the broken message too; a control is the one that needs an answer.
		req := Request{Kind: Set, Topic: t, ID: salvage(payload, "clientToken")}
		switch salvage(payload, "method") {
		case "action":
			req.Kind = Call
		case "report_reply":
			req.Kind = ReportReply
		}
		return req, true, err
	}
	id := idString(m.ClientToken)
	switch {
	case onProperty && m.Method == "control":
		req := Request{Kind: Set, Topic: t, ID: id}
		var err error
		req.Props, err = paramsObject(m.Params)
		return req, true, err
	case onProperty && m.Method == "report_reply":
		code := -1
		if m.Code != nil {
			code = *m.Code
		}
		return Request{Kind: ReportReply, Topic: t, ID: id, Code: code, OK: code == 0, Text: m.Status}, true, nil
	case onAction && m.Method == "action":
		return Request{Kind: Call, Topic: t, ID: id, Service: m.ActionID, Args: m.Params}, true, nil
	}
	return Request{Kind: Other, Topic: t, ID: id, Text: m.Method}, true, nil
}

func (c tencent) code(err error) int {
	if err == nil {
		return 0
	}
	return tencentRefused
}

func (c tencent) Reply(req Request, res Result) (Message, bool) {
	switch req.Kind {
	case Set:
		body := object{{"method", "control_reply"}, {"clientToken", req.ID}, {"code", c.code(res.Err)}, {"status", wordsFor(res.Err)}}
		return Message{Topic: c.t.SetReply, Payload: mustJSON(body)}, c.t.SetReply != ""
	case Call:
		var out any = emptyObject
		if res.Output != nil && res.Err == nil {
			out = res.Output
		}
		body := object{{"method", "action_reply"}, {"clientToken", req.ID}, {"code", c.code(res.Err)}, {"status", wordsFor(res.Err)}, {"response", out}}
		return Message{Topic: c.t.ServiceReply, Payload: mustJSON(body)}, c.t.ServiceReply != ""
	}
	return Message{}, false
}

func (c tencent) Report(seq uint64, ps []Prop) Message {
	return Message{Topic: c.t.Report, Payload: mustJSON(object{
		{"method", "report"}, {"clientToken", strconv.FormatUint(seq, 10)}, {"params", props(ps, nil)},
	})}
}

func (c tencent) Words(code int) string {
	switch code {
	case 0:
		return "success"
	case 406:
		return "the data template refused the report (model validation error)"
	case -1:
		return "no code in the reply"
	}
	return "code not documented"
}
