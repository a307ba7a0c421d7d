package e2e

import (
	"context"
	"crypto/tls"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/gatewayd/gatewayd/sim"
	"github.com/gatewayd/gatewayd/test/logwatch"
	"github.com/gatewayd/gatewayd/test/testutil"
)

// tlsBench is a bench whose broker speaks only TLS and requires a client certificate signed by
// the test CA: the emulated module must do real TLS with what gatewayd uploaded to it.
type tlsBench struct {
	*bench
	pki      *testutil.PKI
	tlsAddr  string
	mu       sync.Mutex
	accepted []string // "cn=<client certificate CN> sni=<server name>", per handshake
}

const tlsHost = "broker.test" // the name in the broker's certificate; the emulator routes it

// newTLSBench starts a mochi broker with a TLS listener and a module routed to it.
func newTLSBench(t *testing.T) *tlsBench {
	t.Helper()
	tb := &tlsBench{pki: testutil.NewPKI(t, "pi-led-01", tlsHost)}
	srv := tb.pki.ServerTLS(t, true)
	srv.VerifyConnection = func(cs tls.ConnectionState) error {
		tb.record(cs)
		return nil
	}
	b, err := sim.NewBroker("127.0.0.1:0", sim.WithTLS(srv))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	tb.start(t, b.Addr())
	return tb
}

func (tb *tlsBench) record(cs tls.ConnectionState) {
	cn := ""
	if len(cs.PeerCertificates) > 0 {
		cn = cs.PeerCertificates[0].Subject.CommonName
	}
	tb.mu.Lock()
	tb.accepted = append(tb.accepted, "cn="+cn+" sni="+cs.ServerName)
	tb.mu.Unlock()
}

// start starts the module, routed to the TLS listener at addr, and writes the certificates.
func (tb *tlsBench) start(t *testing.T, addr string) {
	dir := t.TempDir()
	mod, err := sim.New(sim.Config{Link: filepath.Join(dir, "ec600-at"), Broker: addr, TLSBroker: addr})
	if err != nil {
		t.Fatal(err)
	}
	if err := mod.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { mod.Close() })
	tb.bench = &bench{t: t, dir: dir, broker: addr, mod: mod}
	tb.tlsAddr = addr
	for name, data := range map[string][]byte{"ca.pem": tb.pki.CA, "client.pem": tb.pki.ClientCert, "client.key": tb.pki.ClientKey} {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	// The cloud side connects over TLS too, with the same CA.
	o := paho.NewClientOptions().AddBroker("ssl://" + addr).SetClientID("cloud-" + t.Name()).
		SetTLSConfig(tb.pki.ClientTLS(t, tlsHost)).SetAutoReconnect(false)
	tb.cloud = paho.NewClient(o)
	if tok := tb.cloud.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("cloud client over TLS: %v", tok.Error())
	}
	t.Cleanup(func() { tb.cloud.Disconnect(100) })
}

// config is the seed configuration over mutual TLS, with the AT trace on: the key must not
// show even there.
func (tb *tlsBench) config(caFile string) string {
	return fmt.Sprintf(`
[serial]
port = %q

[mqtt]
host = %q
client_id = "pi-led-01"

[mqtt.tls]
ca_file = %q
cert_file = "client.pem"
key_file = "client.key"

[[mqtt.subscribe]]
topic = %q
qos = 1

[control]
socket = %q

[log]
level = "trace"
at_trace = true
`, tb.mod.Path(), tlsHost, caFile, setTopic, controlSocket(tb.mod.Path()))
}

func (tb *tlsBench) handshakes() []string {
	tb.mu.Lock()
	defer tb.mu.Unlock()
	return slices.Clone(tb.accepted)
}

// uploaded gives the uploaded files and the kept count of a tls_ready entry.
func uploaded(e logwatch.Entry) (files []string, kept int) {
	list, _ := e["uploaded"].([]any)
	for _, f := range list {
		s, _ := f.(string)
		files = append(files, s)
	}
	return files, e.Int("kept")
}

// TestMutualTLS: gatewayd uploads the CA, client certificate and key to the module, configures
// a TLS context, and its MQTT session runs over mutual TLS with a broker that accepts nothing
// else: downlinks toggle the LED. A restart finds the files in place and uploads nothing; a
// swapped module (empty file system) gets them again at once. The private key never appears in
// the log, not even in the AT trace.
func TestMutualTLS(t *testing.T) {
	tb := newTLSBench(t)
	d := tb.start2(t)

	e, i := d.wait(t, 0, "tls_ready")
	if files, kept := uploaded(e); len(files) != 3 || kept != 0 || e.Int("seclevel") != 2 {
		t.Errorf("first tls_ready: uploaded %q kept %d seclevel %d; want 3 files uploaded, seclevel 2", files, kept, e.Int("seclevel"))
	}
	_, i = d.wait(t, i, "mqtt_connected")
	d.wait(t, i, "subscribed")
	if got := tb.handshakes(); len(got) != 2 || got[1] != "cn=pi-led-01 sni="+tlsHost {
		t.Errorf("broker handshakes %q, want the cloud client's then pi-led-01's with SNI %s", got, tlsHost)
	}
	from := d.log.Len()
	tb.publish(setTopic, []byte(`{"LED":1}`))
	dl, j := d.wait(t, from, "downlink")
	if dl.Str("payload") != `{"LED":1}` {
		t.Errorf("downlink %v", dl)
	}
	d.wait(t, j, "led")
	if _, err := d.stop(t); err != nil {
		t.Fatalf("exit after SIGTERM: %v", err)
	}
	checkNoKey(t, tb, d)

	// A restart: the module keeps its files.
	d = tb.start2(t)
	e, i = d.wait(t, 0, "tls_ready")
	if files, kept := uploaded(e); len(files) != 0 || kept != 3 {
		t.Errorf("tls_ready after a restart: uploaded %q kept %d; want nothing uploaded, 3 kept", files, kept)
	}
	d.wait(t, i, "mqtt_connected")

	// Another module on the bench: its file system is empty; gatewayd carries on.
	if err := tb.mod.Swap(sim.Identity{IMEI: "869999999999998"}); err != nil {
		t.Fatal(err)
	}
	_, i = d.wait(t, i, "module_replaced")
	e, i = d.wait(t, i, "tls_ready")
	if files, _ := uploaded(e); len(files) != 3 {
		t.Errorf("tls_ready on the new module: uploaded %q, want 3", files)
	}
	d.wait(t, i, "mqtt_connected")
	if _, err := d.stop(t); err != nil {
		t.Fatalf("exit after SIGTERM: %v", err)
	}
	checkNoKey(t, tb, d)
}

