package local

// A client with several QoS 1 publishes in flight: mochi reads on while the outbox makes them
// durable, and each PUBACK waits in the connection's queue behind its message (conn.hold).

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/gatewayd/gatewayd/internal/outbox"
	"github.com/gatewayd/gatewayd/test/testutil"
)

// gateBox is the real outbox with the first Wait held until the test opens the gate: an
// fdatasync that takes as long as the test likes. Optionally the Wait of one seq fails, the
// stand-in (a fake: a real disk does not fail on cue) for an fdatasync that fails.
type gateBox struct {
	box    *outbox.Store
	gate   chan struct{}
	once   sync.Once
	failAt uint64 // 0: none
}

func newGateBox(s *outbox.Store) *gateBox { return &gateBox{box: s, gate: make(chan struct{})} }

func (b *gateBox) Append(src *outbox.Source, topic string, payload []byte, qos int, retain bool) (outbox.Ticket, error) {
	return b.box.Append(src, topic, payload, qos, retain)
}

func (b *gateBox) Wait(t outbox.Ticket) error {
	<-b.gate
	if t.Seq() == b.failAt {
		return fmt.Errorf("outbox: storing a message: %w", errors.New("fdatasync: input/output error (fake)"))
	}
	return b.box.Wait(t)
}

func (b *gateBox) open() { b.once.Do(func() { close(b.gate) }) }

// streamClient connects over a raw socket and writes n QoS 1 publishes (packet IDs 1..n) on
// sensors/N at once, without waiting for any PUBACK.
func streamClient(t *testing.T, url string, n int) (net.Conn, *bufio.Reader) {
	t.Helper()
	c, err := net.Dial("tcp", strings.TrimPrefix(url, "tcp://"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	r := bufio.NewReader(c)
	if _, err := c.Write(connectPacket(t, "stream", 30)); err != nil {
		t.Fatal(err)
	}
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	ack := make([]byte, 4)
	if _, err := io.ReadFull(r, ack); err != nil || ack[0] != 0x20 || ack[3] != 0 {
		t.Fatalf("CONNACK %x: %v", ack, err)
	}
	var all []byte
	for i := 1; i <= n; i++ {
		all = append(all, testutil.EncodeMQTT(t, packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Publish, Qos: 1},
			PacketID: uint16(i), TopicName: fmt.Sprintf("sensors/%d", i), Payload: []byte("21.5")})...)
	}
	if _, err := c.Write(all); err != nil {
		t.Fatal(err)
	}
	return c, r
}

// readPUBACK reads one packet and returns its packet ID, failing unless it is a PUBACK.
func readPUBACK(t *testing.T, c net.Conn, r *bufio.Reader) (uint16, error) {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	b := make([]byte, 4)
	if _, err := io.ReadFull(r, b); err != nil {
		return 0, err
	}
	if b[0] != 0x40 || b[1] != 2 {
		t.Fatalf("want a PUBACK, got %x", b)
	}
	return uint16(b[2])<<8 | uint16(b[3]), nil
}

// waitMessages waits until the store holds n messages, durable or not.
func waitMessages(t *testing.T, s *outbox.Store, n int) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); s.Stats().Messages != n; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the store holds %d messages, want %d", s.Stats().Messages, n)
		}
	}
}

// noPUBACKYet fails if anything arrives on c within d.
func noPUBACKYet(t *testing.T, c net.Conn, r *bufio.Reader, d time.Duration) {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(d))
	if _, err := r.Peek(1); err == nil {
		t.Fatal("a PUBACK arrived before its message was durable")
	} else if ne, ok := err.(net.Error); !ok || !ne.Timeout() {
		t.Fatalf("reading: %v", err)
	}
}

