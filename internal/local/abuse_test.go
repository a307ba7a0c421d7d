package local

// Local clients that misbehave: what each may cost the gateway, and what the others see.

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"runtime"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"github.com/mochi-mqtt/server/v2/packets"
	"github.com/rs/zerolog"

	"github.com/gatewayd/gatewayd/internal/outbox"
	"github.com/gatewayd/gatewayd/test/testutil"
)

func connectPacket(t testing.TB, id string, keepalive uint16) []byte {
	return testutil.EncodeMQTT(t, packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Connect},
		Connect: packets.ConnectParams{ProtocolName: []byte("MQTT"), Clean: true, Keepalive: keepalive, ClientIdentifier: id}})
}

// stuckSubscriber connects over a raw socket, subscribes to filter at QoS 1, reads its SUBACK
// and then never reads again.
func stuckSubscriber(t testing.TB, addr, id, filter string) net.Conn {
	t.Helper()
	c := testutil.DialSmall(t, addr)
	if _, err := c.Write(connectPacket(t, id, 0)); err != nil {
		t.Fatal(err)
	}
	sub := testutil.EncodeMQTT(t, packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Subscribe, Qos: 1}, PacketID: 1,
		Filters: packets.Subscriptions{{Filter: filter, Qos: 1}}})
	if _, err := c.Write(sub); err != nil {
		t.Fatal(err)
	}
	// CONNACK (4 bytes) and SUBACK (5 bytes): read exactly these, nothing more.
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, 9)
	if _, err := io.ReadFull(c, buf); err != nil || buf[0] != 0x20 || buf[3] != 0 || buf[4] != 0x90 {
		t.Fatalf("CONNACK+SUBACK: %x %v", buf, err)
	}
	return c
}

func TestStuckSubscriberHoldsUpNeitherDeliverNorOtherSubscribers(t *testing.T) {
	lb := &testutil.SyncBuffer{}
	e, url := start(t, Config{writeTimeout: time.Second, queueLen: 4096, queueBytes: 64 << 20}, newStore(t, outbox.Config{}), lb)
	addr := strings.TrimPrefix(url, "tcp://")
	stuckSubscriber(t, addr, "stuck", "dn/#")
	wait := testutil.Collect(t, dial(t, url, "healthy", nil), "dn/#")

	// 300 × 2 KiB: far more than the stuck client's socket and its kernel buffers hold (about
	// 130 KiB).
	const n = 300
	payload := strings.Repeat("x", 2000)
	var slowest time.Duration
	for i := range n {
		start := time.Now()
		if err := e.Deliver("dn/set", []byte(fmt.Sprintf("%04d%s", i, payload))); err != nil {
			t.Fatalf("Deliver %d: %v", i, err)
		}
		slowest = max(slowest, time.Since(start))
		time.Sleep(200 * time.Microsecond)
	}
	got := wait(n)
	for i, m := range got[:n] {
		if m[:4] != fmt.Sprintf("%04d", i) {
			t.Fatalf("healthy subscriber: message %d is %q…, out of order", i, m[:4])
		}
	}
	if slowest > 2*time.Second {
		t.Errorf("a Deliver took %v: it waited for a client", slowest)
	}
	for deadline := time.Now().Add(10 * time.Second); !strings.Contains(lb.String(), `"event":"local_slow_client"`); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the stuck client was not disconnected; stats %+v", e.Stats())
		}
	}
	st := e.Stats()
	if st.SlowClients != 1 || st.Lost == 0 || st.Delivered != n || st.DeliverDropped != 0 {
		t.Fatalf("stats %+v", st)
	}
	if !strings.Contains(lb.String(), `"event":"local_slow_client"`) || !strings.Contains(lb.String(), `"client_id":"stuck"`) {
		t.Fatalf("no local_slow_client line naming the client:\n%s", lb)
	}
	t.Logf("slowest Deliver %v; stuck client lost %d copies", slowest, st.Lost)
}

