package e2e

// End-to-end tests of the platform presets: the real gatewayd, configured with the few values a
// platform's console shows, against the emulator and a broker that checks the credentials the
// way that platform does (sim.WithPlatform, written from clouds.md independently of
// internal/cloud). A wrong secret must be refused with the platform's CONNACK code, and the
// daemon must say so and back off.

import (
	"context"
	"encoding/base64"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/gatewayd/gatewayd/internal/daemon"
	"github.com/gatewayd/gatewayd/sim"
	"github.com/gatewayd/gatewayd/test/logwatch"
	"github.com/gatewayd/gatewayd/test/testutil"
)

// Broker host names the presets derive from the console values below (reference section 2);
// the test CA's server certificate names them, so the emulator's TLS check of the host passes.
const (
	aliyunHost = "a1B2c3D4e5F.iot-as-mqtt.cn-shanghai.aliyuncs.com"
	azureHost  = "gw-hub.azure-devices.net"
	awsHost    = "a3example-ats.iot.eu-west-1.amazonaws.com"
)

// cloudCase is one platform: the broker's device registry, the preset as a user writes it (the
// secret in a file next to the configuration), and a downlink topic its {property_set} covers.
type cloudCase struct {
	platform string
	tls      bool // a TLS listener (the preset needs or chooses TLS)
	clientCA bool // the broker asks for client certificates (AWS)
	devices  []sim.Device
	section  string // the [mqtt.<platform>] section; {secret} is the path of the secret file
	secret   string // the secret as the console shows it
	wrong    string // another secret, well formed (same encoding); "" for no negative case
	wantCode int    // the CONNACK code a wrong secret gets
	tlsKeys  string // [mqtt.tls] lines
	down     string // a concrete topic the platform sends a set request on
}

var cloudCases = []cloudCase{
	{
		platform: sim.PlatformAliyun, devices: []sim.Device{{ID: "a1B2c3D4e5F/pi-led-01", Secret: "Ali-s3cret-0123456789abcdef"}},
		section: `[mqtt.aliyun]
product_key = "a1B2c3D4e5F"
device_name = "pi-led-01"
device_secret_file = "{secret}"
region = "cn-shanghai"`,
		secret: "Ali-s3cret-0123456789abcdef", wrong: "Ali-s3cret-0123456789abcdeF", wantCode: 4,
		down: "/sys/a1B2c3D4e5F/pi-led-01/thing/service/property/set",
	},
	{
		platform: sim.PlatformAliyun + "-tls", tls: true, devices: []sim.Device{{ID: "a1B2c3D4e5F/pi-led-01", Secret: "Ali-s3cret-0123456789abcdef"}},
		section: `[mqtt.aliyun]
product_key = "a1B2c3D4e5F"
device_name = "pi-led-01"
device_secret_file = "{secret}"
region = "cn-shanghai"
secure_mode = 2`,
		secret: "Ali-s3cret-0123456789abcdef", tlsKeys: `ca_file = "ca.pem"`,
		down: "/sys/a1B2c3D4e5F/pi-led-01/thing/service/property/set",
	},
	{
		platform: sim.PlatformTencent, devices: []sim.Device{{ID: "1A17RZR3XX/gate_dev01", Secret: "MTIzNDU2Nzg5MGFiY2RlZg=="}},
		section: `[mqtt.tencent]
product_id = "1A17RZR3XX"
device_name = "gate_dev01"
device_secret_file = "{secret}"`,
		secret: "MTIzNDU2Nzg5MGFiY2RlZg==", wrong: base64.StdEncoding.EncodeToString([]byte("1234567890abcdeF")), wantCode: 4,
		down: "$thing/down/property/1A17RZR3XX/gate_dev01",
	},
	{
		platform: sim.PlatformHuawei, devices: []sim.Device{{ID: "5f052ac562369102d42b0fb6_pi01", Secret: "12345678"}},
		section: `[mqtt.huawei]
device_id = "5f052ac562369102d42b0fb6_pi01"
device_secret_file = "{secret}"
endpoint = "a1b2c3d4e5.st1.iotda-device.cn-north-4.myhuaweicloud.com"`,
		secret: "12345678", wrong: "12345679", wantCode: 4,
		down: "$oc/devices/5f052ac562369102d42b0fb6_pi01/sys/properties/set/request_id=42",
	},
	{
		platform: sim.PlatformOneNET, devices: []sim.Device{{ID: "123123/mydev", Secret: "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="}},
		section: `[mqtt.onenet]
product_id = "123123"
device_name = "mydev"
device_key_file = "{secret}"`,
		secret: "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=", wrong: "AQECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=", wantCode: 4,
		down: "$sys/123123/mydev/thing/property/set",
	},
	{
		platform: sim.PlatformAzure, tls: true, devices: []sim.Device{{ID: azureHost + "/pi-led-01", Secret: "cGFzc3dvcmQ="}},
		section: `[mqtt.azure]
hub = "gw-hub"
device_id = "pi-led-01"
device_key_file = "{secret}"`,
		secret: "cGFzc3dvcmQ=", wrong: "cGFzc3dvcmU=", wantCode: 5, tlsKeys: `ca_file = "ca.pem"`,
		down: "$iothub/twin/PATCH/properties/desired/?$version=2",
	},
	{
		platform: sim.PlatformAWS, tls: true, clientCA: true, devices: []sim.Device{{ID: "pi-led-01", Secret: "pi-led-01"}},
		section: `[mqtt.aws]
endpoint = "` + awsHost + `"
thing_name = "pi-led-01"`,
		tlsKeys: "ca_file = \"ca.pem\"\ncert_file = \"client.pem\"\nkey_file = \"client.key\"",
		down:    "$aws/things/pi-led-01/shadow/update/delta",
	},
	{
		platform: sim.PlatformThingsBoard, devices: []sim.Device{{ID: "A1_TEST_TOKEN_pi01"}},
		section: `[mqtt.thingsboard]
access_token_file = "{secret}"`,
		secret: "A1_TEST_TOKEN_pi01", wrong: "A1_TEST_TOKEN_pi02", wantCode: 5,
		down: "v1/devices/me/attributes",
	},
}

