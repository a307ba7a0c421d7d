package drain_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"github.com/rs/zerolog"

	"github.com/gatewayd/gatewayd/at"
	"github.com/gatewayd/gatewayd/internal/drain"
	"github.com/gatewayd/gatewayd/qmt"
	"github.com/gatewayd/gatewayd/sim"
	"github.com/gatewayd/gatewayd/test/simtest"
)

// TestLostPUBACKThroughTheEmulator: the emulated module loses the PUBACK of one QoS 1 publish
// and reports +QMTPUBEX: 0,<id>,1,1 after a packet timeout, then +QMTPUBEX: 0,<id>,2, while the
// link stays up. The drainer sends that message again (the cloud may get it twice), delivers
// everything, empties the store and keeps its window (issue 12.4): the failure comes while
// others are in flight, which the drainer took for a module that cannot pipeline.
func TestLostPUBACKThroughTheEmulator(t *testing.T) {
	b, err := sim.NewBroker("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	mod, conn := simtest.Start(t, sim.Config{Broker: b.Addr(), SIMBusy: -1}, at.Options{URCs: qmt.URCs()})
	e := &emulated{mod: mod, arrive: make(chan struct{}, 1024)}
	cloud := paho.NewClient(paho.NewClientOptions().AddBroker("tcp://" + b.Addr()).SetClientID("cloud").SetAutoReconnect(false))
	if tok := cloud.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("cloud connect: %v", tok.Error())
	}
	t.Cleanup(func() { cloud.Disconnect(0) })
	tok := cloud.Subscribe(upTopic, 1, func(_ paho.Client, m paho.Message) {
		e.mu.Lock()
		e.got = append(e.got, string(m.Payload()))
		e.mu.Unlock()
		e.arrive <- struct{}{}
	})
	if !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("cloud subscribe: %v", tok.Error())
	}
	e.client = qmt.NewClient(conn, 0)
	t.Cleanup(e.client.Close)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := e.client.Configure(ctx, qmt.Config{CleanSession: true, PacketTimeout: time.Second, Retries: 1}); err != nil {
		t.Fatal(err)
	}
	if err := e.client.Open(ctx, "broker.example.com", 1883); err != nil {
		t.Fatal(err)
	}
	if err := e.client.Connect(ctx, "lost-puback", "", ""); err != nil {
		t.Fatal(err)
	}

	store := openStore(t)
	const n = 60
	for i := range n {
		if _, err := store.Put(upTopic, []byte(fmt.Sprintf("m%05d", i)), 1, false); err != nil {
			t.Fatal(err)
		}
	}
	mod.LosePUBACK(1)                          // the first message's
	mod.SetBrokerDelay(300 * time.Millisecond) // others are still in flight when it fails
	d := drain.New(store, drain.Options{Window: 8, Retry: drain.DefaultRetry}, zerolog.Nop())
	rctx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- d.Run(rctx, e.client) }()
	got := e.waitFor(t, n+1) // all, and the first one a second time
	for deadline := time.Now().Add(10 * time.Second); store.Stats().Messages > 0; {
		if time.Now().After(deadline) {
			t.Fatalf("%d messages still stored", store.Stats().Messages)
		}
		time.Sleep(10 * time.Millisecond)
	}
	stop()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	seen := map[string]int{}
	for _, m := range got {
		seen[m]++
	}
	if len(seen) != n || seen["m00000"] != 2 {
		t.Fatalf("the cloud got %q: want each of %d once and m00000 twice", got, n)
	}
	if ds := d.Stats(); ds.Window != 8 || ds.Shrunk != 0 || ds.Undelivered != 1 {
		t.Fatalf("drain stats %+v: want the window kept", ds)
	}
	if st := store.Stats(); st.DuplicatesPossible != 1 {
		t.Fatalf("store stats %+v: want one possible duplicate", st)
	}
}
