package config

import (
	"sort"
	"strings"
	"time"

	"github.com/gatewayd/gatewayd/internal/cloud"
	"github.com/gatewayd/gatewayd/internal/thing"
	"github.com/gatewayd/gatewayd/internal/topic"
)

// Thing is [thing]: the LED bound to a property of the platform's thing model, the topics its
// sets, replies and reports travel on, and the telemetry reported with it.
type Thing struct {
	// Dialect is the platform's thing model ("aliyun", "tencent", ...): the preset's platform,
	// or thing.dialect with a plain [mqtt].
	Dialect string
	// LEDProperty is the property the LED follows ("LEDSwitch").
	LEDProperty string
	// Topics are the thing model's topics, templates expanded.
	Topics thing.Topics
	// ReportInterval is how often the telemetry is reported after the report at connect; 0 =
	// only at connect.
	ReportInterval time.Duration
	// QoS of replies and reports.
	QoS int
	// Telemetry maps telemetry fields (thing.TeleSignal, ...) to property names.
	Telemetry map[string]string
}

// DefaultReportInterval is thing.report_interval unless set.
const DefaultReportInterval = 5 * time.Minute

// thingTopicKeys are the keys of [thing.topics] with the preset template each defaults to,
// by platform. A platform that has no such topic leaves the flow out.
var thingTopicDefaults = map[string]map[string]string{
	"aliyun": {"set": "property_set", "set_reply": "property_set_reply", "report": "property_post",
		"report_reply": "property_post_reply", "service": "service"},
	"tencent": {"set": "property_set", "set_reply": "property_set_reply", "report": "property_post",
		"report_reply": "property_post_reply", "service": "action", "service_reply": "action_reply"},
	"huawei": {"set": "property_set", "report": "property_post", "service": "command"},
	"onenet": {"set": "property_set", "set_reply": "property_set_reply", "report": "property_post", "report_reply": "property_post_reply"},
	"azure":  {"set": "property_set", "report": "property_post", "report_reply": "twin_response", "service": "method"},
	"aws":    {"set": "property_set", "report": "property_post", "report_reply": "shadow_accepted"},
	// ThingsBoard: the state goes out as telemetry, not as a client attribute on the topic the
	// shared attribute updates come in on, where a broker that echoes it would loop it back as a set.
	"thingsboard": {"set": "property_set", "report": "telemetry", "service": "rpc_request"},
}

// thingTopicKeys lists the keys of [thing.topics] in order, with whether each is a filter.
var thingTopicKeys = []struct {
	key    string
	filter bool
}{{"set", true}, {"set_reply", false}, {"report", false}, {"report_reply", true}, {"service", true}, {"service_reply", false}}

// required are the topics a dialect cannot work without.
func thingRequired(dialect string) []string {
	switch dialect {
	case "aliyun", "tencent", "onenet":
		return []string{"set", "set_reply", "report"}
	}
	return []string{"set", "report"}
}

