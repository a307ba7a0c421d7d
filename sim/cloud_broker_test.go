package sim

import (
	"crypto/sha256"
	"crypto/tls"
	"encoding/base64"
	"encoding/hex"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
	"github.com/rs/zerolog"

	"github.com/gatewayd/gatewayd/test/testutil"
)

// eventLog collects a broker's events.
type eventLog struct {
	mu sync.Mutex
	ev []BrokerEvent
}

func (l *eventLog) add(e BrokerEvent) { l.mu.Lock(); l.ev = append(l.ev, e); l.mu.Unlock() }

func (l *eventLog) kinds() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var k []string
	for _, e := range l.ev {
		k = append(k, e.Kind)
	}
	return k
}

func (l *eventLog) last() BrokerEvent {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.ev[len(l.ev)-1]
}

// dial connects a paho client and returns the CONNACK return code (0 connected; then it is
// disconnected cleanly).
func dial(t *testing.T, url, id, user, pass string, cfg *tls.Config) byte {
	t.Helper()
	o := mqtt.NewClientOptions().AddBroker(url).SetClientID(id).SetUsername(user).SetPassword(pass).
		SetAutoReconnect(false).SetConnectRetry(false).SetKeepAlive(60 * time.Second).SetConnectTimeout(5 * time.Second)
	if cfg != nil {
		o.SetTLSConfig(cfg)
	}
	c := mqtt.NewClient(o)
	tok := c.Connect()
	if !tok.WaitTimeout(10 * time.Second) {
		t.Fatal("connect did not finish")
	}
	rc := tok.(*mqtt.ConnectToken).ReturnCode()
	if rc == 0 {
		c.Disconnect(250)
	}
	return rc
}

// TestCheckingBrokerTencent: over a real connection, the checking broker lets a freshly signed
// Tencent login in and reports its expiry, refuses an expired one with CONNACK 4 and logs why
// (without the secret), and reports the clean DISCONNECT.
func TestCheckingBrokerTencent(t *testing.T) {
	var logBuf strings.Builder
	var mu sync.Mutex
	lw := zerolog.SyncWriter(writerFunc(func(p []byte) (int, error) { mu.Lock(); defer mu.Unlock(); return logBuf.Write(p) }))
	var ev eventLog
	const secret = "MTIzNDU2Nzg5MGFiY2RlZg=="
	b, err := NewBroker("127.0.0.1:0", WithPlatform(PlatformTencent, Device{ID: "1A17RZR3XX/gate_dev01", Secret: secret}),
		WithEvents(ev.add), WithBrokerLogger(zerolog.New(lw).Level(zerolog.DebugLevel)))
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	sign := func(exp int64) (string, string) {
		user := "1A17RZR3XXgate_dev01;12010126;ABCDE;" + strconv.FormatInt(exp, 10)
		key, _ := base64.StdEncoding.DecodeString(secret)
		return user, hex.EncodeToString(mac(sha256.New, key, user)) + ";hmacsha256"
	}
	exp := time.Now().Add(time.Hour).Unix()
	user, pass := sign(exp)
	if rc := dial(t, b.URL(), "1A17RZR3XXgate_dev01", user, pass, nil); rc != 0 {
		t.Fatalf("fresh signature refused with %d", rc)
	}
	waitUntil(t, func() bool { return len(ev.kinds()) == 2 }, "connect and disconnect events")
	if k := ev.kinds(); k[0] != "connect" || k[1] != "disconnect" {
		t.Errorf("events %q, want connect, disconnect", k)
	}
	ev.mu.Lock()
	first := ev.ev[0]
	ev.mu.Unlock()
	if got := first.Expires.Unix(); got != exp {
		t.Errorf("connect event's expiry %d, want %d", got, exp)
	}
	user, pass = sign(time.Now().Add(-time.Minute).Unix())
	if rc := dial(t, b.URL(), "1A17RZR3XXgate_dev01", user, pass, nil); rc != 4 {
		t.Fatalf("expired signature: CONNACK %d, want 4", rc)
	}
	if e := ev.last(); e.Kind != "refused" || e.Code != 4 || !strings.Contains(e.Why, "expired") {
		t.Errorf("last event %+v, want refused 4 expired", e)
	}
	mu.Lock()
	logged := logBuf.String()
	mu.Unlock()
	if !strings.Contains(logged, `"why":"signature expired`) || strings.Contains(logged, secret) || strings.Contains(logged, pass) {
		t.Errorf("broker log does not say why, or shows the secret or password:\n%s", logged)
	}
}

