package config

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gatewayd/gatewayd/internal/cloud"
)

const name = "gatewayd.toml"

// minimal is the smallest valid literal-credentials configuration.
const minimal = `[mqtt]
host = "broker.example.com"
client_id = "pi"
`

// minimalAliyun is the smallest valid Alibaba Cloud configuration.
const minimalAliyun = `[mqtt.aliyun]
product_key = "a1B2c3D4e5F"
device_name = "pi-led-01"
device_secret = "Zx9yW8vU7tS6rQ5pO4nM3lK2jI1hG0fE"
region = "cn-shanghai"
`

// noEnv is an environment without CREDENTIALS_DIRECTORY.
var noEnv = Options{Getenv: func(string) string { return "" }}

// envWith returns Options whose CREDENTIALS_DIRECTORY is dir.
func envWith(dir string) Options {
	return Options{Getenv: func(k string) string {
		if k == "CREDENTIALS_DIRECTORY" {
			return dir
		}
		return ""
	}}
}

func mustParse(t *testing.T, o Options, src string) *Config {
	t.Helper()
	c, err := o.Parse([]byte(src), name)
	if err != nil {
		t.Fatalf("Parse:\n%s\nerror:\n%v", src, err)
	}
	return c
}

func writeFile(t *testing.T, dir, file, content string, mode os.FileMode) string {
	t.Helper()
	p := filepath.Join(dir, file)
	if err := os.WriteFile(p, []byte(content), mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(p, mode); err != nil { // not subject to the umask
		t.Fatal(err)
	}
	return p
}

func TestDefaults(t *testing.T) {
	c := mustParse(t, noEnv, minimal)
	checks := []struct {
		what      string
		got, want any
	}{
		{"serial.port", c.Serial.Port, DefaultPort},
		{"serial.baud", c.Serial.Baud, 115200},
		{"module.apn", c.Module.APN, ""},
		{"module.pdp_context", c.Module.PDPContext, 1},
		{"module.sim_timeout", c.Module.SIMTimeout, 30 * time.Second},
		{"module.register_timeout", c.Module.RegisterTimeout, 180 * time.Second},
		{"mqtt.port", c.MQTT.Port, 1883},
		{"mqtt.keepalive", c.MQTT.KeepAlive, 60 * time.Second},
		{"mqtt.clean_session", c.MQTT.CleanSession, true},
		{"mqtt.client_index", c.MQTT.ClientIndex, 0},
		{"mqtt.packet_timeout", c.MQTT.PacketTimeout, 5 * time.Second},
		{"mqtt.retries", c.MQTT.Retries, 3},
		{"mqtt.platform", c.MQTT.Platform.Name(), cloud.PlainName},
		{"mqtt.host_from", c.MQTT.HostFrom, "mqtt.host"},
		{"mqtt.password", c.MQTT.Password.IsZero(), true},
		{"led virtual", c.LED.Virtual(), true},
		{"log.level", c.Log.Level, "info"},
		{"log.format", c.Log.Format, "json"},
		{"log.at_trace", c.Log.ATTrace, false},
		{"warnings", len(c.Warnings), 0},
	}
	for _, ck := range checks {
		if ck.got != ck.want {
			t.Errorf("%s = %v, want %v", ck.what, ck.got, ck.want)
		}
	}

	a := mustParse(t, noEnv, minimalAliyun).MQTT
	if a.Platform == nil || a.Platform.Name() != "aliyun" {
		t.Fatalf("platform %v, want aliyun", a.Platform)
	}
	// The defaults: hmacsha256, a timestamp, securemode 3, the device name as client id.
	if id, err := a.Platform.Identity(time.UnixMilli(1700000000000)); err != nil || id.ClientID != "pi-led-01|securemode=3,signmethod=hmacsha256,timestamp=1700000000000|" {
		t.Errorf("aliyun defaults: client id %q, %v", id.ClientID, err)
	}
	if a.Host != "a1B2c3D4e5F.iot-as-mqtt.cn-shanghai.aliyuncs.com" || a.HostFrom != "mqtt.aliyun.region" || a.Port != 1883 {
		t.Errorf("derived broker %s:%d from %s", a.Host, a.Port, a.HostFrom)
	}
}

func TestFullLiteralConfig(t *testing.T) {
	c := mustParse(t, noEnv, `
[serial]
port = "auto"
baud = 921600
[module]
apn = "cmnet"
apn_user = "u"
apn_password = "p"
pdp_context = 15
sim_timeout = "1m30s"
register_timeout = "10m"
[mqtt]
host = "10.0.0.1"
port = 8883
client_id = "c"
username = "u"
password = "pw"
keepalive = "0s"
clean_session = false
client_index = 5
packet_timeout = "60s"
retries = 10
subscribe = [{topic = "a/+/c", qos = 2}, {topic = "#"}]
[[mqtt.publish_on_connect]]
topic = "status/{imei}"
payload = "on"
qos = 1
retain = true
[led]
line = "GPIO24"
active_low = true
[log]
level = "trace"
format = "console"
at_trace = true
`)
	if c.Serial.Port != "auto" || c.Serial.Baud != 921600 || c.Module.PDPContext != 15 ||
		c.Module.SIMTimeout != 90*time.Second || c.Module.RegisterTimeout != 10*time.Minute ||
		c.Module.APNPassword.Reveal() != "p" || c.MQTT.Port != 8883 || c.MQTT.KeepAlive != 0 ||
		c.MQTT.CleanSession || c.MQTT.ClientIndex != 5 || c.MQTT.PacketTimeout != time.Minute ||
		c.MQTT.Retries != 10 || c.MQTT.Password.Reveal() != "pw" || c.Log.Level != "trace" ||
		c.Log.Format != "console" || !c.Log.ATTrace {
		t.Errorf("values not as written: %+v", c)
	}
	if len(c.MQTT.Subscribe) != 2 || c.MQTT.Subscribe[0] != (Subscription{"a/+/c", 2}) || c.MQTT.Subscribe[1] != (Subscription{"#", 0}) {
		t.Errorf("subscriptions %+v", c.MQTT.Subscribe)
	}
	if want := (Publication{"status/{imei}", "on", 1, true}); len(c.MQTT.PublishOnConnect) != 1 || c.MQTT.PublishOnConnect[0] != want {
		t.Errorf("publications %+v, want [%+v] ({imei} kept for bring-up)", c.MQTT.PublishOnConnect, want)
	}
	if c.LED.Virtual() || c.LED.Name != "GPIO24" || c.LED.Offset != -1 || c.LED.Chip != "" || !c.LED.ActiveLow {
		t.Errorf("led %+v", c.LED)
	}
	if c.Sources["mqtt.password"] != "inline" || c.Sources["module.apn_password"] != "inline" {
		t.Errorf("sources %v", c.Sources)
	}
}

func TestTopicPlaceholders(t *testing.T) {
	c := mustParse(t, noEnv, minimalAliyun+`
[[mqtt.subscribe]]
topic = "/sys/{product_key}/{device_name}/thing/service/property/set"
[[mqtt.subscribe]]
topic = "/dev/{imei}/{iccid}/+"
[[mqtt.publish_on_connect]]
topic = "/sys/{product_key}/{device_name}/thing/event/property/post"
payload = "test publish"
`)
	want := []string{"/sys/a1B2c3D4e5F/pi-led-01/thing/service/property/set", "/dev/{imei}/{iccid}/+"}
	for i, s := range c.MQTT.Subscribe {
		if s.Topic != want[i] {
			t.Errorf("subscribe[%d] = %q, want %q", i, s.Topic, want[i])
		}
	}
	if got := c.MQTT.PublishOnConnect[0].Topic; got != "/sys/a1B2c3D4e5F/pi-led-01/thing/event/property/post" {
		t.Errorf("publish topic %q", got)
	}
}

func TestExpandTopic(t *testing.T) {
	vars := map[string]string{"imei": "861234567890123", "iccid": "89860012345678901234", "x": "{imei}"}
	for _, tt := range []struct{ in, want string }{
		{"dev/{imei}/led", "dev/861234567890123/led"},
		{"{iccid}/{imei}", "89860012345678901234/861234567890123"},
		{"{x}", "{imei}"}, // one pass: values are not expanded again
		{"{unknown}/a", "{unknown}/a"},
		{"no/braces", "no/braces"},
		{"{unclosed/a", "{unclosed/a"},
		{"a}b{", "a}b{"},
		{"{}", "{}"},
		{"", ""},
	} {
		if got := ExpandTopic(tt.in, vars); got != tt.want {
			t.Errorf("ExpandTopic(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestCredentialsLiteral(t *testing.T) {
	c := mustParse(t, noEnv, minimal+"username = \"u\"\npassword = \"pw\"\n")
	cr, err := c.Credentials(time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	if cr.ClientID != "pi" || cr.Username != "u" || cr.Password.Reveal() != "pw" {
		t.Errorf("credentials %q %q %q", cr.ClientID, cr.Username, cr.Password.Reveal())
	}
}

// Signed credentials are the reference's worked example (ec600-at.md section 7.3).
func TestCredentialsAliyun(t *testing.T) {
	now := time.UnixMilli(1700000000000)
	for _, tt := range []struct {
		extra, clientID, password string
	}{
		{`sign_method = "hmacsha1"`, "pi-led-01|securemode=3,signmethod=hmacsha1,timestamp=1700000000000|", "69d84ceca71bf26dd9cc21f8d74d3a330495bb83"},
		{``, "pi-led-01|securemode=3,signmethod=hmacsha256,timestamp=1700000000000|", "5dd9c9eb82fe811b5bb81cbdd81b2407361d1db8f7c6946fdd84f86936032dc7"},
		{"sign_method = \"hmacmd5\"\ntimestamp = false", "pi-led-01|securemode=3,signmethod=hmacmd5|", "87f5a920ce5d4fcc4e2eee07c66febc9"},
		{"sign_method = \"hmacsha1\"\ntimestamp = false", "pi-led-01|securemode=3,signmethod=hmacsha1|", "bd4062bdb0ce5aefbb59ce1e7677eaecc653d2f3"},
	} {
		c := mustParse(t, noEnv, minimalAliyun+tt.extra+"\n")
		cr, err := c.Credentials(now)
		if err != nil {
			t.Fatal(err)
		}
		if cr.ClientID != tt.clientID || cr.Username != "pi-led-01&a1B2c3D4e5F" || cr.Password.Reveal() != tt.password {
			t.Errorf("%s: got %q %q %q, want %q %q", tt.extra, cr.ClientID, cr.Username, cr.Password.Reveal(), tt.clientID, tt.password)
		}
	}

	c := mustParse(t, noEnv, minimalAliyun+"client_id = \"SN1\"\n")
	cr, err := c.Credentials(now)
	if err != nil || !strings.HasPrefix(cr.ClientID, "SN1|") {
		t.Errorf("client id %q, %v; want the configured SN1", cr.ClientID, err)
	}
	if _, err := c.Credentials(time.Unix(0, 0)); err == nil {
		t.Error("signing with a clock at 1970 succeeded")
	}
}

func TestLEDForms(t *testing.T) {
	c := mustParse(t, noEnv, minimal+"[led]\nchip = \"/dev/gpiochip4\"\nline = 24\n")
	if c.LED.Chip != "/dev/gpiochip4" || c.LED.Offset != 24 || c.LED.Name != "" || c.LED.Virtual() {
		t.Errorf("led %+v", c.LED)
	}
	c = mustParse(t, noEnv, minimal+"[led]\nchip = \"gpiochip0\"\nline = \"GPIO24\"\n")
	if c.LED.Name != "GPIO24" || c.LED.Offset != -1 {
		t.Errorf("led %+v", c.LED)
	}
}

// What the platform does not have is refused at start, with its rule in words (it was a
// warning before presets: the session then ran with a QoS or retain the cloud ignores).
func TestAliyunRefusesQoS2AndRetain(t *testing.T) {
	_, err := noEnv.Parse([]byte(minimalAliyun+"[[mqtt.subscribe]]\ntopic = \"a\"\nqos = 2\n[[mqtt.publish_on_connect]]\ntopic = \"b\"\nretain = true\n"), name)
	if err == nil {
		t.Fatal("accepted")
	}
	for _, want := range []string{
		"gatewayd.toml:8: mqtt.subscribe[0].qos: 2: Alibaba Cloud has no QoS 2",
		"gatewayd.toml:11: mqtt.publish_on_connect[0].retain: Alibaba Cloud does not keep retained messages",
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error\n%v\nlacks %q", err, want)
		}
	}
}

// mqtt.host overrides the host the preset derives.
func TestPresetHostOverride(t *testing.T) {
	c := mustParse(t, noEnv, "[mqtt]\nhost = \"h.example.com\"\n"+minimalAliyun)
	if c.MQTT.Host != "h.example.com" || c.MQTT.HostFrom != "mqtt.host" || c.MQTT.Platform.Endpoint().Host != "h.example.com" {
		t.Errorf("host %q from %q, platform endpoint %+v", c.MQTT.Host, c.MQTT.HostFrom, c.MQTT.Platform.Endpoint())
	}
}

func TestATTraceWarning(t *testing.T) {
	c := mustParse(t, noEnv, minimal+"[log]\nat_trace = true\n")
	if len(c.Warnings) != 1 || !strings.HasPrefix(c.Warnings[0], "gatewayd.toml:5: log.at_trace: has no effect unless log.level is \"trace\"") {
		t.Errorf("warnings %q", c.Warnings)
	}
	if c := mustParse(t, noEnv, minimal+"[log]\nat_trace = true\nlevel = \"trace\"\n"); len(c.Warnings) != 0 {
		t.Errorf("warnings %q", c.Warnings)
	}
}

func TestErrorsAreProblems(t *testing.T) {
	_, err := noEnv.Parse([]byte("[mqtt]\nport = 0\n"), name)
	var p *Problem
	if !errors.As(err, &p) {
		t.Fatalf("error %v is not a *Problem", err)
	}
	if p.File != name || p.Key == "" || p.Line == 0 {
		t.Errorf("problem %+v lacks file, key or line", p)
	}
}

func TestLoad(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir, "pw", "s3cret\n", 0o600)
	p := writeFile(t, dir, "gatewayd.toml", minimal+"username = \"u\"\npassword_file = \"pw\"\n", 0o600)
	c, err := noEnv.Load(p)
	if err != nil {
		t.Fatal(err)
	}
	if c.File != p || c.MQTT.Password.Reveal() != "s3cret" {
		t.Errorf("file %q password %q", c.File, c.MQTT.Password.Reveal())
	}
	if want := "file " + filepath.Join(dir, "pw"); c.Sources["mqtt.password"] != want {
		t.Errorf("source %q, want %q (relative to the config's directory)", c.Sources["mqtt.password"], want)
	}

	if _, err := Load(filepath.Join(dir, "missing.toml")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Load of a missing file: %v", err)
	}
	big := writeFile(t, dir, "big.toml", "# "+strings.Repeat("x", MaxFileSize)+"\n", 0o600)
	if _, err := Load(big); err == nil || !strings.Contains(err.Error(), "larger than") {
		t.Errorf("Load of a huge file: %v", err)
	}
}
