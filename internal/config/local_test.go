package config

import (
	"bytes"
	"strings"
	"testing"
	"time"
)

func TestLocalOffWithoutTable(t *testing.T) {
	c := mustParse(t, noEnv, minimal)
	if c.Local != nil {
		t.Fatalf("Local = %+v without a [local] table; want nil (off)", c.Local)
	}
	if len(c.Warnings) != 0 {
		t.Fatalf("warnings %q", c.Warnings)
	}
	c = mustParse(t, noEnv, minimal+"[outbox]\nwindow = 4\n")
	if c.Local != nil || len(c.Warnings) != 1 || !strings.Contains(c.Warnings[0], "gatewayd.toml:4: outbox: has no effect without [local]") {
		t.Fatalf("[outbox] without [local]: Local %+v, warnings %q", c.Local, c.Warnings)
	}
}

func TestLocalAndOutboxDefaults(t *testing.T) {
	c := mustParse(t, noEnv, minimal+"[local]\n[[local.forward]]\ntopic = \"up/#\"\n")
	l := c.Local
	if l == nil || l.Listen != "127.0.0.1:1883" || l.Socket != "" || l.Username != "" || !l.Password.IsZero() || l.AllowNonLoopback {
		t.Fatalf("Local = %+v", l)
	}
	if l.MaxClients != 32 || l.MaxTopic != 1024 || l.MaxRetained != 1000 || l.MaxRetainedBytes != 256<<10 {
		t.Fatalf("limits = %+v", l)
	}
	if len(l.Forward) != 1 || l.Forward[0] != (Forward{Topic: "up/#", QoS: 1}) {
		t.Fatalf("Forward = %+v; want up/# at QoS 1 (the default)", l.Forward)
	}
	want := Outbox{Dir: "", MaxBytes: 64 << 20, MaxAge: 7 * 24 * time.Hour, Overflow: "refuse", Window: 8, CommitWait: 10 * time.Millisecond}
	if c.Outbox != want {
		t.Fatalf("Outbox = %+v, want %+v", c.Outbox, want)
	}
}

func TestLocalAndOutboxLiteral(t *testing.T) {
	c := mustParse(t, noEnv, minimal+`[local]
listen = "[::1]:1884"
socket = "/run/gatewayd/mqtt.sock"
username = "sensors"
password = "s3cret"
max_clients = 4
max_topic = 100
max_retained = 10
max_retained_bytes = 4096
[[local.forward]]
topic = "a/+/b"
qos = 0
[[local.forward]]
topic = "c"
[outbox]
dir = "/data/outbox"
max_bytes = 1048576
max_age = "2s"
overflow = "drop_oldest"
window = 1
commit_wait = "0s"
`)
	l := c.Local
	if l.Listen != "[::1]:1884" || l.Socket != "/run/gatewayd/mqtt.sock" || l.Username != "sensors" || l.Password.Reveal() != "s3cret" {
		t.Fatalf("Local = %+v", l)
	}
	if l.MaxClients != 4 || l.MaxTopic != 100 || l.MaxRetained != 10 || l.MaxRetainedBytes != 4096 {
		t.Fatalf("limits = %+v", l)
	}
	if len(l.Forward) != 2 || l.Forward[0] != (Forward{"a/+/b", 0}) || l.Forward[1] != (Forward{"c", 1}) {
		t.Fatalf("Forward = %+v", l.Forward)
	}
	want := Outbox{Dir: "/data/outbox", MaxBytes: 1 << 20, MaxAge: 2 * time.Second, Overflow: "drop_oldest", Window: 1, CommitWait: 0}
	if c.Outbox != want {
		t.Fatalf("Outbox = %+v, want %+v", c.Outbox, want)
	}
	var b bytes.Buffer
	if err := c.Describe(&b, time.Now()); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	for _, w := range []string{
		`local.listen             "[::1]:1884"  socket "/run/gatewayd/mqtt.sock"  allow_non_loopback false`,
		"local.username           sensors  password ***",
		"local.limits             max_clients 4  max_topic 100  max_retained 10  max_retained_bytes 4096",
		"local.forward            qos 0  a/+/b",
		"local.forward            qos 1  c",
		"outbox                   dir /data/outbox  max_bytes 1048576  max_age 2s  overflow drop_oldest  window 1  commit_wait 0s",
	} {
		if !strings.Contains(out, w) {
			t.Errorf("Describe lacks %q:\n%s", w, out)
		}
	}
	if strings.Contains(out, "s3cret") {
		t.Error("Describe printed the local password")
	}
}

