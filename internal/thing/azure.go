package thing

import (
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/gatewayd/gatewayd/internal/topic"
)

// azure is Azure IoT Hub's device twin and direct methods (clouds.md 4.6): a desired change on
// $iothub/twin/PATCH/properties/desired/?$version=<v> ({"LEDSwitch":true,"$version":8}) is
// acknowledged, by the IoT Plug and Play convention, with a reported patch
// {"LEDSwitch":{"value":<real>,"ac":200,"av":<v>,"ad":"success"}} (ac 400 when refused, value
// the LED's real state); reported patches go to $iothub/twin/PATCH/properties/reported/?$rid=<n>
// and are answered on $iothub/twin/res/<status>/?$rid=<n> (204 success). A direct method on
// $iothub/methods/POST/<name>/?$rid=<rid> is answered on $iothub/methods/res/<status>/?$rid=<rid>:
// 200, 404 for a method the device does not have, 400 for bad parameters.
type azure struct{ t Topics }

func (a azure) Name() string { return "azure" }
func (a azure) Form() Form   { return FormBool }

func (a azure) Filters() []string { return filters(a.t.Set, a.t.ReportReply, a.t.Service) }

// query reads key from the property bag after "?" in an Azure topic.
func query(t, key string) string {
	_, q, ok := strings.Cut(t, "?")
	if !ok {
		return ""
	}
	for _, kv := range strings.Split(q, "&") {
		if v, ok := strings.CutPrefix(kv, key+"="); ok {
			return v
		}
	}
	return ""
}

func (a azure) Parse(t string, payload []byte) (Request, bool, error) {
	switch {
	case a.t.Set != "" && topic.Match(a.t.Set, t):
		req := Request{Kind: Set, Topic: t, ID: query(t, "$version")}
		var m map[string]json.RawMessage
		if err := decode(payload, &m); err != nil {
			if v, err := strconv.ParseInt(req.ID, 10, 64); err == nil {
				req.Version = v
			}
			return req, true, err
		}
		req.Props = map[string]json.RawMessage{}
		for k, v := range m {
			if k == "$version" {
				if err := json.Unmarshal(v, &req.Version); err != nil {
					return req, true, fmt.Errorf("$version %s: %w", short(v), ErrMalformed)
				}
				continue
			}
			if !strings.HasPrefix(k, "$") {
				req.Props[k] = v
			}
		}
		if req.Version == 0 {
			req.Version, _ = strconv.ParseInt(req.ID, 10, 64)
		}
		req.ID = strconv.FormatInt(req.Version, 10)
		return req, true, nil
	case a.t.ReportReply != "" && topic.Match(a.t.ReportReply, t):
		// $iothub/twin/res/<status>/?$rid=<rid>&$version=<v>
		rest := strings.TrimPrefix(t, "$iothub/twin/res/")
		status, _, _ := strings.Cut(rest, "/")
		code, err := strconv.Atoi(status)
		if err != nil {
			return Request{Kind: ReportReply, Topic: t}, true, fmt.Errorf("status %q: %w", status, ErrMalformed)
		}
		var body struct {
			Message string `json:"message"`
		}
		_ = json.Unmarshal(payload, &body) // an error body is optional
		return Request{Kind: ReportReply, Topic: t, ID: query(t, "$rid"), Code: code, OK: code >= 200 && code < 300, Text: body.Message}, true, nil
	case a.t.Service != "" && topic.Match(a.t.Service, t):
		// $iothub/methods/POST/<name>/?$rid=<rid>
		rest := strings.TrimPrefix(t, "$iothub/methods/POST/")
		name, _, _ := strings.Cut(rest, "/")
		req := Request{Kind: Call, Topic: t, ID: query(t, "$rid"), Service: name, Args: payload}
		if req.ID == "" {
			return Request{Kind: Other, Topic: t, Text: "no $rid in the topic"}, true, nil
		}
		if len(payload) > 0 && !json.Valid(payload) {
			return req, true, fmt.Errorf("the method's payload is not JSON: %w", ErrMalformed)
		}
		return req, true, nil
	}
	return Request{}, false, nil
}

// azureStatus is a direct method's status for how it went.
func azureStatus(err error) int {
	switch {
	case err == nil:
		return 200
	case errors.Is(err, ErrUnknownService):
		return 404
	case errors.Is(err, ErrBusy):
		return 429
	}
	return 400
}

// reportedTopic is the reported-properties topic with the request id n.
func (a azure) reportedTopic(n uint64) string {
	t := a.t.Report
	if i := strings.Index(t, "$rid="); i >= 0 {
		end := strings.IndexByte(t[i:], '&')
		rest := ""
		if end >= 0 {
			rest = t[i+end:]
		}
		return t[:i] + "$rid=" + strconv.FormatUint(n, 10) + rest
	}
	return t
}

func (a azure) Reply(req Request, res Result) (Message, bool) {
	switch req.Kind {
	case Set:
		ac := 200
		if res.Err != nil {
			ac = 400
		}
		wrap := func(v any) any {
			return object{{"value", v}, {"ac", ac}, {"av", req.Version}, {"ad", wordsFor(res.Err)}}
		}
		return Message{Topic: a.reportedTopic(res.Seq), Payload: mustJSON(props(res.Props, wrap))}, a.t.Report != ""
	case Call:
		var body any = emptyObject
		switch {
		case res.Err != nil:
			body = map[string]string{"error": res.Err.Error()}
		case res.Output != nil:
			body = res.Output
		}
		return Message{Topic: fmt.Sprintf("$iothub/methods/res/%d/?$rid=%s", azureStatus(res.Err), req.ID), Payload: mustJSON(body)}, true
	}
	return Message{}, false
}

func (a azure) Report(seq uint64, ps []Prop) Message {
	return Message{Topic: a.reportedTopic(seq), Payload: mustJSON(props(ps, nil))}
}

func (a azure) Words(code int) string {
	switch {
	case code == 200 || code == 204:
		return "success"
	case code == 400:
		return "bad request: the hub refused the reported patch"
	case code == 429:
		return "throttled: too many requests"
	case code >= 500:
		return "the hub failed (server error)"
	}
	return "status not documented"
}
