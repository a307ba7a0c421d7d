package e2e

// End-to-end tests of the thing model ([thing]): the real gatewayd against the emulator and a
// real broker, the paho client playing the platform's console. See e2e_test.go for the bench.

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/gatewayd/gatewayd/sim"
	"github.com/gatewayd/gatewayd/test/logwatch"
	"github.com/gatewayd/gatewayd/test/testutil"
)

const aliyunDev = "/sys/" + pk + "/" + dn + "/thing/"

// aliyunThingConfig is the Aliyun preset with the LED bound to LEDSwitch and telemetry mapped.
func aliyunThingConfig(port, extra string) string {
	return fmt.Sprintf(`
[serial]
port = %q
[mqtt]
keepalive = "300s"
[mqtt.aliyun]
product_key = %q
device_name = %q
device_secret = "Zx9yW8vU7tS6rQ5pO4nM3lK2jI1hG0fE"
region = "cn-shanghai"
[thing]
led_property = "LEDSwitch"
%s
[thing.telemetry]
signal = "RSSI"
imei = "IMEI"
iccid = "ICCID"
firmware = "FirmwareVersion"
uptime = "Uptime"
reconnects = "Reconnects"
[retry]
initial = "100ms"
max = "500ms"
[control]
socket = %q
[log]
level = "debug"
`, port, pk, dn, extra, controlSocket(port))
}

// ledEvents are the LED's states the daemon logged from entry from on, with why.
func ledEvents(d *proc, from int) (on []bool, why []string) {
	for _, e := range d.log.Entries()[from:] {
		if e.Event() == "led" {
			on = append(on, e.Bool("on"))
			why = append(why, e.Str("why"))
		}
	}
	return on, why
}

// alinkReply is an Aliyun reply as the console reads it.
type alinkReply struct {
	ID   string          `json:"id"`
	Code int             `json:"code"`
	Data json.RawMessage `json:"data"`
}

func parseAlink(t *testing.T, s string) alinkReply {
	t.Helper()
	var r alinkReply
	if err := json.Unmarshal([]byte(s), &r); err != nil {
		t.Fatalf("reply %q: %v", s, err)
	}
	return r
}

// alinkPost is an Aliyun property post.
type alinkPost struct {
	ID     string         `json:"id"`
	Method string         `json:"method"`
	Params map[string]any `json:"params"`
}

func parsePost(t *testing.T, s string) alinkPost {
	t.Helper()
	var p alinkPost
	if err := json.Unmarshal([]byte(s), &p); err != nil || p.Method != "thing.event.property.post" {
		t.Fatalf("post %q: %v", s, err)
	}
	return p
}