func (b *builder) thing(t *table) {
	th := &Thing{}
	platform := ""
	if p := b.cfg.MQTT.Platform; p != nil && p.Name() != cloud.PlainName {
		platform = p.Name()
	}
	th.Dialect = t.str("dialect", platform)
	th.LEDProperty = t.str("led_property", "")
	th.ReportInterval = t.duration("report_interval", DefaultReportInterval, 0, 24*time.Hour, false)
	th.QoS = t.integer("qos", 1, 0, 1)
	th.Topics.ServiceID = t.str("service_id", "")
	defer t.done()
	ok := true
	switch {
	case th.LEDProperty == "":
		t.fail("led_property", "required: the property the LED follows, as the platform's thing model names it (e.g. \"LEDSwitch\")")
		ok = false
	case !validName(th.LEDProperty):
		t.fail("led_property", "%q: a property name is letters, digits and _ (at most 64)", th.LEDProperty)
		ok = false
	}
	switch {
	case th.Dialect == "" && b.cfg.MQTT.Platform == nil:
		return // [mqtt] is broken, and reported
	case th.Dialect == "":
		t.fail("dialect", "required with a plain [mqtt] (no platform section): one of %s", quoteList(thing.Names()))
		return
	case platform != "" && th.Dialect != platform:
		t.fail("dialect", "%q differs from the platform of [mqtt.%s]; leave it out", th.Dialect, platform)
		return
	}
	if _, err := thing.New(th.Dialect, thing.Topics{}); err != nil {
		t.fail("dialect", "%q is not one of %s", th.Dialect, quoteList(thing.Names()))
		return
	}
	if th.Topics.ServiceID != "" && th.Dialect != "huawei" {
		t.fail("service_id", "is for the Huawei dialect only")
	}
	vars := map[string]string{}
	if p := b.cfg.MQTT.Platform; p != nil {
		vars = p.Topics()
	}
	tt := t.sub("topics")
	topics := map[string]string{}
	for _, k := range thingTopicKeys {
		def := ""
		if name, has := thingTopicDefaults[th.Dialect][k.key]; has && platform != "" {
			def = "{" + name + "}"
		}
		v := tt.str(k.key, def)
		if v == "" {
			continue
		}
		exp, good := b.thingTopic(tt, k.key, v, vars, k.filter)
		if !good {
			ok = false
			continue
		}
		topics[k.key] = exp
	}
	tt.done()
	for _, k := range thingRequired(th.Dialect) {
		if topics[k] == "" && !tt.failed[k] {
			tt.fail(k, "required for the %s dialect (with a plain [mqtt] every topic is given here)", th.Dialect)
			ok = false
		}
	}
	if th.Dialect == "aws" && topics["report_reply"] != "" {
		// accepted and rejected both: …/update/+ (the delta, matched too, is told apart by topic).
		if r, cut := strings.CutSuffix(topics["report_reply"], "/accepted"); cut {
			topics["report_reply"] = r + "/+"
		}
	}
	th.Topics = thing.Topics{Set: topics["set"], SetReply: topics["set_reply"], Report: topics["report"],
		ReportReply: topics["report_reply"], Service: topics["service"], ServiceReply: topics["service_reply"], ServiceID: th.Topics.ServiceID}
	if th.Topics.Set != "" && th.Topics.Report != "" && topic.Match(th.Topics.Set, th.Topics.Report) && th.Dialect != "tencent" {
		b.warn(tt.key("report"), "%q is also a set topic: a broker that sends the device its own publishes would hand every report back as a set", th.Topics.Report)
	}
	if th.Dialect == "tencent" && th.Topics.Service != "" && th.Topics.ServiceReply == "" {
		tt.fail("service_reply", "required with topics.service for the tencent dialect")
		ok = false
	}

	te := t.sub("telemetry")
	th.Telemetry = map[string]string{}
	seen := map[string]string{th.LEDProperty: "led_property"}
	for _, f := range thing.TelemetryFields() {
		name := te.str(f, "")
		if name == "" {
			continue
		}
		if !validName(name) {
			te.fail(f, "%q: a property name is letters, digits and _ (at most 64)", name)
			ok = false
			continue
		}
		if other, dup := seen[name]; dup {
			te.fail(f, "%q is already the property of %s", name, other)
			ok = false
			continue
		}
		seen[name] = f
		th.Telemetry[f] = name
	}
	te.done()
	if !ok {
		return
	}
	b.cfg.Thing = th
	d, err := thing.New(th.Dialect, th.Topics)
	if err != nil {
		t.fail("dialect", "%v", err)
		return
	}
	// The thing model's downlink topics are subscribed with the rest.
	have := map[string]bool{}
	for _, s := range b.cfg.MQTT.Subscribe {
		have[s.Topic] = true
	}
	for _, f := range d.Filters() {
		if !have[f] {
			b.cfg.MQTT.Subscribe = append(b.cfg.MQTT.Subscribe, Subscription{Topic: f, QoS: 1})
			have[f] = true
		}
	}
}

// thingTopic expands and checks one topic of [thing.topics]: the preset's templates are known,
// {imei} and {iccid} are not (the thing model's topics are fixed at start).
func (b *builder) thingTopic(t *table, key, v string, vars map[string]string, filter bool) (string, bool) {
	for _, name := range placeholders(v) {
		if _, known := vars[name]; known {
			continue
		}
		names := make([]string, 0, len(vars))
		for k := range vars {
			names = append(names, "{"+k+"}")
		}
		sort.Strings(names)
		if len(names) == 0 {
			t.fail(key, "unknown placeholder {%s}: without a platform section ([mqtt.aliyun], ...) give the topic itself", name)
		} else {
			t.fail(key, "unknown placeholder {%s} (known: %s)", name, strings.Join(names, ", "))
		}
		return "", false
	}
	exp := ExpandTopic(v, vars)
	if len(exp) > MaxTopic {
		t.fail(key, "%q is %d bytes, longer than %d", exp, len(exp), MaxTopic)
		return "", false
	}
	if !b.atString(t, key, exp, MaxTopic) {
		return "", false
	}
	if err := checkTopic(exp, filter); err != nil {
		t.fail(key, "%q: %v", exp, err)
		return "", false
	}
	return exp, true
}

// validName reports whether s can be a property name: what the platforms' thing models allow
// in an identifier (letters, digits, _), at most 64 bytes.
func validName(s string) bool {
	if s == "" || len(s) > 64 {
		return false
	}
	for _, r := range s {
		if !(r == '_' || r >= '0' && r <= '9' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z') {
			return false
		}
	}
	return true
}
