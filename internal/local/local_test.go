package local

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gatewayd/gatewayd/test/testutil"

	paho "github.com/eclipse/paho.mqtt.golang"
	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
	"github.com/rs/zerolog"

	"github.com/gatewayd/gatewayd/internal/outbox"
)

func newStore(t testing.TB, cfg outbox.Config) *outbox.Store {
	t.Helper()
	cfg.Dir = t.TempDir()
	s, err := outbox.Open(cfg, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// start runs an endpoint on an ephemeral loopback port and returns it with its broker URL.
func start(t testing.TB, cfg Config, box Outbox, lb *testutil.SyncBuffer) (*Endpoint, string) {
	t.Helper()
	if cfg.Listen == "" && cfg.Socket == "" {
		cfg.Listen = "127.0.0.1:0"
	}
	log := zerolog.Nop()
	if lb != nil {
		log = zerolog.New(lb)
	}
	e, err := New(cfg, box, nil, log)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- e.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	a := e.Addrs()[0]
	if a.Network() == "unix" {
		return e, "unix://" + a.String()
	}
	return e, "tcp://" + a.String()
}

// dial connects a paho client (MQTT 3.1.1).
func dial(t *testing.T, url, id string, tune func(*paho.ClientOptions)) paho.Client {
	t.Helper()
	o := paho.NewClientOptions().AddBroker(url).SetClientID(id).SetAutoReconnect(false).
		SetConnectTimeout(5 * time.Second).SetProtocolVersion(4)
	if tune != nil {
		tune(o)
	}
	c := paho.NewClient(o)
	if tok := c.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("connect %s: %v", id, tok.Error())
	}
	t.Cleanup(func() { c.Disconnect(100) })
	return c
}

func publish(t *testing.T, c paho.Client, topic string, qos byte, payload string) {
	t.Helper()
	tok := c.Publish(topic, qos, false, payload)
	if !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("publish %s: %v", topic, tok.Error())
	}
}

func stored(t *testing.T, s *outbox.Store) []outbox.Message {
	t.Helper()
	ms, err := s.Pending(100)
	if err != nil {
		t.Fatal(err)
	}
	return ms
}

// eventBox is a test wrapper around the real outbox whose messages take 100 ms to become
// durable (a slow SD card), and that records when each Wait has returned, in one ordered list
// with the test's own events.
type eventBox struct {
	box    *outbox.Store
	mu     sync.Mutex
	events []string
}

func (b *eventBox) Append(src *outbox.Source, topic string, payload []byte, qos int, retain bool) (outbox.Ticket, error) {
	return b.box.Append(src, topic, payload, qos, retain)
}

func (b *eventBox) Wait(t outbox.Ticket) error {
	time.Sleep(100 * time.Millisecond)
	err := b.box.Wait(t)
	b.record(fmt.Sprintf("stored %d err=%v", t.Seq(), err))
	return err
}

func (b *eventBox) record(e string) {
	b.mu.Lock()
	b.events = append(b.events, e)
	b.mu.Unlock()
}

func TestQoS1PublishIsOnDiskBeforeItsPUBACK(t *testing.T) {
	s := newStore(t, outbox.Config{})
	box := &eventBox{box: s}
	_, url := start(t, Config{Forward: []Forward{{Topic: "sensors/#", QoS: 1}}}, box, nil)
	c := dial(t, url, "pub", nil)
	publish(t, c, "sensors/kitchen/temp", 1, "21.5")
	box.record("puback")
	// The PUBACK has arrived: the message must already be in the store on disk.
	ms := stored(t, s)
	if len(ms) != 1 || ms[0].Topic != "sensors/kitchen/temp" || string(ms[0].Payload) != "21.5" || ms[0].QoS != 1 {
		t.Fatalf("store after PUBACK = %+v", ms)
	}
	box.mu.Lock()
	defer box.mu.Unlock()
	if fmt.Sprint(box.events) != fmt.Sprintf("[stored %d err=<nil> puback]", ms[0].Seq) {
		t.Fatalf("events %q: the PUBACK did not wait for the store", box.events)
	}
}