// TestThingAliyun: the Aliyun console's flows against the real binary — the LED follows
// LEDSwitch, every set is answered with its id and 200 or 460, a duplicate is harmless, a bad set
// changes nothing, the LED and the telemetry are reported at connect and after a change, and
// get_status and blink answer.
func TestThingAliyun(t *testing.T) {
	t.Parallel()
	b := newBench(t, nil)
	replies := b.subscribe(aliyunDev + "service/property/set_reply")
	posts := b.subscribe(aliyunDev + "event/property/post")
	services := b.subscribe(aliyunDev + "service/+")
	metricsAddr := testutil.FreeAddr(t)
	d := b.start(aliyunThingConfig(b.mod.Path(), "") + fmt.Sprintf("[metrics]\nlisten = %q\n", metricsAddr))
	_, i := d.wait(t, 0, "mqtt_connected")

	// At connect: the LED (off once the network is ready) and the telemetry.
	p := parsePost(t, posts.wait(t, 1)[0])
	if p.Params["LEDSwitch"] != 0.0 || p.Params["IMEI"] != sim.DefaultIdentity.IMEI || p.Params["ICCID"] != sim.DefaultIdentity.ICCID {
		t.Errorf("report at connect %v", p.Params)
	}
	for _, k := range []string{"RSSI", "FirmwareVersion", "Uptime", "Reconnects"} {
		if _, ok := p.Params[k]; !ok {
			t.Errorf("report at connect lacks %s: %v", k, p.Params)
		}
	}
	if _, ok := p.Params["Operator"]; ok {
		t.Errorf("operator reported though not mapped: %v", p.Params)
	}

	// ec600-at.md 7.4's captured set, with our property.
	set := `{"method":"thing.service.property.set","id":"44777986","params":{"LEDSwitch":1},"version":"1.0.0"}`
	b.publish(aliyunDev+"service/property/set", []byte(set))
	if r := parseAlink(t, replies.wait(t, 1)[0]); r.ID != "44777986" || r.Code != 200 || string(r.Data) != "{}" {
		t.Errorf("reply %+v, want id 44777986 code 200 data {}", r)
	}
	if p := parsePost(t, posts.wait(t, 2)[1]); p.Params["LEDSwitch"] != 1.0 || len(p.Params) != 1 {
		t.Errorf("report after the change %v, want LEDSwitch 1", p.Params)
	}
	on, why := ledEvents(d, i)
	if len(on) == 0 || !on[len(on)-1] || !strings.Contains(why[len(why)-1], "LEDSwitch") {
		t.Fatalf("LED %v %v, want on by the property", on, why)
	}

	// The same set again (QoS 1 may deliver it twice): answered, the LED stays on, no report.
	b.publish(aliyunDev+"service/property/set", []byte(set))
	if r := parseAlink(t, replies.wait(t, 2)[1]); r.ID != "44777986" || r.Code != 200 {
		t.Errorf("second reply %+v", r)
	}
	// A bad value, an unknown property and a broken message: 460 with the id, nothing changes.
	for _, bad := range []struct{ id, payload string }{
		{"45", `{"id":"45","version":"1.0","params":{"LEDSwitch":2},"method":"thing.service.property.set"}`},
		{"46", `{"id":"46","version":"1.0","params":{"temperature":"30.5"},"method":"thing.service.property.set"}`},
		{"47", `{"id":"47","params":{"LEDSwitch":`},
	} {
		b.publish(aliyunDev+"service/property/set", []byte(bad.payload))
		n := len(replies.wait(t, 0)) + 1
		if r := parseAlink(t, replies.wait(t, n)[n-1]); r.ID != bad.id || r.Code != 460 {
			t.Errorf("reply to %s: %+v, want id %s code 460", bad.payload, r, bad.id)
		}
		e, _ := d.wait(t, i, "thing_set_refused")
		if e.Str("error") == "" {
			t.Errorf("refusal logged without words: %v", e)
		}
	}
	on, _ = ledEvents(d, i)
	for k, v := range on[1:] {
		if !v {
			t.Fatalf("LED switched off (event %d of %v) by a duplicate or a refused set", k+1, on)
		}
	}
	// After a refusal the real state is reported, so the console's latest value is the truth.
	ps := posts.wait(t, 3)
	if p := parsePost(t, ps[len(ps)-1]); p.Params["LEDSwitch"] != 1.0 {
		t.Errorf("report after a refusal %v, want the real LEDSwitch 1", p.Params)
	}

	// get_status: the daemon's status as `gatewayd status -json` gives it.
	b.publish(aliyunDev+"service/get_status", []byte(`{"id":"50","version":"1.0","params":{},"method":"thing.service.get_status"}`))
	var st struct {
		ID   string `json:"id"`
		Code int    `json:"code"`
		Data struct {
			Module struct{ IMEI string }    `json:"module"`
			MQTT   struct{ Connected bool } `json:"mqtt"`
			LED    *bool                    `json:"led"`
		} `json:"data"`
	}
	got := waitFor(t, services, func(s string) bool { return strings.Contains(s, `"id":"50","code"`) })
	if err := json.Unmarshal([]byte(got), &st); err != nil || st.Code != 200 || st.Data.Module.IMEI != sim.DefaultIdentity.IMEI ||
		!st.Data.MQTT.Connected || st.Data.LED == nil || !*st.Data.LED {
		t.Errorf("get_status reply %s (%v)", got, err)
	}
	// blink: answered at once, the LED flashes twice and is back on.
	from := d.log.Len()
	b.publish(aliyunDev+"service/blink", []byte(`{"id":"51","version":"1.0","params":{"times":2},"method":"thing.service.blink"}`))
	got = waitFor(t, services, func(s string) bool { return strings.Contains(s, `"id":"51","code"`) })
	if r := parseAlink(t, got); r.Code != 200 || string(r.Data) != `{"times":2}` {
		t.Errorf("blink reply %s", got)
	}
	waitLog(t, d, from, func(e logwatch.Entry) bool { return e.Event() == "led" && e.Str("why") == "blink done" })
	on, why = ledEvents(d, from)
	if len(on) != 5 || !on[4] || why[0] != "blink" {
		t.Errorf("LED during blink %v %v, want off,on,off,on then on", on, why)
	}
	b.publish(aliyunDev+"service/blink", []byte(`{"id":"52","params":{"times":1000}}`))
	got = waitFor(t, services, func(s string) bool { return strings.Contains(s, `"id":"52","code"`) })
	if r := parseAlink(t, got); r.Code != 460 {
		t.Errorf("blink 1000 times: %s, want 460", got)
	}

	// Every request, reply and report counted: 2 sets applied, 3 refused; get_status and one
	// blink answered, one refused; 8 replies; as many reports as the console received (at
	// connect, after the change, after the refusals: a report still waiting stands for a later one).
	want := []struct {
		name   string
		labels []string
		v      float64
	}{
		{"gatewayd_thing_requests_total", []string{"kind=set", "result=applied"}, 2},
		{"gatewayd_thing_requests_total", []string{"kind=set", "result=refused"}, 3},
		{"gatewayd_thing_requests_total", []string{"kind=call", "result=applied"}, 2},
		{"gatewayd_thing_requests_total", []string{"kind=call", "result=refused"}, 1},
		{"gatewayd_thing_messages_total", []string{"kind=reply"}, 8},
		{"gatewayd_thing_dropped_total", nil, 0},
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		mfs := scrape(t, metricsAddr)
		var wrong []string
		for _, w := range want {
			if v, ok := value(mfs, w.name, w.labels...); !ok || v != w.v {
				wrong = append(wrong, fmt.Sprintf("%s%v = %v (present %t), want %v", w.name, w.labels, v, ok, w.v))
			}
		}
		if v, _ := value(mfs, "gatewayd_thing_messages_total", "kind=report"); v != float64(len(posts.wait(t, 0))) || v < 3 {
			wrong = append(wrong, fmt.Sprintf("%v reports counted, the console received %d", v, len(posts.wait(t, 0))))
		}
		if len(wrong) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("metrics:\n%s", strings.Join(wrong, "\n"))
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// TestThingReportOffline: a report made while the link is down (an interval report during an
// outage the emulator makes with RefuseOpen) reaches the console after the reconnect, in order:
// kept in memory without [local], stored in the outbox with it.
func TestThingReportOffline(t *testing.T) {
	t.Parallel()
	for _, local := range []bool{false, true} {
		t.Run(fmt.Sprintf("outbox=%t", local), func(t *testing.T) { reportOffline(t, local) })
	}
}

func reportOffline(t *testing.T, local bool) {
	b := newBench(t, nil)
	posts := b.subscribe(aliyunDev + "event/property/post")
	cfg := aliyunThingConfig(b.mod.Path(), `report_interval = "1s"`)
	if local {
		cfg += fmt.Sprintf("[local]\nlisten = %q\n[outbox]\ndir = %q\n", testutil.FreeAddr(t), filepath.Join(b.dir, "outbox"))
	}
	d := b.start(cfg)
	_, i := d.wait(t, 0, "mqtt_connected")
	posts.wait(t, 1)
	b.mod.RefuseOpen(5)
	if err := b.mod.DropLink(); err != nil {
		t.Fatal(err)
	}
	_, i = d.wait(t, i, "mqtt_disconnected")
	// Two interval reports made offline.
	e1, j := d.wait(t, i, "thing_report")
	e2, _ := d.wait(t, j+1, "thing_report")
	if d.log.Count("mqtt_connected") != 1 {
		t.Fatal("reconnected during the outage")
	}
	offline := []string{fmt.Sprint(e1.Int("seq")), fmt.Sprint(e2.Int("seq"))}
	b.mod.RefuseOpen(0)
	d.wait(t, i, "mqtt_connected")
	var ids []string
	deadline := time.Now().Add(45 * time.Second)
	for time.Now().Before(deadline) {
		ids = ids[:0]
		for _, s := range posts.wait(t, 1) {
			ids = append(ids, parsePost(t, s).ID)
		}
		if strings.Contains(" "+strings.Join(ids, " ")+" ", " "+offline[0]+" "+offline[1]+" ") {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if !strings.Contains(" "+strings.Join(ids, " ")+" ", " "+offline[0]+" "+offline[1]+" ") {
		t.Fatalf("the console got reports %v, want %v among them, in order", ids, offline)
	}
	via := 0
	for _, e := range d.log.Entries() {
		if e.Event() == "published" && e.Str("topic") == aliyunDev+"event/property/post" && e.Str("from") == map[bool]string{false: "thing", true: "outbox"}[local] {
			via++
		}
	}
	unique := map[string]bool{}
	for _, id := range ids {
		unique[id] = true
	}
	if via < len(unique) {
		t.Errorf("%d reports published through the %s, want all %d", via, map[bool]string{false: "session", true: "outbox"}[local], len(unique))
	}
	for k := 1; k < len(ids); k++ {
		var a, c int
		fmt.Sscan(ids[k-1], &a)
		fmt.Sscan(ids[k], &c)
		// A report the broker may not have acknowledged before the link dropped is sent again
		// (at least once: QoS 1, the outbox's resend); anything earlier coming later is disorder.
		if c < a {
			t.Fatalf("reports out of order: %v", ids)
		}
	}
}

// waitFor waits until col has received a message that match accepts, and returns it.
func waitFor(t *testing.T, col *collector, match func(string) bool) string {
	t.Helper()
	deadline := time.Now().Add(45 * time.Second)
	for time.Now().Before(deadline) {
		for _, s := range col.wait(t, 0) {
			if match(s) {
				return s
			}
		}
		select {
		case <-col.ch:
		case <-time.After(100 * time.Millisecond):
		}
	}
	t.Fatalf("no matching message among %q", col.wait(t, 0))
	return ""
}

// waitLog waits for a log entry from index from on that match accepts.
func waitLog(t *testing.T, d *proc, from int, match func(logwatch.Entry) bool) {
	t.Helper()
	deadline := time.Now().Add(45 * time.Second)
	for time.Now().Before(deadline) {
		for _, e := range d.log.Entries()[from:] {
			if match(e) {
				return
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatal("no matching log entry")
}

// subscribeTopics collects what the console receives on filter as "topic\x00payload".
func (b *bench) subscribeTopics(filter string) *collector {
	b.t.Helper()
	col := &collector{ch: make(chan struct{}, 1000)}
	tok := b.cloudClient().Subscribe(filter, 1, func(_ paho.Client, m paho.Message) {
		col.mu.Lock()
		col.msgs = append(col.msgs, m.Topic()+"\x00"+string(m.Payload()))
		col.mu.Unlock()
		col.ch <- struct{}{}
	})
	if !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		b.t.Fatalf("cloud subscribe: %v", tok.Error())
	}
	return col
}

// platformCase is one platform's console as the test plays it.
type platformCase struct {
	name    string
	section func(b *bench) string // the [mqtt.<platform>] section and anything [thing] needs
	filters []string              // what the console subscribes to
	// set is a set of LEDSwitch to value (raw JSON) with request id id; ack checks the
	// console's answer to it: a reply, or (no reply on the platform) the report of the state.
	set func(id, value string) (topic, payload string)
	ack func(id string, ok, on bool) func(topic, payload string) bool
	// call invokes service with args; answer matches its answer.
	call   func(id, service, args string) (topic, payload string)
	answer func(id string, ok bool) func(topic, payload string) bool
}

func secretFile(b *bench, name, secret string) string {
	p := filepath.Join(b.dir, name)
	if err := os.WriteFile(p, []byte(secret), 0o600); err != nil {
		b.t.Fatal(err)
	}
	return p
}

func jsonOf(t *testing.T, payload string) map[string]any {
	var m map[string]any
	if err := json.Unmarshal([]byte(payload), &m); err != nil {
		return nil
	}
	return m
}

var platformCases = []platformCase{{
	name: "tencent",
	section: func(b *bench) string {
		return fmt.Sprintf("[mqtt.tencent]\nproduct_id = \"1A17RZR3XX\"\ndevice_name = \"gate_dev01\"\ndevice_secret_file = %q\n",
			secretFile(b, "tc", "MDEyMzQ1Njc4OWFiY2RlZg=="))
	},
	filters: []string{"$thing/up/#"},
	set: func(id, value string) (string, string) {
		return "$thing/down/property/1A17RZR3XX/gate_dev01", fmt.Sprintf(`{"method":"control","clientToken":%q,"params":{"LEDSwitch":%s}}`, id, value)
	},
	ack: func(id string, ok, _ bool) func(string, string) bool {
		return func(topic, payload string) bool {
			m := jsonOf(nil, payload)
			code := 0.0
			if !ok {
				code = 406
			}
			return topic == "$thing/up/property/1A17RZR3XX/gate_dev01" && m["method"] == "control_reply" && m["clientToken"] == id && m["code"] == code
		}
	},
	call: func(id, service, args string) (string, string) {
		return "$thing/down/action/1A17RZR3XX/gate_dev01", fmt.Sprintf(`{"method":"action","clientToken":%q,"actionId":%q,"params":%s}`, id, service, args)
	},
	answer: func(id string, ok bool) func(string, string) bool {
		return func(topic, payload string) bool {
			m := jsonOf(nil, payload)
			return topic == "$thing/up/action/1A17RZR3XX/gate_dev01" && m["method"] == "action_reply" && m["clientToken"] == id && (m["code"] == 0.0) == ok
		}
	},
}, {
	name: "huawei",
	section: func(b *bench) string {
		return fmt.Sprintf("[mqtt.huawei]\nendpoint = \"a1b2c3d4e5.st1.iotda-device.cn-north-4.myhuaweicloud.com\"\ndevice_id = \"5f052ac562369102d42b0fb6_pi-led-01\"\ndevice_secret_file = %q\n[thing]\nservice_id = \"LED\"\n",
			secretFile(b, "hw", "12345678"))
	},
	filters: []string{"$oc/devices/5f052ac562369102d42b0fb6_pi-led-01/sys/properties/set/response/#", "$oc/devices/5f052ac562369102d42b0fb6_pi-led-01/sys/commands/response/#",
		"$oc/devices/5f052ac562369102d42b0fb6_pi-led-01/sys/properties/report"},
	set: func(id, value string) (string, string) {
		return "$oc/devices/5f052ac562369102d42b0fb6_pi-led-01/sys/properties/set/request_id=" + id,
			fmt.Sprintf(`{"object_device_id":"5f052ac562369102d42b0fb6_pi-led-01","services":[{"service_id":"LED","properties":{"LEDSwitch":%s}}]}`, value)
	},
	ack: func(id string, ok, _ bool) func(string, string) bool {
		return func(topic, payload string) bool {
			m := jsonOf(nil, payload)
			code := 0.0
			if !ok {
				code = 1
			}
			return topic == "$oc/devices/5f052ac562369102d42b0fb6_pi-led-01/sys/properties/set/response/request_id="+id && m["result_code"] == code
		}
	},
	call: func(id, service, args string) (string, string) {
		return "$oc/devices/5f052ac562369102d42b0fb6_pi-led-01/sys/commands/request_id=" + id,
			fmt.Sprintf(`{"object_device_id":"5f052ac562369102d42b0fb6_pi-led-01","service_id":"LED","command_name":%q,"paras":%s}`, service, args)
	},
	answer: func(id string, ok bool) func(string, string) bool {
		return func(topic, payload string) bool {
			m := jsonOf(nil, payload)
			return topic == "$oc/devices/5f052ac562369102d42b0fb6_pi-led-01/sys/commands/response/request_id="+id && (m["result_code"] == 0.0) == ok
		}
	},
}, {
	name: "thingsboard",
	section: func(b *bench) string {
		return fmt.Sprintf("[mqtt.thingsboard]\naccess_token_file = %q\nhost = \"tb.example\"\n", secretFile(b, "tb", "A1_TEST_TOKEN"))
	},
	filters: []string{"v1/devices/me/rpc/response/+", "v1/devices/me/telemetry"},
	set: func(_, value string) (string, string) {
		return "v1/devices/me/attributes", fmt.Sprintf(`{"LEDSwitch":%s,"from":"console"}`, value)
	},
	// An attribute update has no reply: the device's report of the real state is it.
	ack: func(_ string, _, on bool) func(string, string) bool {
		return func(topic, payload string) bool {
			return topic == "v1/devices/me/telemetry" && payload == fmt.Sprintf(`{"LEDSwitch":%t}`, on)
		}
	},
	call: func(id, service, args string) (string, string) {
		return "v1/devices/me/rpc/request/" + id, fmt.Sprintf(`{"method":%q,"params":%s}`, service, args)
	},
	answer: func(id string, ok bool) func(string, string) bool {
		return func(topic, payload string) bool {
			_, isErr := jsonOf(nil, payload)["error"]
			return topic == "v1/devices/me/rpc/response/"+id && isErr != ok
		}
	},
}}

// TestThingPlatforms: with the Tencent, Huawei and ThingsBoard presets the LED follows the
// property, each set is answered in the platform's terms (or, on ThingsBoard, by the reported
// state), a duplicate is harmless, a bad set changes nothing, and get_status and blink answer.
func TestThingPlatforms(t *testing.T) {
	t.Parallel()
	for _, pc := range platformCases {
		t.Run(pc.name, func(t *testing.T) {
			b := newBench(t, nil)
			var cols []*collector
			for _, f := range pc.filters {
				cols = append(cols, b.subscribeTopics(f))
			}
			seen := func(match func(string, string) bool) bool {
				for _, c := range cols {
					for _, s := range c.wait(t, 0) {
						topic, payload, _ := strings.Cut(s, "\x00")
						if match(topic, payload) {
							return true
						}
					}
				}
				return false
			}
			expect := func(what string, match func(string, string) bool) {
				t.Helper()
				deadline := time.Now().Add(30 * time.Second)
				for !seen(match) {
					if time.Now().After(deadline) {
						var all []string
						for _, c := range cols {
							all = append(all, c.wait(t, 0)...)
						}
						t.Fatalf("the console never saw %s; it saw %q", what, all)
					}
					time.Sleep(50 * time.Millisecond)
				}
			}
			section := pc.section(b)
			thingKeys := "led_property = \"LEDSwitch\"\n"
			if strings.Contains(section, "[thing]\n") {
				section = strings.Replace(section, "[thing]\n", "[thing]\n"+thingKeys, 1)
			} else {
				section += "[thing]\n" + thingKeys
			}
			d := b.start(fmt.Sprintf("[serial]\nport = %q\n[mqtt]\nkeepalive = \"120s\"\n%s[control]\nsocket = %q\n[log]\nlevel = \"debug\"\n",
				b.mod.Path(), section, controlSocket(b.mod.Path())))
			_, i := d.wait(t, 0, "session_up") // subscribed

			topic, payload := pc.set("r1", "true")
			b.publish(topic, []byte(payload))
			expect("the set of r1 acknowledged", pc.ack("r1", true, true))
			b.publish(topic, []byte(payload)) // the duplicate
			topic, payload = pc.set("r2", `"dim"`)
			b.publish(topic, []byte(payload))
			expect("the bad set r2 refused", pc.ack("r2", false, true))
			if pc.name != "thingsboard" {
				expect("the duplicate r1 answered", func(tp, p string) bool {
					n := 0
					for _, c := range cols {
						for _, s := range c.wait(t, 0) {
							if a, b, _ := strings.Cut(s, "\x00"); pc.ack("r1", true, true)(a, b) {
								n++
							}
						}
					}
					return n >= 2
				})
			}
			e, _ := d.wait(t, i, "thing_set_refused")
			if !strings.Contains(e.Str("error"), "dim") {
				t.Errorf("refusal %v does not say what was wrong", e)
			}
			on, why := ledEvents(d, i)
			if len(on) == 0 || !on[len(on)-1] {
				t.Fatalf("LED %v %v, want on", on, why)
			}
			for k, v := range on {
				if why[k] != "network ready; the LED shows its property" && !v {
					t.Fatalf("LED switched off (%v %v) by a duplicate or a refused set", on, why)
				}
			}
			topic, payload = pc.call("c1", "get_status", "{}")
			b.publish(topic, []byte(payload))
			expect("get_status answered", func(tp, p string) bool {
				return pc.answer("c1", true)(tp, p) && strings.Contains(p, sim.DefaultIdentity.IMEI)
			})
			topic, payload = pc.call("c2", "blink", `{"times":1}`)
			b.publish(topic, []byte(payload))
			expect("blink answered", pc.answer("c2", true))
			topic, payload = pc.call("c3", "reboot", `{}`)
			b.publish(topic, []byte(payload))
			expect("an unknown service refused", pc.answer("c3", false))
			waitLog(t, d, i, func(e logwatch.Entry) bool { return e.Event() == "led" && e.Str("why") == "blink done" && e.Bool("on") })
		})
	}
}

// TestSimThingDemo: `gatewayd sim` shows a newcomer the LED following LEDSwitch: the emulated
// console sets it, the LED follows, and the console logs the reply with the request's id, code
// 200. With -local the replies and reports go through the outbox, and still arrive.
func TestSimThingDemo(t *testing.T) {
	for _, local := range []bool{false, true} {
		t.Run(fmt.Sprintf("local=%t", local), func(t *testing.T) {
			args := []string{"sim", "-listen", testutil.FreeAddr(t), "-demo", "300ms", "-log-format", "json"}
			if local {
				args = append(args, "-local", testutil.FreeAddr(t))
			}
			d := startProc(t, exec.Command(gatewaydBin, args...))
			_, i := d.wait(t, 0, "session_up")
			var set logwatch.Entry
			waitLog(t, d, i, func(e logwatch.Entry) bool {
				if e.Str("component") == "console" && strings.HasPrefix(e.Str("message"), "console: set LEDSwitch 1") {
					set = e
					return true
				}
				return false
			})
			waitLog(t, d, i, func(e logwatch.Entry) bool {
				return e.Str("component") == "console" && e.Str("message") == "reply to "+set.Str("id")+": ok, code 200 {}"
			})
			waitLog(t, d, i, func(e logwatch.Entry) bool {
				return e.Event() == "led" && e.Bool("on") && e.Str("why") == "property LEDSwitch set"
			})
			waitLog(t, d, i, func(e logwatch.Entry) bool {
				return e.Str("component") == "console" && e.Str("message") == `report {"LEDSwitch":1}`
			})
			if _, err := d.stop(t); err != nil {
				t.Fatalf("gatewayd sim exit: %v", err)
			}
		})
	}
}

// TestThingFlood: a flood of sets (the emulator's Burst: +QMTRECV as fast as the daemon reads)
// is answered at the module's pace: all of them, within the queue's bound (past it, a reply is
// counted and logged as dropped — none vanishes). The LED ends as the last set says.
func TestThingFlood(t *testing.T) {
	t.Parallel()
	const n = 300
	b := newBench(t, nil)
	d := b.start(aliyunThingConfig(b.mod.Path(), ""))
	_, i := d.wait(t, 0, "session_up")
	err := b.mod.Burst(context.Background(), aliyunDev+"service/property/set", n, func(k int) []byte {
		return []byte(fmt.Sprintf(`{"id":"%d","params":{"LEDSwitch":%d}}`, k, k%2))
	})
	if err != nil {
		t.Fatal(err)
	}
	count := func() (sets, replies, dropped int) {
		for _, e := range d.log.Entries()[i:] {
			switch {
			case e.Event() == "thing_set":
				sets++
			case e.Event() == "published" && e.Str("topic") == aliyunDev+"service/property/set_reply":
				replies++
			case e.Event() == "thing_dropped" && e.Str("kind") == "reply":
				dropped++
			}
		}
		return
	}
	deadline := time.Now().Add(60 * time.Second)
	for {
		sets, replies, dropped := count()
		if sets == n && replies+dropped == n {
			t.Logf("%d sets: %d replies published, %d dropped (logged)", n, replies, dropped)
			if dropped != 0 {
				t.Errorf("%d replies dropped; a burst of %d is within the bound", dropped, n)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d sets handled, %d replies published + %d dropped, want %d", sets, replies, dropped, n)
		}
		time.Sleep(100 * time.Millisecond)
	}
	var last logwatch.Entry
	for _, e := range d.log.Entries()[i:] {
		if e.Event() == "thing_set" {
			last = e
		}
	}
	on, _ := ledEvents(d, i)
	if last.Str("id") != fmt.Sprint(n-1) || len(on) == 0 || on[len(on)-1] != ((n-1)%2 == 1) {
		t.Errorf("last set %v, LED %v", last, on)
	}
}

// TestThingAWS: the AWS preset over mutual TLS (the TLS bench's broker and certificates): a
// shadow delta sets the LED and is answered, as AWS has no reply topic, by the reported state; a
// delta the device cannot apply changes nothing and the real state is reported; a rejected
// update is logged with its code in words.
func TestThingAWS(t *testing.T) {
	t.Parallel()
	tb := newTLSBench(t)
	const shadow = "$aws/things/pi-01/shadow/"
	reported := tb.subscribe(shadow + "update")
	d := tb.bench.start(fmt.Sprintf(`
[serial]
port = %q
[mqtt]
host = %q
[mqtt.aws]
endpoint = "a1b2c3-ats.iot.eu-west-1.amazonaws.com"
thing_name = "pi-01"
[mqtt.tls]
ca_file = "ca.pem"
cert_file = "client.pem"
key_file = "client.key"
[thing]
led_property = "LEDSwitch"
[control]
socket = %q
[log]
level = "debug"
`, tb.mod.Path(), tlsHost, controlSocket(tb.mod.Path())))
	_, i := d.wait(t, 0, "session_up")
	if got := reported.wait(t, 1)[0]; got != `{"state":{"reported":{"LEDSwitch":false}},"clientToken":"1"}` {
		t.Errorf("report at connect %s", got)
	}
	tb.publish(shadow+"update/delta", []byte(`{"version":3,"timestamp":1700000000,"state":{"LEDSwitch":true},"metadata":{"LEDSwitch":{"timestamp":1700000000}}}`))
	if got := reported.wait(t, 2)[1]; got != `{"state":{"reported":{"LEDSwitch":true}},"clientToken":"3"}` {
		t.Errorf("report after the delta %s", got)
	}
	tb.publish(shadow+"update/delta", []byte(`{"version":4,"state":{"LEDSwitch":"dim"}}`))
	if got := reported.wait(t, 3)[2]; got != `{"state":{"reported":{"LEDSwitch":true}},"clientToken":"5"}` {
		t.Errorf("report after the refused delta %s", got)
	}
	if e, _ := d.wait(t, i, "thing_set_refused"); !strings.Contains(e.Str("error"), `"dim"`) {
		t.Errorf("refusal %v", e)
	}
	tb.publish(shadow+"update/rejected", []byte(`{"code":409,"message":"Version conflict","clientToken":"5"}`))
	if e, _ := d.wait(t, i, "thing_report_refused"); e.Int("code") != 409 || e.Str("meaning") != "version conflict" {
		t.Errorf("rejected update logged as %v", e)
	}
	on, why := ledEvents(d, i)
	if len(on) != 1 || !on[0] {
		t.Errorf("LED %v %v, want one change, to on", on, why)
	}
}

// TestThingAzure: the Azure preset over TLS: a desired change sets the LED and is acknowledged
// by a reported patch with ac 200 and av the desired $version (ac 400, the real value, when the
// device cannot apply it); direct methods get_status and blink answer 200, an unknown one 404;
// the hub's answer to a reported patch is checked.
func TestThingAzure(t *testing.T) {
	t.Parallel()
	// The TLS bench without client certificates: Azure authenticates the device by its SAS token.
	tb := &tlsBench{pki: testutil.NewPKI(t, "pi-led-01", tlsHost)}
	b, err := sim.NewBroker("127.0.0.1:0", sim.WithTLS(tb.pki.ServerTLS(t, false)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	tb.start(t, b.Addr())
	reported := tb.subscribeTopics("$iothub/twin/PATCH/properties/reported/#")
	methods := tb.subscribeTopics("$iothub/methods/res/#")
	d := tb.bench.start(fmt.Sprintf(`
[serial]
port = %q
[mqtt]
host = %q
[mqtt.azure]
hub = "myiothub"
device_id = "pi-led-01"
device_key_file = %q
[mqtt.tls]
ca_file = "ca.pem"
[thing]
led_property = "LEDSwitch"
[control]
socket = %q
[log]
level = "debug"
`, tb.mod.Path(), tlsHost, secretFile(tb.bench, "azkey", "AAECAwQFBgcICQoLDA0ODw=="), controlSocket(tb.mod.Path())))
	_, i := d.wait(t, 0, "session_up")
	last := func(c *collector, n int) (string, string) {
		got := c.wait(t, n)
		topic, payload, _ := strings.Cut(got[n-1], "\x00")
		return topic, payload
	}
	if topic, p := last(reported, 1); topic != "$iothub/twin/PATCH/properties/reported/?$rid=1" || p != `{"LEDSwitch":false}` {
		t.Errorf("report at connect %s %s", topic, p)
	}
	tb.publish("$iothub/twin/PATCH/properties/desired/?$version=8", []byte(`{"LEDSwitch":true,"$version":8}`))
	if _, p := last(reported, 2); p != `{"LEDSwitch":{"value":true,"ac":200,"av":8,"ad":"success"}}` {
		t.Errorf("ack of the desired change %s", p)
	}
	last(reported, 3) // the report of the change
	tb.publish("$iothub/twin/PATCH/properties/desired/?$version=9", []byte(`{"LEDSwitch":7,"$version":9}`))
	if _, p := last(reported, 4); !strings.HasPrefix(p, `{"LEDSwitch":{"value":true,"ac":400,"av":9,"ad":"LEDSwitch: 7 is neither 0 nor 1`) {
		t.Errorf("ack of the refused change %s", p)
	}
	tb.publish("$iothub/methods/POST/get_status/?$rid=21", []byte(`{}`))
	if topic, p := last(methods, 1); topic != "$iothub/methods/res/200/?$rid=21" || !strings.Contains(p, sim.DefaultIdentity.IMEI) {
		t.Errorf("get_status answer %s %s", topic, p)
	}
	tb.publish("$iothub/methods/POST/blink/?$rid=22", []byte(`{"times":1}`))
	if topic, p := last(methods, 2); topic != "$iothub/methods/res/200/?$rid=22" || p != `{"times":1}` {
		t.Errorf("blink answer %s %s", topic, p)
	}
	tb.publish("$iothub/methods/POST/reboot/?$rid=23", nil)
	if topic, _ := last(methods, 3); topic != "$iothub/methods/res/404/?$rid=23" {
		t.Errorf("unknown method answered on %s", topic)
	}
	tb.publish("$iothub/twin/res/400/?$rid=3", []byte(`{"message":"bad patch"}`))
	if e, _ := d.wait(t, i, "thing_report_refused"); e.Int("code") != 400 {
		t.Errorf("the hub's 400 logged as %v", e)
	}
	for _, e := range d.log.Entries()[i:] {
		if e.Event() == "led" && !e.Bool("on") && e.Str("why") != "blink" {
			t.Fatalf("the refused change switched the LED off: %v", e)
		}
	}
}