func TestSlowButReadingSubscriberIsKept(t *testing.T) {
	e, url := start(t, Config{writeTimeout: 2 * time.Second, queueLen: 4096}, newStore(t, outbox.Config{}), nil)
	var mu sync.Mutex
	got := 0
	c := dial(t, url, "slow", nil)
	tok := c.Subscribe("dn/#", 1, func(paho.Client, paho.Message) {
		time.Sleep(2 * time.Millisecond) // a slow consumer, but one that reads
		mu.Lock()
		got++
		mu.Unlock()
	})
	if !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatal(tok.Error())
	}
	for range 200 {
		if err := e.Deliver("dn/set", bytes.Repeat([]byte("y"), 1000)); err != nil {
			t.Fatal(err)
		}
	}
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		mu.Lock()
		n := got
		mu.Unlock()
		if n == 200 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("got %d of 200", n)
		}
	}
	if st := e.Stats(); st.SlowClients != 0 || st.Lost != 0 {
		t.Fatalf("stats %+v", st)
	}
}

func TestDeliverQueueIsBoundedAndDropsAreCountedAndThrottled(t *testing.T) {
	lb := &testutil.SyncBuffer{}
	// Not running: nothing drains the queue.
	e, err := New(Config{Listen: "127.0.0.1:0", queueLen: 4, queueBytes: 1 << 20}, newStore(t, outbox.Config{}), nil, zerolog.New(lb))
	if err != nil {
		t.Fatal(err)
	}
	for i := range 4 {
		if err := e.Deliver("dn/a", []byte("x")); err != nil {
			t.Fatalf("Deliver %d: %v", i, err)
		}
	}
	for range 100 {
		if err := e.Deliver("dn/a", []byte("x")); !errors.Is(err, ErrQueueFull) {
			t.Fatalf("Deliver into a full queue: %v", err)
		}
	}
	if st := e.Stats(); st.DeliverDropped != 100 {
		t.Fatalf("stats %+v", st)
	}
	if n := strings.Count(lb.String(), `"event":"local_deliver_dropped"`); n != logBurst {
		t.Fatalf("%d log lines for 100 drops, want %d (then throttled):\n%s", n, logBurst, lb)
	}

	// In bytes too.
	e2, err := New(Config{Listen: "127.0.0.1:0", queueLen: 100, queueBytes: 1000}, newStore(t, outbox.Config{}), nil, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	if err := e2.Deliver("dn/a", bytes.Repeat([]byte("x"), 800)); err != nil {
		t.Fatal(err)
	}
	if err := e2.Deliver("dn/a", bytes.Repeat([]byte("x"), 200)); !errors.Is(err, ErrQueueFull) {
		t.Fatalf("Deliver past the byte bound: %v", err)
	}
	if err := e2.Deliver("dn/a", bytes.Repeat([]byte("x"), 50)); err != nil {
		t.Fatalf("a small one still fits: %v", err)
	}
}

func TestDeliverKeepsNoReferenceToThePayload(t *testing.T) {
	e, url := start(t, Config{}, newStore(t, outbox.Config{}), nil)
	wait := testutil.Collect(t, dial(t, url, "sub", nil), "dn/#")
	p := []byte("original")
	if err := e.Deliver("dn/a", p); err != nil {
		t.Fatal(err)
	}
	copy(p, "CHANGED!")
	if got := wait(1); got[0] != "original" {
		t.Fatalf("got %q", got[0])
	}
}

// readClosed waits up to d for c to be closed by the other end.
func readClosed(t *testing.T, c net.Conn, d time.Duration) time.Duration {
	t.Helper()
	start := time.Now()
	_ = c.SetReadDeadline(time.Now().Add(d))
	buf := make([]byte, 64)
	for {
		_, err := c.Read(buf)
		if err == nil {
			continue
		}
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			t.Fatalf("the connection was still open after %v", d)
		}
		return time.Since(start)
	}
}

