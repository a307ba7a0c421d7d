package local

// How the endpoint accepts connections, and why not with mochi's listeners.Net.
//
// mochi hands every accepted connection straight to the broker, and from then on:
//   - it reads the CONNECT with no deadline, so a connection that sends nothing, or half a
//     CONNECT, stays open (and the broker's Close waits for it) for ever;
//   - Client.WritePacket holds the client's lock across the write to the socket, which has no
//     deadline for a client with keep-alive 0 (and 1.5 × keep-alive otherwise, renewed by every
//     packet the client sends). Every publish to that client takes the same lock
//     (publishToClient → Client.NextPacketID), so one subscriber that stops reading blocks every
//     publisher whose message it is subscribed to — Deliver among them — not only itself.
//
// So every accepted connection is a *conn here:
//   - at most 2 × MaxClients are open at once; one more is closed at once (mochi itself refuses
//     a client past MaxClients, once it has read its CONNECT, with CONNACK "server unavailable");
//   - until its CONNECT is read it has ConnectTimeout to send it; then mochi's keep-alive rules
//     the reading side (Client.refreshDeadline sets the read deadline to 1.5 × keep-alive, or
//     clears it for keep-alive 0 — SetDeadline below passes it to the read side only);
//   - mochi's writes never touch the socket: Write appends whole packets to a buffer and
//     returns, so the client's lock is only ever held for a copy, and a goroutine of the
//     connection's own writes the buffer out with a deadline. A client that accepts no byte for
//     WriteTimeout while data waits for it is disconnected: it loses its own copies (counted in
//     Stats.Lost), and no other client and no publisher ever waits for it. A client that reads,
//     only more slowly than data comes (a burst of downlinks), keeps its connection: what waits
//     for it stays in its buffer.
//   - the buffers of all connections together are bounded (WriteBudget): when a write would
//     take them past it, the connection with the most waiting is disconnected, as stuck. What a
//     session taken up again had in flight and is resent at once is not counted: mochi holds
//     those messages anyway (see conn.resending).
//   - the kernel's send buffer is set small (sendBuffer): a client that stops reading holds
//     about 130 kB of the kernel's memory rather than the few megabytes Linux would let a socket
//     queue, and what waits for it beyond that shows in its buffer.

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/listeners"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/gatewayd/gatewayd/internal/outbox"
)

const (
	// sendBuffer is the kernel send buffer (SO_SNDBUF) of every accepted connection. Loopback
	// clients read at memory speed; downlinks come at the module's pace (a UART's).
	sendBuffer = 64 << 10
	// closeGrace is how long a closing connection has to write what mochi queued for it last
	// (a DISCONNECT, a PUBACK) before it is closed regardless.
	closeGrace = 250 * time.Millisecond
)

// errSlowClient is what writes to a connection return once it was disconnected for not reading.
var errSlowClient = errors.New("local client stopped reading: disconnected")

// aLongTimeAgo is a deadline that has passed: setting it wakes a blocked Read or Write.
var aLongTimeAgo = time.Unix(1, 0)

// listener accepts from a net.Listener, makes every connection a *conn and hands it to the
// broker (Endpoint.serve, mochi's EstablishConnection). It is not registered with mochi: mochi
// starts at the first connection (see Endpoint.serve), and Endpoint.stop closes it.
type listener struct {
	id       string
	l        net.Listener
	e        *Endpoint
	stop     chan struct{}
	stopOnce sync.Once
}

func newListener(id string, l net.Listener, e *Endpoint) *listener {
	return &listener{id: id, l: l, e: e, stop: make(chan struct{})}
}

// Serve accepts connections until the listener is closed. A failing Accept (out of file
// descriptors, say) is retried with a back-off instead of ending the listener for good.
func (l *listener) Serve(establish listeners.EstablishFn) {
	var wait time.Duration
	for {
		raw, err := l.l.Accept()
		if err != nil {
			select {
			case <-l.stop:
				return
			default:
			}
			if errors.Is(err, net.ErrClosed) {
				return
			}
			wait = min(max(2*wait, 5*time.Millisecond), time.Second)
			l.e.note(&l.e.acceptFailed).Err(err).Dur("retry_in", wait).Msg("accepting a local connection failed; retrying")
			select {
			case <-l.stop:
				return
			case <-time.After(wait):
			}
			continue
		}
		wait = 0
		c := l.e.admit(raw)
		if c == nil {
			continue
		}
		go func() {
			err := establish(l.id, c)
			l.e.finished(c, err)
		}()
	}
}