func TestPublishesInFlightShareACommitAndEachPUBACKWaitsForIt(t *testing.T) {
	s := newStore(t, outbox.Config{})
	box := newGateBox(s)
	e, url := start(t, Config{Forward: []Forward{{Topic: "sensors/#", QoS: 1}}}, box, nil)
	const n = 40
	c, r := streamClient(t, url, n)
	// All 40 are read and written to the log while the first fdatasync is held: the client's
	// publishes are read on, not one per fdatasync. None is acknowledged, nor visible to the
	// drainer, before it is durable.
	waitMessages(t, s, n)
	noPUBACKYet(t, c, r, 200*time.Millisecond)
	if ms := stored(t, s); len(ms) != 0 {
		t.Fatalf("%d messages given to the drainer before they were durable", len(ms))
	}
	syncs := s.Stats().Syncs
	box.open()
	for want := uint16(1); want <= n; want++ {
		id, err := readPUBACK(t, c, r)
		if err != nil {
			t.Fatalf("PUBACK %d: %v", want, err)
		}
		if id != want {
			t.Fatalf("PUBACK for %d, want %d: out of order", id, want)
		}
		// Its message is durable: the drainer sees it.
		if ms := stored(t, s); len(ms) < int(id) || ms[id-1].Topic != fmt.Sprintf("sensors/%d", id) {
			t.Fatalf("PUBACK %d came before its message was durable (%d durable)", id, len(ms))
		}
	}
	d := s.Stats().Syncs - syncs
	t.Logf("%d publishes in flight, %d fdatasyncs", n, d)
	if d > 2 {
		t.Errorf("%d publishes in flight took %d fdatasyncs, want 1 (or 2)", n, d)
	}
	if st := e.Stats(); st.Forwarded != n {
		t.Errorf("Forwarded = %d, want %d", st.Forwarded, n)
	}
}

func TestAtMostMaxHeldPublishesOfAClientWait(t *testing.T) {
	s := newStore(t, outbox.Config{})
	box := newGateBox(s)
	_, url := start(t, Config{Forward: []Forward{{Topic: "sensors/#", QoS: 1}}}, box, nil)
	const n = maxHeld + 36
	c, r := streamClient(t, url, n)
	waitMessages(t, s, maxHeld)
	// The client's next publish is not read while maxHeld wait: pushed back, not taken.
	time.Sleep(300 * time.Millisecond)
	if got := s.Stats().Messages; got != maxHeld {
		t.Fatalf("%d messages stored with the first fdatasync held, want the bound %d", got, maxHeld)
	}
	noPUBACKYet(t, c, r, 10*time.Millisecond)
	box.open()
	for want := uint16(1); want <= n; want++ {
		if id, err := readPUBACK(t, c, r); err != nil || id != want {
			t.Fatalf("PUBACK %d: got %d, %v", want, id, err)
		}
	}
	if got := len(stored(t, s)); got != n {
		t.Fatalf("%d messages durable, want %d", got, n)
	}
}

func TestAMessageThatCannotBeMadeDurableClosesTheConnectionWithoutItsPUBACK(t *testing.T) {
	s := newStore(t, outbox.Config{})
	box := newGateBox(s)
	lb := &testutil.SyncBuffer{}
	e, url := start(t, Config{Forward: []Forward{{Topic: "sensors/#", QoS: 1}}}, box, lb)
	const n = 5
	c, r := streamClient(t, url, n)
	waitMessages(t, s, n)
	box.failAt = 3 // the third of the five: seqs run from 1 in a new store
	box.open()
	for want := uint16(1); want <= 2; want++ {
		if id, err := readPUBACK(t, c, r); err != nil || id != want {
			t.Fatalf("PUBACK %d: got %d, %v", want, id, err)
		}
	}
	if id, err := readPUBACK(t, c, r); err == nil {
		t.Fatalf("PUBACK %d after the message the outbox could not store", id)
	} else if !errors.Is(err, io.EOF) && !errors.Is(err, net.ErrClosed) && !strings.Contains(err.Error(), "reset") {
		t.Fatalf("want the connection closed, got %v", err)
	}
	st := e.Stats()
	if st.Refused != 1 || st.Disconnected != 1 {
		t.Errorf("Refused %d, Disconnected %d; want 1 and 1", st.Refused, st.Disconnected)
	}
	if !strings.Contains(lb.String(), "closing the client's connection without PUBACK") || !strings.Contains(lb.String(), "(fake)") {
		t.Errorf("no log line saying why; log:\n%s", lb.String())
	}
	// The two after it were stored; with their PUBACKs never sent the client sends them again,
	// and they reach the cloud (twice, as QoS 1 allows).
	for deadline := time.Now().Add(10 * time.Second); e.Stats().Forwarded != 4; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("Forwarded = %d, want 4", e.Stats().Forwarded)
		}
	}
}
