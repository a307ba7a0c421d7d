package qmt_test

// The Client through the real stack: at.Conn on the EC600 emulator's pty (go.bug.st/serial, as
// the daemon opens it) → the emulator's MQTT client → a real MQTT broker → a cloud-side peer.

import (
	"context"
	"errors"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/gatewayd/gatewayd/at"
	"github.com/gatewayd/gatewayd/qmt"
	"github.com/gatewayd/gatewayd/sim"
	"github.com/gatewayd/gatewayd/test/simtest"
)

// onEmulator is a connected qmt.Client on an emulated module, with a paho peer on its broker.
type onEmulator struct {
	mod    *sim.Module
	client *qmt.Client
	peer   paho.Client
}

// connectOnEmulator starts a broker and an emulated module with cfg, and connects client 0 with
// mcfg.
func connectOnEmulator(t *testing.T, cfg sim.Config, mcfg qmt.Config) *onEmulator {
	t.Helper()
	return connectOnEmulatorWith(t, cfg, mcfg, qmt.Options{})
}

// connectOnEmulatorWith is connectOnEmulator with Client options.
func connectOnEmulatorWith(t *testing.T, cfg sim.Config, mcfg qmt.Config, opts qmt.Options) *onEmulator {
	t.Helper()
	b, err := sim.NewBroker("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	cfg.Broker = b.Addr()
	if cfg.SIMBusy == 0 {
		cfg.SIMBusy = -1 // ready at RDY: these tests are about MQTT
	}
	mod, conn := simtest.Start(t, cfg, at.Options{URCs: qmt.URCs()})
	c := qmt.NewClientWithOptions(conn, 0, opts)
	t.Cleanup(c.Close)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := c.Configure(ctx, mcfg); err != nil {
		t.Fatalf("Configure: %v", err)
	}
	if err := c.Open(ctx, "broker.example.com", 1883); err != nil {
		t.Fatalf("Open: %v", err)
	}
	if err := c.Connect(ctx, "emulated", "", ""); err != nil {
		t.Fatalf("Connect: %v", err)
	}
	peer := paho.NewClient(paho.NewClientOptions().AddBroker("tcp://" + b.Addr()).SetClientID("cloud").SetAutoReconnect(false))
	if tok := peer.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("peer connect: %v", tok.Error())
	}
	t.Cleanup(func() { peer.Disconnect(0) })
	return &onEmulator{mod: mod, client: c, peer: peer}
}

func (e *onEmulator) publish(t *testing.T, topic string, payload string) {
	t.Helper()
	if tok := e.peer.Publish(topic, 0, false, payload); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("peer publish: %v", tok.Error())
	}
}

// TestRawTopicThroughTheEmulator: a downlink topic that holds `"`, CR, LF and lines the module
// could print (RDY, OK) — a real broker passes them — arrives as one message with that exact
// topic; no line inside it restarts the module in the Client's eyes or ends a command, and the
// publish waiting for its acknowledgement meanwhile gets its real result.
func TestRawTopicThroughTheEmulator(t *testing.T) {
	e := connectOnEmulator(t, sim.Config{}, qmt.Config{})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if _, err := e.client.Subscribe(ctx, qmt.Subscription{Topic: "dn/#", QoS: 0}); err != nil {
		t.Fatal(err)
	}
	e.mod.SetBrokerDelay(500 * time.Millisecond)
	done := make(chan error, 1)
	go func() { done <- e.client.Publish(ctx, qmt.Message{Topic: "up", Payload: []byte("x"), QoS: 1}) }()
	topic := "dn/a\"b\r\nRDY\r\n\r\nPOWERED DOWN\r\n\r\nOK\r\n\"c"
	e.publish(t, topic, "p")
	for {
		select {
		case ev := <-e.client.Events():
			switch ev := ev.(type) {
			case qmt.Received:
				if ev.Topic != topic || string(ev.Payload) != "p" {
					t.Fatalf("received %q %q, want topic %q", ev.Topic, ev.Payload, topic)
				}
				if err := <-done; err != nil {
					t.Fatalf("publish in flight: %v", err)
				}
				return
			case qmt.ModuleReady, qmt.PoweredDown, qmt.Unknown, qmt.Malformed:
				t.Fatalf("a line of the topic was read as module output: %v", ev)
			}
		case err := <-done:
			t.Fatalf("publish returned before the downlink was read: %v", err)
		case <-ctx.Done():
			t.Fatal("no downlink")
		}
	}
}

// TestLateResultWithinTheWorstCase: a publish whose result comes after retransmissions — later
// than packet timeout × retries, within packet timeout × (retries+1) — still completes; a result
// later than that is given up on, and the next QoS 0 publish waits for it to pass (issue 12.7).
func TestLateResultWithinTheWorstCase(t *testing.T) {
	e := connectOnEmulatorWith(t, sim.Config{}, qmt.Config{PacketTimeout: time.Second, Retries: 1},
		qmt.Options{Grace: 200 * time.Millisecond})
	ctx := context.Background()
	e.mod.SetResultDelay(1800 * time.Millisecond) // the old wait was 1 s × 1 + grace
	if err := e.client.Publish(ctx, qmt.Message{Topic: "up", Payload: []byte("x"), QoS: 1}); err != nil {
		t.Fatalf("publish with a late result: %v", err)
	}
	e.mod.SetResultDelay(2800 * time.Millisecond) // beyond 1 s × 2 + grace
	err := e.client.Publish(ctx, qmt.Message{Topic: "up", Payload: []byte("y"), QoS: 0})
	if !errors.Is(err, qmt.ErrNoResult) {
		t.Fatalf("publish beyond the worst case: %v, want ErrNoResult", err)
	}
	e.mod.SetResultDelay(0)
	// The first QoS 0 result is still owed: the next QoS 0 publish waits for it, then gets its own.
	if err := e.client.Publish(ctx, qmt.Message{Topic: "up", Payload: []byte("z"), QoS: 0}); err != nil {
		t.Fatalf("QoS 0 publish after a late one: %v", err)
	}
}

// TestUnisocLacksEditTimeout: Unisoc firmware (EC600U) has no "edit/timeout" and refuses it with
// +CME ERROR: 4 under CMEE=1; Configure skips it, ConfigureReport says so, and the session comes
// up (issue 12.6).
func TestUnisocLacksEditTimeout(t *testing.T) {
	e := connectOnEmulator(t, sim.Config{Unisoc: true}, qmt.Config{EditTimeout: 30 * time.Second})
	skipped, err := e.client.ConfigureReport(context.Background(), qmt.Config{EditTimeout: 30 * time.Second})
	var cme *at.CMEError
	if err != nil || len(skipped) != 1 || skipped[0].Setting != "edit/timeout" || !errors.As(skipped[0].Err, &cme) || cme.Code != 4 {
		t.Fatalf("ConfigureReport = %+v, %v; want edit/timeout skipped with +CME ERROR: 4", skipped, err)
	}
	if err := e.client.Publish(context.Background(), qmt.Message{Topic: "up", Payload: []byte("x"), QoS: 1}); err != nil {
		t.Fatalf("publish: %v", err)
	}
}