func TestOnlyForwardedTopicsAreStored(t *testing.T) {
	s := newStore(t, outbox.Config{})
	e, url := start(t, Config{Forward: []Forward{{Topic: "sensors/+/temp", QoS: 1}, {Topic: "events/#", QoS: 0}}}, s, nil)
	c := dial(t, url, "pub", nil)
	publish(t, c, "other/x", 1, "a")
	publish(t, c, "sensors/kitchen/humidity", 1, "b")
	publish(t, c, "events/door", 0, "c") // QoS 0 in, rule QoS 0 out
	publish(t, c, "sensors/kitchen/temp", 0, "d")
	publish(t, c, "sensors/hall/temp", 1, "e")
	ms := stored(t, s)
	var got []string
	for _, m := range ms {
		got = append(got, fmt.Sprintf("%s=%s/q%d", m.Topic, m.Payload, m.QoS))
	}
	if want := "[events/door=c/q0 sensors/kitchen/temp=d/q1 sensors/hall/temp=e/q1]"; fmt.Sprint(got) != want {
		t.Fatalf("stored %v, want %s", got, want)
	}
	if st := e.Stats(); st.Forwarded != 3 || st.Clients != 1 {
		t.Fatalf("stats %+v", st)
	}
}

func TestDeliverReachesLocalSubscribersAndIsNotForwarded(t *testing.T) {
	s := newStore(t, outbox.Config{})
	e, url := start(t, Config{Forward: []Forward{{Topic: "#", QoS: 1}}}, s, nil)
	got := make(chan string, 4)
	sub := dial(t, url, "sub", nil)
	tok := sub.Subscribe("/sys/pk/dn/thing/service/#", 1, func(_ paho.Client, m paho.Message) {
		got <- fmt.Sprintf("%s %s q%d", m.Topic(), m.Payload(), m.Qos())
	})
	if !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatalf("subscribe: %v", tok.Error())
	}
	if err := e.Deliver("/sys/pk/dn/thing/service/property/set", []byte(`{"LED":1}`)); err != nil {
		t.Fatal(err)
	}
	select {
	case m := <-got:
		if m != `/sys/pk/dn/thing/service/property/set {"LED":1} q1` {
			t.Fatalf("subscriber got %q", m)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("downlink not delivered to the local subscriber")
	}
	if ms := stored(t, s); len(ms) != 0 {
		t.Fatalf("a downlink was forwarded back to the cloud: %+v", ms)
	}
	if err := e.Deliver("a/+/b", []byte("x")); err == nil {
		t.Fatal("Deliver accepted a wildcard topic")
	}
	if st := e.Stats(); st.Delivered != 1 {
		t.Fatalf("stats %+v", st)
	}
}

func TestRefusalWhenFullClosesTheConnectionAndTheClientResends(t *testing.T) {
	// Room for one 40-byte message on "sensors/a" (73 bytes as the outbox counts it), not two.
	s := newStore(t, outbox.Config{MaxBytes: 100})
	lb := &testutil.SyncBuffer{}
	e, url := start(t, Config{Forward: []Forward{{Topic: "sensors/#", QoS: 1}}}, s, lb)
	lost := make(chan error, 2)
	c := dial(t, url, "persistent", func(o *paho.ClientOptions) {
		o.SetCleanSession(false).SetConnectionLostHandler(func(_ paho.Client, err error) { lost <- err })
	})
	publish(t, c, "sensors/a", 1, strings.Repeat("1", 40))
	tok := c.Publish("sensors/a", 1, false, strings.Repeat("2", 40))
	select {
	case err := <-lost:
		t.Logf("client saw: connection lost: %v", err)
	case <-time.After(10 * time.Second):
		t.Fatal("the client was not told: no connection loss")
	}
	if tok.WaitTimeout(200*time.Millisecond) && tok.Error() == nil {
		t.Fatal("the refused publish was acknowledged")
	}
	if ms := stored(t, s); len(ms) != 1 || ms[0].Payload[0] != '1' {
		t.Fatalf("store = %+v", ms)
	}
	if st := e.Stats(); st.Refused != 1 || st.Disconnected != 1 {
		t.Fatalf("stats %+v", st)
	}
	if st := s.Stats(); st.Refused != 1 {
		t.Fatalf("outbox stats %+v", st)
	}
	if !strings.Contains(lb.String(), `"event":"local_refused"`) {
		t.Fatalf("no log line for the refusal:\n%s", lb)
	}

	// The first message is delivered; there is room again. The client reconnects and its
	// library sends the unacknowledged message again: nothing was lost.
	if err := s.Ack(stored(t, s)[0].Seq); err != nil {
		t.Fatal(err)
	}
	if rt := c.Connect(); !rt.WaitTimeout(10*time.Second) || rt.Error() != nil {
		t.Fatalf("reconnect: %v", rt.Error())
	}
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		ms := stored(t, s)
		if len(ms) == 1 && ms[0].Payload[0] == '2' {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the refused message was not sent again after reconnecting; store = %+v", ms)
		}
	}
}

