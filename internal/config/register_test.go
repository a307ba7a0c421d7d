package config

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/gatewayd/gatewayd/internal/cloud"
)

// nwlInstance is regnwl on an Enterprise instance (the reference's iot-06z00… form, 19 bytes).
const nwlInstance = "[mqtt.aliyun]\nproduct_key = \"a1X2bEnP82z\"\nproduct_secret = \"7jluWm1zql7bt8qK\"\n" +
	"instance_id = \"iot-06z00ax1o4qyfb8\"\nregistration = \"regnwl\"\n"

const dynSection = "[mqtt.aliyun]\nproduct_key = \"a1X2bEnP82z\"\nproduct_secret = \"7jluWm1zql7bt8qK\"\nregion = \"cn-shanghai\"\n"

// registering parses text with env and returns it with its registering platform; the test
// fails if it does not parse or does not register.
func registering(t *testing.T, env Options, text string) (*Config, cloud.Registering) {
	t.Helper()
	c, err := env.Parse([]byte(text), name)
	if err != nil {
		t.Fatal(err)
	}
	r, ok := cloud.RegisteringOf(c.MQTT.Platform)
	if !ok {
		t.Fatal("not a registering platform")
	}
	return c, r
}

// A product secret instead of a device secret turns dynamic registration on: the device name
// defaults to {imei}, the secret's place is the state directory, topics carry {device_name}
// for the session to fill in.
func TestAliyunDynamicRegistrationConfig(t *testing.T) {
	env := presetEnv(t)
	c, r := registering(t, env, dynSection+"state_dir = \"/tmp/gw-state\"\n[mqtt.tls]\n[[mqtt.subscribe]]\ntopic = \"{property_set}\"\nqos = 1\n")
	d := r.Dynamic()
	if d.Template != "{imei}" || d.AuthType != "register" || d.Pin || d.StateDir != "/tmp/gw-state" || d.ProductSecret != "7jluWm1zql7bt8qK" {
		t.Errorf("dynamic config %+v", *d)
	}
	if got := d.SecretPath(d.DeviceName("861234567890123", "")); got != "/tmp/gw-state/aliyun-a1X2bEnP82z-861234567890123.secret" {
		t.Errorf("secret path %s", got)
	}
	if len(c.MQTT.Subscribe) != 1 || c.MQTT.Subscribe[0].Topic != "/sys/a1X2bEnP82z/{device_name}/thing/service/property/set" {
		t.Errorf("subscriptions %+v", c.MQTT.Subscribe)
	}
	if _, err := r.Identity(time.UnixMilli(1700000000000)); err == nil {
		t.Error("an identity before the device is registered")
	}
	// One device, one secret is not a registering platform.
	c, err := env.Parse([]byte("[mqtt.aliyun]\nproduct_key = \"a1B2c3D4e5F\"\ndevice_name = \"pi\"\nregion = \"cn-shanghai\"\n"), name)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := cloud.RegisteringOf(c.MQTT.Platform); ok {
		t.Error("one device, one secret taken for dynamic registration")
	}
}

// regnwl (no pre-registration): the instance id goes into the registration client id, the
// credential is kept in a .connwl file, and the default device name ({imei}, 15 bytes) fits
// even with an instance id.
func TestAliyunRegNWLConfig(t *testing.T) {
	env := presetEnv(t)
	c, r := registering(t, env, nwlInstance+"state_dir = \"/tmp/gw-state\"\n[mqtt.tls]\n")
	d := r.Dynamic()
	if d.AuthType != "regnwl" || d.InstanceID != "iot-06z00ax1o4qyfb8" {
		t.Errorf("dynamic config %+v", *d)
	}
	if got := d.SecretPath("861234567890123"); got != "/tmp/gw-state/aliyun-a1X2bEnP82z-861234567890123.connwl" {
		t.Errorf("credential path %s", got)
	}
	id, err := d.Register("861234567890123")
	if err != nil || !strings.Contains(id.ClientID, "|securemode=-2,authType=regnwl,random=") ||
		!strings.HasSuffix(id.ClientID, ",signmethod=hmacsha256,instanceId=iot-06z00ax1o4qyfb8|") {
		t.Errorf("registration client id %q: %v", id.ClientID, err)
	}
	if err := r.SetDevice("861234567890123", cloud.AliyunCredential{ClientID: "c1", DeviceToken: "tok"}); err != nil {
		t.Fatal(err)
	}
	got, err := r.Identity(time.UnixMilli(1700000000000))
	if err != nil || got.ClientID != "c1|securemode=-2,authType=connwl|" || got.Username != "861234567890123&a1X2bEnP82z" || got.Password != "tok" {
		t.Errorf("connwl identity %+v %v", got, err)
	}
	if c.MQTT.Host != "iot-06z00ax1o4qyfb8.mqtt.iothub.aliyuncs.com" {
		t.Errorf("host %s", c.MQTT.Host)
	}
	// 15 bytes of {imei}, 112 of |securemode=-2,…,random=<20 digits>,…,instanceId=iot-06z00ax1o4qyfb8|.
	var b bytes.Buffer
	if err := c.Describe(&b, time.UnixMilli(1700000000000)); err != nil || !strings.Contains(b.String(), "the registration client id is at most 127 bytes (the module takes 128)") {
		t.Errorf("describe (%v):\n%s", err, b.String())
	}
}

