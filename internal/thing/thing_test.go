package thing

import (
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"testing"

	"github.com/rs/zerolog"
)

// Topics of each dialect as the presets of internal/cloud give them (pk a1B2c3D4e5F, dn pi-led-01).
var testTopics = map[string]Topics{
	"aliyun": {
		Set:         "/sys/a1B2c3D4e5F/pi-led-01/thing/service/property/set",
		SetReply:    "/sys/a1B2c3D4e5F/pi-led-01/thing/service/property/set_reply",
		Report:      "/sys/a1B2c3D4e5F/pi-led-01/thing/event/property/post",
		ReportReply: "/sys/a1B2c3D4e5F/pi-led-01/thing/event/property/post_reply",
		Service:     "/sys/a1B2c3D4e5F/pi-led-01/thing/service/+",
	},
	"tencent": {
		Set: "$thing/down/property/PID/dev", SetReply: "$thing/up/property/PID/dev",
		Report: "$thing/up/property/PID/dev", ReportReply: "$thing/down/property/PID/dev",
		Service: "$thing/down/action/PID/dev", ServiceReply: "$thing/up/action/PID/dev",
	},
	"huawei": {
		Set: "$oc/devices/dev1/sys/properties/set/#", Report: "$oc/devices/dev1/sys/properties/report",
		Service: "$oc/devices/dev1/sys/commands/#", ServiceID: "LED",
	},
	"onenet": {
		Set: "$sys/P/dev/thing/property/set", SetReply: "$sys/P/dev/thing/property/set_reply",
		Report: "$sys/P/dev/thing/property/post", ReportReply: "$sys/P/dev/thing/property/post/reply",
		Service: "$sys/P/dev/thing/service/+/invoke",
	},
	"azure": {
		Set: "$iothub/twin/PATCH/properties/desired/#", Report: "$iothub/twin/PATCH/properties/reported/?$rid=1",
		ReportReply: "$iothub/twin/res/#", Service: "$iothub/methods/POST/#",
	},
	"aws": {
		Set: "$aws/things/pi/shadow/update/delta", Report: "$aws/things/pi/shadow/update",
		ReportReply: "$aws/things/pi/shadow/update/+",
	},
	"thingsboard": {
		Set: "v1/devices/me/attributes", Report: "v1/devices/me/attributes", Service: "v1/devices/me/rpc/request/+",
	},
}

// fakeLED is a fake: an LED that remembers its state and every change.
type fakeLED struct {
	mu      sync.Mutex
	on      bool
	known   bool
	changes int
	fail    error
}

func (l *fakeLED) SetLED(on bool, _ string) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.fail != nil {
		return l.fail
	}
	if !l.known || l.on != on {
		l.changes++
	}
	l.on, l.known = on, true
	return nil
}

func (l *fakeLED) LEDState() (bool, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.on, l.known
}

func newTestEngine(t *testing.T, dialect string, prop string) (*Engine, *fakeLED) {
	t.Helper()
	d, err := New(dialect, testTopics[dialect])
	if err != nil {
		t.Fatal(err)
	}
	led := &fakeLED{known: true}
	tele := func() Telemetry {
		dbm := -71
		return Telemetry{SignalDBm: &dbm, Operator: "CHINA MOBILE", IMEI: "861234567890123"}
	}
	status := func() any { return map[string]any{"stage": "connected"} }
	cfg := Config{Property: prop, Telemetry: map[string]string{TeleSignal: "RSSI", TeleOperator: "Operator"}}
	return NewEngine(d, cfg, led, nil, status, tele, zerolog.Nop()), led
}

// drained takes what the engine queued.
func drained(e *Engine) []outgoing {
	var out []outgoing
	for {
		select {
		case o := <-e.queue:
			if o.led { // as Run does
				o.m = e.ledReport(o.seq)
			}
			out = append(out, o)
		default:
			return out
		}
	}
}

type exchange struct {
	name            string
	topic, payload  string
	wantOn          bool   // the LED after
	wantReplyTopic  string // "" = no reply
	wantReply       string
	wantReport      string // "" = no report
	wantReportTopic string
}

