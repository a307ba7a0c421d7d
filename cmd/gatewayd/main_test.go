package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestVersion(t *testing.T) {
	for _, args := range [][]string{{"-version"}, {"version"}} {
		var out, errb bytes.Buffer
		if code := run(args, &out, &errb); code != 0 || !strings.HasPrefix(out.String(), "gatewayd ") {
			t.Errorf("gatewayd %v: code %d, stdout %q, stderr %q", args, code, out.String(), errb.String())
		}
	}
}

func TestCheckPrintsResolvedSettingsWithSecretsMasked(t *testing.T) {
	path := filepath.Join(t.TempDir(), "gatewayd.toml")
	cfg := `
[serial]
port = "/dev/ec600-at"
[mqtt]
keepalive = "300s"
[mqtt.aliyun]
product_key = "a1B2c3D4e5F"
device_name = "pi-led-01"
device_secret = "Zx9yW8vU7tS6rQ5pO4nM3lK2jI1hG0fE"
region = "cn-shanghai"
[[mqtt.subscribe]]
topic = "/sys/{product_key}/{device_name}/thing/service/property/set"
qos = 1
`
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	var out, errb bytes.Buffer
	if code := run([]string{"check", "-config", path}, &out, &errb); code != 0 {
		t.Fatalf("check: code %d, stderr %q", code, errb.String())
	}
	got := out.String()
	for _, want := range []string{
		"a1B2c3D4e5F.iot-as-mqtt.cn-shanghai.aliyuncs.com", // derived host
		"pi-led-01&a1B2c3D4e5F",                            // user name
		"/sys/a1B2c3D4e5F/pi-led-01/thing/service/property/set",
		"***",
		"OK",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("check output lacks %q:\n%s", want, got)
		}
	}
	if strings.Contains(got, "Zx9yW8vU7tS6rQ5pO4nM3lK2jI1hG0fE") {
		t.Fatalf("check printed the device secret:\n%s", got)
	}
}

func TestBadConfigNamesFileAndKey(t *testing.T) {
	path := filepath.Join(t.TempDir(), "gatewayd.toml")
	if err := os.WriteFile(path, []byte("[serial]\nport = \"/dev/ttyUSB1\"\n[mqtt]\nhost = \"h\"\nkeepalive = \"61x\"\npasword = \"x\"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{{"check", "-config", path}, {"-config", path}} {
		var out, errb bytes.Buffer
		if code := run(args, &out, &errb); code != 1 {
			t.Errorf("%v: code %d, want 1", args, code)
		}
		msg := errb.String()
		for _, want := range []string{"gatewayd.toml", "mqtt.keepalive", "61x", "mqtt.pasword"} {
			if !strings.Contains(msg, want) {
				t.Errorf("%v: error lacks %q: %s", args, want, msg)
			}
		}
	}
}

func TestUnknownCommand(t *testing.T) {
	var out, errb bytes.Buffer
	if code := run([]string{"frobnicate"}, &out, &errb); code != 2 || !strings.Contains(errb.String(), "unknown command") {
		t.Fatalf("code %d, stderr %q", code, errb.String())
	}
}
