// Package simtest starts the EC600 emulator for a test and opens its AT port the way the daemon
// does (go.bug.st/serial on the pty, the at engine, AT sync, ATE0 and CMEE), for the tests of
// the packages that talk to a module.
package simtest

import (
	"context"
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/gatewayd/gatewayd/at"
	"github.com/gatewayd/gatewayd/internal/port"
	"github.com/gatewayd/gatewayd/modem"
	"github.com/gatewayd/gatewayd/sim"
)

// Start starts an emulated module with cfg (an empty Link gets a temporary path, an empty
// Broker an address that is never dialled, for tests without MQTT) and returns it with an AT
// connection to it. Both end with the test.
func Start(t testing.TB, cfg sim.Config, opts at.Options) (*sim.Module, *at.Conn) {
	t.Helper()
	if cfg.Link == "" {
		cfg.Link = filepath.Join(t.TempDir(), "ec600-at")
	}
	if cfg.Broker == "" {
		cfg.Broker = "127.0.0.1:9"
	}
	m, err := sim.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	return m, Open(t, m, opts)
}

// Open opens m's AT port (again, after a Swap or Replug) and prepares the module: AT until it
// answers, then ATE0 and AT+CMEE=1, then AT+CPIN? until the SIM is ready (as the daemon does, for
// a SIM that is busy for a while after RDY) — unless m has no SIM.
func Open(t testing.TB, m *sim.Module, opts at.Options) *at.Conn {
	t.Helper()
	p, err := port.Open(context.Background(), m.Path(), 115200)
	if err != nil {
		t.Fatal(err)
	}
	conn := at.New(p, opts)
	t.Cleanup(func() { conn.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	mod := modem.New(conn)
	if err := mod.Sync(ctx, 200*time.Millisecond); err != nil {
		t.Fatalf("Sync: %v", err)
	}
	if err := mod.Prepare(ctx); err != nil {
		t.Fatalf("Prepare: %v", err)
	}
	for {
		state, err := mod.SIMState(ctx)
		if err == nil && state == "READY" {
			break
		}
		var cme *at.CMEError
		if errors.As(err, &cme) && cme.Code == 10 {
			break // no SIM: what the test wants
		}
		if ctx.Err() != nil {
			t.Fatalf("the SIM was not ready in 10 s: %q, %v", state, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	return conn
}
