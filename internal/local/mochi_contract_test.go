package local

// The behaviours of the pinned mochi-mqtt (go.mod) that the endpoint relies on beyond mochi's
// documented API, each checked here against mochi alone — its Server with a listener and a hook
// of the test's, and raw MQTT clients — so that an upgrade that changes one fails with the name
// of the behaviour and of the code in this package that relies on it:
//   - EstablishConnection, called from an accept loop of ours (mochi's listeners are not used):
//     it returns the error that ended the connection, and sets the keep-alive with SetDeadline;
//   - the order inside processPublish: OnPublish in the reading goroutine, before the PUBACK,
//     and what its errors make mochi answer;
//   - the bytes it writes: whole packets in every Write, which conn re-parses to hold PUBACKs;
//   - its Capabilities.MaximumInflight unacknowledged QoS 1 copies per subscriber, the excess counted in
//     Info.InflightDropped, and the resending of a resumed session's between two hooks;
//   - its Close and DisconnectClient, as Endpoint.stop uses them.

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/listeners"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/gatewayd/gatewayd/test/testutil"
)

// broken reports a contract mochi no longer keeps.
func broken(t *testing.T, behaviour, reliedOnBy, format string, args ...any) {
	t.Helper()
	t.Errorf("mochi-mqtt no longer behaves as internal/local relies on it to:\n  behaviour: %s\n  relied on by: %s\n  seen: %s",
		behaviour, reliedOnBy, fmt.Sprintf(format, args...))
}

// trace is the order of what happened, across the hook and the connections' writes.
type trace struct {
	mu sync.Mutex
	ev []string
}

func (tr *trace) add(e string) {
	tr.mu.Lock()
	tr.ev = append(tr.ev, e)
	tr.mu.Unlock()
}

func (tr *trace) snapshot() []string {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	return append([]string(nil), tr.ev...)
}

// recConn is an accepted connection that records what mochi does with it.
type recConn struct {
	net.Conn
	tr        *trace
	mu        sync.Mutex
	writes    [][]byte
	deadlines []time.Time
}

func (c *recConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	c.writes = append(c.writes, bytes.Clone(p))
	c.mu.Unlock()
	for _, s := range appendPackets(nil, p) {
		c.tr.add(fmt.Sprintf("write %d", s.b[0]>>4))
	}
	return c.Conn.Write(p)
}

func (c *recConn) SetDeadline(t time.Time) error {
	c.mu.Lock()
	c.deadlines = append(c.deadlines, t)
	c.mu.Unlock()
	return c.Conn.SetDeadline(t)
}

func (c *recConn) recorded() (writes [][]byte, deadlines []time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([][]byte(nil), c.writes...), append([]time.Time(nil), c.deadlines...)
}

// contractListener accepts as the endpoint's listener does: from a net.Listener, calling
// mochi's EstablishConnection in a goroutine of its own per connection, without registering
// with mochi.
type contractListener struct {
	l     net.Listener
	tr    *trace
	conns chan *recConn
	ended chan error // what establish returned, per connection
}

func (l *contractListener) Serve(establish listeners.EstablishFn) {
	for {
		raw, err := l.l.Accept()
		if err != nil {
			return
		}
		c := &recConn{Conn: raw, tr: l.tr}
		l.conns <- c
		go func() { l.ended <- establish("contract", c) }()
	}
}

// contractHook records the hook calls the endpoint's hook relies on; onPublish, when set, is
// what OnPublish does.
type contractHook struct {
	mqtt.HookBase
	tr        *trace
	onPublish func(cl *mqtt.Client, pk packets.Packet) (packets.Packet, error)
}

func (h *contractHook) ID() string { return "contract" }
func (h *contractHook) Provides(b byte) bool {
	switch b {
	case mqtt.OnConnectAuthenticate, mqtt.OnACLCheck, mqtt.OnPublish, mqtt.OnSessionEstablish, mqtt.OnSessionEstablished:
		return true
	}
	return false
}

// OnConnectAuthenticate and OnACLCheck let every client in, as the endpoint's hook does without
// credentials.
func (h *contractHook) OnConnectAuthenticate(*mqtt.Client, packets.Packet) bool { return true }
func (h *contractHook) OnACLCheck(*mqtt.Client, string, bool) bool              { return true }
func (h *contractHook) OnSessionEstablish(cl *mqtt.Client, _ packets.Packet) {
	h.tr.add("establish " + cl.ID)
}
func (h *contractHook) OnSessionEstablished(cl *mqtt.Client, _ packets.Packet) {
	h.tr.add("established " + cl.ID)
}
func (h *contractHook) OnPublish(cl *mqtt.Client, pk packets.Packet) (packets.Packet, error) {
	if h.onPublish != nil {
		return h.onPublish(cl, pk)
	}
	return pk, nil
}

