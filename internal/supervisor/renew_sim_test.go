package supervisor

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/gatewayd/gatewayd/internal/cloud"
	"github.com/gatewayd/gatewayd/internal/port"
	"github.com/gatewayd/gatewayd/sim"
	"github.com/gatewayd/gatewayd/test/testutil"
)

// TestRenewalAgainstTheCheckingBroker: a Tencent session with the shortest lifetime (10 s)
// against the emulator and a broker that checks Tencent signatures and refuses expired ones:
// at 9 s the session is renewed — a clean DISCONNECT, then a CONNECT whose expiry is later —
// logged as token_renewed, with no failure, and the session is up again.
func TestRenewalAgainstTheCheckingBroker(t *testing.T) {
	var mu sync.Mutex
	var events []sim.BrokerEvent
	b, err := sim.NewBroker("127.0.0.1:0",
		sim.WithPlatform(sim.PlatformTencent, sim.Device{ID: "1A17RZR3XX/gate_dev01", Secret: "MTIzNDU2Nzg5MGFiY2RlZg=="}),
		sim.WithEvents(func(e sim.BrokerEvent) { mu.Lock(); events = append(events, e); mu.Unlock() }))
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	mod, err := sim.New(sim.Config{Link: filepath.Join(t.TempDir(), "ec600-at"), Broker: b.Addr()})
	if err != nil {
		t.Fatal(err)
	}
	if err := mod.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	defer mod.Close()
	p, err := cloud.New("tencent", cloud.Settings{Values: map[string]any{
		"product_id": "1A17RZR3XX", "device_name": "gate_dev01", "device_secret": "MTIzNDU2Nzg5MGFiY2RlZg==",
		"lifetime": 10 * time.Second,
	}})
	if err != nil {
		t.Fatal(err)
	}
	var logBuf testutil.SyncBuffer
	set := Settings{
		OpenPort: func(ctx context.Context) (io.ReadWriteCloser, error) { return port.Open(ctx, mod.Path(), 115200) },
		PortName: mod.Path(),
		Host:     p.Endpoint().Host,
		Port:     p.Endpoint().Port,
		Platform: p,
	}
	set.MQTT.KeepAlive = 60 * time.Second
	sup := New(set, zerolog.New(&logBuf), nopLED{}, nil)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- sup.Run(ctx) }()
	defer func() { cancel(); <-done }()

	deadline := time.Now().Add(40 * time.Second)
	for {
		mu.Lock()
		n := len(events)
		mu.Unlock()
		if n >= 3 && strings.Contains(logBuf.String(), `"token_renewed"`) && sup.Status().Connected {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no renewal in 40 s; broker events %+v; log:\n%s", events, logBuf.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
	mu.Lock()
	ev := append([]sim.BrokerEvent(nil), events...)
	mu.Unlock()
	if ev[0].Kind != "connect" || ev[1].Kind != "disconnect" || ev[2].Kind != "connect" {
		t.Fatalf("broker saw %+v, want connect, a clean disconnect, connect", ev)
	}
	if !ev[2].Expires.After(ev[0].Expires) {
		t.Errorf("the new CONNECT expires %s, not after the first's %s", ev[2].Expires, ev[0].Expires)
	}
	if ev[1].At.After(ev[0].Expires) {
		t.Errorf("disconnected at %s, after the password expired at %s", ev[1].At, ev[0].Expires)
	}
	st := sup.Status()
	if st.Renewals != 1 || st.Attempt != 0 || st.LastError != "" {
		t.Errorf("status after the renewal: renewals %d, attempt %d, last error %q", st.Renewals, st.Attempt, st.LastError)
	}
	sc := bufio.NewScanner(strings.NewReader(logBuf.String()))
	for sc.Scan() {
		var e map[string]any
		if json.Unmarshal(sc.Bytes(), &e) != nil {
			continue
		}
		switch e["event"] {
		case "mqtt_connect_failed", "bringup_failed":
			t.Errorf("a failure was logged: %s", sc.Text())
		case "mqtt_disconnected":
			if e["reason"] != "renewing the password" {
				t.Errorf("an unplanned disconnect: %s", sc.Text())
			}
		}
	}
}
