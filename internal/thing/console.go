package thing

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"sync/atomic"
)

// Console is the platform's side of a dialect, for the emulator (ec600sim, gatewayd sim) and
// tests: it writes the requests a platform's console sends — a property set, a service call —
// and reads the device's answers and reports. It knows what the reference shows of each console;
// it is a stand-in, not the platform.
type Console struct {
	dialect string
	t       Topics
	seq     atomic.Uint64
}

// NewConsole returns the console of the dialect called name for a device with topics t.
func NewConsole(name string, t Topics) (*Console, error) {
	if _, err := New(name, t); err != nil {
		return nil, err
	}
	return &Console{dialect: name, t: t}, nil
}

// Answer is what the device sent the console.
type Answer struct {
	// Reply is set for the answer to a request (Code, OK and ID tell which and how); unset, the
	// message is a property report.
	Reply bool
	ID    string // the request id the reply carries
	OK    bool
	Code  string // the platform's code as sent ("200", "0", "ac 400", "404", "error")
	// Props are a report's properties (or a reply's data), as sent.
	Body string
}

func (a Answer) String() string {
	if !a.Reply {
		return "report " + a.Body
	}
	ok := "ok"
	if !a.OK {
		ok = "REFUSED"
	}
	s := fmt.Sprintf("reply to %s: %s, code %s", a.ID, ok, a.Code)
	if a.Body != "" {
		s += " " + a.Body
	}
	return s
}

// fill puts a request id where a topic filter's wildcard is (Huawei request_id=…, ThingsBoard's
// request number, Aliyun's service name).
func fill(filter, level string) string {
	if strings.HasSuffix(filter, "/#") {
		return strings.TrimSuffix(filter, "#") + level
	}
	return strings.Replace(filter, "+", level, 1)
}

// Set is the console's request to set prop to value (raw JSON), and its request id.
func (c *Console) Set(prop string, value json.RawMessage) (Message, string) {
	n := c.seq.Add(1)
	id := strconv.FormatUint(n, 10)
	params := object{{prop, value}}
	switch c.dialect {
	case "aliyun", "onenet":
		return Message{c.t.Set, mustJSON(object{{"id", id}, {"version", "1.0"}, {"params", params}, {"method", "thing.service.property.set"}})}, id
	case "tencent":
		return Message{c.t.Set, mustJSON(object{{"method", "control"}, {"clientToken", id}, {"params", params}})}, id
	case "huawei":
		svc := object{{"service_id", c.serviceID()}, {"properties", params}}
		return Message{fill(c.t.Set, "request_id="+id), mustJSON(object{{"services", []any{svc}}})}, id
	case "azure":
		return Message{strings.TrimSuffix(c.t.Set, "#") + "?$version=" + id, mustJSON(append(params, member{"$version", n}))}, id
	case "aws":
		return Message{c.t.Set, mustJSON(object{{"version", n}, {"state", params}})}, id
	}
	return Message{c.t.Set, mustJSON(params)}, id // thingsboard: a shared attribute update
}

func (c *Console) serviceID() string {
	if c.t.ServiceID == "" {
		return DefaultServiceID
	}
	return c.t.ServiceID
}

// Call is the console's call of service with args (raw JSON, nil for none), and its request id.
// It fails when the dialect has no service topic.
func (c *Console) Call(service string, args json.RawMessage) (Message, string, error) {
	if c.t.Service == "" {
		return Message{}, "", fmt.Errorf("the %s dialect has no service topic configured", c.dialect)
	}
	if args == nil {
		args = json.RawMessage("{}")
	}
	id := strconv.FormatUint(c.seq.Add(1), 10)
	switch c.dialect {
	case "aliyun":
		return Message{fill(c.t.Service, service), mustJSON(object{{"id", id}, {"version", "1.0"}, {"params", args}, {"method", "thing.service." + service}})}, id, nil
	case "onenet":
		return Message{fill(c.t.Service, service), mustJSON(object{{"id", id}, {"version", "1.0"}, {"params", args}})}, id, nil
	case "tencent":
		return Message{c.t.Service, mustJSON(object{{"method", "action"}, {"clientToken", id}, {"actionId", service}, {"params", args}})}, id, nil
	case "huawei":
		return Message{fill(c.t.Service, "request_id="+id), mustJSON(object{{"service_id", c.serviceID()}, {"command_name", service}, {"paras", args}})}, id, nil
	case "azure":
		return Message{"$iothub/methods/POST/" + service + "/?$rid=" + id, args}, id, nil
	case "thingsboard":
		return Message{fill(c.t.Service, id), mustJSON(object{{"method", service}, {"params", args}})}, id, nil
	}
	return Message{}, "", fmt.Errorf("the %s dialect has no service calls", c.dialect)
}