func TestConnectionWithoutCONNECTIsClosedAfterTheDeadline(t *testing.T) {
	e, url := start(t, Config{connectTimeout: 300 * time.Millisecond}, newStore(t, outbox.Config{}), nil)
	addr := strings.TrimPrefix(url, "tcp://")
	opened := time.Now()
	idle := testutil.DialSmall(t, addr)
	half := testutil.DialSmall(t, addr)
	if _, err := half.Write(connectPacket(t, "half", 0)[:6]); err != nil {
		t.Fatal(err)
	}
	for _, c := range []net.Conn{idle, half} {
		readClosed(t, c, 5*time.Second)
		if took := time.Since(opened); took < 250*time.Millisecond {
			t.Errorf("closed after %v, before the deadline", took)
		}
	}
	for deadline := time.Now().Add(5 * time.Second); e.Stats().ConnTimedOut != 2; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("stats %+v", e.Stats())
		}
	}
}

func TestKeepaliveZeroClientOutlivesTheConnectDeadline(t *testing.T) {
	s := newStore(t, outbox.Config{})
	_, url := start(t, Config{connectTimeout: 200 * time.Millisecond, Forward: []Forward{{Topic: "up/#", QoS: 1}}}, s, nil)
	c := dial(t, url, "idle-ok", func(o *paho.ClientOptions) { o.SetKeepAlive(0) })
	time.Sleep(time.Second)
	publish(t, c, "up/a", 1, "still here")
	if ms := stored(t, s); len(ms) != 1 {
		t.Fatalf("stored %+v", ms)
	}
}

func TestOversizedPacketIsRefusedBeforeItIsRead(t *testing.T) {
	e, url := start(t, Config{}, newStore(t, outbox.Config{}), nil)
	addr := strings.TrimPrefix(url, "tcp://")
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	c := testutil.DialSmall(t, addr)
	// A CONNECT fixed header claiming 128 MiB, and a little of its body.
	hdr := []byte{0x10, 0x80, 0x80, 0x80, 0x40, 0, 4, 'M', 'Q', 'T', 'T'}
	if _, err := c.Write(hdr); err != nil {
		t.Fatal(err)
	}
	readClosed(t, c, 5*time.Second)
	runtime.ReadMemStats(&after)
	if grew := after.TotalAlloc - before.TotalAlloc; grew > 8<<20 {
		t.Errorf("allocated %d bytes for a refused 128 MiB CONNECT", grew)
	}
	// After CONNECT too: a publish over MaxPacket ends the connection.
	lost := make(chan error, 1)
	p := dial(t, url, "big", func(o *paho.ClientOptions) {
		o.SetConnectionLostHandler(func(_ paho.Client, err error) { lost <- err })
	})
	p.Publish("a/b", 0, false, bytes.Repeat([]byte("z"), (Config{}).MaxPacket()))
	select {
	case <-lost:
	case <-time.After(10 * time.Second):
		t.Fatal("a packet over the limit did not end the connection")
	}
	for deadline := time.Now().Add(5 * time.Second); e.Stats().TooLarge != 2; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("stats %+v", e.Stats())
		}
	}
	if got := (Config{}).MaxPacket(); got != 6144 {
		t.Errorf("MaxPacket with the defaults = %d; the README says 6,144", got)
	}
}

func TestMQTT5ClientIsToldTheMaximumPacketSize(t *testing.T) {
	_, url := start(t, Config{}, newStore(t, outbox.Config{}), nil)
	c, err := net.Dial("tcp", strings.TrimPrefix(url, "tcp://"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	v := &v5Conn{c: c, r: bufio.NewReader(c)}
	v.write(t, testutil.EncodeMQTT(t, packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Connect}, ProtocolVersion: 5,
		Connect: packets.ConnectParams{ProtocolName: []byte("MQTT"), Clean: true, Keepalive: 30, ClientIdentifier: "v5"}}))
	typ, body := v.read(t)
	pk := packets.Packet{ProtocolVersion: 5, FixedHeader: packets.FixedHeader{Type: typ}}
	if err := pk.ConnackDecode(body); err != nil || typ != packets.Connack {
		t.Fatalf("CONNACK: type %d, %v", typ, err)
	}
	if want := uint32((Config{}).MaxPacket()); pk.Properties.MaximumPacketSize != want {
		t.Fatalf("CONNACK maximum packet size %d, want %d", pk.Properties.MaximumPacketSize, want)
	}
}

