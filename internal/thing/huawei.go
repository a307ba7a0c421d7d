package thing

import (
	"encoding/json"
	"fmt"
	"strings"

	"github.com/gatewayd/gatewayd/internal/topic"
)

// huawei is Huawei IoTDA (clouds.md 4.3): a set arrives on
// $oc/devices/<id>/sys/properties/set/request_id=<rid> with {"services":[{"service_id",
// "properties"}]} and is answered on …/sys/properties/set/response/request_id=<rid> with
// {"result_code":0,"result_desc":"success"} (1 = fail, as the SDK's IotResult.FAIL); a command on
// …/sys/commands/request_id=<rid> is answered on …/sys/commands/response/request_id=<rid> with
// {"result_code","response_name","paras"}. Reports go to …/sys/properties/report under the
// configured service id; the platform does not answer them.
type huawei struct{ t Topics }

func (h huawei) Name() string { return "huawei" }
func (h huawei) Form() Form   { return FormNumber }

func (h huawei) Filters() []string { return filters(h.t.Set, h.t.Service) }

// requestID reads the request_id=<rid> level that ends a Huawei request topic.
func requestID(t string) (string, bool) {
	last := t[strings.LastIndexByte(t, '/')+1:]
	rid, ok := strings.CutPrefix(last, "request_id=")
	return rid, ok && rid != ""
}

func (h huawei) Parse(t string, payload []byte) (Request, bool, error) {
	var kind Kind
	switch {
	case h.t.Set != "" && topic.Match(h.t.Set, t):
		kind = Set
	case h.t.Service != "" && topic.Match(h.t.Service, t):
		kind = Call
	default:
		return Request{}, false, nil
	}
	if strings.Contains(t, "/response/") {
		return Request{Kind: Other, Topic: t, Text: "a response (the device's own, echoed)"}, true, nil
	}
	rid, ok := requestID(t)
	req := Request{Kind: kind, Topic: t, ID: rid}
	if !ok {
		return Request{Kind: Other, Topic: t, Text: "no request_id in the topic"}, true, nil
	}
	if kind == Call {
		var m struct {
			ServiceID   string          `json:"service_id"`
			CommandName string          `json:"command_name"`
			Paras       json.RawMessage `json:"paras"`
		}
		if err := decode(payload, &m); err != nil {
			return req, true, err
		}
		req.Service, req.Args = m.CommandName, m.Paras
		return req, true, nil
	}
	var m struct {
		Services []struct {
			ServiceID  string          `json:"service_id"`
			Properties json.RawMessage `json:"properties"`
		} `json:"services"`
	}
	if err := decode(payload, &m); err != nil {
		return req, true, err
	}
	if len(m.Services) == 0 {
		return req, true, fmt.Errorf("no services: %w", ErrMalformed)
	}
	req.Props = map[string]json.RawMessage{}
	for _, s := range m.Services {
		if s.ServiceID != h.t.ServiceID {
			return req, true, fmt.Errorf("service %q (this device has %q): %w", s.ServiceID, h.t.ServiceID, ErrUnknownProperty)
		}
		p, err := paramsObject(s.Properties)
		if err != nil {
			return req, true, err
		}
		for k, v := range p {
			req.Props[k] = v
		}
	}
	return req, true, nil
}

// responseTopic is the topic a request on t is answered on: …/request_id=<rid> becomes
// …/response/request_id=<rid>.
func responseTopic(t string) string {
	i := strings.LastIndexByte(t, '/')
	return t[:i] + "/response" + t[i:]
}

func (h huawei) Reply(req Request, res Result) (Message, bool) {
	code, desc := 0, "success"
	if res.Err != nil {
		code, desc = 1, res.Err.Error()
	}
	switch req.Kind {
	case Set:
		return Message{Topic: responseTopic(req.Topic), Payload: mustJSON(object{{"result_code", code}, {"result_desc", desc}})}, true
	case Call:
		var out any = emptyObject
		if res.Output != nil && res.Err == nil {
			out = res.Output
		} else if res.Err != nil {
			out = map[string]string{"error": desc}
		}
		return Message{Topic: responseTopic(req.Topic), Payload: mustJSON(object{{"result_code", code}, {"response_name", req.Service}, {"paras", out}})}, true
	}
	return Message{}, false
}

func (h huawei) Report(_ uint64, ps []Prop) Message {
	svc := object{{"service_id", h.t.ServiceID}, {"properties", props(ps, nil)}}
	return Message{Topic: h.t.Report, Payload: mustJSON(object{{"services", []any{svc}}})}
}

func (h huawei) Words(code int) string {
	switch code {
	case 0:
		return "success"
	case 1:
		return "fail"
	}
	return "code not documented"
}
