package config

import (
	"strings"
	"testing"
	"time"

	"github.com/gatewayd/gatewayd/internal/cloud"
)

const dynSection = "[mqtt.aliyun]\nproduct_key = \"a1X2bEnP82z\"\nproduct_secret = \"7jluWm1zql7bt8qK\"\nregion = \"cn-shanghai\"\n"

// A product secret instead of a device secret turns dynamic registration on: the device name
// defaults to {imei}, the secret's place is the state directory, topics carry {device_name}
// for the session to fill in.
func TestAliyunDynamicRegistrationConfig(t *testing.T) {
	env := presetEnv(t)
	c, err := env.Parse([]byte(dynSection+"state_dir = \"/tmp/gw-state\"\n[mqtt.tls]\n[[mqtt.subscribe]]\ntopic = \"{property_set}\"\nqos = 1\n"), name)
	if err != nil {
		t.Fatal(err)
	}
	r, ok := cloud.RegisteringOf(c.MQTT.Platform)
	if !ok {
		t.Fatal("not a registering platform")
	}
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
	c, err = env.Parse([]byte("[mqtt.aliyun]\nproduct_key = \"a1B2c3D4e5F\"\ndevice_name = \"pi\"\nregion = \"cn-shanghai\"\n"), name)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := cloud.RegisteringOf(c.MQTT.Platform); ok {
		t.Error("one device, one secret taken for dynamic registration")
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
		{"regnwl", dynSection + "registration = \"regnwl\"\n[mqtt.tls]\n", "regnwl (registration without pre-registration, Shanghai only) is not supported"},
		{"an unknown placeholder", dynSection + "device_name = \"{serial}\"\n[mqtt.tls]\n", "only {imei} and {iccid} can be filled in"},
		{"a relative state dir", dynSection + "state_dir = \"state\"\n[mqtt.tls]\n", "mqtt.aliyun.state_dir: \"state\" is not an absolute path"},
		{"the thing model", dynSection + "[mqtt.tls]\n[thing]\nled_property = \"LEDSwitch\"\n",
			"the thing model with dynamic registration (mqtt.aliyun.product_secret) is not supported yet"},
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