type contractBroker struct {
	srv       *mqtt.Server
	closeOnce sync.Once // mochi's Close may be called once
	ln        *contractListener
	hook      *contractHook
	tr        *trace
}

// newContractBroker starts a mochi server as New configures it (inline client, the capabilities
// it sets), with the test's listener and hook; tune may change the capabilities.
func newContractBroker(t *testing.T, tune func(*mqtt.Capabilities), onPublish func(*mqtt.Client, packets.Packet) (packets.Packet, error)) *contractBroker {
	t.Helper()
	tr := &trace{}
	nl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	caps := mqtt.NewDefaultServerCapabilities()
	caps.MaximumClients = DefaultMaxClients
	caps.MaximumPacketSize = uint32(Config{}.MaxPacket())
	if tune != nil {
		tune(caps)
	}
	srv := mqtt.New(&mqtt.Options{InlineClient: true, Capabilities: caps, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	b := &contractBroker{srv: srv, tr: tr, hook: &contractHook{tr: tr, onPublish: onPublish},
		ln: &contractListener{l: nl, tr: tr, conns: make(chan *recConn, 16), ended: make(chan error, 16)}}
	if err := srv.AddHook(b.hook, nil); err != nil {
		t.Fatal(err)
	}
	if err := srv.Serve(); err != nil {
		t.Fatal(err)
	}
	go b.ln.Serve(srv.EstablishConnection) // as Endpoint.Run and Endpoint.serve do
	t.Cleanup(func() {
		nl.Close()
		done := make(chan struct{})
		go func() { b.close(); close(done) }()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
		}
	})
	return b
}

func (b *contractBroker) close() { b.closeOnce.Do(func() { b.srv.Close() }) }

// client is a raw MQTT client of the contract broker.
type client struct {
	t   *testing.T
	c   net.Conn
	r   *bufio.Reader
	srv *recConn // mochi's side of the connection
}

// connect dials b and sends a CONNECT (version 4 or 5); it reads nothing.
func (b *contractBroker) connect(t *testing.T, id string, version byte, clean bool, keepalive uint16) *client {
	t.Helper()
	c, err := net.Dial("tcp", b.ln.l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	_ = c.SetDeadline(time.Now().Add(20 * time.Second))
	cl := &client{t: t, c: c, r: bufio.NewReaderSize(c, 64<<10)}
	select {
	case cl.srv = <-b.ln.conns:
	case <-time.After(5 * time.Second):
		t.Fatal("the listener accepted nothing")
	}
	cl.send(packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Connect}, ProtocolVersion: version,
		Connect: packets.ConnectParams{ProtocolName: []byte("MQTT"), Clean: clean, Keepalive: keepalive, ClientIdentifier: id}})
	return cl
}

func (cl *client) send(pk packets.Packet) {
	cl.t.Helper()
	if _, err := cl.c.Write(testutil.EncodeMQTT(cl.t, pk)); err != nil {
		cl.t.Fatal(err)
	}
}

// read reads one packet: its first byte and its body.
func (cl *client) read() (byte, []byte, error) {
	h, err := cl.r.ReadByte()
	if err != nil {
		return 0, nil, err
	}
	n, shift := 0, 0
	for {
		b, err := cl.r.ReadByte()
		if err != nil {
			return 0, nil, err
		}
		n |= int(b&0x7f) << shift
		if b&0x80 == 0 {
			break
		}
		shift += 7
	}
	body := make([]byte, n)
	_, err = io.ReadFull(cl.r, body)
	return h, body, err
}

func (cl *client) expect(typ byte) []byte {
	cl.t.Helper()
	h, body, err := cl.read()
	if err != nil {
		cl.t.Fatalf("waiting for packet type %d: %v", typ, err)
	}
	if h>>4 != typ {
		cl.t.Fatalf("got packet type %d (% X), want %d", h>>4, body, typ)
	}
	return body
}

func (cl *client) subscribe(filter string) {
	cl.t.Helper()
	cl.send(packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Subscribe, Qos: 1}, PacketID: 1,
		Filters: packets.Subscriptions{{Filter: filter, Qos: 1}}})
	cl.expect(packets.Suback)
}

func publishPacket(id uint16, topic string, qos byte) packets.Packet {
	return packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Publish, Qos: qos}, TopicName: topic, PacketID: id, Payload: []byte("x")}
}