func TestDialects(t *testing.T) {
	cases := map[string][]exchange{
		"aliyun": {
			// ec600-at.md 7.4: the real capture, key order and version string vary.
			{name: "capture LED 1", topic: testTopics["aliyun"].Set,
				payload: `{"method":"thing.service.property.set","id":"44777986","params":{"LED":1},"version":"1.0.0"}`,
				// The LED is on already: answered, and no report (nothing changed).
				wantOn: true, wantReplyTopic: testTopics["aliyun"].SetReply, wantReply: `{"id":"44777986","code":200,"data":{}}`},
			// ec600-at.md 7.4 byte transcript: LED 0 answered with exactly these 33 bytes.
			{name: "transcript LED 0", topic: testTopics["aliyun"].Set,
				payload: `{"method":"thing.service.property.set","id":"123","params":{"LED":0},"version":"1.0.0"}`,
				wantOn:  false, wantReplyTopic: testTopics["aliyun"].SetReply, wantReply: `{"id":"123","code":200,"data":{}}`,
				wantReportTopic: testTopics["aliyun"].Report,
				wantReport:      `{"id":"2","version":"1.0","params":{"LED":0},"method":"thing.event.property.post"}`},
			// clouds.md 4.1 doc example: a property this device does not have → 460, nothing changes.
			{name: "doc temperature", topic: testTopics["aliyun"].Set,
				payload: `{"id":"123","version":"1.0","params":{"temperature":"30.5"},"method":"thing.service.property.set"}`,
				wantOn:  true, wantReplyTopic: testTopics["aliyun"].SetReply, wantReply: `{"id":"123","code":460,"data":{}}`,
				wantReportTopic: testTopics["aliyun"].Report,
				wantReport:      `{"id":"2","version":"1.0","params":{"LED":1},"method":"thing.event.property.post"}`},
			{name: "out of range", topic: testTopics["aliyun"].Set,
				payload: `{"id":"7","params":{"LED":2}}`, wantOn: true,
				wantReplyTopic: testTopics["aliyun"].SetReply, wantReply: `{"id":"7","code":460,"data":{}}`,
				wantReportTopic: testTopics["aliyun"].Report,
				wantReport:      `{"id":"2","version":"1.0","params":{"LED":1},"method":"thing.event.property.post"}`},
			{name: "truncated JSON keeps its id", topic: testTopics["aliyun"].Set,
				payload: `{"id":"99","params":{"LED":`, wantOn: true,
				wantReplyTopic: testTopics["aliyun"].SetReply, wantReply: `{"id":"99","code":460,"data":{}}`,
				wantReportTopic: testTopics["aliyun"].Report,
				wantReport:      `{"id":"2","version":"1.0","params":{"LED":1},"method":"thing.event.property.post"}`},
			{name: "service blink", topic: "/sys/a1B2c3D4e5F/pi-led-01/thing/service/blink",
				payload: `{"id":"5","version":"1.0","params":{"times":2},"method":"thing.service.blink"}`, wantOn: true,
				wantReplyTopic: "/sys/a1B2c3D4e5F/pi-led-01/thing/service/blink_reply", wantReply: `{"id":"5","code":200,"data":{"times":2}}`},
			{name: "unknown service", topic: "/sys/a1B2c3D4e5F/pi-led-01/thing/service/reboot",
				payload: `{"id":"6","params":{}}`, wantOn: true,
				wantReplyTopic: "/sys/a1B2c3D4e5F/pi-led-01/thing/service/reboot_reply", wantReply: `{"id":"6","code":460,"data":{}}`},
		},
		"tencent": {
			{name: "control", topic: testTopics["tencent"].Set,
				payload: `{"method":"control","clientToken":"clientToken-Xx1","params":{"power_switch":0}}`,
				wantOn:  false, wantReplyTopic: testTopics["tencent"].SetReply,
				wantReply:       `{"method":"control_reply","clientToken":"clientToken-Xx1","code":0,"status":"success"}`,
				wantReportTopic: testTopics["tencent"].Report, wantReport: `{"method":"report","clientToken":"2","params":{"power_switch":0}}`},
			{name: "control wrong type", topic: testTopics["tencent"].Set,
				payload: `{"method":"control","clientToken":"t2","params":{"power_switch":[1]}}`, wantOn: true,
				wantReplyTopic:  testTopics["tencent"].SetReply,
				wantReply:       `{"method":"control_reply","clientToken":"t2","code":406,"status":"power_switch: [1] is not a number, a boolean or \"on\"/\"off\": wrong type"}`,
				wantReportTopic: testTopics["tencent"].Report, wantReport: `{"method":"report","clientToken":"2","params":{"power_switch":1}}`},
			{name: "action get_status", topic: testTopics["tencent"].Service,
				payload: `{"method":"action","clientToken":"a1","actionId":"get_status","params":{}}`, wantOn: true,
				wantReplyTopic: testTopics["tencent"].ServiceReply,
				wantReply:      `{"method":"action_reply","clientToken":"a1","code":0,"status":"success","response":{"stage":"connected"}}`},
		},
		"huawei": {
			{name: "set", topic: "$oc/devices/dev1/sys/properties/set/request_id=42",
				payload: `{"object_device_id":"dev1","services":[{"service_id":"LED","properties":{"LEDSwitch":"off"}}]}`,
				wantOn:  false, wantReplyTopic: "$oc/devices/dev1/sys/properties/set/response/request_id=42",
				wantReply:       `{"result_code":0,"result_desc":"success"}`,
				wantReportTopic: testTopics["huawei"].Report, wantReport: `{"services":[{"service_id":"LED","properties":{"LEDSwitch":"off"}}]}`},
			{name: "other service", topic: "$oc/devices/dev1/sys/properties/set/request_id=43",
				payload: `{"object_device_id":"dev1","services":[{"service_id":"Motor","properties":{"LEDSwitch":1}}]}`,
				wantOn:  true, wantReplyTopic: "$oc/devices/dev1/sys/properties/set/response/request_id=43",
				wantReply:       `{"result_code":1,"result_desc":"service \"Motor\" (this device has \"LED\"): unknown property"}`,
				wantReportTopic: testTopics["huawei"].Report, wantReport: `{"services":[{"service_id":"LED","properties":{"LEDSwitch":1}}]}`},
			{name: "own response echoed", topic: "$oc/devices/dev1/sys/properties/set/response/request_id=42",
				payload: `{"result_code":0,"result_desc":"success"}`, wantOn: true},
			{name: "command blink", topic: "$oc/devices/dev1/sys/commands/request_id=c1",
				payload: `{"object_device_id":"dev1","service_id":"LED","command_name":"blink","paras":{"times":25}}`, wantOn: true,
				wantReplyTopic: "$oc/devices/dev1/sys/commands/response/request_id=c1",
				wantReply:      `{"result_code":1,"response_name":"blink","paras":{"error":"times 25 is not 1-20: bad service parameters"}}`},
		},
		"onenet": {
			{name: "set", topic: testTopics["onenet"].Set, payload: `{"id":"8","version":"1.0","params":{"LEDSwitch":true}}`,
				wantOn: true, wantReplyTopic: testTopics["onenet"].SetReply, wantReply: `{"id":"8","code":200}`},
			{name: "bad", topic: testTopics["onenet"].Set, payload: `{"id":"9","version":"1.0","params":{"LEDSwitch":"dim"}}`,
				wantOn: true, wantReplyTopic: testTopics["onenet"].SetReply, wantReply: `{"id":"9","code":100}`,
				wantReportTopic: testTopics["onenet"].Report, wantReport: `{"id":"2","version":"1.0","params":{"LEDSwitch":{"value":1}}}`},
		},
		"azure": {
			// clouds.md 4.6: desired {"prop":…,"$version":8} acknowledged with ac/av/ad.
			{name: "desired", topic: "$iothub/twin/PATCH/properties/desired/?$version=8", payload: `{"LEDSwitch":false,"$version":8}`,
				wantOn: false, wantReplyTopic: "$iothub/twin/PATCH/properties/reported/?$rid=1",
				wantReply:       `{"LEDSwitch":{"value":false,"ac":200,"av":8,"ad":"success"}}`,
				wantReportTopic: "$iothub/twin/PATCH/properties/reported/?$rid=2", wantReport: `{"LEDSwitch":false}`},
			{name: "method", topic: "$iothub/methods/POST/get_status/?$rid=2", payload: ``, wantOn: true,
				wantReplyTopic: "$iothub/methods/res/200/?$rid=2", wantReply: `{"stage":"connected"}`},
			{name: "unknown method", topic: "$iothub/methods/POST/reboot/?$rid=3", payload: `{}`, wantOn: true,
				wantReplyTopic: "$iothub/methods/res/404/?$rid=3",
				wantReply:      `{"error":"\"reboot\" (this device offers \"get_status\" and \"blink\"): unknown service"}`},
		},
		"aws": {
			{name: "delta", topic: testTopics["aws"].Set,
				payload: `{"version":12,"timestamp":1700000000,"state":{"LEDSwitch":false},"metadata":{"LEDSwitch":{"timestamp":1700000000}}}`,
				wantOn:  false, wantReportTopic: testTopics["aws"].Report, wantReport: `{"state":{"reported":{"LEDSwitch":false}},"clientToken":"2"}`},
			{name: "delta same value", topic: testTopics["aws"].Set, payload: `{"version":13,"state":{"LEDSwitch":true}}`, wantOn: true},
		},
		"thingsboard": {
			{name: "shared attribute", topic: "v1/devices/me/attributes", payload: `{"LEDSwitch":false,"other":5}`,
				wantOn: false, wantReportTopic: "v1/devices/me/attributes", wantReport: `{"LEDSwitch":false}`},
			{name: "unrelated attribute", topic: "v1/devices/me/attributes", payload: `{"RSSI":-71}`, wantOn: true},
			{name: "rpc", topic: "v1/devices/me/rpc/request/17", payload: `{"method":"blink","params":{"times":1}}`, wantOn: true,
				wantReplyTopic: "v1/devices/me/rpc/response/17", wantReply: `{"times":1}`},
			{name: "rpc malformed", topic: "v1/devices/me/rpc/request/18", payload: `{"method":`, wantOn: true,
				wantReplyTopic: "v1/devices/me/rpc/response/18", wantReply: `{"error":"malformed message: unexpected end of JSON input"}`},
		},
	}
	props := map[string]string{"aliyun": "LED", "tencent": "power_switch", "huawei": "LEDSwitch", "onenet": "LEDSwitch",
		"azure": "LEDSwitch", "aws": "LEDSwitch", "thingsboard": "LEDSwitch"}
	for dialect, xs := range cases {
		for _, x := range xs {
			t.Run(dialect+"/"+x.name, func(t *testing.T) {
				e, led := newTestEngine(t, dialect, props[dialect])
				led.on = true
				if !e.Handle(x.topic, []byte(x.payload)) {
					t.Fatalf("%s not taken as a thing-model topic", x.topic)
				}
				if on, _ := led.LEDState(); on != x.wantOn {
					t.Errorf("LED on = %t, want %t", on, x.wantOn)
				}
				got := drained(e)
				var reply, report *outgoing
				for i := range got {
					if got[i].kind == "reply" {
						reply = &got[i]
					} else {
						report = &got[i]
					}
				}
				check := func(what string, o *outgoing, topic, payload string) {
					t.Helper()
					switch {
					case payload == "" && o != nil:
						t.Errorf("unexpected %s %s %s", what, o.m.Topic, o.m.Payload)
					case payload == "":
					case o == nil:
						t.Errorf("no %s, want %s", what, payload)
					case o.m.Topic != topic || string(o.m.Payload) != payload:
						t.Errorf("%s:\n got %s %s\nwant %s %s", what, o.m.Topic, o.m.Payload, topic, payload)
					}
				}
				check("reply", reply, x.wantReplyTopic, x.wantReply)
				check("report", report, x.wantReportTopic, x.wantReport)
			})
		}
	}
}

