package config

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// fleetBase is a fleet image's base file: everything but the device's identity.
const fleetBase = `[serial]
port = "/dev/ec600-at"

[mqtt]
host = "broker.example.com"
client_id = "unset"
keepalive = "60s"

[[mqtt.subscribe]]
topic = "fleet/all/cmd"
qos = 1

[retry]
initial = "1s"
`

// dropInTree writes the base file and the drop-ins (name → content) and returns the base's path.
func dropInTree(t *testing.T, base string, dropIns map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	path := writeFile(t, dir, "gatewayd.toml", base, 0o644)
	if err := os.Mkdir(DropInDir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	for n, c := range dropIns {
		writeFile(t, DropInDir(path), n, c, 0o644)
	}
	return path
}

// TestDropInsMergeInNameOrder: tables merge key by key, a value set again is the last file's (in
// name order: 10- before 20-, whatever the order they were written in), files not named *.toml
// and hidden ones are ignored, and Origins names the file and line of each value.
func TestDropInsMergeInNameOrder(t *testing.T) {
	path := dropInTree(t, fleetBase, map[string]string{
		"20-device.toml": "[mqtt]\nclient_id = \"gw-0042\"\n\n[retry]\nmax = \"5m\"\n",
		"10-site.toml":   "[mqtt]\nclient_id = \"site-default\"\nkeepalive = \"120s\"\n",
		"README":         "[mqtt]\nclient_id = \"not a drop-in\"\n",
		".hidden.toml":   "[mqtt]\nclient_id = \"hidden\"\n",
		"30-bak.toml~":   "[mqtt]\nclient_id = \"backup\"\n",
	})
	c, err := noEnv.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if c.MQTT.ClientID != "gw-0042" || c.MQTT.KeepAlive.String() != "2m0s" || c.MQTT.Host != "broker.example.com" ||
		c.Retry.Max.String() != "5m0s" || c.Retry.Initial.String() != "1s" || len(c.MQTT.Subscribe) != 1 {
		t.Fatalf("merged: client_id %q keepalive %s host %q retry %s..%s subscriptions %d",
			c.MQTT.ClientID, c.MQTT.KeepAlive, c.MQTT.Host, c.Retry.Initial, c.Retry.Max, len(c.MQTT.Subscribe))
	}
	d := DropInDir(path)
	if want := []string{path, filepath.Join(d, "10-site.toml"), filepath.Join(d, "20-device.toml")}; strings.Join(c.Files, " ") != strings.Join(want, " ") {
		t.Fatalf("files %q, want %q", c.Files, want)
	}
	for key, want := range map[string]string{
		"mqtt.client_id": filepath.Join(d, "20-device.toml") + ":2",
		"mqtt.keepalive": filepath.Join(d, "10-site.toml") + ":3",
		"mqtt.host":      path + ":5",
		"mqtt.subscribe": path + ":9",
		"retry.max":      filepath.Join(d, "20-device.toml") + ":5",
		"retry.initial":  path + ":14",
	} {
		if got := c.Origins[key]; got != want {
			t.Errorf("origin of %s: %q, want %q", key, got, want)
		}
	}
}

// TestDropInProblemsNameTheDropIn: an unknown key, a value of the wrong type and a syntax error
// in a drop-in are refused with the drop-in's name and line, not the base's.
func TestDropInProblemsNameTheDropIn(t *testing.T) {
	for _, c := range []struct {
		name, dropIn, want string
	}{
		{"unknown key", "# device\n[mqtt]\nclient_idd = \"x\"\n", "50-device.toml:3: unknown key mqtt.client_idd"},
		{"wrong type", "[mqtt]\n\nkeepalive = 60\n", "50-device.toml:3: mqtt.keepalive: "},
		{"syntax", "[mqtt]\nclient_id = \n", "50-device.toml:2:"},
		{"missing table key", "[mqtt.will]\nqos = 1\n", "50-device.toml:1: mqtt.will.topic: "},
	} {
		t.Run(c.name, func(t *testing.T) {
			path := dropInTree(t, fleetBase, map[string]string{"50-device.toml": c.dropIn})
			_, err := noEnv.Load(path)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("error %v, want it to contain %q", err, c.want)
			}
			var p *Problem
			if !errors.As(err, &p) || filepath.Base(p.File) != "50-device.toml" {
				t.Fatalf("problem %+v does not name the drop-in", p)
			}
		})
	}
}