// Its listener: mochi takes connections from a listener of ours, runs each session in the
// establish call, and reports in establish's return what ended it.
func TestMochiContractListener(t *testing.T) {
	b := newContractBroker(t, func(c *mqtt.Capabilities) { c.MaximumClients = 1 }, nil)
	const reliedOn = "listener.Serve and Endpoint.finished (conn.go, local.go): Stats.TooLarge and Stats.ConnRefused"

	first := b.connect(t, "first", 4, true, 0)
	first.expect(packets.Connack)
	_, deadlines := first.srv.recorded()
	if len(deadlines) == 0 || !deadlines[len(deadlines)-1].IsZero() {
		broken(t, "after the CONNECT, mochi sets the keep-alive with Conn.SetDeadline; keep-alive 0 clears it",
			"conn.SetDeadline and newConn (the CONNECT deadline is lifted by mochi's)", "SetDeadline calls %v", deadlines)
	}

	second := b.connect(t, "second", 4, true, 10)
	if body := second.expect(packets.Connack); len(body) < 2 || body[1] != 3 {
		broken(t, "a client past MaximumClients gets CONNACK 3 (MQTT 3.1.1's server unavailable)", reliedOn, "CONNACK % X", body)
	}
	select {
	case err := <-b.ln.ended:
		if !errors.Is(err, packets.ErrServerBusy) {
			broken(t, "establish returns packets.ErrServerBusy for a client refused past MaximumClients", reliedOn, "establish returned %v", err)
		}
	case <-time.After(5 * time.Second):
		broken(t, "establish returns once a refused client's connection has ended", reliedOn, "no return in 5 s")
	}

	// A packet over MaximumPacketSize is refused on its fixed header.
	first.c.Write([]byte{0x30, 0xff, 0xff, 0xff, 0x7f})
	select {
	case err := <-b.ln.ended:
		if !errors.Is(err, packets.ErrPacketTooLarge) {
			broken(t, "establish returns packets.ErrPacketTooLarge for a packet over MaximumPacketSize", reliedOn, "establish returned %v", err)
		}
	case <-time.After(5 * time.Second):
		broken(t, "a packet over MaximumPacketSize ends the connection at its fixed header", reliedOn+"; Config.MaxPacket", "no return in 5 s")
	}

	third := b.connect(t, "third", 4, true, 10)
	third.expect(packets.Connack)
	_, deadlines = third.srv.recorded()
	if n := len(deadlines); n == 0 || time.Until(deadlines[n-1]) < 10*time.Second || time.Until(deadlines[n-1]) > 16*time.Second {
		broken(t, "after the CONNECT, mochi sets the deadline to 1.5 × keep-alive with Conn.SetDeadline",
			"conn.SetDeadline (the read side's deadline is mochi's keep-alive)", "SetDeadline calls %v", deadlines)
	}
}