// v5Conn is a minimal MQTT 5 client over a raw connection, encoding with mochi's packets
// package (paho.mqtt.golang speaks only 3.1/3.1.1), to see the PUBACK reason code.
type v5Conn struct {
	c net.Conn
	r *bufio.Reader
}

func dialV5(t *testing.T, addr string) *v5Conn {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(10 * time.Second))
	v := &v5Conn{c: c, r: bufio.NewReader(c)}
	var b bytes.Buffer
	pk := packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Connect}, ProtocolVersion: 5,
		Connect: packets.ConnectParams{ProtocolName: []byte("MQTT"), Clean: true, Keepalive: 30, ClientIdentifier: "v5"}}
	if err := pk.ConnectEncode(&b); err != nil {
		t.Fatal(err)
	}
	v.write(t, b.Bytes())
	if typ, body := v.read(t); typ != packets.Connack || len(body) < 2 || body[1] != 0 {
		t.Fatalf("CONNACK: type %d body %x", typ, body)
	}
	return v
}

func (v *v5Conn) write(t *testing.T, b []byte) {
	t.Helper()
	if _, err := v.c.Write(b); err != nil {
		t.Fatal(err)
	}
}

func (v *v5Conn) read(t *testing.T) (byte, []byte) {
	t.Helper()
	h, err := v.r.ReadByte()
	if err != nil {
		t.Fatal(err)
	}
	n, mult := 0, 1
	for {
		b, err := v.r.ReadByte()
		if err != nil {
			t.Fatal(err)
		}
		n += int(b&127) * mult
		if b&128 == 0 {
			break
		}
		mult *= 128
	}
	body := make([]byte, n)
	if _, err := io.ReadFull(v.r, body); err != nil {
		t.Fatal(err)
	}
	return h >> 4, body
}

// publish sends a QoS 1 PUBLISH and returns the PUBACK's reason code.
func (v *v5Conn) publish(t *testing.T, id uint16, topic string, payload []byte) byte {
	t.Helper()
	var b bytes.Buffer
	pk := packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Publish, Qos: 1}, ProtocolVersion: 5,
		TopicName: topic, PacketID: id, Payload: payload}
	if err := pk.PublishEncode(&b); err != nil {
		t.Fatal(err)
	}
	v.write(t, b.Bytes())
	typ, body := v.read(t)
	if typ != packets.Puback || len(body) < 2 || uint16(body[0])<<8|uint16(body[1]) != id {
		t.Fatalf("want PUBACK for %d, got type %d body %x", id, typ, body)
	}
	if len(body) == 2 {
		return 0 // success, reason code omitted
	}
	return body[2]
}

func TestMQTT5ClientGetsAReasonCode(t *testing.T) {
	s := newStore(t, outbox.Config{MaxBytes: 100})
	e, url := start(t, Config{Forward: []Forward{{Topic: "sensors/#", QoS: 1}}}, s, nil)
	v := dialV5(t, strings.TrimPrefix(url, "tcp://"))
	if rc := v.publish(t, 1, "sensors/a", bytes.Repeat([]byte("1"), 40)); rc != 0 {
		t.Fatalf("first publish: reason %#x", rc)
	}
	if rc := v.publish(t, 2, "sensors/a", bytes.Repeat([]byte("2"), 40)); rc != packets.ErrQuotaExceeded.Code {
		t.Fatalf("publish into a full outbox: reason %#x, want %#x (quota exceeded)", rc, packets.ErrQuotaExceeded.Code)
	}
	if rc := v.publish(t, 3, "sensors/b", nil); rc != packets.ErrPayloadFormatInvalid.Code {
		t.Fatalf("empty payload: reason %#x, want %#x", rc, packets.ErrPayloadFormatInvalid.Code)
	}
	// The connection stays up.
	if err := s.Ack(stored(t, s)[0].Seq); err != nil {
		t.Fatal(err)
	}
	if rc := v.publish(t, 4, "sensors/a", bytes.Repeat([]byte("3"), 40)); rc != 0 {
		t.Fatalf("publish after room was made: reason %#x", rc)
	}
	if st := e.Stats(); st.Refused != 1 || st.Disconnected != 0 || st.NotForwarded != 1 || st.Forwarded != 2 {
		t.Fatalf("stats %+v", st)
	}
}

