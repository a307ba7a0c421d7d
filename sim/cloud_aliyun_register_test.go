package sim

import (
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"encoding/json"
	"strings"
	"sync"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/gatewayd/gatewayd/test/testutil"
)

// The reference's "one type, one secret" vector (clouds.md, Test vectors).
const (
	vecPK       = "a1X2bEnP82z"
	vecPS       = "7jluWm1zql7bt8qK"
	vecDN       = "example1"
	vecClientID = "example1|securemode=2,authType=register,random=123,signmethod=hmacsha256|"
	vecUser     = "example1&a1X2bEnP82z"
	vecPassword = "39f9b36c776e896ae1361c0f06812a155a9393e9ed4b6df03a6fd95ffa883aa4"
)

// register connects with a registration identity and returns the CONNACK code, the answer
// published to it (nil when none came within wait) and whether the broker dropped the link.
func register(t *testing.T, url, id, user, pass string, cfg *tls.Config, wait time.Duration) (rc byte, answer map[string]string, dropped bool) {
	t.Helper()
	rc, topic, answer, dropped := registerOn(t, url, id, user, pass, cfg, wait)
	if answer != nil && topic != "/ext/register" {
		t.Fatalf("answer on %q, want /ext/register", topic)
	}
	return rc, answer, dropped
}

// registerOn is register for any answer topic: it returns the topic the answer came on.
func registerOn(t *testing.T, url, id, user, pass string, cfg *tls.Config, wait time.Duration) (rc byte, topic string, answer map[string]string, dropped bool) {
	t.Helper()
	got := make(chan mqtt.Message, 1)
	lost := make(chan struct{}, 1)
	o := mqtt.NewClientOptions().AddBroker(url).SetClientID(id).SetUsername(user).SetPassword(pass).
		SetAutoReconnect(false).SetConnectRetry(false).SetKeepAlive(60 * time.Second).SetConnectTimeout(5 * time.Second).
		SetProtocolVersion(4). // no fallback to 3.1 after a refusal: one CONNECT per call
		SetDefaultPublishHandler(func(_ mqtt.Client, m mqtt.Message) { got <- m }).
		SetConnectionLostHandler(func(mqtt.Client, error) { lost <- struct{}{} })
	if cfg != nil {
		o.SetTLSConfig(cfg)
	}
	c := mqtt.NewClient(o)
	tok := c.Connect()
	if !tok.WaitTimeout(10 * time.Second) {
		t.Fatal("connect did not finish")
	}
	if rc = tok.(*mqtt.ConnectToken).ReturnCode(); rc != 0 {
		return rc, "", nil, false
	}
	defer c.Disconnect(100)
	select {
	case m := <-got:
		topic = m.Topic()
		if err := json.Unmarshal(m.Payload(), &answer); err != nil {
			t.Fatalf("answer is not JSON: %v", err)
		}
	case <-time.After(wait):
	}
	select {
	case <-lost:
		dropped = true
	case <-time.After(wait):
	}
	return rc, topic, answer, dropped
}

