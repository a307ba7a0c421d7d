package thing

import (
	"encoding/json"
	"fmt"
	"strings"

	"github.com/gatewayd/gatewayd/internal/topic"
)

// aws is AWS IoT Core's Device Shadow, the analogue of a thing model (clouds.md 4.5): a change
// of the desired state arrives on $aws/things/<thing>/shadow/update/delta as
// {"version","state":{…}}; there is no reply topic, the device acknowledges by publishing its
// new reported state {"state":{"reported":{…}}} to …/shadow/update, which the service answers
// on …/update/accepted or …/update/rejected ({"code","message"}). A refused delta is answered
// the same way, with the real state, so that the console sees what the device has. AWS has no
// service calls in the reference's snapshot (Jobs / commands are UNVERIFIED): none here.
type aws struct{ t Topics }

func (a aws) Name() string { return "aws" }
func (a aws) Form() Form   { return FormBool }

func (a aws) Filters() []string { return filters(a.t.Set, a.t.ReportReply) }

func (a aws) Parse(t string, payload []byte) (Request, bool, error) {
	switch {
	case a.t.Set != "" && topic.Match(a.t.Set, t):
		req := Request{Kind: Set, Topic: t, ID: salvage(payload, "version")}
		var m struct {
			Version json.RawMessage `json:"version"`
			State   json.RawMessage `json:"state"`
		}
		if err := decode(payload, &m); err != nil {
			return req, true, err
		}
		var err error
		req.Props, err = paramsObject(m.State)
		return req, true, err
	case a.t.ReportReply != "" && topic.Match(a.t.ReportReply, t):
		req := Request{Kind: ReportReply, Topic: t, OK: strings.HasSuffix(t, "/accepted")}
		if req.OK {
			req.Code = 200
			return req, true, nil
		}
		if !strings.HasSuffix(t, "/rejected") {
			return Request{Kind: Other, Topic: t}, true, nil
		}
		var m struct {
			Code        int    `json:"code"`
			Message     string `json:"message"`
			ClientToken string `json:"clientToken"`
		}
		if err := decode(payload, &m); err != nil {
			return req, true, err
		}
		req.Code, req.Text, req.ID = m.Code, m.Message, m.ClientToken
		return req, true, nil
	}
	return Request{}, false, nil
}

// Reply: a delta has no reply of its own; the report of the real state answers it.
func (a aws) Reply(Request, Result) (Message, bool) { return Message{}, false }

func (a aws) Report(seq uint64, ps []Prop) Message {
	return Message{Topic: a.t.Report, Payload: mustJSON(object{
		{"state", object{{"reported", props(ps, nil)}}}, {"clientToken", fmt.Sprint(seq)},
	})}
}

func (a aws) Words(code int) string {
	switch code {
	case 200:
		return "accepted"
	case 400:
		return "bad request: the shadow document was refused"
	case 401, 403:
		return "not authorized to update the shadow"
	case 404:
		return "no such shadow"
	case 409:
		return "version conflict"
	case 413:
		return "the document is too large"
	case 429:
		return "too many requests"
	case 500:
		return "the shadow service failed"
	}
	return "code not documented"
}