// TestDropInConflictsRefused: an array of tables set in two files, and a key that is a table in
// one file and a value in another, are refused naming both files and lines.
func TestDropInConflictsRefused(t *testing.T) {
	for _, c := range []struct {
		name, dropIn string
		want         []string
	}{
		{"array of tables in two files", "[[mqtt.subscribe]]\ntopic = \"device/cmd\"\n",
			[]string{"50-device.toml:1: mqtt.subscribe: is also set in ", "gatewayd.toml:9", "one file only"}},
		{"table becomes a value", "mqtt = \"broker\"\n",
			[]string{"50-device.toml:1: mqtt: is a value here but a table in ", "gatewayd.toml:4"}},
		{"value becomes a table", "[retry.initial]\nx = 1\n",
			[]string{"50-device.toml:1: retry.initial: is a table here but a value in ", "gatewayd.toml:14"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			path := dropInTree(t, fleetBase, map[string]string{"50-device.toml": c.dropIn})
			_, err := noEnv.Load(path)
			if err == nil {
				t.Fatal("no error")
			}
			for _, w := range c.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
		})
	}
}

// TestNoDropInDirectoryIsOneFile: without a .d directory Load reads the one file, as before, and
// still says where each value came from.
func TestNoDropInDirectoryIsOneFile(t *testing.T) {
	path := writeFile(t, t.TempDir(), "gatewayd.toml", fleetBase, 0o644)
	c, err := noEnv.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Files) != 1 || c.Origins["mqtt.client_id"] != path+":6" {
		t.Fatalf("files %q, origin %q", c.Files, c.Origins["mqtt.client_id"])
	}
}

// TestRevisionIsOfTheMergedSettings: the same settings give the same revision whether they are
// in one file or split into a drop-in, with other comments and order; a changed value changes
// it; a secret does not reach it.
func TestRevisionIsOfTheMergedSettings(t *testing.T) {
	one := writeFile(t, t.TempDir(), "gatewayd.toml", fleetBase+"\n[mqtt.will]\ntopic = \"w\"\nmessage = \"gone\"\n", 0o644)
	split := dropInTree(t, "# base\n"+fleetBase, map[string]string{"50-will.toml": "[mqtt.will]\nmessage = \"gone\"\ntopic = \"w\"\n"})
	changed := dropInTree(t, fleetBase, map[string]string{"50-will.toml": "[mqtt.will]\ntopic = \"w\"\nmessage = \"went\"\n"})
	rev := func(p string) string {
		t.Helper()
		c, err := noEnv.Load(p)
		if err != nil {
			t.Fatal(err)
		}
		if len(c.Revision) != 12 {
			t.Fatalf("revision %q", c.Revision)
		}
		return c.Revision
	}
	if a, b := rev(one), rev(split); a != b {
		t.Errorf("one file %s, split %s: the same settings", a, b)
	}
	if a, b := rev(one), rev(changed); a == b {
		t.Errorf("a changed will message kept revision %s", a)
	}
	pw1 := dropInTree(t, fleetBase, map[string]string{"50-pw.toml": "[mqtt]\nusername = \"u\"\npassword = \"one\"\n"})
	pw2 := dropInTree(t, fleetBase, map[string]string{"50-pw.toml": "[mqtt]\nusername = \"u\"\npassword = \"two\"\n"})
	if a, b := rev(pw1), rev(pw2); a != b {
		t.Errorf("the password reached the revision: %s, %s", a, b)
	}
}
