package config

import (
	"strings"
	"testing"
	"time"
)

const thingAliyun = `
[serial]
port = "/dev/ttyUSB2"
[mqtt.aliyun]
product_key = "a1B2c3D4e5F"
device_name = "pi-led-01"
device_secret = "Zx9yW8vU7tS6rQ5pO4nM3lK2jI1hG0fE"
region = "cn-shanghai"
[thing]
led_property = "LEDSwitch"
report_interval = "1m"
[thing.telemetry]
signal = "RSSI"
imei = "IMEI"
`

// TestThingFromPreset: with a platform section, [thing] needs only the property; the topics
// come from the preset's templates and the downlink filters are subscribed.
func TestThingFromPreset(t *testing.T) {
	c, err := Parse([]byte(thingAliyun), "gatewayd.toml")
	if err != nil {
		t.Fatal(err)
	}
	th := c.Thing
	if th == nil || th.Dialect != "aliyun" || th.LEDProperty != "LEDSwitch" || th.ReportInterval != time.Minute {
		t.Fatalf("thing %+v", th)
	}
	const dev = "/sys/a1B2c3D4e5F/pi-led-01/thing/"
	if th.Topics.Set != dev+"service/property/set" || th.Topics.SetReply != dev+"service/property/set_reply" ||
		th.Topics.Report != dev+"event/property/post" || th.Topics.ReportReply != dev+"event/property/post_reply" ||
		th.Topics.Service != dev+"service/+" {
		t.Errorf("topics %+v", th.Topics)
	}
	if th.Telemetry["signal"] != "RSSI" || th.Telemetry["imei"] != "IMEI" || len(th.Telemetry) != 2 {
		t.Errorf("telemetry %v", th.Telemetry)
	}
	var subs []string
	for _, s := range c.MQTT.Subscribe {
		subs = append(subs, s.Topic)
	}
	want := []string{dev + "service/property/set", dev + "service/+", dev + "event/property/post_reply"}
	if strings.Join(subs, " ") != strings.Join(want, " ") {
		t.Errorf("subscribed %v, want %v", subs, want)
	}
}

// TestThingPlain: with a plain [mqtt] the dialect and the topics are given.
func TestThingPlain(t *testing.T) {
	cfg := `
[mqtt]
host = "broker.example"
client_id = "pi"
[thing]
dialect = "aliyun"
led_property = "LEDSwitch"
report_interval = "0s"
[thing.topics]
set = "dev/set"
set_reply = "dev/set_reply"
report = "dev/post"
`
	c, err := Parse([]byte(cfg), "gatewayd.toml")
	if err != nil {
		t.Fatal(err)
	}
	if c.Thing.Topics.Set != "dev/set" || c.Thing.ReportInterval != 0 || c.Thing.Topics.Service != "" {
		t.Fatalf("%+v", c.Thing)
	}
}

func TestThingRefusals(t *testing.T) {
	cases := []struct{ cfg, want string }{
		{"[mqtt]\nhost = \"b\"\nclient_id = \"c\"\n[thing]\nled_property = \"LED\"\n", "thing.dialect: required with a plain [mqtt]"},
		{"[mqtt]\nhost = \"b\"\nclient_id = \"c\"\n[thing]\ndialect = \"sigfox\"\nled_property = \"LED\"\n", `thing.dialect: "sigfox" is not one of`},
		{"[mqtt]\nhost = \"b\"\nclient_id = \"c\"\n[thing]\ndialect = \"aliyun\"\nled_property = \"LED\"\n[thing.topics]\nset = \"a/b\"\n", "thing.topics.set_reply: required for the aliyun dialect"},
		{"[mqtt]\nhost = \"b\"\nclient_id = \"c\"\n[thing]\ndialect = \"huawei\"\nled_property = \"LED\"\n[thing.topics]\nset = \"{property_set}\"\nreport = \"r\"\n", "thing.topics.set: unknown placeholder {property_set}"},
		{"[mqtt]\nhost = \"b\"\nclient_id = \"c\"\n[thing]\ndialect = \"aws\"\nled_property = \"LED\"\n[thing.topics]\nset = \"a/#/b\"\nreport = \"r\"\n", "thing.topics.set:"},
		{"[mqtt]\nhost = \"b\"\nclient_id = \"c\"\n[thing]\ndialect = \"aws\"\nled_property = \"LED\"\n[thing.topics]\nset = \"s\"\nreport = \"r/+\"\n", "thing.topics.report:"},
		{thingAliyun + "operator = \"RSSI\"\n", `thing.telemetry.operator: "RSSI" is already the property of signal`},
		{thingAliyun + "firmware = \"a b\"\n", `thing.telemetry.firmware: "a b": a property name`},
		{thingAliyun + "speed = \"S\"\n", "thing.telemetry.speed"},
		{strings.Replace(thingAliyun, `led_property = "LEDSwitch"`, "", 1), "thing.led_property: required"},
		{strings.Replace(thingAliyun, `led_property = "LEDSwitch"`, "led_property = \"LEDSwitch\"\ndialect = \"tencent\"", 1), `thing.dialect: "tencent" differs from the platform of [mqtt.aliyun]`},
		{strings.Replace(thingAliyun, `report_interval = "1m"`, `report_interval = "-1m"`, 1), "thing.report_interval"},
	}
	for _, c := range cases {
		_, err := Parse([]byte(c.cfg), "gatewayd.toml")
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s\n got %v\nwant %q", c.cfg, err, c.want)
		}
	}
}