func TestUnsendableMessageIsAcknowledgedNotForwardedAndLogged(t *testing.T) {
	s := newStore(t, outbox.Config{})
	lb := &testutil.SyncBuffer{}
	e, url := start(t, Config{Forward: []Forward{{Topic: "sensors/#", QoS: 1}}, MaxPayload: 16}, s, lb)
	c := dial(t, url, "pub", nil)
	publish(t, c, "sensors/empty", 1, "")
	publish(t, c, "sensors/big", 1, strings.Repeat("x", 17))
	publish(t, c, `sensors/"quoted"`, 1, "x")
	publish(t, c, "sensors/ok", 1, strings.Repeat("x", 16))
	if ms := stored(t, s); len(ms) != 1 || ms[0].Topic != "sensors/ok" {
		t.Fatalf("stored %+v", ms)
	}
	if st := e.Stats(); st.NotForwarded != 3 {
		t.Fatalf("stats %+v", st)
	}
	if n := strings.Count(lb.String(), `"event":"local_not_forwarded"`); n != 3 {
		t.Fatalf("%d log lines, want 3:\n%s", n, lb)
	}
}

func TestMessageLargerThanTheOutboxIsNotForwardedAndNotRefused(t *testing.T) {
	s := newStore(t, outbox.Config{MaxBytes: 100})
	e, url := start(t, Config{Forward: []Forward{{Topic: "sensors/#", QoS: 1}}}, s, nil)
	c := dial(t, url, "pub", nil)
	publish(t, c, "sensors/a", 1, strings.Repeat("x", 200)) // acknowledged, not stored
	publish(t, c, "sensors/a", 1, "small")
	if ms := stored(t, s); len(ms) != 1 || string(ms[0].Payload) != "small" {
		t.Fatalf("stored %+v", ms)
	}
	if st := e.Stats(); st.NotForwarded != 1 || st.Disconnected != 0 || st.Refused != 0 {
		t.Fatalf("stats %+v", st)
	}
}

func TestQoS0RefusedWhenFullIsDropped(t *testing.T) {
	s := newStore(t, outbox.Config{MaxBytes: 100})
	e, url := start(t, Config{Forward: []Forward{{Topic: "sensors/#", QoS: 0}}}, s, nil)
	c := dial(t, url, "pub", nil)
	publish(t, c, "sensors/a", 0, strings.Repeat("1", 40))
	publish(t, c, "sensors/a", 0, strings.Repeat("2", 40))
	publish(t, c, "other", 1, "sync") // processed after both: the client's packets are handled in order
	if ms := stored(t, s); len(ms) != 1 || ms[0].Payload[0] != '1' {
		t.Fatalf("stored %+v", ms)
	}
	if st, ost := e.Stats(), s.Stats(); st.Refused != 1 || st.Disconnected != 0 || ost.Refused != 1 {
		t.Fatalf("stats %+v, outbox %+v", st, ost)
	}
}

func TestUserAndPasswordAreRequiredWhenSet(t *testing.T) {
	s := newStore(t, outbox.Config{})
	_, url := start(t, Config{Username: "host", Password: "s3cret"}, s, nil)
	bad := paho.NewClient(paho.NewClientOptions().AddBroker(url).SetClientID("bad").SetProtocolVersion(4).
		SetUsername("host").SetPassword("wrong").SetAutoReconnect(false))
	if tok := bad.Connect(); tok.WaitTimeout(10*time.Second) && tok.Error() == nil {
		bad.Disconnect(0)
		t.Fatal("wrong password accepted")
	}
	dial(t, url, "good", func(o *paho.ClientOptions) { o.SetUsername("host").SetPassword("s3cret") })
}

