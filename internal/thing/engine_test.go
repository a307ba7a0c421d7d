package thing

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/gatewayd/gatewayd/internal/backoff"
)

// switchPublisher is a fake publish path that is offline until told otherwise, and records
// what it took, in order.
type switchPublisher struct {
	mu     sync.Mutex
	online bool
	tries  int
	took   []Message
	got    chan struct{}
}

func (p *switchPublisher) Publish(_ context.Context, m Message) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.tries++
	if !p.online {
		return ErrOffline
	}
	p.took = append(p.took, m)
	p.got <- struct{}{}
	return nil
}

// await waits until the publisher has taken n more messages.
func (p *switchPublisher) await(t *testing.T, n int) {
	t.Helper()
	for range n {
		select {
		case <-p.got:
		case <-time.After(10 * time.Second):
			p.mu.Lock()
			defer p.mu.Unlock()
			t.Fatalf("only %d sent", len(p.took))
		}
	}
}

// TestOfflineReportsArriveInOrder: what is reported and replied while there is no session is
// sent at the next connect, in the order it was made.
func TestOfflineReportsArriveInOrder(t *testing.T) {
	d, _ := New("aliyun", testTopics["aliyun"])
	pub := &switchPublisher{got: make(chan struct{}, 100)}
	led := &fakeLED{known: true}
	e := NewEngine(d, Config{Property: "LED", Backoff: backoff.Policy{Initial: time.Hour, Max: time.Hour, Factor: 2}},
		led, pub, func() any { return nil }, func() Telemetry { return Telemetry{} }, zerolog.Nop())
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go e.Run(ctx)
	for i := range 3 {
		e.Handle(testTopics["aliyun"].Set, []byte(fmt.Sprintf(`{"id":"%d","params":{"LED":%d}}`, i, (i+1)%2)))
	}
	// Once the first attempt failed offline, the back-off is an hour: only the connect can send now.
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(time.Millisecond) {
		pub.mu.Lock()
		tried := pub.tries > 0
		pub.mu.Unlock()
		if tried {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the engine never tried to publish")
		}
	}
	pub.mu.Lock()
	pub.online = true
	pub.mu.Unlock()
	e.Connected()
	pub.await(t, 5) // 3 replies, 1 report of the LED (standing for the 3 changes), 1 report at connect
	pub.mu.Lock()
	defer pub.mu.Unlock()
	// The LED's report, queued after the first reply, is written when sent: with the state the
	// last set left (1), and the id it was given when queued (2), before the connect's (5).
	want := []string{
		`{"id":"0","code":200,"data":{}}`, `{"id":"2","version":"1.0","params":{"LED":1},"method":"thing.event.property.post"}`,
		`{"id":"1","code":200,"data":{}}`, `{"id":"2","code":200,"data":{}}`,
		`{"id":"5","version":"1.0","params":{"LED":1},"method":"thing.event.property.post"}`,
	}
	for i, w := range want {
		if string(pub.took[i].Payload) != w {
			t.Errorf("message %d: %s, want %s", i, pub.took[i].Payload, w)
		}
	}
	if st := e.Stats(); st.Replies != 3 || st.Reports != 2 || st.PublishRetries == 0 {
		t.Errorf("stats %+v", st)
	}
}

// TestBlinkRestoresTheProperty: blink flashes the LED the number of times asked, then leaves it
// as the property set it; a second blink meanwhile is refused as busy.
func TestBlinkRestoresTheProperty(t *testing.T) {
	d, _ := New("thingsboard", testTopics["thingsboard"])
	led := &fakeLED{known: true}
	e := NewEngine(d, Config{Property: "LEDSwitch", BlinkPeriod: 20 * time.Millisecond}, led, nil,
		func() any { return nil }, func() Telemetry { return Telemetry{} }, zerolog.Nop())
	e.Handle("v1/devices/me/attributes", []byte(`{"LEDSwitch":true}`))
	e.Handle("v1/devices/me/rpc/request/1", []byte(`{"method":"blink","params":{"times":3}}`))
	e.Handle("v1/devices/me/rpc/request/2", []byte(`{"method":"blink","params":2}`))
	deadline := time.Now().Add(10 * time.Second)
	for e.blinking.Load() && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if on, _ := led.LEDState(); !on {
		t.Error("LED off after the blink; the property says on")
	}
	if led.changes != 1+6 { // the set, then 3 off/on pairs
		t.Errorf("%d changes, want 7", led.changes)
	}
	var replies []string
	for _, o := range drained(e) {
		if o.kind == "reply" {
			replies = append(replies, string(o.m.Payload))
		}
	}
	if len(replies) != 2 || replies[0] != `{"times":3}` || replies[1] != `{"error":"already blinking: device busy"}` {
		t.Errorf("replies %q", replies)
	}
}

// TestUnboundEngineWaitsForRebind: an engine whose topics are templates (a registering device)
// neither handles nor reports until Rebind gives it the device's own topics; from then on a set
// on them is handled and answered, and reports go there.
func TestUnboundEngineWaitsForRebind(t *testing.T) {
	tmpl := Topics{Set: "/sys/pk/{device_name}/thing/service/property/set", SetReply: "/sys/pk/{device_name}/thing/service/property/set_reply",
		Report: "/sys/pk/{device_name}/thing/event/property/post"}
	if !tmpl.Contains("{device_name}") || (Topics{Set: "/a"}).Contains("{device_name}") {
		t.Fatal("Contains")
	}
	d, _ := New("aliyun", tmpl)
	pub := &switchPublisher{online: true, got: make(chan struct{}, 100)}
	led := &fakeLED{known: true}
	e := NewEngine(d, Config{Property: "LED", Unbound: true}, led, pub, func() any { return nil }, func() Telemetry { return Telemetry{} }, zerolog.Nop())
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go e.Run(ctx)
	own := tmpl.Fill(strings.NewReplacer("{device_name}", "dev1"))
	if own.Set != "/sys/pk/dev1/thing/service/property/set" || own.Report != "/sys/pk/dev1/thing/event/property/post" {
		t.Fatalf("filled %+v", own)
	}
	// Neither on the device's topic nor on the template's own, which the unbound dialect would
	// parse: only the engine's being unbound stops that one.
	for _, topic := range []string{own.Set, tmpl.Set} {
		if e.Handle(topic, []byte(`{"id":"1","params":{"LED":1}}`)) {
			t.Errorf("an unbound engine handled a set on %s", topic)
		}
	}
	e.Connected()
	bd, _ := New("aliyun", own)
	e.Rebind(bd)
	if !e.Handle(own.Set, []byte(`{"id":"2","params":{"LED":1}}`)) {
		t.Fatal("the rebound engine did not handle a set on the device's topic")
	}
	e.Connected()
	pub.await(t, 3) // the reply, the LED's report after the change, the report at connect
	pub.mu.Lock()
	defer pub.mu.Unlock()
	if pub.took[0].Topic != own.SetReply || string(pub.took[0].Payload) != `{"id":"2","code":200,"data":{}}` {
		t.Errorf("first message %s %s, want the reply to id 2 on the device's set_reply", pub.took[0].Topic, pub.took[0].Payload)
	}
	for _, m := range pub.took {
		if strings.Contains(m.Topic, "{") {
			t.Errorf("published on the template %s", m.Topic)
		}
	}
	if len(pub.took) != 3 {
		t.Errorf("%d messages, want 3 (nothing from before the rebind)", len(pub.took))
	}
}