// The order inside processPublish: OnPublish runs in the goroutine that reads the publishing
// client, before the PUBACK is written, so that a hook that waits holds back both the PUBACK
// and the client's next packet; and its errors decide what the client is answered.
func TestMochiContractPublishOrder(t *testing.T) {
	entered := make(chan uint16, 4)
	release := make(chan struct{})
	refuse := map[string]error{"reject": packets.ErrRejectPacket, "quota": packets.ErrQuotaExceeded}
	b := newContractBroker(t, nil, func(cl *mqtt.Client, pk packets.Packet) (packets.Packet, error) {
		if cl.Net.Inline {
			return pk, nil
		}
		if err, ok := refuse[pk.TopicName]; ok {
			return pk, err
		}
		entered <- pk.PacketID
		<-release
		return pk, nil
	})
	const holdReliedOn = "hook.OnPublish with conn.hold (a PUBACK means the message is on disk) and conn.inFlight (a client is not read on while maxHeld wait)"

	c := b.connect(t, "pub", 4, true, 0)
	c.expect(packets.Connack)
	c.send(publishPacket(1, "a", 1))
	c.send(publishPacket(2, "a", 1))
	select {
	case id := <-entered:
		if id != 1 {
			t.Fatalf("OnPublish for packet %d first", id)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("OnPublish not called")
	}
	time.Sleep(100 * time.Millisecond)
	select {
	case id := <-entered:
		broken(t, "OnPublish runs in the goroutine that reads the client: its next publish is not read while OnPublish runs", holdReliedOn, "OnPublish for packet %d while packet 1's ran", id)
	default:
	}
	writes, _ := c.srv.recorded()
	for _, w := range writes {
		if w[0]>>4 == packets.Puback {
			broken(t, "the PUBACK is written only after OnPublish returns", holdReliedOn, "a PUBACK (% X) written while OnPublish ran", w)
		}
	}
	close(release)
	for _, id := range []byte{1, 2} {
		if body := c.expect(packets.Puback); len(body) < 2 || body[1] != id {
			broken(t, "a QoS 1 publish whose OnPublish returned nil is acknowledged, in order", holdReliedOn, "PUBACK % X, want packet %d", body, id)
		}
	}

	// Errors: ErrRejectPacket is neither acknowledged nor delivered; a code over MQTT 5 is the
	// PUBACK's reason and the message is not delivered either.
	sub := b.connect(t, "sub", 4, true, 0)
	sub.expect(packets.Connack)
	sub.subscribe("#")
	c.send(publishPacket(3, "reject", 1))
	v5 := b.connect(t, "v5", 5, true, 0)
	v5.expect(packets.Connack)
	v5.send(packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Publish, Qos: 1}, ProtocolVersion: 5, TopicName: "quota", PacketID: 7, Payload: []byte("x")})
	if body := v5.expect(packets.Puback); len(body) < 3 || body[2] != packets.ErrQuotaExceeded.Code {
		broken(t, "over MQTT 5, an OnPublish error that is a packets.Code is the PUBACK's reason code", "hook.OnPublish (0x97, 0x99, 0x90, 0x95 refusals)", "PUBACK % X", body)
	}
	// The inline client's publish reaches OnPublish with Net.Inline set (the hook lets it pass),
	// and is delivered: the subscriber's first message must be it, not "reject" or "quota".
	if err := b.srv.Publish("inline", []byte("d"), false, 0); err != nil {
		t.Fatal(err)
	}
	h, body, err := sub.read()
	if err != nil || h>>4 != packets.Publish || !bytes.Contains(body, []byte("inline")) {
		broken(t, "ErrRejectPacket and a v5 reason code from OnPublish keep the message from subscribers; the inline client's publish is delivered",
			"hook.OnPublish (a refused publish goes nowhere; Deliver never goes back up: cl.Net.Inline)", "subscriber read %X % X %v", h, body, err)
	}
	_ = c.c.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
	if h, body, err := c.read(); err == nil {
		broken(t, "ErrRejectPacket from OnPublish: no PUBACK", "hook.OnPublish (a 3.1.1 client refused gets no PUBACK)", "got %X % X", h, body)
	}
}

// The bytes mochi writes: every Write to a connection holds whole packets, one or several, so
// that conn can split them, place a hold between them and count the PUBLISHes among them.
func TestMochiContractWholePacketWrites(t *testing.T) {
	b := newContractBroker(t, nil, nil)
	sub := b.connect(t, "sub", 4, true, 30)
	sub.expect(packets.Connack)
	sub.subscribe("d/#")
	const n = 2000
	read := make(chan error, 1)
	go func() {
		for i := 0; i < n; i++ {
			if _, _, err := sub.read(); err != nil {
				read <- err
				return
			}
		}
		read <- nil
	}()
	for i := range n {
		if err := b.srv.Publish(fmt.Sprintf("d/%d", i), bytes.Repeat([]byte{byte(i)}, 1+i%700), false, byte(i%2)); err != nil {
			t.Fatal(err)
		}
	}
	if err := <-read; err != nil {
		t.Fatalf("reading the burst: %v", err)
	}
	writes, _ := sub.srv.recorded()
	packetsSeen, multi := 0, 0
	for i, w := range writes {
		k := 0
		for off := 0; off < len(w); k++ {
			l := packetLen(w[off:])
			if l == 0 || off+l > len(w) {
				broken(t, "every Write to the connection holds whole MQTT packets", "conn.Write, appendPackets and countPublishes (conn.go)",
					"write %d of %d bytes has a partial packet at offset %d", i, len(w), off)
				return
			}
			off += l
		}
		packetsSeen += k
		if k > 1 {
			multi++
		}
	}
	if packetsSeen < n+2 {
		t.Errorf("%d packets in %d writes, want at least %d", packetsSeen, len(writes), n+2)
	}
	t.Logf("%d writes, %d packets, %d writes of several packets", len(writes), packetsSeen, multi)
}