func TestUnixSocket(t *testing.T) {
	s := newStore(t, outbox.Config{})
	path := filepath.Join(t.TempDir(), "mqtt.sock")
	// A stale socket file from a crashed run is replaced.
	l, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	l.(*net.UnixListener).SetUnlinkOnClose(false)
	l.Close()
	_, url := start(t, Config{Socket: path, Forward: []Forward{{Topic: "sensors/#", QoS: 1}}}, s, nil)
	c := dial(t, url, "unix", nil)
	publish(t, c, "sensors/a", 1, "x")
	if ms := stored(t, s); len(ms) != 1 {
		t.Fatalf("stored %+v", ms)
	}
	// A live socket is not stolen.
	if _, err := New(Config{Socket: path}, s, nil, zerolog.Nop()); err == nil || !strings.Contains(err.Error(), "in use") {
		t.Fatalf("second endpoint on a live socket: %v", err)
	}
	// A file that is not a socket is not removed.
	other := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(other, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := New(Config{Socket: other}, s, nil, zerolog.Nop()); err == nil {
		t.Fatal("a regular file was replaced by a socket")
	}
}

func TestListensOnlyOnLoopbackUnlessAllowed(t *testing.T) {
	s := newStore(t, outbox.Config{})
	for _, addr := range []string{"0.0.0.0:0", ":0", "[::]:0", "192.0.2.1:0", "gateway.example:1883"} {
		_, err := New(Config{Listen: addr}, s, nil, zerolog.Nop())
		if err == nil || !strings.Contains(err.Error(), "loopback") || !strings.Contains(err.Error(), "allow_non_loopback") {
			t.Errorf("Listen %q: %v", addr, err)
		}
	}
	for _, addr := range []string{"127.0.0.1:0", "localhost:0"} {
		e, err := New(Config{Listen: addr}, s, nil, zerolog.Nop())
		if err != nil {
			t.Errorf("Listen %q: %v", addr, err)
			continue
		}
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		if err := e.Run(ctx); err != nil { // closes the listener
			t.Error(err)
		}
	}
}

func TestBadConfigIsRefused(t *testing.T) {
	s := newStore(t, outbox.Config{})
	for _, c := range []Config{
		{},
		{Listen: "127.0.0.1:0", Password: "p"},
		{Listen: "127.0.0.1:0", Forward: []Forward{{Topic: "a/#/b", QoS: 1}}},
		{Listen: "127.0.0.1:0", Forward: []Forward{{Topic: "a", QoS: 2}}},
		{Listen: "127.0.0.1:0", MaxPayload: -1},
		{Listen: "not an address"},
	} {
		if _, err := New(c, s, nil, zerolog.Nop()); err == nil {
			t.Errorf("New(%+v) succeeded", c)
		}
	}
}

// startedHook records mochi's OnStarted, which its Serve calls once its housekeeping loop runs.
type startedHook struct {
	mqtt.HookBase
	started chan struct{}
}

func (h *startedHook) ID() string            { return "test-started" }
func (h *startedHook) Provides(b byte) bool  { return b == mqtt.OnStarted }
func (h *startedHook) OnStarted()            { close(h.started) }
func (h *startedHook) Init(config any) error { return nil }

// mochi (and with it its five one-second tickers) starts at the first connection, not before.
func TestBrokerStartsAtTheFirstConnection(t *testing.T) {
	e, err := New(Config{Listen: "127.0.0.1:0"}, newStore(t, outbox.Config{}), nil, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	h := &startedHook{started: make(chan struct{})}
	if err := e.srv.AddHook(h, nil); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- e.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	}()
	select {
	case <-h.started:
		t.Fatal("mochi started with no client")
	case <-time.After(300 * time.Millisecond):
	}
	dial(t, "tcp://"+e.Addrs()[0].String(), "first", nil)
	select {
	case <-h.started:
	case <-time.After(5 * time.Second):
		t.Fatal("mochi not started by the first connection")
	}
}
