package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gatewayd/gatewayd/sim"
	"github.com/gatewayd/gatewayd/test/testutil"
)

// The product of the reference's "one type, one secret" vector (clouds.md) and its broker.
const (
	regPK   = "a1X2bEnP82z"
	regPS   = "7jluWm1zql7bt8qK"
	regHost = regPK + ".iot-as-mqtt.cn-shanghai.aliyuncs.com"
	// regInst is an Enterprise instance (the reference's iot-06z00… form); its host is in the
	// bench's certificate too.
	regInst     = "iot-06z00ax1o4qyfb8"
	regInstHost = regInst + ".mqtt.iothub.aliyuncs.com"
	imei2       = "866123456789029" // a second module
)

// regBench is a bench whose TLS broker plays Alibaba Cloud with dynamic registration for the
// product regPK, whose pre-registered device names are the two modules' IMEIs.
type regBench struct {
	*cloudBench
	state string // the daemon's state directory
	mu    sync.Mutex
	regs  []sim.AliyunRegistration
}

func newRegBench(t *testing.T, delay time.Duration, productSecret string, tune ...func(*sim.RegistrationOptions)) *regBench {
	t.Helper()
	rb := &regBench{cloudBench: &cloudBench{}}
	pki := testutil.NewPKI(t, "gw", regHost, regInstHost)
	ro := sim.RegistrationOptions{Delay: delay, Report: func(r sim.AliyunRegistration) {
		rb.mu.Lock()
		rb.regs = append(rb.regs, r)
		rb.mu.Unlock()
	}}
	for _, f := range tune {
		f(&ro)
	}
	b, err := sim.NewBroker("127.0.0.1:0", sim.WithTLS(pki.ServerTLS(t, false)), sim.WithPlatform(sim.PlatformAliyun),
		sim.WithEvents(rb.record),
		sim.WithAliyunRegistration(ro, sim.AliyunProduct{Key: regPK, Secret: regPS, Devices: []string{sim.DefaultIdentity.IMEI, imei2}, RegNWL: true}))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	rb.b = b
	rb.bench = newBenchOn(t, b.Addr(), func(cfg *sim.Config) { cfg.TLSBroker = b.Addr() })
	if err := os.WriteFile(filepath.Join(rb.dir, "ca.pem"), pki.CA, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(rb.dir, "product.secret"), []byte(productSecret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	rb.state = filepath.Join(rb.dir, "state")
	return rb
}

func (rb *regBench) registrations() []sim.AliyunRegistration {
	rb.mu.Lock()
	defer rb.mu.Unlock()
	return append([]sim.AliyunRegistration(nil), rb.regs...)
}

// config: only the product key and product secret (a fleet image), TLS, the state directory.
func (rb *regBench) config(extra string) string {
	return fmt.Sprintf(`
[serial]
port = %q

[mqtt]
keepalive = "60s"

[mqtt.aliyun]
product_key = %q
product_secret_file = %q
region = "cn-shanghai"
state_dir = %q
%s

[mqtt.tls]
ca_file = "ca.pem"

[[mqtt.subscribe]]
topic = "{property_set}"
qos = 1

[control]
socket = %q

[log]
level = "debug"
`, rb.mod.Path(), regPK, filepath.Join(rb.dir, "product.secret"), rb.state, extra, controlSocket(rb.mod.Path()))
}

// stored reads the state file of device name dn with extension ext (.secret, .connwl) and checks
// its mode is 0600.
func (rb *regBench) stored(t *testing.T, dn, ext string) []byte {
	t.Helper()
	p := filepath.Join(rb.state, "aliyun-"+regPK+"-"+dn+ext)
	fi, err := os.Stat(p)
	if err != nil {
		t.Fatalf("no stored credential: %v", err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("%s has mode %04o, want 0600", p, fi.Mode().Perm())
	}
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// secretFile checks the stored secret of device name dn: mode 0600 and the content the broker
// handed out, and returns it.
func (rb *regBench) secretFile(t *testing.T, dn string) string {
	t.Helper()
	b := rb.stored(t, dn, ".secret")
	var issued string
	for _, r := range rb.registrations() {
		if r.DeviceName == dn {
			issued = r.DeviceSecret
		}
	}
	if issued == "" || string(b) != issued {
		t.Errorf("stored secret (%d bytes) is not the one the platform issued to %s", len(b), dn)
	}
	return string(b)
}

// noSecretsLogged fails when the log shows the product secret or a device secret.
func noSecretsLogged(t *testing.T, d *proc, secrets ...string) {
	t.Helper()
	all := strings.Join(d.log.Raw(), "\n")
	for _, s := range append(secrets, regPS) {
		if s != "" && strings.Contains(all, s) {
			t.Errorf("the log shows a secret")
		}
	}
}

// TestSelfRegistration: a fresh image with only the product key and product secret registers
// itself (TLS, authType=register), stores the secret it gets (0600, the issued content) and logs
// in with it; a restart reads the stored secret and does not register again; the platform's
// subscription template carries the registered device name.
func TestSelfRegistration(t *testing.T) {
	t.Parallel()
	rb := newRegBench(t, 0, regPS)
	d := rb.start(rb.config(""))
	_, i := d.wait(t, 0, "registering")
	_, i = d.wait(t, i, "registered")
	_, i = d.wait(t, i, "mqtt_connected")
	sub, _ := d.wait(t, i, "subscribed")
	dn := sim.DefaultIdentity.IMEI
	if want := "/sys/" + regPK + "/" + dn + "/thing/service/property/set"; sub.Str("topic") != want {
		t.Errorf("subscribed to %q, want %q", sub.Str("topic"), want)
	}
	d.wait(t, 0, "session_up")
	if st, _ := statusJSON(t, controlSocket(rb.mod.Path())); st.Device != dn {
		t.Errorf("status shows device %q, want the registered %q", st.Device, dn)
	}
	secret := rb.secretFile(t, dn)
	if n := d.log.Count("mqtt_connect_failed"); n != 0 {
		t.Errorf("%d MQTT failures on the way: registering and logging in must go through at the first attempt", n)
	}
	if n := len(rb.registrations()); n != 1 {
		t.Errorf("%d registrations, want 1", n)
	}
	ev := rb.seen()
	if len(ev) < 2 || !strings.Contains(ev[0].ClientID, "authType=register") || ev[len(ev)-1].Kind != "connect" ||
		strings.Contains(ev[len(ev)-1].ClientID, "authType") {
		t.Errorf("broker saw %+v, want the registration, then a login", ev)
	}
	if _, err := d.stop(t); err != nil {
		t.Errorf("exit: %v", err)
	}
	noSecretsLogged(t, d, secret)

	d = rb.start(rb.config(""))
	_, i = d.wait(t, 0, "device_secret")
	d.wait(t, i, "session_up")
	if n := len(rb.registrations()); n != 1 {
		t.Errorf("after a restart: %d registrations, want still 1", n)
	}
	if d.log.Count("registering") != 0 {
		t.Error("the restarted daemon registered again")
	}
	noSecretsLogged(t, d, secret)
}

// TestSelfRegistrationKilled: SIGKILL right after the registration CONNECT (the broker holds the
// answer back 2 s) leaves no secret file; the restarted daemon registers again, gets the same
// secret (not activated yet) and ends connected with a whole secret file. SIGKILL right after
// the secret was stored: the restart logs in with it.
func TestSelfRegistrationKilled(t *testing.T) {
	t.Parallel()
	rb := newRegBench(t, 2*time.Second, regPS)
	rb.killedAndRestarted(t, "", "secret", func() string { return rb.secretFile(t, sim.DefaultIdentity.IMEI) },
		func(r sim.AliyunRegistration) string { return r.DeviceSecret })
}

// killedAndRestarted runs the daemon with config extra and SIGKILLs it after its registration
// CONNECT went out (the answer is held back), then right after the answer was stored (what stored
// reads, a kind of credential), and restarts it: nothing is left by the first kill, the second
// leaves the credential, which the restart logs in with, registering no more; every answer
// carried the same credential (issued).
func (rb *regBench) killedAndRestarted(t *testing.T, extra, kind string, stored func() string, issued func(sim.AliyunRegistration) string) {
	t.Helper()
	d := rb.start(rb.config(extra))
	d.wait(t, 0, "registering")
	time.Sleep(500 * time.Millisecond) // the CONNECT goes out; the answer is 2 s away
	if err := d.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	<-d.done
	ents, _ := os.ReadDir(rb.state)
	for _, e := range ents {
		t.Errorf("after a kill before the answer the state directory holds %s", e.Name())
	}
	d = rb.start(rb.config(extra))
	d.wait(t, 0, "registered")
	if err := d.cmd.Process.Kill(); err != nil { // right after the credential was stored
		t.Fatal(err)
	}
	<-d.done
	if len(rb.registrations()) < 1 {
		t.Fatal("no registration answered")
	}
	cred := stored()
	d = rb.start(rb.config(extra))
	_, i := d.wait(t, 0, "device_secret")
	d.wait(t, i, "session_up")
	if n := d.log.Count("registering"); n != 0 {
		t.Errorf("registered again with a stored %s (%d)", kind, n)
	}
	for _, r := range rb.registrations() {
		if issued(r) != cred {
			t.Errorf("the platform issued different %ss: the repeat was not the same", kind)
		}
	}
	if ents, _ = os.ReadDir(rb.state); len(ents) != 1 {
		t.Errorf("state directory holds %d files, want the %s only", len(ents), kind)
	}
}

// TestSelfRegistrationModuleSwap: without pin_device_name a new module (another IMEI) is another
// device and registers; with it, the first device name and its secret are kept (logged as
// device_name_pinned) and nothing registers.
func TestSelfRegistrationModuleSwap(t *testing.T) {
	t.Parallel()
	for _, pin := range []bool{false, true} {
		t.Run(fmt.Sprintf("pin=%v", pin), func(t *testing.T) {
			rb := newRegBench(t, 0, regPS)
			extra := fmt.Sprintf("pin_device_name = %v", pin)
			d := rb.start(rb.config(extra))
			d.wait(t, 0, "session_up")
			if _, err := d.stop(t); err != nil {
				t.Fatal(err)
			}
			if err := rb.mod.Swap(sim.Identity{IMEI: imei2}); err != nil {
				t.Fatal(err)
			}
			d = rb.start(rb.config(extra))
			d.wait(t, 0, "session_up")
			regs := rb.registrations()
			if !pin {
				if len(regs) != 2 || regs[1].DeviceName != imei2 {
					t.Fatalf("registrations %d, want a second one for %s", len(regs), imei2)
				}
				rb.secretFile(t, imei2)
				return
			}
			if len(regs) != 1 {
				t.Errorf("%d registrations with the name pinned, want 1", len(regs))
			}
			e, _ := d.wait(t, 0, "device_name_pinned")
			if e.Str("device_name") != sim.DefaultIdentity.IMEI || e.Str("imei") != imei2 {
				t.Errorf("pinned %v", e)
			}
		})
	}
}

// TestSelfRegistrationBadProductSecret: the platform refuses the signature (CONNACK 4); the
// daemon says so in words (the product secret), retries on the back-off, stores nothing and
// never logs the secret.
func TestSelfRegistrationBadProductSecret(t *testing.T) {
	t.Parallel()
	rb := newRegBench(t, 0, regPS+"x")
	d := rb.start(rb.config(""))
	f1, i := d.wait(t, 0, "mqtt_connect_failed")
	f2, _ := d.wait(t, i+1, "mqtt_connect_failed")
	t.Logf("refusal as logged: %s", d.log.Raw()[i])
	for _, f := range []struct {
		code        int
		hint, retry string
	}{{f1.Int("code"), f1.Str("hint"), f1.Str("retry_in")}, {f2.Int("code"), f2.Str("hint"), f2.Str("retry_in")}} {
		if f.code != 4 || !strings.Contains(f.hint, "ProductSecret") || f.retry == "" {
			t.Errorf("failure code %d hint %q retry_in %q, want 4, the ProductSecret, a retry", f.code, f.hint, f.retry)
		}
	}
	if _, err := os.Stat(rb.state); err == nil {
		if ents, _ := os.ReadDir(rb.state); len(ents) != 0 {
			t.Errorf("stored %d files after a refused registration", len(ents))
		}
	}
	noSecretsLogged(t, d, regPS+"x")
}

// TestSelfRegistrationRefusedAtCheck: registration over TCP cannot work (the platform answers
// CONNACK 2), so a configuration without [mqtt.tls] is refused by gatewayd check, in words, and
// the daemon does not start with it.
func TestSelfRegistrationRefusedAtCheck(t *testing.T) {
	t.Parallel()
	rb := newRegBench(t, 0, regPS)
	cfg := strings.Replace(rb.config(""), "[mqtt.tls]\nca_file = \"ca.pem\"\n", "", 1)
	path := filepath.Join(rb.dir, "tcp.toml")
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	_, errs, code := cli(t, "check", "-config", path)
	if code == 0 || !strings.Contains(errs, "mqtt.aliyun.product_secret_file: dynamic registration runs over TLS only") {
		t.Errorf("check exit %d, stderr %q: want a refusal naming TLS", code, errs)
	}
	if strings.Contains(errs, regPS) {
		t.Error("check shows the product secret")
	}
}

// TestSelfRegistrationServerError: the platform answers the first two registrations with
// CONNACK 3 (server error); the daemon says so, retries on the back-off and registers.
func TestSelfRegistrationServerError(t *testing.T) {
	t.Parallel()
	rb := newRegBench(t, 0, regPS, func(o *sim.RegistrationOptions) { o.ServerErrors = 2 })
	d := rb.start(rb.config(""))
	f, i := d.wait(t, 0, "mqtt_connect_failed")
	if f.Int("code") != 3 || f.Str("step") != "register" || !strings.Contains(f.Str("hint"), "server error") || f.Str("retry_in") == "" {
		t.Errorf("failure %v: want code 3 at step register, a hint and retry_in", f)
	}
	_, i = d.wait(t, i, "registered")
	d.wait(t, i, "session_up")
	if n := d.log.Count("mqtt_connect_failed"); n != 2 {
		t.Errorf("%d failures, want the 2 server errors", n)
	}
	rb.secretFile(t, sim.DefaultIdentity.IMEI)
}

// TestSelfRegistrationNoAnswer: a platform that accepts the registration and never answers
// (it drops the link after 15 s): the daemon gives up within its bound, says so, stores nothing
// and retries on the back-off.
func TestSelfRegistrationNoAnswer(t *testing.T) {
	t.Parallel()
	rb := newRegBench(t, 0, regPS, func(o *sim.RegistrationOptions) { o.Silent = true })
	d := rb.start(rb.config(""))
	_, i := d.wait(t, 0, "registering")
	f, i := d.wait(t, i, "mqtt_connect_failed")
	t.Logf("failure as logged: %s", d.log.Raw()[i])
	if f.Str("retry_in") == "" || f.Str("step") != "register" || !strings.Contains(f.Str("hint"), "/ext/register") {
		t.Errorf("failure %v: want step register, a hint and retry_in", f)
	}
	d.wait(t, i+1, "registering")
	if ents, _ := os.ReadDir(rb.state); len(ents) != 0 {
		t.Errorf("stored %d files without an answer", len(ents))
	}
}

// TestSelfRegistrationHotSwap: a module swapped while the daemon runs (default, no pinning) is
// another device: the daemon registers its IMEI and logs in as it, without a restart.
func TestSelfRegistrationHotSwap(t *testing.T) {
	t.Parallel()
	rb := newRegBench(t, 0, regPS)
	d := rb.start(rb.config(""))
	_, i := d.wait(t, 0, "session_up")
	if err := rb.mod.Swap(sim.Identity{IMEI: imei2}); err != nil {
		t.Fatal(err)
	}
	_, i = d.wait(t, i, "module_replaced")
	e, i := d.wait(t, i, "registered")
	if e.Str("device_name") != imei2 {
		t.Errorf("registered %q after the swap, want %s", e.Str("device_name"), imei2)
	}
	sub, _ := d.wait(t, i, "subscribed")
	if want := "/sys/" + regPK + "/" + imei2 + "/thing/service/property/set"; sub.Str("topic") != want {
		t.Errorf("subscribed to %q after the swap, want %q", sub.Str("topic"), want)
	}
	rb.secretFile(t, imei2)
}

// nwl is the [mqtt.aliyun] addition for registration without pre-registration.
const nwl = `registration = "regnwl"`

// tokenFile checks the stored regnwl credential of device name dn: mode 0600 and exactly
// <clientId>|<deviceToken> as the platform issued them; it returns the issued client id and token.
func (rb *regBench) tokenFile(t *testing.T, dn string) (clientID, token string) {
	t.Helper()
	b := rb.stored(t, dn, ".connwl")
	for _, r := range rb.registrations() {
		if r.DeviceName == dn && r.AuthType == "regnwl" {
			clientID, token = r.IssuedClientID, r.DeviceToken
		}
	}
	if token == "" || string(b) != clientID+"|"+token {
		t.Errorf("stored credential (%d bytes) is not the client id and token the platform issued to %s", len(b), dn)
	}
	return clientID, token
}

// TestSelfRegistrationRegNWL: without pre-registration (authType=regnwl, securemode=-2) a fresh
// image registers, stores the client id and device token it is answered with (one file, 0600)
// and logs in with them (authType=connwl, the token as the password); a restart logs in with
// the stored ones and does not register again.
func TestSelfRegistrationRegNWL(t *testing.T) {
	t.Parallel()
	rb := newRegBench(t, 0, regPS)
	d := rb.start(rb.config(nwl))
	reg, i := d.wait(t, 0, "registering")
	if !strings.Contains(reg.Str("client_id"), "|securemode=-2,authType=regnwl,random=") {
		t.Errorf("registration client id %q", reg.Str("client_id"))
	}
	_, i = d.wait(t, i, "registered")
	conn, i := d.wait(t, i, "mqtt_connected")
	d.wait(t, i, "session_up")
	dn := sim.DefaultIdentity.IMEI
	cid, token := rb.tokenFile(t, dn)
	if want := cid + "|securemode=-2,authType=connwl|"; conn.Str("client_id") != want {
		t.Errorf("logged in as %q, want %q", conn.Str("client_id"), want)
	}
	if n := d.log.Count("mqtt_connect_failed"); n != 0 {
		t.Errorf("%d MQTT failures on the way", n)
	}
	ev := rb.seen()
	if len(ev) < 2 || !strings.Contains(ev[0].ClientID, "authType=regnwl") || ev[len(ev)-1].Kind != "connect" ||
		!strings.Contains(ev[len(ev)-1].ClientID, "authType=connwl") {
		t.Errorf("broker saw %+v, want the regnwl registration, then a connwl login", ev)
	}
	if st, _ := statusJSON(t, controlSocket(rb.mod.Path())); st.Device != dn {
		t.Errorf("status shows device %q, want %q", st.Device, dn)
	}
	if _, err := d.stop(t); err != nil {
		t.Errorf("exit: %v", err)
	}
	noSecretsLogged(t, d, token)

	d = rb.start(rb.config(nwl))
	_, i = d.wait(t, 0, "device_secret")
	d.wait(t, i, "session_up")
	if n := len(rb.registrations()); n != 1 || d.log.Count("registering") != 0 {
		t.Errorf("after a restart: %d registrations, want still 1", n)
	}
	noSecretsLogged(t, d, token)
}

// TestSelfRegistrationRegNWLInstance: an Enterprise instance's id goes into the regnwl client
// id (the emulated instance refuses it otherwise), and the answer on /ext/register — what the
// documentation's text says, while the SDK listens on /ext/regnwl — is taken too.
func TestSelfRegistrationRegNWLInstance(t *testing.T) {
	t.Parallel()
	rb := newRegBench(t, 0, regPS, func(o *sim.RegistrationOptions) { o.InstanceID, o.ReplyTopic = regInst, "/ext/register" })
	cfg := strings.Replace(rb.config(nwl), `region = "cn-shanghai"`, `instance_id = "`+regInst+`"`, 1)
	d := rb.start(cfg)
	reg, i := d.wait(t, 0, "registering")
	if !strings.HasSuffix(reg.Str("client_id"), ",instanceId="+regInst+"|") {
		t.Errorf("registration client id %q lacks the instance id", reg.Str("client_id"))
	}
	got, i := d.wait(t, i, "registered")
	if got.Str("topic") != "/ext/register" {
		t.Errorf("answer taken on %q", got.Str("topic"))
	}
	d.wait(t, i, "session_up")
	rb.tokenFile(t, sim.DefaultIdentity.IMEI)
}

// TestSelfRegistrationRegNWLKilled: SIGKILL between the regnwl CONNECT and the answer leaves no
// credential file; the restart registers again and gets the same client id and token (not
// activated yet); SIGKILL right after they were stored: the restart logs in with them.
func TestSelfRegistrationRegNWLKilled(t *testing.T) {
	t.Parallel()
	rb := newRegBench(t, 2*time.Second, regPS)
	rb.killedAndRestarted(t, nwl, "token", func() string {
		_, token := rb.tokenFile(t, sim.DefaultIdentity.IMEI)
		return token
	}, func(r sim.AliyunRegistration) string { return r.DeviceToken })
}

// TestSelfRegistrationRegNWLNasty: a server error (CONNACK 3) is retried; an answer never
// published, or published on a topic that is neither /ext/regnwl nor /ext/register, ends the
// registration within its bound, in words, with nothing stored, and it is retried; a stored
// token the platform does not know (reset in the console) is refused with what to do.
func TestSelfRegistrationRegNWLNasty(t *testing.T) {
	t.Parallel()
	t.Run("server error", func(t *testing.T) {
		t.Parallel()
		rb := newRegBench(t, 0, regPS, func(o *sim.RegistrationOptions) { o.ServerErrors = 1 })
		d := rb.start(rb.config(nwl))
		f, i := d.wait(t, 0, "mqtt_connect_failed")
		if f.Int("code") != 3 || f.Str("step") != "register" || f.Str("retry_in") == "" {
			t.Errorf("failure %v: want code 3 at step register and a retry", f)
		}
		d.wait(t, i, "session_up")
		rb.tokenFile(t, sim.DefaultIdentity.IMEI)
	})
	for _, tc := range []struct {
		name string
		tune func(*sim.RegistrationOptions)
	}{
		{"no answer", func(o *sim.RegistrationOptions) { o.Silent = true }},
		{"answer on another topic", func(o *sim.RegistrationOptions) { o.ReplyTopic = "/ext/other" }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			rb := newRegBench(t, 0, regPS, tc.tune)
			d := rb.start(rb.config(nwl))
			_, i := d.wait(t, 0, "registering")
			f, i := d.wait(t, i, "mqtt_connect_failed")
			t.Logf("failure as logged: %s", d.log.Raw()[i])
			if f.Str("step") != "register" || f.Str("retry_in") == "" || !strings.Contains(f.Str("hint"), "/ext/regnwl or /ext/register") {
				t.Errorf("failure %v: want step register, a hint naming both topics and retry_in", f)
			}
			d.wait(t, i+1, "registering")
			if ents, _ := os.ReadDir(rb.state); len(ents) != 0 {
				t.Errorf("stored %d files without an answer", len(ents))
			}
			for _, r := range rb.registrations() { // the answer on the wrong topic holds a token
				noSecretsLogged(t, d, r.DeviceToken)
			}
		})
	}
	t.Run("unknown token", func(t *testing.T) {
		t.Parallel()
		rb := newRegBench(t, 0, regPS)
		d := rb.start(rb.config(nwl))
		d.wait(t, 0, "session_up")
		if _, err := d.stop(t); err != nil {
			t.Fatal(err)
		}
		cid, token := rb.tokenFile(t, sim.DefaultIdentity.IMEI)
		p := filepath.Join(rb.state, "aliyun-"+regPK+"-"+sim.DefaultIdentity.IMEI+".connwl")
		if err := os.WriteFile(p, []byte(cid+"|"+token+"x"), 0o600); err != nil {
			t.Fatal(err)
		}
		d = rb.start(rb.config(nwl))
		f, _ := d.wait(t, 0, "mqtt_connect_failed")
		if f.Int("code") != 4 || f.Str("step") != "connect" || !strings.Contains(f.Str("hint"), "device token") ||
			!strings.Contains(f.Str("hint"), "remove the file") {
			t.Errorf("failure %v: want code 4 at connect and a hint to remove the stored token", f)
		}
		noSecretsLogged(t, d, token)
	})
}

// TestSelfRegistrationRegNWLCheck: with an Enterprise instance id a long device name does not fit
// the module's 128-byte client id (clouds.md 5); gatewayd check refuses it with the numbers.
func TestSelfRegistrationRegNWLCheck(t *testing.T) {
	t.Parallel()
	rb := newRegBench(t, 0, regPS)
	cfg := strings.Replace(rb.config(nwl+"\ndevice_name = \"gateway-{imei}\""), `region = "cn-shanghai"`, `instance_id = "`+regInst+`"`, 1)
	path := filepath.Join(rb.dir, "long.toml")
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	_, errs, code := cli(t, "check", "-config", path)
	if code == 0 || !strings.Contains(errs, "mqtt.aliyun.device_name: 23 bytes") || !strings.Contains(errs, "instanceId="+regInst) ||
		!strings.Contains(errs, "keep it to 16 bytes") {
		t.Errorf("check exit %d, stderr %q: want the overflow in words", code, errs)
	}
}

// TestSelfRegistrationThing: the thing model with dynamic registration (both variants): its
// topics are the registered device's (/sys/<pk>/<imei>/…), filled in once the module tells the
// name — the report at connect goes there, a set there switches the LED and is answered there,
// and nothing is ever published on a topic with the template still in it.
func TestSelfRegistrationThing(t *testing.T) {
	t.Parallel()
	for _, variant := range []string{"", nwl} {
		t.Run("registration="+map[string]string{"": "register", nwl: "regnwl"}[variant], func(t *testing.T) {
			t.Parallel()
			rb := newRegBench(t, 0, regPS)
			dev := "/sys/" + regPK + "/" + sim.DefaultIdentity.IMEI + "/thing/"
			var mu sync.Mutex
			var topics []string
			got := map[string][]string{}
			arrived := make(chan struct{}, 100)
			if err := rb.b.Subscribe("#", func(topic string, payload []byte) {
				mu.Lock()
				topics = append(topics, topic)
				got[topic] = append(got[topic], string(payload))
				mu.Unlock()
				arrived <- struct{}{}
			}); err != nil {
				t.Fatal(err)
			}
			waitFor := func(topic string, n int) []string {
				t.Helper()
				deadline := time.After(45 * time.Second)
				for {
					mu.Lock()
					m := append([]string(nil), got[topic]...)
					mu.Unlock()
					if len(m) >= n {
						return m
					}
					select {
					case <-arrived:
					case <-deadline:
						t.Fatalf("%d messages on %s, want %d", len(m), topic, n)
					}
				}
			}
			d := rb.start(rb.config(variant) + "\n[thing]\nled_property = \"LEDSwitch\"\n[thing.telemetry]\nimei = \"IMEI\"\n")
			_, i := d.wait(t, 0, "registered")
			d.wait(t, i, "session_up")
			if p := parsePost(t, waitFor(dev+"event/property/post", 1)[0]); p.Params["IMEI"] != sim.DefaultIdentity.IMEI {
				t.Errorf("report at connect %v", p.Params)
			}
			set := `{"method":"thing.service.property.set","id":"77","params":{"LEDSwitch":1},"version":"1.0"}`
			if err := rb.b.Publish(dev+"service/property/set", []byte(set), false, 1); err != nil {
				t.Fatal(err)
			}
			if r := parseAlink(t, waitFor(dev+"service/property/set_reply", 1)[0]); r.ID != "77" || r.Code != 200 {
				t.Errorf("reply %+v, want id 77 code 200", r)
			}
			if on, why := ledEvents(d, i); len(on) == 0 || !on[len(on)-1] || !strings.Contains(why[len(why)-1], "LEDSwitch") {
				t.Errorf("LED %v %v, want on by the property", on, why)
			}
			mu.Lock()
			defer mu.Unlock()
			for _, tp := range topics {
				if strings.ContainsAny(tp, "{}") {
					t.Errorf("published on %q: the template was not filled in", tp)
				}
			}
		})
	}
}