// TestSetTwiceIsIdempotent: a set delivered twice (QoS 1 allows it) leaves the LED as the first
// did, answers both with success and reports the change once.
func TestSetTwiceIsIdempotent(t *testing.T) {
	e, led := newTestEngine(t, "aliyun", "LEDSwitch")
	set := []byte(`{"id":"1","params":{"LEDSwitch":1}}`)
	for range 2 {
		e.Handle(testTopics["aliyun"].Set, set)
	}
	if on, _ := led.LEDState(); !on || led.changes != 1 {
		t.Fatalf("LED on=%t after %d changes, want on after 1", on, led.changes)
	}
	var replies, reports int
	for _, o := range drained(e) {
		if o.kind == "reply" {
			replies++
			if string(o.m.Payload) != `{"id":"1","code":200,"data":{}}` {
				t.Errorf("reply %s", o.m.Payload)
			}
		} else {
			reports++
		}
	}
	if replies != 2 || reports != 1 {
		t.Errorf("%d replies and %d reports, want 2 and 1", replies, reports)
	}
}

func TestReportReplies(t *testing.T) {
	cases := []struct {
		dialect, topic, payload string
		ok                      bool
		code                    int
	}{
		// ec600-at.md 7.4: received byte for byte in a BC26 Aliyun capture.
		{"aliyun", testTopics["aliyun"].ReportReply, `{"code":200,"data":{},"id":"1","message":"success","method":"thing.event.property.post","version":"1.0"}`, true, 200},
		{"aliyun", testTopics["aliyun"].ReportReply, `{"code":6106,"data":{},"id":"2","message":"map size must less than 200"}`, false, 6106},
		// clouds.md 4.2.
		{"tencent", testTopics["tencent"].ReportReply, `{"method":"report_reply","clientToken":"123","code":0,"status":"some message where error"}`, true, 0},
		{"tencent", testTopics["tencent"].ReportReply, `{"method":"report_reply","clientToken":"124","code":406,"status":"model validation"}`, false, 406},
		{"onenet", testTopics["onenet"].ReportReply, `{"id":"3","code":200,"msg":"success"}`, true, 200},
		{"azure", "$iothub/twin/res/204/?$rid=1&$version=9", ``, true, 204},
		{"azure", "$iothub/twin/res/400/?$rid=2", `{"message":"bad"}`, false, 400},
		{"aws", "$aws/things/pi/shadow/update/accepted", `{"state":{"reported":{"LEDSwitch":true}}}`, true, 200},
		{"aws", "$aws/things/pi/shadow/update/rejected", `{"code":400,"message":"Missing required node: state"}`, false, 400},
	}
	for _, c := range cases {
		d, _ := New(c.dialect, testTopics[c.dialect])
		req, ok, err := d.Parse(c.topic, []byte(c.payload))
		if !ok || err != nil || req.Kind != ReportReply || req.OK != c.ok || req.Code != c.code {
			t.Errorf("%s %s: %+v ok=%t err=%v", c.dialect, c.payload, req, ok, err)
		}
		if d.Words(c.code) == "" {
			t.Errorf("%s: no words for %d", c.dialect, c.code)
		}
	}
	e, _ := newTestEngine(t, "aliyun", "LED")
	e.Handle(testTopics["aliyun"].ReportReply, []byte(`{"code":460,"id":"4"}`))
	e.Handle(testTopics["aliyun"].ReportReply, []byte(`{"code":200,"id":"5"}`))
	if st := e.Stats(); st.ReportErrors != 1 || st.ReportRepliesOK != 1 {
		t.Errorf("stats %+v", st)
	}
}