// TestAliyunRegistration: the emulated platform answers the reference's registration vector over
// TLS with a device secret on /ext/register and drops the link; answers the same secret again
// until the device has logged in with it; then refuses (5); refuses a bad signature (4), TCP (2),
// a product without dynamic registration and a device not in the product (5).
func TestAliyunRegistration(t *testing.T) {
	pki := testutil.NewPKI(t, "gw", "127.0.0.1")
	var mu sync.Mutex
	var reports []AliyunRegistration
	prod := AliyunProduct{Key: vecPK, Secret: vecPS, Devices: []string{vecDN}}
	ropts := RegistrationOptions{Drop: 500 * time.Millisecond, Report: func(r AliyunRegistration) { mu.Lock(); reports = append(reports, r); mu.Unlock() }}
	b, err := NewBroker("127.0.0.1:0", WithTLS(pki.ServerTLS(t, false)), WithPlatform(PlatformAliyun),
		WithAliyunRegistration(ropts, prod, AliyunProduct{Key: "a1NoDynReg00", Devices: []string{vecDN}}))
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	cfg := func() *tls.Config { return pki.ClientTLS(t, "127.0.0.1") }

	rc, ans, dropped := register(t, b.URL(), vecClientID, vecUser, vecPassword, cfg(), 3*time.Second)
	if rc != 0 || ans == nil {
		t.Fatalf("reference vector: CONNACK %d, answer %v", rc, ans != nil)
	}
	secret := ans["deviceSecret"]
	if ans["productKey"] != vecPK || ans["deviceName"] != vecDN || len(secret) < 16 {
		t.Fatalf("answer %v lacks productKey/deviceName/deviceSecret", ans)
	}
	if !dropped {
		t.Error("the registration link was not dropped after the platform's time")
	}
	// A power cut before the device stored it: the same secret again.
	if rc, ans, _ := register(t, b.URL(), vecClientID, vecUser, vecPassword, cfg(), 3*time.Second); rc != 0 || ans["deviceSecret"] != secret {
		t.Fatalf("second registration before activation: CONNACK %d, same secret %v", rc, ans["deviceSecret"] == secret)
	}
	mu.Lock()
	if len(reports) != 2 || reports[0].Repeat || !reports[1].Repeat || reports[1].DeviceSecret != secret {
		t.Errorf("reports %+v: want a first and a repeated registration", reports)
	}
	mu.Unlock()

	// The device logs in with its secret (reference 3.1, signed here independently): activated.
	id := vecDN + "|securemode=2,signmethod=hmacsha256|"
	pw := hex.EncodeToString(mac(sha256.New, []byte(secret), "clientId"+vecDN+"deviceName"+vecDN+"productKey"+vecPK))
	if rc := dial(t, b.URL(), id, vecUser, pw, cfg()); rc != 0 {
		t.Fatalf("login with the issued secret: CONNACK %d", rc)
	}
	if rc, _, _ := register(t, b.URL(), vecClientID, vecUser, vecPassword, cfg(), time.Second); rc != 5 {
		t.Errorf("registration of an activated device: CONNACK %d, want 5", rc)
	}

	// random=124 with the password of random=123: the random is signed.
	if rc := dial(t, b.URL(), "example1|securemode=2,authType=register,random=124,signmethod=hmacsha256|", vecUser, vecPassword, cfg()); rc != 4 {
		t.Errorf("random not matching the signature: CONNACK %d, want 4", rc)
	}
	if rc := dial(t, b.URL(), vecClientID, vecUser, vecPassword[:len(vecPassword)-1]+"0", cfg()); rc != 4 {
		t.Errorf("bad signature: CONNACK %d, want 4", rc)
	}
	if rc := dial(t, b.URL(), vecClientID, "example1&a1NoDynReg00", vecPassword, cfg()); rc != 5 {
		t.Errorf("product without dynamic registration: CONNACK %d, want 5", rc)
	}
	otherPW := hex.EncodeToString(mac(sha256.New, []byte(vecPS), "deviceNameexample9productKey"+vecPK+"random123"))
	if rc := dial(t, b.URL(), "example9|securemode=2,authType=register,random=123,signmethod=hmacsha256|", "example9&"+vecPK, otherPW, cfg()); rc != 5 {
		t.Errorf("device not in the product: CONNACK %d, want 5", rc)
	}

	plain, err := NewBroker("127.0.0.1:0", WithPlatform(PlatformAliyun), WithAliyunRegistration(ropts, prod))
	if err != nil {
		t.Fatal(err)
	}
	defer plain.Close()
	if rc := dial(t, plain.URL(), vecClientID, vecUser, vecPassword, nil); rc != 2 {
		t.Errorf("registration over TCP: CONNACK %d, want 2", rc)
	}
}

// TestAliyunRegistrationDelay: with a delay the answer comes that much after CONNACK (the window
// the daemon's kill tests aim at).
func TestAliyunRegistrationDelay(t *testing.T) {
	pki := testutil.NewPKI(t, "gw", "127.0.0.1")
	b, err := NewBroker("127.0.0.1:0", WithTLS(pki.ServerTLS(t, false)), WithPlatform(PlatformAliyun),
		WithAliyunRegistration(RegistrationOptions{Delay: 700 * time.Millisecond, Drop: 3 * time.Second},
			AliyunProduct{Key: vecPK, Secret: vecPS, Devices: []string{vecDN}}))
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if rc, ans, _ := register(t, b.URL(), vecClientID, vecUser, vecPassword, pki.ClientTLS(t, "127.0.0.1"), 300*time.Millisecond); rc != 0 || ans != nil {
		t.Fatalf("CONNACK %d, answer within 300ms: %v (want none before the 700ms delay)", rc, ans != nil)
	}
}

// The reference's regnwl vector (clouds.md, Test vectors): same password as register.
const vecNWLClientID = "example1|securemode=-2,authType=regnwl,random=123,signmethod=hmacsha256|"