func TestMaxClients(t *testing.T) {
	e, url := start(t, Config{MaxClients: 2}, newStore(t, outbox.Config{}), nil)
	dial(t, url, "one", nil)
	dial(t, url, "two", nil)
	third := paho.NewClient(paho.NewClientOptions().AddBroker(url).SetClientID("three").SetProtocolVersion(4).SetAutoReconnect(false))
	tok := third.Connect()
	if !tok.WaitTimeout(10*time.Second) || tok.Error() == nil {
		third.Disconnect(0)
		t.Fatal("a third client was accepted with max_clients 2")
	}
	if !strings.Contains(strings.ToLower(tok.Error().Error()), "unavailable") {
		t.Errorf("the third client saw %v; want CONNACK server unavailable", tok.Error())
	}
	// Connections that have not sent their CONNECT: as many again, then closed at once.
	addr := strings.TrimPrefix(url, "tcp://")
	for range 2 {
		testutil.DialSmall(t, addr)
	}
	for deadline := time.Now().Add(5 * time.Second); openConns(e) < 4; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%d connections open, want 4", openConns(e))
		}
	}
	if took := readClosed(t, testutil.DialSmall(t, addr), 5*time.Second); took > time.Second {
		t.Errorf("the connection past 2 × max_clients was closed after %v", took)
	}
	for deadline := time.Now().Add(5 * time.Second); e.Stats().ConnRefused != 2; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("stats %+v", e.Stats())
		}
	}
}

func openConns(e *Endpoint) int {
	e.connMu.Lock()
	defer e.connMu.Unlock()
	return len(e.conns)
}

func TestRunReturnsPromptlyWhateverClientsDo(t *testing.T) {
	e, err := New(Config{Listen: "127.0.0.1:0"}, newStore(t, outbox.Config{}), nil, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- e.Run(ctx) }()
	addr := e.Addrs()[0].String()
	testutil.DialSmall(t, addr) // idle
	half := testutil.DialSmall(t, addr)
	if _, err := half.Write(connectPacket(t, "half", 0)[:5]); err != nil {
		t.Fatal(err)
	}
	stuckSubscriber(t, addr, "stuck", "#")
	for range 200 {
		_ = e.Deliver("dn/x", bytes.Repeat([]byte("q"), 4000))
	}
	dial(t, "tcp://"+addr, "fine", nil)
	time.Sleep(200 * time.Millisecond)
	start := time.Now()
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("Run returned %v after ctx ended", time.Since(start))
	case <-time.After(4 * time.Second):
		t.Fatal("Run did not return within 4 s of ctx ending")
	}
}

