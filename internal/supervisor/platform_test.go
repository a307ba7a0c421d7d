package supervisor

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/gatewayd/gatewayd/internal/cloud"
	"github.com/gatewayd/gatewayd/test/testutil"
)

// countingPlatform is a fake platform: cloud.Plain's identity with an expiry one hour after the
// time it is asked at, counting the calls.
type countingPlatform struct {
	cloud.Platform
	mu    sync.Mutex
	calls int
	last  time.Time // the expiry it gave last
}

func (p *countingPlatform) Identity(now time.Time) (cloud.Identity, error) {
	id, err := p.Platform.Identity(now)
	p.mu.Lock()
	defer p.mu.Unlock()
	p.calls++
	id.Expires = now.Add(time.Hour).Truncate(time.Second)
	p.last = id.Expires
	return id, err
}

func (p *countingPlatform) state() (int, time.Time) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.calls, p.last
}

// waitFor polls cond for up to 30 s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// The session asks the platform for the identity at every connect, and the MQTT stage hands the
// identity's expiry to the loop (Status.IdentityExpires), the seam for token renewal.
func TestEveryConnectAsksThePlatformAndReportsTheExpiry(t *testing.T) {
	mod, set := emulatedSettings(t, "exp")
	p := &countingPlatform{Platform: set.Platform}
	set.Platform = p
	s := New(set, zerolog.Nop(), nopLED{}, &countingNotifier{})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	defer func() { cancel(); <-done }()

	waitFor(t, "the first connect", func() bool { return s.Status().Connected })
	calls, exp := p.state()
	if calls != 1 || !s.Status().IdentityExpires.Equal(exp) || exp.IsZero() {
		t.Fatalf("after the first connect: %d identities asked, status expiry %v, identity expiry %v", calls, s.Status().IdentityExpires, exp)
	}
	if err := mod.DropLink(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "a second identity", func() bool { c, _ := p.state(); return c >= 2 })
	waitFor(t, "the reconnect", func() bool { _, e := p.state(); return s.Status().Connected && s.Status().IdentityExpires.Equal(e) })
}

// A link Alibaba Cloud closes soon after the CONNECT is explained with its kick-out rule: another
// device with the same triple logged in.
func TestAliyunLinkLostSoonAfterConnectHintsAtTheKickOut(t *testing.T) {
	mod, set := emulatedSettings(t, "")
	p, err := cloud.New("aliyun", cloud.Settings{Values: map[string]any{
		"product_key": "a1B2c3D4e5F", "device_name": "pi-led-01", "device_secret": "Zx9yW8vU7tS6rQ5pO4nM3lK2jI1hG0fE",
	}, Override: cloud.Overrides{Host: "127.0.0.1"}})
	if err != nil {
		t.Fatal(err)
	}
	set.Platform = p
	var logs testutil.SyncBuffer
	s := New(set, zerolog.New(&logs), nopLED{}, &countingNotifier{})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	defer func() { cancel(); <-done }()

	waitFor(t, "the connect", func() bool { return s.Status().Connected })
	if err := mod.DropLink(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the kick-out hint in the log", func() bool {
		return strings.Contains(logs.String(), "forces the older connection offline")
	})
	if got := s.Status().Reconnects[LossLinkClosed]; got != 1 {
		t.Errorf("reconnects %v: the hint must not change the loss's reason", s.Status().Reconnects)
	}
}

// A refused CONNECT is explained in the platform's terms, in the retry's hint.
func TestRefusedConnectHintsInThePlatformsTerms(t *testing.T) {
	mod, set := emulatedSettings(t, "")
	p, err := cloud.New("aliyun", cloud.Settings{Values: map[string]any{
		"product_key": "a1B2c3D4e5F", "device_name": "pi-led-01", "device_secret": "Zx9yW8vU7tS6rQ5pO4nM3lK2jI1hG0fE",
	}, Override: cloud.Overrides{Host: "127.0.0.1"}})
	if err != nil {
		t.Fatal(err)
	}
	set.Platform = p
	if err := mod.RefuseConnect(4); err != nil {
		t.Fatal(err)
	}
	var logs testutil.SyncBuffer
	s := New(set, zerolog.New(&logs), nopLED{}, &countingNotifier{})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	defer func() { cancel(); <-done }()
	waitFor(t, "the refusal's hint in the log", func() bool {
		return strings.Contains(logs.String(), `"hint":"Alibaba Cloud refused the signature`)
	})
}