// stopAccepting closes the socket: no new connections.
func (l *listener) stopAccepting() {
	l.stopOnce.Do(func() {
		close(l.stop)
		_ = l.l.Close()
	})
}

// segment is one MQTT packet (or, should mochi ever write a partial one, a run of bytes) queued
// for a connection, or a hold: a forwarded message that nothing after it may be written before
// the outbox has made durable.
type segment struct {
	b       []byte
	publish bool
	hold    bool
	ticket  outbox.Ticket // of a hold
}

// maxHeld bounds the holds in one connection's queue: forwarded publishes of the client that
// are stored but not yet known durable, their PUBACKs waiting. A client with more in flight is
// not read until the first is durable.
const maxHeld = 64

// conn is an accepted connection as mochi sees it; see the comment at the top of the file.
type conn struct {
	net.Conn // the accepted connection: Read, the addresses and the read deadline are its own
	e        *Endpoint

	connected atomic.Bool                 // mochi has read the CONNECT (set by the hook's OnConnect)
	client    atomic.Pointer[mqtt.Client] // the session is up (set by OnSessionEstablished)
	evicting  atomic.Bool                 // an evict is on its way

	mu       sync.Mutex
	wake     sync.Cond     // signalled when queue, closing or err change
	room     sync.Cond     // broadcast when held falls or err is set
	queue    []segment     // written by nobody yet
	held     int           // holds in queue, or being waited for by the writer
	src      outbox.Source // the client as a source of the outbox's messages
	queued   int           // bytes in queue and in the batch being written
	counted  atomic.Int64  // queued - backlog: what counts against WriteBudget (see accountLocked)
	closing  bool          // Close was called: write what is queued (until closeBy), then close
	closeBy  time.Time     // when a closing connection stops writing
	aborted  bool          // closed by the endpoint without waiting (shutdown)
	err      error         // once set, writes fail and the writer closes the connection
	slow     string        // why the client was found stuck; "" if it was not
	clientID string
	// A session taken up again (clean session false) gets its unacknowledged messages resent at
	// once (up to MaxInflight of them): that backlog, which mochi holds anyway, does not count
	// against WriteBudget. resending is set while mochi resends them; backlog is what remains of
	// them queued (the first bytes of the queue).
	resending bool
	backlog   int
}

// newConn wraps raw, gives it its CONNECT deadline and starts its writer.
func newConn(raw net.Conn, e *Endpoint) *conn {
	c := &conn{Conn: raw, e: e}
	c.wake.L, c.room.L = &c.mu, &c.mu
	type sendBufferer interface{ SetWriteBuffer(int) error }
	if s, ok := raw.(sendBufferer); ok {
		_ = s.SetWriteBuffer(sendBuffer)
	}
	_ = raw.SetReadDeadline(time.Now().Add(e.connectTimeout))
	go c.writeLoop()
	return c
}

// connectRead records that mochi read the client's CONNECT, and the client's ID.
func (c *conn) connectRead(id string) {
	c.mu.Lock()
	c.clientID = id
	c.mu.Unlock()
	c.connected.Store(true)
}

// resend is called before mochi takes up the client's session (on) and after it has resent
// what the session had in flight (off); see conn.resending.
func (c *conn) resend(on bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.resending = on
}

// accountLocked sets queued and backlog and keeps counted and the endpoint's total in step.
func (c *conn) accountLocked(queued, backlog int) {
	c.queued, c.backlog = queued, backlog
	n := int64(queued - backlog)
	c.e.buffered.Add(n - c.counted.Swap(n))
}

func (c *conn) id() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.clientID
}

// Write queues p (whole packets, as mochi writes them) for the writer and returns at once.
// When the buffers of all connections would go past WriteBudget, the connection with the most
// waiting is disconnected — this one, or another.
func (c *conn) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	switch {
	case c.err != nil:
		c.e.lost.Add(uint64(countPublishes(p)))
		return 0, c.err
	case c.closing:
		c.e.lost.Add(uint64(countPublishes(p)))
		return 0, net.ErrClosed
	}
	backlog := c.backlog
	if c.resending {
		backlog += len(p)
	} else if total := c.e.buffered.Load() + int64(len(p)); total > int64(c.e.writeBudget) {
		if v := c.e.largest(c, c.counted.Load()+int64(len(p))); v != c {
			if v.evicting.CompareAndSwap(false, true) {
				go v.evict(total) // not here: this goroutine holds c.mu, and v's writer may want it
			}
		} else {
			c.e.lost.Add(uint64(countPublishes(p)))
			c.failLocked(errSlowClient, evictReason(total, c.e.writeBudget))
			return 0, c.err
		}
	}
	c.queue = appendPackets(c.queue, bytes.Clone(p))
	c.accountLocked(c.queued+len(p), backlog)
	c.wake.Signal()
	return len(p), nil
}