func TestRetainedMessagesAreBounded(t *testing.T) {
	s := newStore(t, outbox.Config{})
	lb := &testutil.SyncBuffer{}
	e, url := start(t, Config{MaxRetained: 3, MaxRetainedBytes: 100, Forward: []Forward{{Topic: "up/#", QoS: 1}}}, s, lb)
	c := dial(t, url, "pub", nil)
	retain := func(topic, payload string) {
		t.Helper()
		tok := c.Publish(topic, 1, true, payload)
		if !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
			t.Fatalf("publish: %v", tok.Error())
		}
	}
	retain("r/1", "a")
	retain("r/2", "b")
	retain("up/3", "c")
	retain("r/4", "d")                      // a fourth topic: not retained, acknowledged
	retain("up/5", "e")                     // nor this one, but it is forwarded, retain flag and all
	retain("r/1", "A")                      // replacing one: fine
	retain("r/2", strings.Repeat("B", 200)) // past the bytes: not retained, r/2 keeps "b"
	if st := e.Stats(); st.Retained != 3 || st.RetainRefused != 3 {
		t.Fatalf("stats %+v", st)
	}
	if ms := stored(t, s); len(ms) != 2 || ms[1].Topic != "up/5" || !ms[1].Retain {
		t.Fatalf("forwarded %+v", ms)
	}
	// mochi sends a PUBACK before it fans the message out, but handles a client's packets in turn:
	// once this one is acknowledged, every message before it has been fanned out.
	publish(t, c, "sync", 1, "x")
	late := testutil.Collect(t, dial(t, url, "late", nil), "+/+") // all the retained topics, not "sync"
	late(3)
	time.Sleep(100 * time.Millisecond)
	all := late(3)
	sort.Strings(all)
	if strings.Join(all, ",") != "A,b,c" {
		t.Fatalf("a new subscriber got %q, want the 3 retained A, b, c", all)
	}
	retain("r/1", "") // a deletion always goes through, and makes room
	retain("r/4", "d")
	if st := e.Stats(); st.Retained != 3 || st.RetainRefused != 3 {
		t.Fatalf("after delete and add: stats %+v", st)
	}
	if !strings.Contains(lb.String(), `"event":"local_retain_refused"`) {
		t.Fatalf("no log line:\n%s", lb)
	}

	// MQTT 5, QoS 1: told so, and the message goes nowhere.
	v := dialV5(t, strings.TrimPrefix(url, "tcp://"))
	var b bytes.Buffer
	pk := packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Publish, Qos: 1, Retain: true}, ProtocolVersion: 5,
		TopicName: "up/6", PacketID: 7, Payload: []byte("f")}
	if err := pk.PublishEncode(&b); err != nil {
		t.Fatal(err)
	}
	v.write(t, b.Bytes())
	typ, body := v.read(t)
	if typ != packets.Puback || len(body) < 3 || body[2] != packets.ErrQuotaExceeded.Code {
		t.Fatalf("PUBACK: type %d body %x, want reason 0x97", typ, body)
	}
	if ms := stored(t, s); len(ms) != 2 {
		t.Fatalf("a refused MQTT 5 publish was forwarded: %+v", ms)
	}
}

func TestRetainedWillIsBounded(t *testing.T) {
	e, url := start(t, Config{MaxRetained: 1}, newStore(t, outbox.Config{}), nil)
	c := dial(t, url, "pub", nil)
	if tok := c.Publish("r/1", 1, true, "a"); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatal(tok.Error())
	}
	conn, err := net.Dial("tcp", strings.TrimPrefix(url, "tcp://"))
	if err != nil {
		t.Fatal(err)
	}
	will := testutil.EncodeMQTT(t, packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Connect},
		Connect: packets.ConnectParams{ProtocolName: []byte("MQTT"), Clean: true, Keepalive: 30, ClientIdentifier: "dies",
			WillFlag: true, WillTopic: "r/will", WillPayload: []byte("gone"), WillRetain: true}})
	if _, err := conn.Write(will); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 4)
	if _, err := io.ReadFull(conn, buf); err != nil || buf[3] != 0 {
		t.Fatalf("CONNACK %x %v", buf, err)
	}
	conn.Close() // no DISCONNECT: the will is published
	for deadline := time.Now().Add(5 * time.Second); e.Stats().RetainRefused != 1; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("stats %+v", e.Stats())
		}
	}
	if st := e.Stats(); st.Retained != 1 {
		t.Fatalf("stats %+v", st)
	}
}

func TestLongTopicIsNotForwarded(t *testing.T) {
	s := newStore(t, outbox.Config{})
	e, url := start(t, Config{MaxTopic: 16, Forward: []Forward{{Topic: "up/#", QoS: 1}}}, s, nil)
	c := dial(t, url, "pub", nil)
	publish(t, c, "up/"+strings.Repeat("t", 14), 1, "x") // 17 bytes: acknowledged, not stored
	publish(t, c, "up/"+strings.Repeat("t", 13), 1, "y") // 16: stored
	if ms := stored(t, s); len(ms) != 1 || string(ms[0].Payload) != "y" {
		t.Fatalf("stored %+v", ms)
	}
	v := dialV5(t, strings.TrimPrefix(url, "tcp://"))
	if rc := v.publish(t, 1, "up/"+strings.Repeat("t", 20), []byte("z")); rc != packets.ErrTopicNameInvalid.Code {
		t.Fatalf("MQTT 5: reason %#x, want %#x", rc, packets.ErrTopicNameInvalid.Code)
	}
	if st := e.Stats(); st.NotForwarded != 2 {
		t.Fatalf("stats %+v", st)
	}
}

