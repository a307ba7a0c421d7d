package thing

import (
	"encoding/json"
	"fmt"
	"strings"

	"github.com/gatewayd/gatewayd/internal/topic"
)

// thingsboard is ThingsBoard's device MQTT API (clouds.md 4.7): a shared attribute update on
// v1/devices/me/attributes ({"LEDSwitch":true}, with whatever other shared attributes changed)
// is the set; it has no reply, the device answers by reporting the real state (as telemetry on
// v1/devices/me/telemetry by default, or as a client attribute on v1/devices/me/attributes). A server-side RPC on v1/devices/me/rpc/request/<id>
// ({"method","params"}) is answered on v1/devices/me/rpc/response/<id> with the output, or
// {"error":"…"} when refused. The platform does not answer reports.
type thingsboard struct{ t Topics }

func (b thingsboard) Name() string { return "thingsboard" }
func (b thingsboard) Form() Form   { return FormBool }

func (b thingsboard) Filters() []string { return filters(b.t.Set, b.t.Service) }

func (b thingsboard) Parse(t string, payload []byte) (Request, bool, error) {
	switch {
	case b.t.Set != "" && topic.Match(b.t.Set, t):
		req := Request{Kind: Set, Topic: t, Lenient: true}
		var m map[string]json.RawMessage
		if err := decode(payload, &m); err != nil {
			return req, true, err
		}
		if shared, ok := m["shared"]; ok && len(m) <= 2 { // the attribute-response form
			if p, err := paramsObject(shared); err == nil {
				m = p
			}
		}
		req.Props = m
		return req, true, nil
	case b.t.Service != "" && topic.Match(b.t.Service, t):
		id := t[strings.LastIndexByte(t, '/')+1:]
		req := Request{Kind: Call, Topic: t, ID: id}
		var m struct {
			Method string          `json:"method"`
			Params json.RawMessage `json:"params"`
		}
		if err := decode(payload, &m); err != nil {
			return req, true, err
		}
		if m.Method == "" {
			return req, true, fmt.Errorf("no method: %w", ErrMalformed)
		}
		req.Service, req.Args = m.Method, m.Params
		return req, true, nil
	}
	return Request{}, false, nil
}

func (b thingsboard) Reply(req Request, res Result) (Message, bool) {
	if req.Kind != Call {
		return Message{}, false
	}
	t := strings.Replace(req.Topic, "/rpc/request/", "/rpc/response/", 1)
	t = strings.Replace(t, "v2/r/req/", "v2/r/res/", 1)
	var body any = emptyObject
	switch {
	case res.Err != nil:
		body = map[string]string{"error": res.Err.Error()}
	case res.Output != nil:
		body = res.Output
	}
	return Message{Topic: t, Payload: mustJSON(body)}, true
}

func (b thingsboard) Report(_ uint64, ps []Prop) Message {
	return Message{Topic: b.t.Report, Payload: mustJSON(props(ps, nil))}
}

func (b thingsboard) Words(int) string { return "ThingsBoard does not answer reports" }