// The thing model with dynamic registration: its topics keep {device_name} for the daemon to
// fill in with the registered name, and its downlink topics are subscribed with the rest.
func TestAliyunDynamicThing(t *testing.T) {
	env := presetEnv(t)
	c, err := env.Parse([]byte(dynSection+"[mqtt.tls]\n[thing]\nled_property = \"LEDSwitch\"\n"), name)
	if err != nil {
		t.Fatal(err)
	}
	if c.Thing == nil || c.Thing.Topics.Set != "/sys/a1X2bEnP82z/{device_name}/thing/service/property/set" ||
		c.Thing.Topics.Report != "/sys/a1X2bEnP82z/{device_name}/thing/event/property/post" {
		t.Fatalf("thing %+v", c.Thing)
	}
	found := false
	for _, s := range c.MQTT.Subscribe {
		found = found || s.Topic == c.Thing.Topics.Set
	}
	if !found {
		t.Errorf("the set topic is not subscribed: %+v", c.MQTT.Subscribe)
	}
}

// What cannot register is refused at start, in words.
func TestAliyunDynamicRegistrationRefused(t *testing.T) {
	env := presetEnv(t)
	for _, tt := range []struct{ name, src, want string }{
		{"without TLS", dynSection, "mqtt.aliyun.product_secret: dynamic registration runs over TLS only"},
		{"a device name too long for the module's client id", dynSection + "device_name = \"" + strings.Repeat("n", 31) + "-{imei}\"\n[mqtt.tls]\n",
			"is too long for dynamic registration: the registration client id adds 82 bytes, and the module takes at most 128; keep it to 46 bytes"},
		{"both secrets", dynSection + "device_secret = \"x\"\n[mqtt.tls]\n", "give either device_secret (one device, one secret) or product_secret"},
		{"regnwl with secure_mode", dynSection + "registration = \"regnwl\"\nsecure_mode = 2\n[mqtt.tls]\n", "mqtt.aliyun.secure_mode: regnwl devices log in with securemode=-2"},
		{"regnwl without TLS", dynSection + "registration = \"regnwl\"\n", "mqtt.aliyun.product_secret: dynamic registration runs over TLS only"},
		// clouds.md 5: with an instance id a long device-chosen id does not fit the module's 128 bytes.
		{"regnwl with an instance id and a long device name", nwlInstance + "device_name = \"gateway-{imei}\"\n[mqtt.tls]\n",
			"mqtt.aliyun.device_name: 23 bytes (with {imei}/{iccid} at their longest) is too long for dynamic registration: the registration client id adds 112 bytes (authType=regnwl with instanceId=iot-06z00ax1o4qyfb8, clouds.md 5: a long id does not fit with an instance id), and the module takes at most 128; keep it to 16 bytes"},
		{"regnwl with an instance id too long for any name", strings.Replace(nwlInstance, "iot-06z00ax1o4qyfb8", "iot-"+strings.Repeat("0", 40), 1) + "[mqtt.tls]\n",
			"is too long for regnwl: the registration client id with instanceId="},
		{"an unknown placeholder", dynSection + "device_name = \"{serial}\"\n[mqtt.tls]\n", "only {imei} and {iccid} can be filled in"},
		{"a relative state dir", dynSection + "state_dir = \"state\"\n[mqtt.tls]\n", "mqtt.aliyun.state_dir: \"state\" is not an absolute path"},
		{"pinning without registration", "[mqtt.aliyun]\nproduct_key = \"a1B2c3D4e5F\"\ndevice_name = \"pi\"\nregion = \"cn-shanghai\"\npin_device_name = true\n",
			"mqtt.aliyun.pin_device_name: is for dynamic registration"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := env.Parse([]byte(tt.src), name)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %v, want %q", err, tt.want)
			}
			if strings.Contains(err.Error(), "7jluWm1zql7bt8qK") {
				t.Errorf("the error shows the product secret: %v", err)
			}
		})
	}
}