func TestUnsendableFloodIsThrottledInTheLog(t *testing.T) {
	lb := &testutil.SyncBuffer{}
	e, url := start(t, Config{Forward: []Forward{{Topic: "up/#", QoS: 0}}}, newStore(t, outbox.Config{}), lb)
	c := dial(t, url, "pub", nil)
	for range 200 {
		c.Publish("up/empty", 0, false, "")
	}
	publish(t, c, "sync", 1, "x")
	if st := e.Stats(); st.NotForwarded != 200 {
		t.Fatalf("stats %+v", st)
	}
	if n := strings.Count(lb.String(), `"event":"local_not_forwarded"`); n != logBurst {
		t.Fatalf("%d lines for 200, want %d", n, logBurst)
	}
}

// The lines a flood did not get are counted in one line of their own about logEvery later, from
// a timer the flood armed (an endpoint with nothing throttled runs none).
func TestThrottledLinesAreCountedLater(t *testing.T) {
	lb := &testutil.SyncBuffer{}
	e, url := start(t, Config{Forward: []Forward{{Topic: "up/#", QoS: 0}}}, newStore(t, outbox.Config{}), lb)
	c := dial(t, url, "pub", nil)
	for range 50 {
		c.Publish("up/empty", 0, false, "")
	}
	publish(t, c, "sync", 1, "x")
	if st := e.Stats(); st.NotForwarded != 50 {
		t.Fatalf("stats %+v", st)
	}
	want := fmt.Sprintf(`"event":"local_not_forwarded","total":50,"suppressed":%d`, 50-logBurst)
	deadline := time.Now().Add(logEvery + 5*time.Second)
	for !strings.Contains(lb.String(), want) {
		if time.Now().After(deadline) {
			t.Fatalf("no line with %s within %v; log:\n%s", want, logEvery+5*time.Second, lb.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestSubscriberThatAcceptsNothingIsDisconnectedAfterTheWriteTimeout(t *testing.T) {
	lb := &testutil.SyncBuffer{}
	e, url := start(t, Config{writeTimeout: 500 * time.Millisecond, writeBudget: 4 << 20, queueLen: 4096}, newStore(t, outbox.Config{}), lb)
	stuckSubscriber(t, strings.TrimPrefix(url, "tcp://"), "stuck", "dn/#")
	// 300 KB: more than the socket buffers hold, much less than the write buffer.
	for range 150 {
		if err := e.Deliver("dn/set", bytes.Repeat([]byte("w"), 2000)); err != nil {
			t.Fatal(err)
		}
	}
	for deadline := time.Now().Add(10 * time.Second); !strings.Contains(lb.String(), `"event":"local_slow_client"`); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("not disconnected; stats %+v", e.Stats())
		}
	}
	if !strings.Contains(lb.String(), `"reason":"read nothing for 500ms"`) {
		t.Fatalf("log:\n%s", lb)
	}
	if st := e.Stats(); st.Lost == 0 || st.Lost > 150 {
		t.Fatalf("stats %+v", st)
	}
}

func TestResumedSessionBacklogMayExceedTheWriteBuffer(t *testing.T) {
	e, url := start(t, Config{writeBudget: 64 << 10, queueLen: 4096}, newStore(t, outbox.Config{}), nil)
	var mu sync.Mutex
	got := 0
	slow := func(paho.Client, paho.Message) {
		time.Sleep(time.Millisecond) // reads, slowly
		mu.Lock()
		got++
		mu.Unlock()
	}
	persistent := func(o *paho.ClientOptions) { o.SetCleanSession(false).SetDefaultPublishHandler(slow) }
	c := dial(t, url, "away", persistent)
	if tok := c.Subscribe("dn/#", 1, nil); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatal(tok.Error())
	}
	c.Disconnect(100)
	for deadline := time.Now().Add(5 * time.Second); e.Stats().Clients != 0; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the client is still connected: %+v", e.Stats())
		}
	}
	// 100 downlinks of 4 kB while it is away: 400 kB wait in its session, far more than its
	// 64 KiB write buffer; all are resent at once when it comes back.
	for range 100 {
		if err := e.Deliver("dn/set", bytes.Repeat([]byte("b"), 4000)); err != nil {
			t.Fatal(err)
		}
	}
	for deadline := time.Now().Add(5 * time.Second); e.Stats().Delivered < 100; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("stats %+v", e.Stats())
		}
	}
	time.Sleep(100 * time.Millisecond)
	dial(t, url, "away", persistent)
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		mu.Lock()
		n := got
		mu.Unlock()
		if n >= 100 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("received %d of the 100 kept for the session; stats %+v", n, e.Stats())
		}
	}
	if st := e.Stats(); st.SlowClients != 0 {
		t.Fatalf("the client taking up its session was disconnected as slow: %+v", st)
	}
}