// start2 runs gatewayd on the bench's TLS configuration with the right CA.
func (tb *tlsBench) start2(t *testing.T) *proc {
	t.Helper()
	return tb.bench.start(tb.config("ca.pem"))
}

// checkNoKey fails if any line of the private key's body is in the log.
func checkNoKey(t *testing.T, tb *tlsBench, d *proc) {
	t.Helper()
	raw := strings.Join(d.log.Raw(), "\n")
	if !strings.Contains(raw, `"withheld_bytes"`) {
		t.Errorf("the AT trace shows no withheld upload: was the trace on?")
	}
	for _, l := range strings.Split(string(tb.pki.ClientKey), "\n") {
		if len(l) > 16 && !strings.HasPrefix(l, "-----") && strings.Contains(raw, l) {
			t.Fatalf("the private key reached the log: %q", l)
		}
	}
}

// TestTLSWrongCA: a CA that did not sign the broker makes every open fail; gatewayd says what
// to check and retries with back-off instead of giving up or spinning.
func TestTLSWrongCA(t *testing.T) {
	tb := newTLSBench(t)
	other := testutil.NewPKI(t, "x", tlsHost)
	if err := os.WriteFile(filepath.Join(tb.dir, "other-ca.pem"), other.CA, 0o600); err != nil {
		t.Fatal(err)
	}
	d := tb.bench.start(tb.config("other-ca.pem"))
	e, i := d.wait(t, 0, "mqtt_connect_failed")
	if e.Str("step") != "open" || !strings.Contains(e.Str("hint"), "ca_file") {
		t.Errorf("mqtt_connect_failed %v, want step open with a hint about ca_file", e)
	}
	e2, _ := d.wait(t, i+1, "mqtt_connect_failed")
	if e2.Int("attempt") != 2 {
		t.Errorf("second failure %v, want attempt 2", e2)
	}
	if n := d.log.Count("mqtt_connected"); n != 0 {
		t.Errorf("%d mqtt_connected with the wrong CA", n)
	}
}

// TestMutualTLSMosquitto runs the mutual-TLS session against Debian's mosquitto with
// require_certificate, when it is installed.
func TestMutualTLSMosquitto(t *testing.T) {
	bin := mosquittoBin()
	if bin == "" {
		t.Skip("mosquitto is not installed (apt-get install mosquitto); skipping the TLS run against it")
	}
	tb := &tlsBench{pki: testutil.NewPKI(t, "pi-led-01", tlsHost)}
	certs := t.TempDir()
	for name, data := range map[string][]byte{"ca.pem": tb.pki.CA, "server.pem": tb.pki.ServerCert, "server.key": tb.pki.ServerKey} {
		if err := os.WriteFile(filepath.Join(certs, name), data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	addr := startMosquittoConf(t, bin, func(port int) string {
		// user root: when the tests run as root (CI), mosquitto would otherwise drop to the
		// mosquitto user, who cannot read the test's private directory.
		return fmt.Sprintf("user root\nlistener %d 127.0.0.1\nallow_anonymous true\npersistence false\n"+
			"cafile %s\ncertfile %s\nkeyfile %s\nrequire_certificate true\n",
			port, filepath.Join(certs, "ca.pem"), filepath.Join(certs, "server.pem"), filepath.Join(certs, "server.key"))
	}, func(addr string) paho.Client {
		o := paho.NewClientOptions().AddBroker("ssl://" + addr).SetClientID("probe").SetConnectTimeout(time.Second).
			SetTLSConfig(tb.pki.ClientTLS(t, tlsHost))
		return paho.NewClient(o)
	})
	tb.start(t, addr)
	d := tb.start2(t)
	_, i := d.wait(t, 0, "tls_ready")
	_, i = d.wait(t, i, "mqtt_connected")
	d.wait(t, i, "subscribed")
	from := d.log.Len()
	tb.publish(setTopic, []byte("over mosquitto tls"))
	dl, _ := d.wait(t, from, "downlink")
	if dl.Str("payload") != "over mosquitto tls" {
		t.Errorf("downlink %v", dl)
	}
	if _, err := d.stop(t); err != nil {
		t.Fatalf("exit after SIGTERM: %v", err)
	}
}

// mosquittoBin finds Debian's mosquitto, or "".
func mosquittoBin() string {
	if bin, err := exec.LookPath("mosquitto"); err == nil {
		return bin
	}
	for _, p := range []string{"/usr/sbin/mosquitto", "/usr/local/sbin/mosquitto"} {
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	return ""
}