// TestAliyunRegNWL: registration without pre-registration answers any device name of a product
// with RegNWL on /ext/regnwl with a client id and a device token; connwl logs in with exactly
// those (a wrong, absent or other device's token, another client id, securemode, TCP refused);
// the same token comes again until the login activates the device, then registration is refused.
// A product without RegNWL refuses (5); instanceId must be the instance's.
func TestAliyunRegNWL(t *testing.T) {
	pki := testutil.NewPKI(t, "gw", "127.0.0.1")
	var mu sync.Mutex
	var reports []AliyunRegistration
	ropts := RegistrationOptions{Drop: 500 * time.Millisecond, Report: func(r AliyunRegistration) { mu.Lock(); reports = append(reports, r); mu.Unlock() }}
	b, err := NewBroker("127.0.0.1:0", WithTLS(pki.ServerTLS(t, false)), WithPlatform(PlatformAliyun),
		WithAliyunRegistration(ropts, AliyunProduct{Key: vecPK, Secret: vecPS, RegNWL: true},
			AliyunProduct{Key: "a1PreRegOnly", Secret: vecPS, Devices: []string{vecDN}}))
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	cfg := func() *tls.Config { return pki.ClientTLS(t, "127.0.0.1") }

	rc, topic, ans, dropped := registerOn(t, b.URL(), vecNWLClientID, vecUser, vecPassword, cfg(), 3*time.Second)
	if rc != 0 || topic != "/ext/regnwl" || !dropped {
		t.Fatalf("reference vector: CONNACK %d, answer on %q, dropped %v", rc, topic, dropped)
	}
	cid, token := ans["clientId"], ans["deviceToken"]
	if ans["productKey"] != vecPK || ans["deviceName"] != vecDN || cid == "" || len(token) < 16 || ans["deviceSecret"] != "" {
		t.Fatalf("answer %v: want productKey, deviceName, clientId, deviceToken", ans)
	}
	// Registered again before the login: the same.
	if rc, _, again, _ := registerOn(t, b.URL(), vecNWLClientID, vecUser, vecPassword, cfg(), 3*time.Second); rc != 0 ||
		again["deviceToken"] != token || again["clientId"] != cid {
		t.Fatalf("second regnwl before activation: CONNACK %d, same token %v", rc, again["deviceToken"] == token)
	}
	connwl := cid + "|securemode=-2,authType=connwl|"
	for _, tc := range []struct {
		name, id, user, pass string
		want                 byte
	}{
		{"a wrong token", connwl, vecUser, token + "x", 4},
		{"no token", connwl, vecUser, "", 4},
		{"the device's own client id", vecDN + "|securemode=-2,authType=connwl|", vecUser, token, 2},
		{"securemode 2", cid + "|securemode=2,authType=connwl|", vecUser, token, 2},
		{"a device that did not register", connwl, "example9&" + vecPK, token, 4},
	} {
		if rc := dial(t, b.URL(), tc.id, tc.user, tc.pass, cfg()); rc != tc.want {
			t.Errorf("connwl with %s: CONNACK %d, want %d", tc.name, rc, tc.want)
		}
	}
	if rc := dial(t, b.URL(), connwl, vecUser, token, cfg()); rc != 0 {
		t.Fatalf("connwl with the issued client id and token: CONNACK %d", rc)
	}
	if rc, _, _, _ := registerOn(t, b.URL(), vecNWLClientID, vecUser, vecPassword, cfg(), time.Second); rc != 5 {
		t.Errorf("regnwl of an activated device: CONNACK %d, want 5", rc)
	}
	mu.Lock()
	if len(reports) != 2 || reports[0].AuthType != "regnwl" || reports[0].DeviceToken != token || reports[0].IssuedClientID != cid || !reports[1].Repeat {
		t.Errorf("reports %+v", reports)
	}
	mu.Unlock()

	otherPW := hex.EncodeToString(mac(sha256.New, []byte(vecPS), "deviceNameexample1productKeya1PreRegOnlyrandom123"))
	if rc := dial(t, b.URL(), vecNWLClientID, "example1&a1PreRegOnly", otherPW, cfg()); rc != 5 {
		t.Errorf("regnwl on a product without it: CONNACK %d, want 5", rc)
	}
	if rc := dial(t, b.URL(), "example1|securemode=2,authType=regnwl,random=123,signmethod=hmacsha256|", vecUser, vecPassword, cfg()); rc != 2 {
		t.Errorf("regnwl with securemode=2: CONNACK %d, want 2", rc)
	}
	if rc := dial(t, b.URL(), "example1|securemode=-2,authType=regnwl,random=123,signmethod=hmacsha256,instanceId=iot-x|", vecUser, vecPassword, cfg()); rc != 2 {
		t.Errorf("regnwl with another instance's id: CONNACK %d, want 2", rc)
	}
	plain, err := NewBroker("127.0.0.1:0", WithPlatform(PlatformAliyun), WithAliyunRegistration(ropts, AliyunProduct{Key: vecPK, Secret: vecPS, RegNWL: true}))
	if err != nil {
		t.Fatal(err)
	}
	defer plain.Close()
	if rc := dial(t, plain.URL(), vecNWLClientID, vecUser, vecPassword, nil); rc != 2 {
		t.Errorf("regnwl over TCP: CONNACK %d, want 2", rc)
	}
}