// TestHealthySubscriberKeepsItsConnectionThroughABurst: downlinks as fast as a module can
// receive them (LTE Cat 1's 10 Mbit/s: 1,250 of 1,000 bytes a second) for 1.6 s, far more than
// the kernel's socket buffers hold, all reach a subscriber that reads, and it stays connected.
// (Faster than that, at memory speed, paho falls behind by more than WriteBudget and
// MaxInflight, which bound what the daemon holds for clients; a module cannot deliver so fast.)
func TestHealthySubscriberKeepsItsConnectionThroughABurst(t *testing.T) {
	e, url := start(t, Config{}, newStore(t, outbox.Config{}), nil)
	wait := testutil.Collect(t, dial(t, url, "reader", nil), "dn/#")
	const n, size, catOne = 2000, 1000, 10e6 / 8 // bytes a second
	payload := bytes.Repeat([]byte("p"), size)
	began := time.Now()
	for i := range n {
		if ahead := time.Until(began.Add(time.Duration(float64(i*size) / catOne * float64(time.Second)))); ahead > 0 {
			time.Sleep(ahead)
		}
		if err := e.Deliver("dn/set", payload); err != nil {
			t.Fatalf("downlink %d: %v", i, err)
		}
	}
	wait(n)
	if st := e.Stats(); st.SlowClients != 0 || st.Lost != 0 {
		t.Fatalf("stats %+v", st)
	}
}

func TestWriteBudgetCutsTheClientWithTheMostWaiting(t *testing.T) {
	lb := &testutil.SyncBuffer{}
	e, url := start(t, Config{writeBudget: 256 << 10, queueLen: 4096}, newStore(t, outbox.Config{}), lb)
	stuckSubscriber(t, strings.TrimPrefix(url, "tcp://"), "stuck", "dn/#")
	// 600 kB: the kernel takes about 130 kB for the stuck client; the rest waits in its buffer
	// and passes the 256 KiB budget long before the 5 s write timeout.
	for range 300 {
		if err := e.Deliver("dn/set", bytes.Repeat([]byte("w"), 2000)); err != nil {
			t.Fatal(err)
		}
	}
	for deadline := time.Now().Add(3 * time.Second); !strings.Contains(lb.String(), `"event":"local_slow_client"`); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("not disconnected within 3 s; stats %+v", e.Stats())
		}
	}
	if !strings.Contains(lb.String(), `"client_id":"stuck","remote"`) || !strings.Contains(lb.String(), "buffers reached 262144 bytes in all") {
		t.Fatalf("log:\n%s", lb)
	}
	if st := e.Stats(); st.SlowClients != 1 {
		t.Fatalf("stats %+v", st)
	}
}