// cloudBench is a bench whose broker checks CONNECTs as one platform does.
type cloudBench struct {
	*bench
	b      *sim.Broker
	mu     sync.Mutex
	events []sim.BrokerEvent
}

func newCloudBench(t *testing.T, c cloudCase, pki *testutil.PKI) *cloudBench {
	t.Helper()
	cb := &cloudBench{}
	platform, _, _ := strings.Cut(c.platform, "-")
	opts := []sim.BrokerOption{sim.WithPlatform(platform, c.devices...), sim.WithEvents(cb.record)}
	if c.tls {
		opts = append(opts, sim.WithTLS(pki.ServerTLS(t, c.clientCA)))
	}
	b, err := sim.NewBroker("127.0.0.1:0", opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	cb.b = b
	cb.bench = newBenchOn(t, b.Addr(), func(cfg *sim.Config) {
		if c.tls {
			cfg.TLSBroker = b.Addr()
		}
	})
	for name, data := range map[string][]byte{"ca.pem": pki.CA, "client.pem": pki.ClientCert, "client.key": pki.ClientKey} {
		if err := os.WriteFile(filepath.Join(cb.dir, name), data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return cb
}

func (cb *cloudBench) record(e sim.BrokerEvent) {
	cb.mu.Lock()
	cb.events = append(cb.events, e)
	cb.mu.Unlock()
}

func (cb *cloudBench) seen() []sim.BrokerEvent {
	cb.mu.Lock()
	defer cb.mu.Unlock()
	return slices.Clone(cb.events)
}

// config is the preset with secret as the secret file's content, a subscription to the
// platform's {property_set}, and the daemon's defaults otherwise. extra goes before [log].
func (cb *cloudBench) config(c cloudCase, secret, extra string) string {
	path := filepath.Join(cb.dir, "device.secret")
	if err := os.WriteFile(path, []byte(secret+"\n"), 0o600); err != nil {
		cb.t.Fatal(err)
	}
	tls := ""
	if c.tlsKeys != "" {
		tls = "\n[mqtt.tls]\n" + c.tlsKeys + "\n"
	}
	return fmt.Sprintf(`
[serial]
port = %q

[mqtt]
keepalive = "60s"

%s
%s
[[mqtt.subscribe]]
topic = "{property_set}"
qos = 1

[control]
socket = %q
%s
[log]
level = "debug"
`, cb.mod.Path(), strings.ReplaceAll(c.section, "{secret}", path), tls, controlSocket(cb.mod.Path()), extra)
}

// TestCloudPresets: for each platform, the console's values in the preset connect to a broker
// that checks the credentials as the platform does; a downlink on the platform's set topic
// reaches the daemon through the {property_set} subscription. With a wrong secret the broker
// refuses with the platform's code, and the daemon logs the refusal in words with retry_in, and
// tries again after the back-off.
func TestCloudPresets(t *testing.T) {
	t.Parallel()
	pki := testutil.NewPKI(t, "pi-led-01", aliyunHost, azureHost, awsHost)
	for _, c := range cloudCases {
		t.Run(c.platform, func(t *testing.T) {
			cb := newCloudBench(t, c, pki)
			d := cb.start(cb.config(c, c.secret, ""))
			_, i := d.wait(t, 0, "mqtt_connected")
			_, i = d.wait(t, i, "session_up")
			ev := cb.seen()
			if len(ev) != 1 || ev[0].Kind != "connect" {
				t.Fatalf("broker saw %+v, want one accepted CONNECT", ev)
			}
			if err := cb.b.Publish(c.down, []byte(`{"LED":1}`), false, 1); err != nil {
				t.Fatal(err)
			}
			dl, _ := d.wait(t, i, "downlink")
			if dl.Str("topic") != c.down || dl.Str("payload") != `{"LED":1}` {
				t.Errorf("downlink %v, want %s", dl, c.down)
			}
			if n := d.log.Count("mqtt_connect_failed"); n != 0 {
				t.Errorf("%d connect failures with the console's values", n)
			}
			if _, err := d.stop(t); err != nil {
				t.Errorf("exit after SIGTERM: %v", err)
			}
			if c.wrong == "" {
				return
			}

			// The same preset with a wrong secret.
			d = cb.start(cb.config(c, c.wrong, ""))
			f1, i := d.wait(t, 0, "mqtt_connect_failed")
			f2, _ := d.wait(t, i+1, "mqtt_connect_failed")
			for _, f := range []logwatch.Entry{f1, f2} {
				if f.Int("code") != c.wantCode || f.Str("retry_in") == "" {
					t.Errorf("connect failure %v, want code %d and retry_in", f, c.wantCode)
				}
				words := strings.ToLower(f.Str("error") + " " + f.Str("hint"))
				if !strings.Contains(words, "refused") && !strings.Contains(words, "not authorized") && !strings.Contains(words, "bad user name or password") {
					t.Errorf("the failure does not say in words that the broker refused: %v", f)
				}
			}
			if f2.Int("attempt") != f1.Int("attempt")+1 {
				t.Errorf("attempts %d then %d: the second refusal is not counted on the back-off", f1.Int("attempt"), f2.Int("attempt"))
			}
			refused := 0
			for _, e := range cb.seen() {
				if e.Kind == "refused" {
					refused++
					if e.Code != byte(c.wantCode) {
						t.Errorf("broker refused with %d (%s), want %d", e.Code, e.Why, c.wantCode)
					}
				}
			}
			if refused < 2 {
				t.Errorf("broker refused %d CONNECTs, want at least 2", refused)
			}
		})
	}
}

// TestTokenRenewalEndToEnd: a Tencent session (plain TCP) and an Azure one (TLS: the renewal
// sets the TLS context up again) with a 12 s token lifetime renew themselves at 90 %: the broker
// sees a clean DISCONNECT and then a CONNECT with a later expiry; the daemon logs token_renewed
// and no failure or lost session; and QoS 1 messages a program on the Pi publishes through the
// local endpoint while the session is renewed all reach the cloud.
func TestTokenRenewalEndToEnd(t *testing.T) {
	t.Parallel()
	pki := testutil.NewPKI(t, "pi-led-01", azureHost)
	for _, name := range []string{sim.PlatformTencent, sim.PlatformAzure} {
		t.Run(name, func(t *testing.T) {
			c := cloudCases[slices.IndexFunc(cloudCases, func(c cloudCase) bool { return c.platform == name })]
			c.section += "\nlifetime = \"12s\""
			renewal(t, newCloudBench(t, c, pki), c, 12*time.Second)
		})
	}
}

// renewal runs the renewal test on cb, whose preset c has a token lifetime of life.
func renewal(t *testing.T, cb *cloudBench, c cloudCase, life time.Duration) {
	var mu sync.Mutex
	var got []string
	const topic = "devices/pi-led-01/telemetry/temp"
	if err := cb.b.Subscribe("devices/pi-led-01/telemetry/#", func(_ string, p []byte) {
		mu.Lock()
		got = append(got, string(p))
		mu.Unlock()
	}); err != nil {
		t.Fatal(err)
	}
	listen := testutil.FreeAddr(t)
	extra := fmt.Sprintf(`
[local]
listen = %q
[[local.forward]]
topic = "devices/pi-led-01/telemetry/#"
qos = 1

[outbox]
dir = %q
`, listen, filepath.Join(cb.dir, "outbox"))
	d := cb.start(cb.config(c, c.secret, extra))
	up, _ := d.wait(t, 0, "session_up")
	local := localClient(t, d, listen, "sensor")

	// Publish one QoS 1 message every 250 ms from 4 s before the renewal is due (90 % of the
	// lifetime after the session came up) until the renewed session is up, plus 2 s.
	upAt := time.Now()
	if ts, err := time.Parse(time.RFC3339Nano, up.Str("time")); err == nil {
		upAt = ts
	}
	time.Sleep(time.Until(upAt.Add(life*9/10 - 4*time.Second)))
	sent := 0
	var renewed logwatch.Entry
	var stopAt time.Time
	for deadline := time.Now().Add(30 * time.Second); ; {
		if time.Now().After(deadline) {
			t.Fatalf("no token_renewed within 30 s; %d messages sent", sent)
		}
		publishAsync(t, local, topic, fmt.Sprintf("r%03d", sent))
		sent++
		if stopAt.IsZero() && d.log.Count("token_renewed") > 0 {
			stopAt = time.Now().Add(2 * time.Second)
			renewed, _ = d.wait(t, 0, "token_renewed")
		}
		if !stopAt.IsZero() && time.Now().After(stopAt) {
			break
		}
		time.Sleep(250 * time.Millisecond)
	}
	if sent < 12 {
		t.Errorf("only %d messages published in the 6 s around the renewal", sent)
	}
	// Everything published arrives, exactly as sent. QoS 1 is at least once: a message in flight
	// when the old session closed is sent again on the new one, so the broker may count one twice;
	// what is waited for is every payload, not a number of messages (a duplicate must not hide
	// the last message still on its way).
	missing := func() (n, dup int) {
		mu.Lock()
		defer mu.Unlock()
		seen := make(map[string]int, len(got))
		for _, p := range got {
			seen[p]++
		}
		for i := 0; i < sent; i++ {
			switch c := seen[fmt.Sprintf("r%03d", i)]; {
			case c == 0:
				n++
			case c > 1:
				dup += c - 1
			}
		}
		return n, dup
	}
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		n, dup := missing()
		if n == 0 {
			if dup > 0 {
				t.Logf("%d of %d messages arrived twice (QoS 1 resent after the renewal)", dup, sent)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d messages published around the renewal never reached the cloud (%d duplicates)", n, sent, dup)
		}
	}

	// The broker's view: connect, a clean disconnect before the first token expired, connect
	// with a later expiry.
	var kinds []string
	var conns []sim.BrokerEvent
	var disc sim.BrokerEvent
	for _, e := range cb.seen() {
		kinds = append(kinds, e.Kind)
		switch e.Kind {
		case "connect":
			conns = append(conns, e)
		case "disconnect":
			disc = e
		}
	}
	if len(kinds) < 3 || kinds[0] != "connect" || kinds[1] != "disconnect" || kinds[2] != "connect" {
		t.Fatalf("broker saw %q, want connect, disconnect (clean), connect", kinds)
	}
	if !conns[1].Expires.After(conns[0].Expires) {
		t.Errorf("the renewed CONNECT expires %s, not after the first's %s", conns[1].Expires, conns[0].Expires)
	}
	if !disc.At.Before(conns[0].Expires) {
		t.Errorf("disconnected at %s, not before the first token expired at %s", disc.At, conns[0].Expires)
	}
	if renewed.Str("took") == "" || renewed.Str("expires") == "" {
		t.Errorf("token_renewed %v, want took and expires", renewed)
	}
	st, _ := statusJSON(t, controlSocket(cb.mod.Path()))
	if q := st.MQTT; q.Renewals < 1 || q.PasswordExpires == nil || !q.PasswordExpires.After(conns[0].Expires) || q.Attempt != 0 {
		t.Errorf("gatewayd status after the renewal: renewals %d, password expires %v, attempt %d", q.Renewals, q.PasswordExpires, q.Attempt)
	}
	if q := st.MQTT; q.ConnectedAt == nil || !q.ConnectedAt.Before(disc.At) {
		t.Errorf("gatewayd status after the renewal: connected since %v, want since before the renewal (%s): the session went on", q.ConnectedAt, disc.At)
	}
	if out, _, _ := cli(t, "status", "-socket", controlSocket(cb.mod.Path())); !strings.Contains(out, "renewed before then") {
		t.Errorf("gatewayd status does not show the password's expiry:\n%s", out)
	}
	for _, e := range d.log.Entries() {
		switch {
		case e.Event() == "mqtt_connect_failed", e.Event() == "bringup_failed":
			t.Errorf("a failure was logged: %v", e)
		case e.Event() == "mqtt_disconnected" && e.Str("reason") != "renewing the password":
			t.Errorf("an unplanned disconnect: %v", e)
		case e.Str("retry_in") != "":
			t.Errorf("a back-off was logged: %v", e)
		}
	}
}

// publishAsync publishes one QoS 1 message through the local endpoint and fails the test if
// its PUBACK does not come (the outbox stores it before acknowledging).
func publishAsync(t *testing.T, c paho.Client, topic, payload string) {
	t.Helper()
	if tok := c.Publish(topic, 1, false, payload); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("local publish %s: %v", payload, tok.Error())
	}
}

// TestUnsyncedClockSignsWithNetworkTime: the host's clock is three hours behind the world (the
// broker's clock and the network's, both host + 3h) and not synchronised: gatewayd signs the
// Huawei client id's hour (sign type 1, checked against the broker's clock) with the module's
// network clock, reports it as clock_network, and gets in. It needs a host whose kernel says its
// clock is not synchronised (containers and CI machines without NTP); it skips elsewhere.
func TestUnsyncedClockSignsWithNetworkTime(t *testing.T) {
	t.Parallel()
	if synced, err := daemon.ClockSynced(); err != nil || synced {
		t.Skipf("the host's clock is synchronised (adjtimex), so gatewayd signs with it: nothing to test here (err %v)", err)
	}
	c := cloudCases[slices.IndexFunc(cloudCases, func(c cloudCase) bool { return c.platform == sim.PlatformHuawei })]
	c.section += "\ncheck_timestamp = true"
	const ahead = 3 * time.Hour
	cb := &cloudBench{}
	b, err := sim.NewBroker("127.0.0.1:0", sim.WithPlatform(sim.PlatformHuawei, c.devices...), sim.WithEvents(cb.record),
		sim.WithBrokerClock(func() time.Time { return time.Now().Add(ahead) }))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	cb.b, cb.bench = b, newBenchOn(t, b.Addr())
	if err := cb.mod.SetNetworkClock(ahead, 32, true); err != nil {
		t.Fatal(err)
	}
	d := cb.start(cb.config(c, c.secret, ""))
	e, i := d.wait(t, 0, "clock_network")
	if off := e.Str("system_clock_off_by"); off != "3h0m0s" && off != "3h0m1s" && off != "2h59m59s" {
		t.Errorf("clock_network %v, want the system clock 3h off", e)
	}
	d.wait(t, i, "mqtt_connected")
	if ev := cb.seen(); len(ev) != 1 || ev[0].Kind != "connect" {
		t.Fatalf("broker saw %+v, want the CONNECT signed with the network's hour accepted", ev)
	}
}

// TestAliyunKickOut: two gateways configured with the same Alibaba Cloud device (different
// client ids) evict each other, as the platform forces the older connection of a device triple
// offline; the evicted daemon says why in words — the kick-out rule — in its lost-session entry.
func TestAliyunKickOut(t *testing.T) {
	t.Parallel()
	c := cloudCases[slices.IndexFunc(cloudCases, func(c cloudCase) bool { return c.platform == sim.PlatformAliyun })]
	cb := &cloudBench{}
	b, err := sim.NewBroker("127.0.0.1:0", sim.WithPlatform(sim.PlatformAliyun, c.devices...), sim.WithEvents(cb.record))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	var twins [2]*proc
	for i, id := range []string{"box-a", "box-b"} {
		tb := &cloudBench{b: b, bench: newBenchOn(t, b.Addr())}
		cc := c
		cc.section += fmt.Sprintf("\nclient_id = %q", id)
		twins[i] = tb.start(tb.config(cc, c.secret, ""))
		twins[i].wait(t, 0, "mqtt_connected")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	lost, _, err := twins[0].log.Wait(ctx, 0, func(e logwatch.Entry) bool {
		return e.Event() == "mqtt_disconnected" && e.Str("reason") != "shutting down"
	})
	if err != nil {
		t.Fatalf("the first gateway was not evicted by the second: %v", err)
	}
	if r := lost.Str("reason"); !strings.Contains(r, "forces the older connection offline") {
		t.Errorf("the evicted gateway does not say why in words: %v", lost)
	}
	kicked := 0
	for _, e := range cb.seen() {
		if e.Kind == "kicked" {
			kicked++
		}
	}
	if kicked == 0 {
		t.Errorf("the broker forced no one offline: %+v", cb.seen())
	}
}