// Filters are what the console subscribes to, to see the device's answers and reports.
func (c *Console) Filters() []string {
	switch c.dialect {
	case "huawei":
		return filters(strings.TrimSuffix(c.t.Set, "#")+"response/#", strings.TrimSuffix(c.t.Service, "#")+"response/#", c.t.Report)
	case "azure":
		return []string{"$iothub/twin/PATCH/properties/reported/#", "$iothub/methods/res/#"}
	case "thingsboard":
		return filters(strings.Replace(c.t.Service, "/request/", "/response/", 1), c.t.Report)
	case "aliyun":
		return filters(c.t.SetReply, c.t.Report, c.t.Service)
	case "onenet":
		f := []string{c.t.SetReply, c.t.Report}
		if c.t.Service != "" {
			f = append(f, c.t.Service+"_reply")
		}
		return filters(f...)
	}
	return filters(c.t.SetReply, c.t.Report, c.t.ServiceReply)
}

// Read reads a message the console received; ok is false when it is none of the device's
// answers or reports (the console's own requests, echoed by the broker).
func (c *Console) Read(topic string, payload []byte) (Answer, bool) {
	var m map[string]json.RawMessage
	_ = json.Unmarshal(payload, &m)
	str := func(k string) string { return idString(m[k]) }
	num := func(k string) string { return strings.TrimSpace(string(m[k])) }
	switch c.dialect {
	case "aliyun", "onenet":
		if topic == c.t.Report {
			return Answer{Body: string(m["params"])}, true
		}
		if topic == c.t.SetReply || strings.HasSuffix(topic, "_reply") {
			code := num("code")
			return Answer{Reply: true, ID: str("id"), Code: code, OK: code == "200", Body: string(m["data"])}, true
		}
	case "tencent":
		switch str("method") {
		case "report":
			return Answer{Body: string(m["params"])}, true
		case "control_reply", "action_reply":
			code := num("code")
			return Answer{Reply: true, ID: str("clientToken"), Code: code, OK: code == "0", Body: string(m["response"])}, true
		}
	case "huawei":
		if topic == c.t.Report {
			return Answer{Body: string(payload)}, true
		}
		if rid, ok := requestID(topic); ok && strings.Contains(topic, "/response/") {
			code := num("result_code")
			return Answer{Reply: true, ID: rid, Code: code, OK: code == "0", Body: string(m["paras"])}, true
		}
	case "azure":
		if rest, ok := strings.CutPrefix(topic, "$iothub/methods/res/"); ok {
			status, _, _ := strings.Cut(rest, "/")
			return Answer{Reply: true, ID: query(topic, "$rid"), Code: status, OK: status == "200", Body: string(payload)}, true
		}
		for _, v := range m {
			var ack struct {
				AC *int  `json:"ac"`
				AV int64 `json:"av"`
			}
			if json.Unmarshal(v, &ack) == nil && ack.AC != nil {
				return Answer{Reply: true, ID: strconv.FormatInt(ack.AV, 10), Code: "ac " + strconv.Itoa(*ack.AC), OK: *ack.AC == 200, Body: string(payload)}, true
			}
		}
		return Answer{Body: string(payload)}, true
	case "aws":
		if topic == c.t.Report {
			return Answer{Body: string(payload)}, true
		}
	case "thingsboard":
		if topic == c.t.Report {
			return Answer{Body: string(payload)}, true
		}
		if strings.Contains(topic, "/rpc/response/") {
			_, refused := m["error"]
			code := "ok"
			if refused {
				code = "error"
			}
			return Answer{Reply: true, ID: topic[strings.LastIndexByte(topic, '/')+1:], Code: code, OK: !refused, Body: string(payload)}, true
		}
	}
	return Answer{}, false
}