func evictReason(total int64, budget int) string {
	return fmt.Sprintf("the most bytes waiting when local clients' buffers reached %d bytes in all (%d)", budget, total)
}

// source is the client as the outbox's source of its forwarded publishes (nil for a nil conn):
// from it the outbox tells a client that streams, sending on before its PUBACKs. It waits while
// maxHeld are held already, until the writer gets past the first: so the client's publishes are
// not read on while as many wait.
func (c *conn) source() *outbox.Source {
	if c == nil {
		return nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for c.held >= maxHeld && c.err == nil && !c.closing {
		c.room.Wait()
	}
	return &c.src
}

// hold queues t: what mochi writes after it — the publish's PUBACK, and anything else for this
// client — is written once the outbox has made t durable; if it cannot, the connection is
// closed without them (see writeLoop). It returns false, holding nothing, when c is nil or
// the connection is closing or failed: no PUBACK will be written.
func (c *conn) hold(t outbox.Ticket) bool {
	if c == nil {
		return false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.err != nil || c.closing {
		return false
	}
	c.queue = append(c.queue, segment{hold: true, ticket: t})
	c.held++
	c.wake.Signal()
	return true
}

// evict disconnects the connection for having the most waiting when the budget was reached.
func (c *conn) evict(total int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.failLocked(errSlowClient, evictReason(total, c.e.writeBudget))
}

// failLocked makes every write fail from now on and wakes both directions: the writer closes
// the connection, and mochi's reader sees it end.
func (c *conn) failLocked(err error, slow string) {
	if c.err != nil {
		return
	}
	c.err, c.slow = err, slow
	_ = c.Conn.SetReadDeadline(aLongTimeAgo)
	_ = c.Conn.SetWriteDeadline(aLongTimeAgo)
	c.wake.Broadcast()
	c.room.Broadcast()
}

// SetDeadline is mochi's keep-alive (Client.refreshDeadline): it sets the read side only. The
// write side belongs to the writer.
func (c *conn) SetDeadline(t time.Time) error { return c.SetReadDeadline(t) }

// SetReadDeadline sets the read deadline, unless the connection is closing (which has set it in
// the past to end mochi's read at once).
func (c *conn) SetReadDeadline(t time.Time) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.err != nil || c.closing {
		return nil
	}
	return c.Conn.SetReadDeadline(t)
}

// SetWriteDeadline does nothing: the writer keeps its own.
func (c *conn) SetWriteDeadline(time.Time) error { return nil }

// Close ends mochi's reading at once and lets the writer write what is queued (a DISCONNECT,
// the PUBACK before a refusal) for up to closeGrace before it closes the socket. It returns at
// once.
func (c *conn) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closing {
		return nil
	}
	c.closing = true
	c.closeBy = time.Now().Add(closeGrace)
	_ = c.Conn.SetReadDeadline(aLongTimeAgo)
	_ = c.Conn.SetWriteDeadline(c.closeBy)
	c.wake.Broadcast()
	c.room.Broadcast()
	return nil
}

// abort closes the socket now, whatever is queued.
func (c *conn) abort() {
	c.mu.Lock()
	c.aborted = true
	c.closing = true
	if c.err == nil {
		c.err = net.ErrClosed
	}
	c.wake.Broadcast()
	c.room.Broadcast()
	c.mu.Unlock()
	_ = c.Conn.Close()
}