func TestLocalNonLoopbackNeedsConsent(t *testing.T) {
	src := minimal + "[local]\nlisten = \"0.0.0.0:1883\"\n"
	if _, err := noEnv.Parse([]byte(src), name); err == nil || !strings.Contains(err.Error(), "gatewayd.toml:5: local.listen: \"0.0.0.0:1883\" is not a loopback address; set local.allow_non_loopback = true") {
		t.Fatalf("err = %v", err)
	}
	c := mustParse(t, noEnv, src+"allow_non_loopback = true\n")
	if c.Local.Listen != "0.0.0.0:1883" || !c.Local.AllowNonLoopback {
		t.Fatalf("Local = %+v", c.Local)
	}
}

func TestLocalAndOutboxRejections(t *testing.T) {
	for _, tc := range []struct{ name, src, want string }{
		{"listen not host:port", "[local]\nlisten = \"localhost\"\n", `gatewayd.toml:5: local.listen: "localhost" is not host:port`},
		{"listen by name", "[local]\nlisten = \"example.com:1883\"\n", `gatewayd.toml:5: local.listen: "example.com:1883" is not a loopback address`},
		{"no listener", "[local]\nlisten = \"\"\n", "gatewayd.toml:5: local.listen: is empty and no local.socket is given"},
		{"password without user", "[local]\npassword = \"p\"\n", "gatewayd.toml:5: local.password: needs local.username"},
		{"forward without topic", "[local]\n[[local.forward]]\nqos = 1\n", "local.forward[0].topic: required"},
		{"forward bad filter", "[local]\n[[local.forward]]\ntopic = \"a/#/b\"\n", `gatewayd.toml:6: local.forward[0].topic: topic filter "a/#/b": '#' must be the last level`},
		{"forward qos 2", "[local]\n[[local.forward]]\ntopic = \"a\"\nqos = 2\n", "gatewayd.toml:7: local.forward[0].qos: 2 is out of range 0–1"},
		{"forward quote", "[local]\n[[local.forward]]\ntopic = 'a\"b'\n", `gatewayd.toml:6: local.forward[0].topic: byte '"' at offset 1 cannot be sent inside an AT command string`},
		{"max_clients 0", "[local]\nmax_clients = 0\n", "gatewayd.toml:5: local.max_clients: 0 is out of range 1–1024"},
		{"max_clients text", "[local]\nmax_clients = \"32\"\n", "gatewayd.toml:5: local.max_clients: want an integer"},
		{"max_topic 0", "[local]\nmax_topic = 0\n", "gatewayd.toml:5: local.max_topic: 0 is out of range 1–4000"},
		{"max_topic past the AT line", "[local]\nmax_topic = 5000\n", "gatewayd.toml:5: local.max_topic: 5000 is out of range 1–4000"},
		{"max_retained 0", "[local]\nmax_retained = 0\n", "gatewayd.toml:5: local.max_retained: 0 is out of range 1–100000"},
		{"max_retained_bytes small", "[local]\nmax_retained_bytes = 100\n", "gatewayd.toml:5: local.max_retained_bytes: 100 is out of range 1024–67108864"},
		{"forward longer than max_topic", "[local]\nmax_topic = 8\n[[local.forward]]\ntopic = \"abcd/+/efgh/#\"\n", "gatewayd.toml:7: local.forward[0].topic: matches only topics of 10 bytes or more, longer than local.max_topic (8)"},
		{"unknown local key", "[local]\nlisten_addr = \"127.0.0.1:1\"\n", "gatewayd.toml:5: unknown key local.listen_addr"},
		{"relative dir", "[local]\n[outbox]\ndir = \"outbox\"\n", `gatewayd.toml:6: outbox.dir: "outbox" is not an absolute path`},
		{"max_bytes too small", "[local]\n[outbox]\nmax_bytes = 1000\n", "gatewayd.toml:6: outbox.max_bytes: 1000 is out of range"},
		{"max_age unitless", "[local]\n[outbox]\nmax_age = 60\n", "gatewayd.toml:6: outbox.max_age: 60 has no unit"},
		{"max_age zero", "[local]\n[outbox]\nmax_age = \"0s\"\n", "gatewayd.toml:6: outbox.max_age: 0s is out of range 1s–"},
		{"overflow", "[local]\n[outbox]\noverflow = \"block\"\n", `gatewayd.toml:6: outbox.overflow: "block": want "refuse" or "drop_oldest"`},
		{"window 0", "[local]\n[outbox]\nwindow = 0\n", "gatewayd.toml:6: outbox.window: 0 is out of range 1–32"},
		{"window 33", "[local]\n[outbox]\nwindow = 33\n", "gatewayd.toml:6: outbox.window: 33 is out of range 1–32"},
		{"commit_wait unitless", "[local]\n[outbox]\ncommit_wait = 10\n", "gatewayd.toml:6: outbox.commit_wait: 10 has no unit"},
		{"commit_wait too long", "[local]\n[outbox]\ncommit_wait = \"2s\"\n", "gatewayd.toml:6: outbox.commit_wait: 2s is out of range 0s–1s"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := noEnv.Parse([]byte(minimal+tc.src), name)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v; want it to contain %q", err, tc.want)
			}
		})
	}
}
