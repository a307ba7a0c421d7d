package qssl_test

import (
	"context"
	"crypto/tls"
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gatewayd/gatewayd/at"
	"github.com/gatewayd/gatewayd/qmt"
	"github.com/gatewayd/gatewayd/qssl"
	"github.com/gatewayd/gatewayd/sim"
	"github.com/gatewayd/gatewayd/test/simtest"
	"github.com/gatewayd/gatewayd/test/testutil"
	"github.com/gatewayd/gatewayd/ufs"
)

// bench is the emulator with its TLS clients routed to a mochi TLS listener that requires a
// client certificate, opened over a pty as the daemon opens it.
type bench struct {
	pki   *testutil.PKI
	m     *sim.Module
	conn  *at.Conn
	mu    sync.Mutex
	peers []string // client certificate CNs the broker accepted
}

func newBench(t *testing.T, cfg sim.Config) *bench {
	t.Helper()
	b := &bench{pki: testutil.NewPKI(t, "pi-led-01", "broker.test")}
	srv := b.pki.ServerTLS(t, true)
	srv.VerifyConnection = func(cs tls.ConnectionState) error {
		b.mu.Lock()
		defer b.mu.Unlock()
		b.peers = append(b.peers, cs.PeerCertificates[0].Subject.CommonName)
		return nil
	}
	broker, err := sim.NewBroker("127.0.0.1:0", sim.WithTLS(srv))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { broker.Close() })
	cfg.Broker, cfg.TLSBroker = "127.0.0.1:9", broker.Addr()
	b.m, b.conn = simtest.Start(t, cfg, at.Options{URCs: qmt.URCs()})
	return b
}

func (b *bench) config() qssl.Config {
	return qssl.Config{Context: 2, CA: b.pki.CA, ClientCert: b.pki.ClientCert, ClientKey: b.pki.ClientKey, SNI: true, IgnoreLocalTime: true}
}

// connect opens and connects MQTT client 0 over TLS context ctxIdx to broker.test.
func (b *bench) connect(t *testing.T, ctxIdx int) error {
	t.Helper()
	c := qmt.NewClient(b.conn, 0)
	defer c.Close()
	if err := c.Configure(ctx(t), qmt.Config{SSL: &qmt.SSL{Context: ctxIdx}}); err != nil {
		t.Fatalf("Configure: %v", err)
	}
	if err := c.Open(ctx(t), "broker.test", 8883); err != nil {
		return err
	}
	return c.Connect(ctx(t), "pi-led-01", "", "")
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	t.Cleanup(cancel)
	return c
}

func names(t *testing.T, conn *at.Conn) []string {
	t.Helper()
	files, err := ufs.New(conn).List(ctx(t))
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, f := range files {
		out = append(out, f.Name)
	}
	return out
}

// TestApplyThenMutualTLS: Apply uploads the three files and sets the context; the module's
// MQTT client then connects over mutual TLS with the client certificate. A second Apply uploads
// nothing; a changed CA replaces only the CA file and removes the old one; files of other
// names are left alone.
func TestApplyThenMutualTLS(t *testing.T) {
	b := newBench(t, sim.Config{})
	if err := ufs.New(b.conn).Upload(ctx(t), "user.txt", []byte("not ours"), false); err != nil {
		t.Fatal(err)
	}
	res, err := qssl.Apply(ctx(t), b.conn, b.config())
	if err != nil {
		t.Fatalf("Apply: %v", err)
	}
	if len(res.Uploaded) != 3 || len(res.Kept) != 0 || len(res.Deleted) != 0 || res.BareNames {
		t.Errorf("first Apply = %+v, want 3 uploads", res)
	}
	if err := b.connect(t, 2); err != nil {
		t.Fatalf("MQTT over TLS: %v", err)
	}
	b.mu.Lock()
	peers := slices.Clone(b.peers)
	b.mu.Unlock()
	if !slices.Equal(peers, []string{"pi-led-01"}) {
		t.Errorf("broker accepted client certificates %q, want [pi-led-01]", peers)
	}

	res, err = qssl.Apply(ctx(t), b.conn, b.config())
	if err != nil || len(res.Uploaded) != 0 || len(res.Kept) != 3 || len(res.Deleted) != 0 {
		t.Errorf("second Apply = %+v, %v; want all 3 kept", res, err)
	}

	cfg := b.config()
	other := testutil.NewPKI(t, "x", "broker.test")
	cfg.CA = append(append([]byte(nil), b.pki.CA...), other.CA...) // a bundle
	res, err = qssl.Apply(ctx(t), b.conn, cfg)
	if err != nil || len(res.Uploaded) != 1 || len(res.Kept) != 2 || len(res.Deleted) != 1 {
		t.Errorf("Apply with a new CA = %+v, %v; want 1 upload, 2 kept, 1 deleted", res, err)
	}
	got := names(t, b.conn)
	if len(got) != 4 || !slices.Contains(got, "user.txt") || !strings.HasPrefix(res.Uploaded[0], "gwd-ca-") {
		t.Errorf("files = %q, want 3 gwd- files and user.txt", got)
	}
}