// writeLoop writes what mochi queued, in order, until the connection closes or fails; then it
// closes the socket and reports what was never written. At a hold it waits for the outbox
// first: the PUBACK behind it is written only once the message is on disk, and not at all —
// the connection is closed, so that the client sends the message again — if the outbox cannot
// store it.
func (c *conn) writeLoop() {
	lost := 0
	c.mu.Lock()
	for {
		for len(c.queue) == 0 && !c.closing && c.err == nil {
			c.wake.Wait()
		}
		if c.err != nil || len(c.queue) == 0 {
			break // failed, or closing with nothing left to write
		}
		if h := c.queue[0]; h.hold {
			c.queue = c.queue[1:]
			c.mu.Unlock()
			err := c.e.box.Wait(h.ticket)
			if err != nil {
				c.e.refusedLater(c, err)
			} else {
				c.e.stored()
			}
			c.mu.Lock()
			c.held--
			c.room.Broadcast()
			if err != nil {
				c.failLocked(err, "")
				break
			}
			continue
		}
		n := 0
		for n < len(c.queue) && !c.queue[n].hold {
			n++
		}
		batch := c.queue[:n:n]
		c.queue = c.queue[n:]
		c.mu.Unlock()
		rest, err := c.writeBatch(batch)
		c.mu.Lock()
		written := size(batch) - size(rest)
		c.accountLocked(c.queued-written, max(0, c.backlog-written))
		if err != nil {
			lost += countSegments(rest)
			if c.err == nil && !c.closing && isTimeout(err) {
				c.slow = "read nothing for " + c.e.writeTimeout.String()
			}
			if c.err == nil {
				c.err = err
			}
			break
		}
	}
	lost += countSegments(c.queue)
	rest := c.queue
	c.queue = nil
	c.accountLocked(0, 0)
	slow, id := c.slow, c.clientID
	c.err = errors.Join(c.err, net.ErrClosed) // writes fail from now on, even after a clean close
	c.room.Broadcast()
	c.mu.Unlock()
	_ = c.Conn.Close()
	// The messages held are in the outbox, their PUBACKs never written: made durable all the
	// same (they go to the cloud; the client may send them again, as QoS 1 allows).
	for _, s := range rest {
		if s.hold && c.e.box.Wait(s.ticket) == nil {
			c.e.stored()
		}
	}
	c.e.writerDone(c, id, slow, lost)
}

// writeBatch writes batch (with writev, for a TCP or unix socket) and returns what is left
// unwritten when it fails. It writes in steps of a quarter of WriteTimeout, so that a client that
// accepts bytes, only slowly, goes on: a client is stuck when it has accepted nothing for
// WriteTimeout (give or take a step).
func (c *conn) writeBatch(batch []segment) ([]segment, error) {
	bufs := make(net.Buffers, len(batch))
	for i, s := range batch {
		bufs[i] = s.b
	}
	var written int64
	progress := time.Now()
	for {
		if err := c.armDeadline(); err != nil {
			return unwritten(batch, written), err
		}
		n, err := bufs.WriteTo(c.Conn)
		written += n
		if err == nil {
			return nil, nil
		}
		now := time.Now()
		if n > 0 {
			progress = now
		}
		if !isTimeout(err) || now.Sub(progress) >= c.e.writeTimeout {
			return unwritten(batch, written), err
		}
	}
}

// armDeadline sets the deadline of the next write step: a quarter of WriteTimeout, or closeBy
// once the connection is closing. It returns why no step should be tried: the connection
// failed, or closeBy has passed.
func (c *conn) armDeadline() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	switch {
	case c.err != nil:
		return c.err
	case c.closing:
		if !time.Now().Before(c.closeBy) {
			return os.ErrDeadlineExceeded
		}
		_ = c.Conn.SetWriteDeadline(c.closeBy)
	default:
		_ = c.Conn.SetWriteDeadline(time.Now().Add(c.e.writeTimeout / 4))
	}
	return nil
}

func isTimeout(err error) bool { return errors.Is(err, os.ErrDeadlineExceeded) }

// appendPackets splits b into its MQTT packets (type byte, remaining length, body) and appends
// them to q. Bytes that do not make a whole packet become one segment of their own.
func appendPackets(q []segment, b []byte) []segment {
	for len(b) > 0 {
		n := packetLen(b)
		if n == 0 || n > len(b) {
			return append(q, segment{b: b})
		}
		q = append(q, segment{b: b[:n:n], publish: b[0]>>4 == packets.Publish})
		b = b[n:]
	}
	return q
}

// packetLen is the length of the MQTT packet at the start of b, header included, or 0 when b is
// too short to say.
func packetLen(b []byte) int {
	rem, shift := 0, 0
	for i := 1; i < len(b) && i <= 4; i++ {
		rem |= int(b[i]&0x7f) << shift
		if b[i]&0x80 == 0 {
			return 1 + i + rem
		}
		shift += 7
	}
	return 0
}

// countPublishes counts the PUBLISH packets in b.
func countPublishes(b []byte) int { return countSegments(appendPackets(nil, b)) }

func countSegments(q []segment) int {
	n := 0
	for _, s := range q {
		if s.publish {
			n++
		}
	}
	return n
}

func size(q []segment) int {
	n := 0
	for _, s := range q {
		n += len(s.b)
	}
	return n
}

// unwritten is what is left of batch once its first n bytes are written; a segment written in
// part counts as unwritten.
func unwritten(batch []segment, n int64) []segment {
	for i, s := range batch {
		if n < int64(len(s.b)) {
			return batch[i:]
		}
		n -= int64(len(s.b))
	}
	return nil
}