// TestCheckingBrokerTLS: Azure and AWS accept only TLS clients; over TLS the right credentials
// (a SAS token; a client certificate) get in, and without TLS or with a wrong key they are
// refused with the platform's code.
func TestCheckingBrokerTLS(t *testing.T) {
	pki := testutil.NewPKI(t, "pi-led-01", "127.0.0.1")
	t.Run("azure", func(t *testing.T) {
		const key = "cGFzc3dvcmQ="
		host := "hub.azure-devices.net"
		b, err := NewBroker("127.0.0.1:0", WithTLS(pki.ServerTLS(t, false)), WithPlatform(PlatformAzure, Device{ID: host + "/dev1", Secret: key}))
		if err != nil {
			t.Fatal(err)
		}
		defer b.Close()
		token := func(k string) string {
			se := strconv.FormatInt(time.Now().Add(time.Hour).Unix(), 10)
			sr := url.QueryEscape(host + "/devices/dev1")
			raw, _ := base64.StdEncoding.DecodeString(k)
			sig := base64.StdEncoding.EncodeToString(mac(sha256.New, raw, sr+"\n"+se))
			return "SharedAccessSignature sr=" + sr + "&sig=" + url.QueryEscape(sig) + "&se=" + se
		}
		user := host + "/dev1/?api-version=2021-04-12"
		if rc := dial(t, b.URL(), "dev1", user, token(key), pki.ClientTLS(t, "127.0.0.1")); rc != 0 {
			t.Errorf("good SAS token: CONNACK %d", rc)
		}
		if rc := dial(t, b.URL(), "dev1", user, token("b3RoZXI="), pki.ClientTLS(t, "127.0.0.1")); rc != 5 {
			t.Errorf("SAS token with another key: CONNACK %d, want 5", rc)
		}
		plain, err := NewBroker("127.0.0.1:0", WithPlatform(PlatformAzure, Device{ID: host + "/dev1", Secret: key}))
		if err != nil {
			t.Fatal(err)
		}
		defer plain.Close()
		if rc := dial(t, plain.URL(), "dev1", user, token(key), nil); rc != 3 {
			t.Errorf("plain TCP: CONNACK %d, want 3", rc)
		}
	})
	t.Run("aws", func(t *testing.T) {
		srv := pki.ServerTLS(t, true)
		srv.ClientAuth = tls.VerifyClientCertIfGiven // so that the hook sees a client without one
		b, err := NewBroker("127.0.0.1:0", WithTLS(srv), WithPlatform(PlatformAWS, Device{ID: "pi-led-01", Secret: "pi-led-01"}))
		if err != nil {
			t.Fatal(err)
		}
		defer b.Close()
		if rc := dial(t, b.URL(), "pi-led-01", "", "", pki.ClientTLS(t, "127.0.0.1")); rc != 0 {
			t.Errorf("client certificate: CONNACK %d", rc)
		}
		noCert := pki.ClientTLS(t, "127.0.0.1")
		noCert.Certificates = nil
		if rc := dial(t, b.URL(), "pi-led-01", "", "", noCert); rc != 5 {
			t.Errorf("no client certificate: CONNACK %d, want 5", rc)
		}
		if rc := dial(t, b.URL(), "someone-else", "", "", pki.ClientTLS(t, "127.0.0.1")); rc != 5 {
			t.Errorf("client id of no thing: CONNACK %d, want 5", rc)
		}
	})
}

// TestUnknownPlatform: a platform name the broker does not know is an error saying which it knows.
func TestUnknownPlatform(t *testing.T) {
	_, err := NewBroker("127.0.0.1:0", WithPlatform("azur"))
	if err == nil || !strings.Contains(err.Error(), "azure") {
		t.Fatalf("NewBroker with platform azur: %v", err)
	}
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }

// TestCheckingBrokerKicksTheOlderLogin: Alibaba Cloud keeps one connection per device triple,
// whatever the client id: a second login of the same device forces the first offline.
func TestCheckingBrokerKicksTheOlderLogin(t *testing.T) {
	var ev eventLog
	b, err := NewBroker("127.0.0.1:0", WithPlatform(PlatformAliyun, Device{ID: "pk/device", Secret: "secret"}), WithEvents(ev.add))
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	lost := make(chan error, 1)
	connect := func(id string, onLost func(error)) mqtt.Client {
		clientID := id + "|securemode=3,signmethod=hmacsha256|"
		pass := hex.EncodeToString(aliyunSign("hmacsha256", "secret", id, "device", "pk", "", false))
		o := mqtt.NewClientOptions().AddBroker(b.URL()).SetClientID(clientID).SetUsername("device&pk").SetPassword(pass).
			SetAutoReconnect(false).SetKeepAlive(60 * time.Second)
		if onLost != nil {
			o.SetConnectionLostHandler(func(_ mqtt.Client, err error) { onLost(err) })
		}
		c := mqtt.NewClient(o)
		if tok := c.Connect(); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
			t.Fatalf("connect %s: %v", id, tok.Error())
		}
		return c
	}
	connect("box-a", func(err error) { lost <- err })
	second := connect("box-b", nil)
	defer second.Disconnect(100)
	select {
	case <-lost:
	case <-time.After(5 * time.Second):
		t.Fatal("the first login was not forced offline by the second")
	}
	waitUntil(t, func() bool { return strings.Contains(strings.Join(ev.kinds(), ","), "kicked") }, "a kicked event")
	if !second.IsConnected() {
		t.Error("the second login was dropped too")
	}
}