// TestModuleSwapGetsCertificates: a replacement module (another IMEI) has an empty file system;
// Apply puts everything back and TLS works on it.
func TestModuleSwapGetsCertificates(t *testing.T) {
	b := newBench(t, sim.Config{})
	if _, err := qssl.Apply(ctx(t), b.conn, b.config()); err != nil {
		t.Fatal(err)
	}
	b.conn.Close()
	if err := b.m.Swap(sim.Identity{IMEI: "869999999999998"}); err != nil {
		t.Fatal(err)
	}
	b.conn = simtest.Open(t, b.m, at.Options{URCs: qmt.URCs()})
	if got := names(t, b.conn); len(got) != 0 {
		t.Fatalf("the new module has files %q", got)
	}
	res, err := qssl.Apply(ctx(t), b.conn, b.config())
	if err != nil || len(res.Uploaded) != 3 {
		t.Fatalf("Apply on the new module = %+v, %v", res, err)
	}
	if err := b.connect(t, 2); err != nil {
		t.Fatalf("MQTT over TLS on the new module: %v", err)
	}
}

// TestBareNameVariant: firmware that refuses "UFS:" names in AT+QSSLCFG gets bare ones.
func TestBareNameVariant(t *testing.T) {
	b := newBench(t, sim.Config{BareCertNames: true, ListUFSPrefix: true})
	res, err := qssl.Apply(ctx(t), b.conn, b.config())
	if err != nil || !res.BareNames {
		t.Fatalf("Apply = %+v, %v; want BareNames", res, err)
	}
	if err := b.connect(t, 2); err != nil {
		t.Fatalf("MQTT over TLS: %v", err)
	}
	// The listing carried "UFS:" prefixes: the second Apply still recognises its files.
	if res, err := qssl.Apply(ctx(t), b.conn, b.config()); err != nil || len(res.Kept) != 3 {
		t.Errorf("second Apply = %+v, %v", res, err)
	}
}

// TestWrongCAFailsTheOpen: with a CA that did not sign the broker, the module's handshake
// fails and AT+QMTOPEN reports it.
func TestWrongCAFailsTheOpen(t *testing.T) {
	b := newBench(t, sim.Config{})
	cfg := b.config()
	cfg.CA = testutil.NewPKI(t, "x", "broker.test").CA
	if _, err := qssl.Apply(ctx(t), b.conn, cfg); err != nil {
		t.Fatal(err)
	}
	var re *qmt.ResultError
	if err := b.connect(t, 2); !errors.As(err, &re) {
		t.Fatalf("connect with the wrong CA = %v, want a QMTOPEN result error", err)
	}
}

func TestValidate(t *testing.T) {
	p := testutil.NewPKI(t, "c", "h")
	other := testutil.NewPKI(t, "c", "h")
	for _, tt := range []struct {
		name string
		cfg  qssl.Config
		want string
	}{
		{"no CA", qssl.Config{}, "no CA certificate"},
		{"insecure", qssl.Config{InsecureSkipVerify: true}, ""},
		{"CA", qssl.Config{CA: p.CA}, ""},
		{"not PEM", qssl.Config{CA: []byte("hello")}, "no PEM certificate"},
		{"key only", qssl.Config{CA: p.CA, ClientKey: p.ClientKey}, "needs its key"},
		{"mismatch", qssl.Config{CA: p.CA, ClientCert: p.ClientCert, ClientKey: other.ClientKey}, "client certificate and key"},
		{"mutual without CA", qssl.Config{InsecureSkipVerify: true, ClientCert: p.ClientCert, ClientKey: p.ClientKey}, "needs the CA"},
		{"context", qssl.Config{CA: p.CA, Context: 6}, "context 6"},
		{"negotiate", qssl.Config{CA: p.CA, NegotiateTimeout: 5 * time.Second}, "negotiate timeout"},
		{"version", qssl.Config{CA: p.CA, Version: 7}, "sslversion 7"},
	} {
		err := tt.cfg.Validate()
		switch {
		case tt.want == "" && err != nil:
			t.Errorf("%s: %v", tt.name, err)
		case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want) || !errors.Is(err, qssl.ErrInvalid)):
			t.Errorf("%s: Validate = %v, want an ErrInvalid with %q", tt.name, err, tt.want)
		case err != nil && strings.Contains(err.Error(), "PRIVATE KEY"):
			t.Errorf("%s: the error shows key material: %v", tt.name, err)
		}
	}
	if got := (qssl.Config{CA: p.CA, ClientCert: p.ClientCert, ClientKey: p.ClientKey}).SecLevel(); got != 2 {
		t.Errorf("SecLevel with a client certificate = %d", got)
	}
}