func TestParseSwitch(t *testing.T) {
	cases := []struct {
		in   string
		on   bool
		form Form
		err  error
	}{
		{`1`, true, FormNumber, nil}, {`0`, false, FormNumber, nil}, {`1.0`, true, FormNumber, nil},
		{`true`, true, FormBool, nil}, {`false`, false, FormBool, nil},
		{`"on"`, true, FormString, nil}, {`"OFF"`, false, FormString, nil}, {`"1"`, true, FormString, nil},
		{`2`, false, 0, ErrOutOfRange}, {`-1`, false, 0, ErrOutOfRange}, {`"dim"`, false, 0, ErrOutOfRange},
		{`null`, false, 0, ErrWrongType}, {`{"value":1}`, false, 0, ErrWrongType}, {`[1]`, false, 0, ErrWrongType},
		{`tru`, false, 0, ErrWrongType}, {``, false, 0, ErrWrongType}, {`1e999`, false, 0, ErrOutOfRange},
	}
	for _, c := range cases {
		on, form, err := ParseSwitch(json.RawMessage(c.in))
		if !errors.Is(err, c.err) || (c.err == nil && (on != c.on || form != c.form)) {
			t.Errorf("ParseSwitch(%s) = %t, %d, %v; want %t, %d, %v", c.in, on, form, err, c.on, c.form, c.err)
		}
	}
}