// TestAliyunRegNWLOptions: the answer on another topic (the documentation's /ext/register), and
// an instance whose id the client id must carry.
func TestAliyunRegNWLOptions(t *testing.T) {
	pki := testutil.NewPKI(t, "gw", "127.0.0.1")
	b, err := NewBroker("127.0.0.1:0", WithTLS(pki.ServerTLS(t, false)), WithPlatform(PlatformAliyun),
		WithAliyunRegistration(RegistrationOptions{Drop: 500 * time.Millisecond, ReplyTopic: "/ext/register", InstanceID: "iot-06z00ax1o4qyfb8"},
			AliyunProduct{Key: vecPK, Secret: vecPS, RegNWL: true}))
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if rc := dial(t, b.URL(), vecNWLClientID, vecUser, vecPassword, pki.ClientTLS(t, "127.0.0.1")); rc != 2 {
		t.Errorf("regnwl without the instance's id: CONNACK %d, want 2", rc)
	}
	id := "example1|securemode=-2,authType=regnwl,random=123,signmethod=hmacsha256,instanceId=iot-06z00ax1o4qyfb8|"
	rc, topic, ans, _ := registerOn(t, b.URL(), id, vecUser, vecPassword, pki.ClientTLS(t, "127.0.0.1"), 2*time.Second)
	if rc != 0 || topic != "/ext/register" || ans["deviceToken"] == "" {
		t.Errorf("CONNACK %d, answer on %q with a token %v; want 0, /ext/register, yes", rc, topic, ans["deviceToken"] != "")
	}
}

func TestParseAliyunProduct(t *testing.T) {
	p, err := ParseAliyunProduct("a1X2bEnP82z=7jluWm1zql7bt8qK:866123456789011,example1")
	if err != nil || p.Key != vecPK || p.Secret != vecPS || len(p.Devices) != 2 || p.Devices[1] != "example1" {
		t.Fatalf("%+v %v", p, err)
	}
	if p, err := ParseAliyunProduct("a1X2bEnP82z=7jluWm1zql7bt8qK:*"); err != nil || !p.RegNWL || len(p.Devices) != 0 {
		t.Errorf("regnwl product: %+v %v", p, err)
	}
	for _, bad := range []string{"", "pk", "pk=secret", "=s:d", "pk=:d", "pk=s:"} {
		if _, err := ParseAliyunProduct(bad); err == nil {
			t.Errorf("%q accepted", bad)
		} else if strings.Contains(err.Error(), "secret") && strings.Contains(bad, "=secret") && strings.Contains(err.Error(), "=secret") {
			t.Errorf("%q: the error shows the secret", bad)
		}
	}
}

// TestAliyunRegistrationNasty: the reference's server error (CONNACK 3) for the first
// registrations, and a platform that accepts but never answers (only drops the link).
func TestAliyunRegistrationNasty(t *testing.T) {
	pki := testutil.NewPKI(t, "gw", "127.0.0.1")
	prod := AliyunProduct{Key: vecPK, Secret: vecPS, Devices: []string{vecDN}}
	b, err := NewBroker("127.0.0.1:0", WithTLS(pki.ServerTLS(t, false)), WithPlatform(PlatformAliyun),
		WithAliyunRegistration(RegistrationOptions{ServerErrors: 2, Drop: 500 * time.Millisecond}, prod))
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	for i := 0; i < 2; i++ {
		if rc, _, _ := register(t, b.URL(), vecClientID, vecUser, vecPassword, pki.ClientTLS(t, "127.0.0.1"), time.Second); rc != 3 {
			t.Errorf("registration %d: CONNACK %d, want 3", i+1, rc)
		}
	}
	if rc, ans, _ := register(t, b.URL(), vecClientID, vecUser, vecPassword, pki.ClientTLS(t, "127.0.0.1"), 3*time.Second); rc != 0 || ans == nil {
		t.Errorf("third registration: CONNACK %d, answered %v", rc, ans != nil)
	}

	silent, err := NewBroker("127.0.0.1:0", WithTLS(pki.ServerTLS(t, false)), WithPlatform(PlatformAliyun),
		WithAliyunRegistration(RegistrationOptions{Silent: true, Drop: 500 * time.Millisecond}, prod))
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	rc, ans, dropped := register(t, silent.URL(), vecClientID, vecUser, vecPassword, pki.ClientTLS(t, "127.0.0.1"), 2*time.Second)
	if rc != 0 || ans != nil || !dropped {
		t.Errorf("silent platform: CONNACK %d, answered %v, dropped %v; want 0, no answer, dropped", rc, ans != nil, dropped)
	}
}