// The in-flight limit: a subscriber holds at most Capabilities.MaximumInflight (MaxInflight, as
// New sets it) unacknowledged QoS 1 copies; each further copy is dropped and counted in
// Info.InflightDropped.
func TestMochiContractInflightLimit(t *testing.T) {
	const reliedOn = "MaxInflight, Endpoint.lostUnacked (Stats.Lost) and the Endpoint doc; conn.resending (a resumed session's backlog is at most this)"
	const limit = MaxInflight
	b := newContractBroker(t, func(c *mqtt.Capabilities) { c.MaximumInflight = limit }, nil)
	sub := b.connect(t, "sub", 4, true, 0)
	sub.expect(packets.Connack)
	sub.subscribe("d")
	count := make(chan int, 1)
	var got atomic.Int32
	go func() {
		for {
			h, _, err := sub.read()
			if err != nil {
				count <- int(got.Load())
				return
			}
			if h>>4 == packets.Publish {
				got.Add(1)
			}
		}
	}()
	for range limit {
		if err := b.srv.Publish("d", []byte("x"), false, 1); err != nil {
			t.Fatal(err)
		}
	}
	deadline := time.Now().Add(20 * time.Second)
	for got.Load() < limit && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if n := got.Load(); n != limit {
		t.Fatalf("the subscriber got %d of %d publishes", n, limit)
	}
	if d := atomic.LoadInt64(&b.srv.Info.InflightDropped); d != 0 {
		broken(t, "MaximumInflight unacknowledged copies fit", reliedOn, "InflightDropped %d after %d", d, limit)
	}
	for range 3 {
		if err := b.srv.Publish("d", []byte("x"), false, 1); err != nil {
			t.Fatal(err)
		}
	}
	if d := atomic.LoadInt64(&b.srv.Info.InflightDropped); d != 3 {
		broken(t, "copies past MaximumInflight unacknowledged are dropped and counted in Info.InflightDropped", reliedOn, "InflightDropped %d after 3 more", d)
	}
	time.Sleep(100 * time.Millisecond)
	if n := got.Load(); n != limit {
		broken(t, "copies past MaximumInflight unacknowledged are not sent", reliedOn, "the subscriber got %d", n)
	}
}

// A resumed session's unacknowledged copies are resent at once, after OnSessionEstablish and
// before OnSessionEstablished.
func TestMochiContractResendBetweenSessionHooks(t *testing.T) {
	b := newContractBroker(t, nil, nil)
	first := b.connect(t, "r", 4, false, 0)
	first.expect(packets.Connack)
	first.subscribe("d")
	for range 3 {
		if err := b.srv.Publish("d", []byte("x"), false, 1); err != nil {
			t.Fatal(err)
		}
	}
	for range 3 {
		first.expect(packets.Publish) // and never acknowledged
	}
	first.c.Close()
	<-b.ln.ended
	before := len(b.tr.snapshot())
	again := b.connect(t, "r", 4, false, 0)
	again.expect(packets.Connack)
	for range 3 {
		h, _, err := again.read()
		if err != nil || h>>4 != packets.Publish || h&0x08 == 0 {
			broken(t, "a resumed session's unacknowledged QoS 1 copies are resent with DUP set", "conn.resend and conn.resending", "read %X %v", h, err)
		}
	}
	deadline := time.Now().Add(5 * time.Second)
	var ev []string
	for {
		ev = b.tr.snapshot()[before:]
		if len(ev) > 0 && ev[len(ev)-1] == "established r" || time.Now().After(deadline) {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	want := []string{"establish r", fmt.Sprintf("write %d", packets.Connack), "write 3", "write 3", "write 3", "established r"}
	if fmt.Sprint(ev) != fmt.Sprint(want) {
		broken(t, "the resent copies are written after OnSessionEstablish and before OnSessionEstablished",
			"hook.OnSessionEstablish/OnSessionEstablished with conn.resend (the backlog does not count against WriteBudget)", "%q, want %q", ev, want)
	}
}

// Its Close, as Endpoint.stop calls it: once DisconnectClient has ended every client (their
// establish calls returned), Close returns at once. (The endpoint closes its listeners itself.)
func TestMochiContractClose(t *testing.T) {
	b := newContractBroker(t, nil, nil)
	const reliedOn = "Endpoint.stop (it disconnects every client itself, then calls mochi's Close)"
	c := b.connect(t, "c", 5, true, 0)
	c.expect(packets.Connack)
	cl, ok := b.srv.Clients.Get("c")
	if !ok {
		t.Fatal("no client c")
	}
	_ = b.srv.DisconnectClient(cl, packets.ErrServerShuttingDown)
	if body := c.expect(packets.Disconnect); len(body) < 1 || body[0] != packets.ErrServerShuttingDown.Code {
		broken(t, "DisconnectClient writes a DISCONNECT with the code", reliedOn, "DISCONNECT % X", body)
	}
	select {
	case <-b.ln.ended:
	case <-time.After(5 * time.Second):
		broken(t, "DisconnectClient ends the client: its establish returns", reliedOn, "no return in 5 s")
	}
	done := make(chan struct{})
	go func() { b.close(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		broken(t, "Close returns at once when no connection is left", reliedOn, "Close still running after 5 s")
	}
}