func TestReportAllMapsOnlyConfiguredTelemetry(t *testing.T) {
	e, _ := newTestEngine(t, "aliyun", "LEDSwitch")
	e.ReportAll("test")
	got := drained(e)
	want := `{"id":"1","version":"1.0","params":{"LEDSwitch":0,"RSSI":-71,"Operator":"CHINA MOBILE"},"method":"thing.event.property.post"}`
	if len(got) != 1 || string(got[0].m.Payload) != want {
		t.Fatalf("got %v\nwant %s", got, want)
	}
}

// TestQueueFullIsCounted: replies beyond the bound are refused, counted and not silently lost.
func TestQueueFullIsCounted(t *testing.T) {
	d, _ := New("aliyun", testTopics["aliyun"])
	e := NewEngine(d, Config{Property: "LED", Queue: 2}, &fakeLED{known: true}, nil, nil, func() Telemetry { return Telemetry{} }, zerolog.Nop())
	for i := range 5 {
		e.Handle(testTopics["aliyun"].Set, []byte(fmt.Sprintf(`{"id":"%d","params":{"LED":0}}`, i)))
	}
	if st := e.Stats(); st.Dropped != 3 || st.Queued != 2 || st.Sets != 5 {
		t.Fatalf("stats %+v", st)
	}
}

func TestUnknownDialect(t *testing.T) {
	if _, err := New("sigfox", Topics{}); err == nil {
		t.Fatal("no error")
	}
}
