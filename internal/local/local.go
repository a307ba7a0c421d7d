package local

import (
	"bytes"
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
	"github.com/rs/zerolog"

	"github.com/gatewayd/gatewayd/internal/outbox"
	"github.com/gatewayd/gatewayd/internal/topic"
	"github.com/gatewayd/gatewayd/internal/unixsock"
	"github.com/gatewayd/gatewayd/qmt"
)

// DefaultListen is the [local] listen address unless the configuration says otherwise.
const DefaultListen = "127.0.0.1:1883"

// Defaults of the limits in Config (see there).
const (
	DefaultMaxClients       = 32
	DefaultMaxTopic         = 1024
	DefaultMaxRetained      = 1000
	DefaultMaxRetainedBytes = 256 << 10
)

// Fixed limits, the same for every configuration.
const (
	// PacketHeadroom is what the largest packet a local client may send has beyond the largest
	// payload and topic forwarded: the fixed header, the topic's length, a packet identifier and
	// MQTT 5 properties. See Config.MaxPacket.
	PacketHeadroom = 1024
	// ConnectTimeout is how long a new connection has to send its whole CONNECT.
	ConnectTimeout = 10 * time.Second
	// WriteTimeout is how long a local client may accept no byte while data waits for it before
	// it is disconnected.
	WriteTimeout = 5 * time.Second
	// WriteBudget bounds the bytes waiting for all local clients together; when a write would
	// go past it, the client with the most waiting is disconnected. Downlinks come at a
	// module's pace (at most LTE Cat 1's 10 Mbit/s, about 1.2 MB/s) and loopback clients read at
	// memory speed: by that arithmetic 1 MiB is almost a second of the fastest downlink traffic
	// waiting for clients that read nothing. (It was 16 MiB: a subscriber that stopped reading during a burst took the daemon
	// to 70 MiB; docs/benchmarks.md.)
	WriteBudget = 1 << 20
	// QueueLen and QueueBytes bound the downlinks waiting for Deliver's goroutine; each counts
	// its topic, its payload and queueOverhead bytes. The queue's slots are allocated at start
	// (about 40 bytes each).
	QueueLen   = 4096
	QueueBytes = 1 << 20
	// MaxInflight is how many unacknowledged QoS 1 copies mochi keeps for one subscriber; a copy
	// past it is not sent to that client, and is counted in Stats.Lost. mochi's default is
	// 8,192, but it keeps each copy as a whole packet (an 800-byte struct plus topic and
	// payload) and copies all of them once a second to look for expired ones: for one
	// subscriber that stopped reading that was about 8 MiB held and 8 MiB of garbage a second.
	// At LTE Cat 1's 10 Mbit/s, 1,024 downlinks of 240 bytes (the benchmark's) are a fifth of a
	// second of traffic, while a loopback client acknowledges in microseconds.
	MaxInflight = 1024
	// maxWritesPending is the length of mochi's channel of packets to write to one client
	// (default 8,192 slots, allocated when it connects). conn.Write never blocks, so the
	// channel empties as fast as it fills; a packet finding it full would be dropped and
	// counted (Stats.Lost).
	maxWritesPending = 1024
	queueOverhead    = 64
	// stopWait is how long Run lets mochi close before it closes every connection itself, and
	// then again before it gives up waiting.
	stopWait = time.Second
)

// ErrQueueFull is returned by Deliver for a downlink its queue has no room for. The endpoint
// has counted it (Stats.DeliverDropped) and logged it, throttled.
var ErrQueueFull = errors.New("local: delivery queue full")

// Forward is one [[local.forward]] rule: a local publish on a topic matching Topic (an MQTT
// filter) goes to the cloud on the same topic with QoS QoS (0 or 1).
type Forward struct {
	Topic string
	QoS   int
}

// Config is the [local] section.
type Config struct {
	// Listen is the TCP address, e.g. DefaultListen; "" = no TCP listener.
	Listen string
	// Socket is a unix socket path; "" = none. A stale socket file is replaced.
	Socket string
	// Username and Password, when Username is set, are required of every local client.
	Username string
	Password string
	// AllowNonLoopback lets Listen be an address other than loopback. Without it New refuses.
	AllowNonLoopback bool
	// Forward lists the forwarding rules. When several match, the highest QoS wins; the
	// message is stored once.
	Forward []Forward
	// MaxPayload is the largest payload forwarded; 0 = qmt.DefaultMaxPayload, which is what
	// qmt.Client sends unless told otherwise. Keep the two equal.
	MaxPayload int
	// MaxTopic is the longest topic forwarded, in bytes; 0 = DefaultMaxTopic. The module's own
	// limit is not documented: 1024 is a guess that keeps AT+QMTPUBEX well inside the 4096-byte
	// command line the emulator allows.
	MaxTopic int
	// MaxClients is how many local clients may be connected at once; 0 = DefaultMaxClients.
	// One more is refused with CONNACK "server unavailable" (MQTT 5: "server busy"). As many
	// connections again may be open while they send their CONNECT; past that a new connection
	// is closed at once.
	MaxClients int
	// MaxRetained and MaxRetainedBytes bound the retained messages kept, in messages and in
	// bytes of topic and payload; 0 = DefaultMaxRetained, DefaultMaxRetainedBytes.
	MaxRetained      int
	MaxRetainedBytes int

	// For tests: 0 = ConnectTimeout, WriteTimeout, WriteBudget, QueueLen, QueueBytes.
	connectTimeout, writeTimeout      time.Duration
	writeBudget, queueLen, queueBytes int
}

// MaxPacket is the largest packet a local client may send, fixed header included:
// MaxPayload + MaxTopic + PacketHeadroom (6,144 bytes with the defaults). mochi checks it on
// the fixed header, before it allocates anything for the packet; a client that sends a larger
// one is disconnected.
func (c Config) MaxPacket() int {
	c.setDefaults()
	return c.MaxPayload + c.MaxTopic + PacketHeadroom
}

func (c *Config) setDefaults() {
	def := func(v *int, d int) {
		if *v == 0 {
			*v = d
		}
	}
	def(&c.MaxPayload, qmt.DefaultMaxPayload)
	def(&c.MaxTopic, DefaultMaxTopic)
	def(&c.MaxClients, DefaultMaxClients)
	def(&c.MaxRetained, DefaultMaxRetained)
	def(&c.MaxRetainedBytes, DefaultMaxRetainedBytes)
	def(&c.writeBudget, WriteBudget)
	def(&c.queueLen, QueueLen)
	def(&c.queueBytes, QueueBytes)
	if c.connectTimeout == 0 {
		c.connectTimeout = ConnectTimeout
	}
	if c.writeTimeout == 0 {
		c.writeTimeout = WriteTimeout
	}
}

// Outbox stores forwarded messages durably; *outbox.Store is one. Append writes a message and
// returns at once (src: the client, one outbox.Source each); Wait returns once it is durable,
// or why it cannot be (see outbox.Store).
type Outbox interface {
	Append(src *outbox.Source, topic string, payload []byte, qos int, retain bool) (outbox.Ticket, error)
	Wait(outbox.Ticket) error
}

// Stats counts what the endpoint did since New.
type Stats struct {
	Forwarded      uint64 // publishes stored in the outbox
	Refused        uint64 // publishes on forwarded topics the outbox refused (full, disk error)
	Disconnected   uint64 // MQTT 3.1.1 clients disconnected because of such a refusal
	NotForwarded   uint64 // publishes on forwarded topics the module could never send (logged)
	Delivered      uint64 // downlinks published locally by Deliver
	DeliverDropped uint64 // downlinks Deliver had no room for (or that were queued at shutdown)
	SlowClients    uint64 // local clients disconnected because they stopped reading
	Lost           uint64 // copies of publishes never written to a subscriber's connection (see Endpoint)
	RetainRefused  uint64 // retained publishes and wills not retained: over MaxRetained(Bytes)
	ConnRefused    uint64 // connections refused: too many open, or MaxClients connected
	ConnTimedOut   uint64 // connections closed for not sending their CONNECT in time
	TooLarge       uint64 // connections closed for a packet over MaxPacket
	AuthRefused    uint64 // CONNECTs with a wrong user name or password
	Retained       int    // retained messages held now
	RetainedBytes  int    // their topics and payloads, in bytes
	Clients        int    // local clients connected now
}

// Endpoint is the local MQTT broker.
//
// What a local client sees when the outbox refuses a publish on a forwarded topic (full in
// overflow = "refuse" mode, or a disk error) — the message is never acknowledged and then lost:
//   - QoS 1 or 2 over MQTT 3.1.1, which has no negative acknowledgement: the broker closes the
//     client's connection without a PUBACK. The client library reports the connection lost, and
//     a client with a persistent session (clean session false, the setting for anyone who wants
//     QoS 1 to mean something) publishes the message again after it reconnects, when there may
//     be room. With a clean session the library drops the unacknowledged message on reconnect,
//     as MQTT lets it; the client saw the connection lost and no PUBACK.
//   - QoS 1 over MQTT 5: a PUBACK with reason code 0x97 (quota exceeded); QoS 2 over MQTT 5 is
//     handled as over 3.1.1.
//   - QoS 0: the message is dropped (QoS 0 has no acknowledgement to withhold); the outbox logs
//     and counts the refusal.
//
// A publish on a forwarded topic that the module could never send (a payload empty or over
// MaxPayload, a topic over MaxTopic bytes or holding '"' or a control byte), or that the outbox
// could never hold (larger than its max_bytes), is not stored: it is delivered to local
// subscribers as usual and, over MQTT 3.1.1, acknowledged — refusing it would only make the
// client send it again for ever — and it is logged and counted (NotForwarded). An MQTT 5 client
// publishing it with QoS 1 gets a PUBACK with reason 0x99 (payload format invalid), 0x90 (topic
// name invalid) or 0x95 (packet too large) instead, and the message goes nowhere.
//
// A retained publish that would take the retained messages past MaxRetained or
// MaxRetainedBytes is not retained (a smaller message replacing a topic's retained one always
// is, and so is a deletion): an MQTT 5 client publishing it with QoS 1 gets a PUBACK with reason
// 0x97 (quota exceeded) and the message goes nowhere; otherwise (MQTT 3.1.1, which cannot say
// so, and QoS 0) it is delivered to the subscribers of the moment and forwarded (with its
// retain flag) as usual, acknowledged, and not retained here: the topic keeps the retained
// message it had, if any. A will with the retain flag is handled in the same way. Either way it
// is logged and counted (RetainRefused).
//
// No local client can make another wait: each connection's writes are buffered and written by
// a goroutine of its own, and a client that stops reading is disconnected (see conn.go). Its
// losses are counted in Lost: the PUBLISH packets that were never written to its connection,
// and the copies mochi dropped for it (its store of unacknowledged QoS 1 copies full:
// MaxInflight). A QoS 1 copy to a session with clean session false is sent again when the client
// comes back.
type Endpoint struct {
	cfg Config
	// live holds cfg's forwarding rules and retained bounds, which SetLive changes while the
	// endpoint runs; read them only through it.
	live   atomic.Pointer[Live]
	box    Outbox
	notify func()
	log    zerolog.Logger
	srv    *mqtt.Server
	lns    []*listener
	addrs  []net.Addr

	runOnce sync.Once

	// mochi's Serve runs at the first connection (serve), not in Run: it starts mochi's
	// housekeeping loop, five one-second tickers (session, in-flight, retained and will expiry,
	// $SYS topics) that would wake an idle daemon five times a second with nothing to expire.
	serveOnce sync.Once
	serveErr  error

	// flushWanted is signalled when a throttled line was not logged: deliverLoop then arms a
	// timer to log how many (an idle endpoint has no timer at all).
	flushWanted chan struct{}

	// The connections open now (see conn.go).
	connMu   sync.Mutex
	conns    map[*conn]struct{}
	stopping bool

	queue       chan downlink
	queuedBytes atomic.Int64

	retained *retained

	forwarded, disconnected, delivered atomic.Uint64
	lost, lostPending                  atomic.Uint64 // see Stats.Lost: never written; mochi's queue of pending writes full

	// What clients can cause at will: counted, and logged throttled.
	refused, notForwarded, deliverDropped, slow, retainRefused, connRefused, connTimedOut,
	tooLarge, authRefused, acceptFailed counter

	// Shorthands for cfg's, for conn.
	connectTimeout, writeTimeout time.Duration
	writeBudget                  int
	buffered                     atomic.Int64 // bytes waiting for all connections, as counted against writeBudget
}

// downlink is one message waiting for Deliver's goroutine.
type downlink struct {
	topic   string
	payload []byte
}

func (d downlink) size() int64 { return int64(len(d.topic) + len(d.payload) + queueOverhead) }

// counter counts one kind of occurrence and throttles its log lines.
type counter struct {
	event string // the log line's event field
	n     atomic.Uint64
	th    *throttle
}

func (c *counter) init(event string) {
	c.event = event
	c.th = newThrottle()
}

func (c *counter) load() uint64 { return c.n.Load() }

// note counts one occurrence of c and returns the warning to log for it, with its event, the
// total so far and how many were not logged since the last line, or nil when its lines are
// throttled now (zerolog's Event methods do nothing on nil).
func (e *Endpoint) note(c *counter) *zerolog.Event {
	total := c.n.Add(1)
	ok, skipped := c.th.allow(time.Now())
	if !ok {
		select {
		case e.flushWanted <- struct{}{}:
		default: // already signalled
		}
		return nil
	}
	ev := e.log.Warn().Str("event", c.event).Uint64("total", total)
	if skipped > 0 {
		ev = ev.Uint64("suppressed", skipped)
	}
	return ev
}

// flushThrottled logs, for every kind of occurrence whose lines were throttled, how many were
// not logged; it reports whether some are still waiting for their line.
func (e *Endpoint) flushThrottled(now time.Time) (waiting bool) {
	for _, c := range e.counters() {
		if n := c.th.pending(now); n > 0 {
			e.log.Warn().Str("event", c.event).Uint64("total", c.load()).Uint64("suppressed", n).
				Msg("more of the same, not logged one by one")
		}
		waiting = waiting || c.th.waiting()
	}
	return waiting
}

func (e *Endpoint) counters() []*counter {
	return []*counter{&e.refused, &e.notForwarded, &e.deliverDropped, &e.slow, &e.retainRefused,
		&e.connRefused, &e.connTimedOut, &e.tooLarge, &e.authRefused, &e.acceptFailed}
}

// New checks cfg, binds the listeners (so that address problems show at start-up) and returns
// the endpoint; Run serves. notify (may be nil) is called after each message stored in box —
// pass the drainer's Notify.
func New(cfg Config, box Outbox, notify func(), log zerolog.Logger) (*Endpoint, error) {
	if err := cfg.check(); err != nil {
		return nil, err
	}
	cfg.setDefaults()
	e := &Endpoint{
		cfg: cfg, box: box, notify: notify, log: log.With().Str("component", "local").Logger(),
		conns:          map[*conn]struct{}{},
		queue:          make(chan downlink, cfg.queueLen),
		retained:       newRetained(),
		flushWanted:    make(chan struct{}, 1),
		connectTimeout: cfg.connectTimeout, writeTimeout: cfg.writeTimeout, writeBudget: cfg.writeBudget,
	}
	e.live.Store(&Live{Forward: cfg.Forward, MaxRetained: cfg.MaxRetained, MaxRetainedBytes: cfg.MaxRetainedBytes})
	for c, ev := range map[*counter]string{
		&e.refused: "local_refused", &e.notForwarded: "local_not_forwarded", &e.deliverDropped: "local_deliver_dropped",
		&e.slow: "local_slow_client", &e.retainRefused: "local_retain_refused", &e.connRefused: "local_conn_refused",
		&e.connTimedOut: "local_conn_timeout", &e.tooLarge: "local_packet_too_large", &e.authRefused: "local_auth_refused",
		&e.acceptFailed: "local_accept_failed",
	} {
		c.init(ev)
	}

	var lns []net.Listener
	closeAll := func() {
		for _, l := range lns {
			l.Close()
		}
	}
	if cfg.Listen != "" {
		l, err := listenTCP(cfg.Listen, cfg.AllowNonLoopback)
		if err != nil {
			return nil, err
		}
		lns = append(lns, l)
	}
	if cfg.Socket != "" {
		// The owner and its group may connect: share the socket by the group of its directory.
		l, err := unixsock.Listen(cfg.Socket, 0o660)
		if err != nil {
			closeAll()
			return nil, fmt.Errorf("local: %w", err)
		}
		lns = append(lns, l)
	}

	// mochi logs through slog; its own messages reach our log at warning and above, throttled.
	mlog := e.log.With().Str("component", "local-broker").Logger()
	mlog = mlog.Level(max(mlog.GetLevel(), zerolog.WarnLevel))
	caps := mqtt.NewDefaultServerCapabilities()
	caps.MaximumClients = int64(cfg.MaxClients)
	caps.MaximumPacketSize = uint32(cfg.MaxPacket())
	caps.MaximumInflight = MaxInflight
	caps.MaximumClientWritesPending = maxWritesPending
	e.srv = mqtt.New(&mqtt.Options{
		InlineClient: true,
		Capabilities: caps,
		// $SYS topics (the broker's counters) once an hour, not every second: each time mochi
		// builds and publishes some 20 messages.
		SysTopicResendInterval: 3600,
		Logger:                 slog.New(newThrottledHandler(zerolog.NewSlogHandler(mlog))),
	})
	if err := e.srv.AddHook(&hook{e: e}, nil); err != nil {
		closeAll()
		return nil, fmt.Errorf("local: %w", err)
	}
	for i, l := range lns {
		// The listeners are the endpoint's, not registered with mochi: Run serves them and hands
		// each connection to mochi (see serve).
		e.lns = append(e.lns, newListener(fmt.Sprintf("%s-%d", l.Addr().Network(), i), l, e))
		e.addrs = append(e.addrs, l.Addr())
	}
	return e, nil
}

func (c Config) check() error {
	if c.Listen == "" && c.Socket == "" {
		return errors.New("local: neither listen nor socket is set")
	}
	if c.Username == "" && c.Password != "" {
		return errors.New("local: password set without username")
	}
	for _, l := range []struct {
		name    string
		v, most int
	}{
		{"max payload", c.MaxPayload, 1 << 20},
		{"max_topic", c.MaxTopic, 65535},
		{"max_clients", c.MaxClients, 1 << 16},
		{"max_retained", c.MaxRetained, 1 << 20},
		{"max_retained_bytes", c.MaxRetainedBytes, 1 << 30},
	} {
		if l.v < 0 || l.v > l.most {
			return fmt.Errorf("local: %s %d is out of range 0–%d", l.name, l.v, l.most)
		}
	}
	for i, f := range c.Forward {
		if err := topic.CheckFilter(f.Topic); err != nil {
			return fmt.Errorf("local.forward[%d]: %w", i, err)
		}
		if f.QoS < 0 || f.QoS > 1 {
			return fmt.Errorf("local.forward[%d] (%q): qos %d, want 0 or 1", i, f.Topic, f.QoS)
		}
	}
	return nil
}

// listenTCP listens on addr, refusing anything but loopback unless allowed.
func listenTCP(addr string, allowAny bool) (net.Listener, error) {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, fmt.Errorf("local: listen %q: %w", addr, err)
	}
	if !allowAny {
		ip := net.ParseIP(host)
		switch {
		case host == "localhost":
		case ip == nil:
			return nil, fmt.Errorf("local: listen %q: host %q is not a loopback IP address; use 127.0.0.1 or ::1, or set allow_non_loopback to expose the broker beyond this machine", addr, host)
		case !ip.IsLoopback():
			return nil, fmt.Errorf("local: listen %q is not a loopback address (all interfaces, or one reachable from the network); use 127.0.0.1 or ::1, or set allow_non_loopback to expose the broker beyond this machine", addr)
		}
	}
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("local: %w", err)
	}
	if ta, ok := l.Addr().(*net.TCPAddr); ok && !allowAny && !ta.IP.IsLoopback() {
		l.Close()
		return nil, fmt.Errorf("local: listen %q bound %s, which is not loopback", addr, ta)
	}
	return l, nil
}

// Addrs are the addresses the endpoint listens on (TCP first, then the unix socket).
func (e *Endpoint) Addrs() []net.Addr { return e.addrs }

// Run serves local clients and publishes what Deliver queued until ctx ends, then disconnects
// the clients and closes the listeners, and returns nil. It returns within 3 s of ctx ending
// (well under a second unless clients misbehave), whatever the clients do. mochi starts at the
// first connection (serve); should it fail to, each connection is refused with that error, in
// the log. Call it once: a second call returns an error at once.
func (e *Endpoint) Run(ctx context.Context) error {
	started := false
	e.runOnce.Do(func() { started = true })
	if !started {
		return errors.New("local: Run called twice")
	}
	for _, l := range e.lns {
		go l.Serve(e.serve)
	}
	for _, a := range e.addrs {
		e.log.Info().Str("address", a.String()).Str("network", a.Network()).Int("forward_rules", len(e.live.Load().Forward)).
			Int("max_clients", e.cfg.MaxClients).Int("max_packet", e.cfg.MaxPacket()).Int("max_topic", e.cfg.MaxTopic).
			Msg("local MQTT endpoint listening")
	}
	e.deliverLoop(ctx)
	e.stop()
	if e.cfg.Socket != "" {
		_ = os.Remove(e.cfg.Socket)
	}
	e.logStats()
	return nil
}

// serve hands an accepted connection to mochi, starting mochi first if this is the first one.
// Until a client has connected mochi holds nothing that could expire (sessions, in-flight
// messages, retained messages, delayed wills), so its housekeeping loop is not needed before;
// after, it runs until the endpoint stops (mochi v2.7.9 cannot stop it otherwise).
func (e *Endpoint) serve(id string, c net.Conn) error {
	e.serveOnce.Do(func() { e.serveErr = e.srv.Serve() })
	if e.serveErr != nil {
		return fmt.Errorf("local: starting the broker: %w", e.serveErr)
	}
	return e.srv.EstablishConnection(id, c)
}

// deliverLoop publishes the queued downlinks, in order, until ctx ends; then it counts those
// left in the queue as dropped. mochi's Publish never waits on a client here: publishing to a
// subscriber only queues the packet for its connection (see conn.go).
func (e *Endpoint) deliverLoop(ctx context.Context) {
	// flush runs only while some throttled lines wait to be counted in a line of their own.
	flush := time.NewTimer(logEvery)
	flush.Stop()
	defer flush.Stop()
	var flushC <-chan time.Time
	for {
		select {
		case <-ctx.Done():
			left := 0
			for {
				select {
				case d := <-e.queue:
					e.queuedBytes.Add(-d.size())
					left++
					continue
				default:
				}
				break
			}
			if left > 0 {
				e.deliverDropped.n.Add(uint64(left))
				e.log.Warn().Str("event", e.deliverDropped.event).Int("dropped", left).
					Msg("downlinks still queued for local subscribers at shutdown were not published")
			}
			return
		case d := <-e.queue:
			e.queuedBytes.Add(-d.size())
			e.delivered.Add(1)
			if err := e.srv.Publish(d.topic, d.payload, false, 1); err != nil {
				e.delivered.Add(^uint64(0))
				e.log.Warn().Err(err).Str("topic", d.topic).Msg("downlink not published to local clients")
			}
		case <-e.flushWanted:
			if flushC == nil {
				flush.Reset(logEvery)
				flushC = flush.C
			}
		case now := <-flushC:
			flushC = nil
			if e.flushThrottled(now) {
				flush.Reset(logEvery)
				flushC = flush.C
			}
		}
	}
}

// stop closes the listeners and every connection, then mochi, within 3 × stopWait (plus
// closeGrace) whatever clients do.
//
// The connections are closed here rather than by mochi's Close, which waits for connections it
// does not close (those still in their CONNECT) and lists its clients with
// Clients.GetByListener — which takes the clients' read lock twice and deadlocks when a client
// that disconnects at the same moment waits for the write lock in between. The listeners are
// not mochi's (its Close has none to close), and its Close is called only once every connection
// has ended.
func (e *Endpoint) stop() {
	for _, l := range e.lns {
		l.stopAccepting()
	}
	e.connMu.Lock()
	e.stopping = true
	var cs []*conn
	for c := range e.conns {
		cs = append(cs, c)
	}
	e.connMu.Unlock()
	for _, c := range cs {
		if cl := c.client.Load(); cl != nil {
			_ = e.srv.DisconnectClient(cl, packets.ErrServerShuttingDown) // a DISCONNECT, as mochi's Close sends
		} else {
			c.abort() // still in its CONNECT, or refused
		}
	}
	if !e.waitConns(stopWait) {
		n := e.closeConns(func(*conn) bool { return true })
		e.log.Warn().Int("connections", n).Msg("local clients slow to disconnect; closed every local connection")
		if !e.waitConns(stopWait) {
			e.log.Warn().Msg("local connections did not end; not waiting for them")
			return // mochi's Close would wait for them too
		}
	}
	done := make(chan struct{})
	go func() {
		_ = e.srv.Close()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(stopWait):
		e.log.Warn().Msg("local broker did not stop; not waiting for it")
	}
}

// waitConns waits up to d for every connection to have ended; false if some have not.
func (e *Endpoint) waitConns(d time.Duration) bool {
	for deadline := time.Now().Add(d); ; time.Sleep(5 * time.Millisecond) {
		e.connMu.Lock()
		n := len(e.conns)
		e.connMu.Unlock()
		if n == 0 {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
	}
}

// closeConns refuses new connections and aborts the open ones that match; it returns how many.
func (e *Endpoint) closeConns(match func(*conn) bool) int {
	e.connMu.Lock()
	e.stopping = true
	var cs []*conn
	for c := range e.conns {
		if match(c) {
			cs = append(cs, c)
		}
	}
	e.connMu.Unlock()
	for _, c := range cs {
		c.abort()
	}
	return len(cs)
}

// admit registers a newly accepted connection, or closes it when 2 × MaxClients are open or
// the endpoint is stopping; nil then.
func (e *Endpoint) admit(raw net.Conn) *conn {
	e.connMu.Lock()
	open, stopping := len(e.conns), e.stopping
	if stopping || open >= 2*e.cfg.MaxClients {
		e.connMu.Unlock()
		_ = raw.Close()
		if !stopping {
			e.note(&e.connRefused).Str("remote", raw.RemoteAddr().String()).Int("open", open).
				Msg("local connection refused: too many open (2 × max_clients)")
		}
		return nil
	}
	c := newConn(raw, e)
	e.conns[c] = struct{}{}
	e.connMu.Unlock()
	return c
}

// largest returns the open connection with the most bytes counted against WriteBudget, c
// counting as n.
func (e *Endpoint) largest(c *conn, n int64) *conn {
	e.connMu.Lock()
	defer e.connMu.Unlock()
	v := c
	for o := range e.conns {
		if m := o.counted.Load(); o != c && m > n {
			v, n = o, m
		}
	}
	return v
}

// finished is called when mochi is done with a connection (err is why), to forget it and to
// count and log what ended it.
func (e *Endpoint) finished(c *conn, err error) {
	e.connMu.Lock()
	delete(e.conns, c)
	e.connMu.Unlock()
	c.mu.Lock()
	aborted, slow := c.aborted, c.slow
	c.mu.Unlock()
	_ = c.Close() // mochi has (Client.Stop); the writer closes the socket once what is queued is written
	remote := c.RemoteAddr().String()
	switch {
	case err == nil || slow != "":
	case errors.Is(err, packets.ErrPacketTooLarge):
		e.note(&e.tooLarge).Str("remote", remote).Str("client_id", c.id()).Int("max_packet", e.cfg.MaxPacket()).
			Msg("local client sent a packet larger than the limit; connection closed")
	case errors.Is(err, packets.ErrServerBusy):
		e.note(&e.connRefused).Str("remote", remote).Str("client_id", c.id()).Int("max_clients", e.cfg.MaxClients).
			Msg("local client refused with CONNACK server unavailable: max_clients are connected")
	case !c.connected.Load() && !aborted && isTimeout(err):
		e.note(&e.connTimedOut).Str("remote", remote).Dur("timeout", e.connectTimeout).
			Msg("local connection closed: no CONNECT in time")
	default:
		e.log.Debug().Err(err).Str("remote", remote).Str("client_id", c.id()).Msg("local connection ended")
	}
}

// writerDone is called when a connection's writer has closed it: lost publishes were never
// written to it; slow says why the client was found stuck, or is "".
func (e *Endpoint) writerDone(c *conn, id, slow string, lost int) {
	e.lost.Add(uint64(lost))
	if slow == "" {
		return
	}
	e.note(&e.slow).Str("client_id", id).Str("remote", c.RemoteAddr().String()).Str("reason", slow).Int("lost", lost).
		Msg("local client stopped reading; disconnected (other clients are not held up)")
}

// Deliver queues a downlink for publishing locally on its topic (QoS 1 to subscribers that
// asked for it, not retained), for host programs subscribed with an ordinary MQTT client, and
// returns at once: it never waits for a local client. Downlinks are published in the order
// Deliver was called. A downlink is never forwarded back to the cloud, whatever the forwarding
// rules say. Call it for every downlink the module reports; payload is not kept.
//
// When QueueLen downlinks or QueueBytes bytes already wait (the endpoint's goroutine is not
// keeping up, or Run is not running), the downlink is dropped, counted and logged (throttled),
// and Deliver returns ErrQueueFull.
func (e *Endpoint) Deliver(topic string, payload []byte) error {
	if err := checkTopicName(topic); err != nil {
		return fmt.Errorf("local: deliver: %w", err)
	}
	d := downlink{topic: topic, payload: bytes.Clone(payload)}
	if e.queuedBytes.Add(d.size()) <= int64(e.cfg.queueBytes) {
		select {
		case e.queue <- d:
			return nil
		default:
		}
	}
	e.queuedBytes.Add(-d.size())
	e.note(&e.deliverDropped).Str("topic", topic).Int("bytes", len(payload)).Int("queued", len(e.queue)).
		Msg("downlink not published to local clients: the delivery queue is full")
	return fmt.Errorf("%w (%d downlinks, %d bytes waiting)", ErrQueueFull, len(e.queue), e.queuedBytes.Load())
}

// Stats returns a snapshot of the counters.
func (e *Endpoint) Stats() Stats {
	clients := 0 // counted here, not from mochi's Clients (see stop)
	e.connMu.Lock()
	for c := range e.conns {
		if cl := c.client.Load(); cl != nil && !cl.Closed() {
			clients++
		}
	}
	e.connMu.Unlock()
	n, b := e.retained.totals()
	return Stats{
		Forwarded:      e.forwarded.Load(),
		Refused:        e.refused.load(),
		Disconnected:   e.disconnected.Load(),
		NotForwarded:   e.notForwarded.load(),
		Delivered:      e.delivered.Load(),
		DeliverDropped: e.deliverDropped.load(),
		SlowClients:    e.slow.load(),
		Lost:           e.lost.Load() + e.lostPending.Load() + e.lostUnacked(),
		RetainRefused:  e.retainRefused.load(),
		ConnRefused:    e.connRefused.load(),
		ConnTimedOut:   e.connTimedOut.load(),
		TooLarge:       e.tooLarge.load(),
		AuthRefused:    e.authRefused.load(),
		Retained:       n,
		RetainedBytes:  b,
		Clients:        clients,
	}
}

// lostUnacked is how many copies mochi dropped because the subscriber's store of
// unacknowledged QoS 1 copies was full.
func (e *Endpoint) lostUnacked() uint64 {
	return uint64(max(0, atomic.LoadInt64(&e.srv.Info.InflightDropped)))
}

// logStats logs the counters of this run, when Run ends.
func (e *Endpoint) logStats() {
	st := e.Stats()
	e.log.Info().Str("event", "local_stats").
		Uint64("forwarded", st.Forwarded).Uint64("refused", st.Refused).Uint64("not_forwarded", st.NotForwarded).
		Uint64("delivered", st.Delivered).Uint64("deliver_dropped", st.DeliverDropped).
		Uint64("slow_clients", st.SlowClients).Uint64("lost", st.Lost).Uint64("lost_unwritten", e.lost.Load()).
		Uint64("lost_pending_full", e.lostPending.Load()).Uint64("lost_unacknowledged_full", e.lostUnacked()).
		Uint64("retain_refused", st.RetainRefused).
		Uint64("conn_refused", st.ConnRefused).Uint64("conn_timed_out", st.ConnTimedOut).
		Uint64("too_large", st.TooLarge).Uint64("auth_refused", st.AuthRefused).
		Int("retained", st.Retained).Int("retained_bytes", st.RetainedBytes).
		Msg("local endpoint counters for this run")
}

// Live is the part of Config that SetLive changes while the endpoint runs (`systemctl reload`):
// the forwarding rules and the bounds on retained messages. The rest — listeners, credentials,
// MaxClients and MaxTopic (which size the MQTT server's own limits) — is fixed by New.
type Live struct {
	Forward          []Forward
	MaxRetained      int // 0: DefaultMaxRetained
	MaxRetainedBytes int // 0: DefaultMaxRetainedBytes
}

// SetLive checks l as New checks a Config and puts it in place at once: publishes from then on
// are forwarded by its rules, retained messages kept within its bounds (those kept already stay).
func (e *Endpoint) SetLive(l Live) error {
	c := e.cfg
	c.Forward, c.MaxRetained, c.MaxRetainedBytes = l.Forward, l.MaxRetained, l.MaxRetainedBytes
	if err := c.check(); err != nil {
		return err
	}
	c.setDefaults()
	e.live.Store(&Live{Forward: c.Forward, MaxRetained: c.MaxRetained, MaxRetainedBytes: c.MaxRetainedBytes})
	e.log.Info().Int("forward_rules", len(c.Forward)).Int("max_retained", c.MaxRetained).
		Int("max_retained_bytes", c.MaxRetainedBytes).Msg("local endpoint rules changed")
	return nil
}

// rule returns the QoS to forward topic with, and whether any rule matches.
func (e *Endpoint) rule(name string) (int, bool) {
	qos, ok := 0, false
	for _, f := range e.live.Load().Forward {
		if topic.Match(f.Topic, name) {
			qos, ok = max(qos, f.QoS), true
		}
	}
	return qos, ok
}

// checkTopicName checks a concrete topic (no wildcards) for local publishing.
func checkTopicName(t string) error {
	if err := topic.CheckFilter(t); err != nil {
		return err
	}
	if !mqtt.IsValidFilter(t, true) {
		return fmt.Errorf("topic %q is not a valid topic name", t)
	}
	return nil
}

// unsendable says why the module could never send this message, or "" when it can: the rules
// qmt applies to AT+QMTPUBEX (a payload of 1 to MaxPayload bytes; a topic without '"' or
// control bytes, which would end or split the AT command), and MaxTopic.
func (e *Endpoint) unsendable(topic string, payload []byte) (reason string, code packets.Code) {
	if len(payload) == 0 || len(payload) > e.cfg.MaxPayload {
		return fmt.Sprintf("payload of %d bytes; the module sends 1 to %d", len(payload), e.cfg.MaxPayload), packets.ErrPayloadFormatInvalid
	}
	if len(topic) > e.cfg.MaxTopic {
		return fmt.Sprintf("topic of %d bytes; the module is sent topics of up to %d (local.max_topic)", len(topic), e.cfg.MaxTopic), packets.ErrTopicNameInvalid
	}
	for i := 0; i < len(topic); i++ {
		if b := topic[i]; b == '"' || b < 0x20 || b == 0x7F {
			return fmt.Sprintf("topic byte 0x%02X at offset %d cannot go into an AT command", b, i), packets.ErrTopicNameInvalid
		}
	}
	return "", packets.Code{}
}

// retainFits says whether a retained message may be kept (see retained).
func (e *Endpoint) retainFits(topic string, payload []byte) bool {
	l := e.live.Load()
	return len(payload) == 0 || e.retained.fits(topic, len(topic)+len(payload), l.MaxRetained, l.MaxRetainedBytes)
}

// hook plugs the endpoint into mochi: authentication, the store-before-PUBACK step, the
// retained-message bounds, and the bookkeeping of connections and lost copies.
type hook struct {
	mqtt.HookBase
	e *Endpoint
}

func (h *hook) ID() string { return "gatewayd-local" }

func (h *hook) Provides(b byte) bool {
	switch b {
	case mqtt.OnConnect, mqtt.OnSessionEstablish, mqtt.OnSessionEstablished, mqtt.OnConnectAuthenticate, mqtt.OnACLCheck, mqtt.OnPublish, mqtt.OnWill,
		mqtt.OnRetainMessage, mqtt.OnRetainedExpired, mqtt.OnPublishDropped, mqtt.OnPacketEncode:
		return true
	}
	return false
}

// OnConnect marks the connection as past its CONNECT (mochi has read it and takes over its
// deadline from here).
func (h *hook) OnConnect(cl *mqtt.Client, _ packets.Packet) error {
	if c, ok := cl.Net.Conn.(*conn); ok {
		c.connectRead(cl.ID)
	}
	return nil
}

// OnSessionEstablish and OnSessionEstablished bracket the CONNACK and the resending of what a
// session taken up again had in flight: that backlog does not count against WriteBudget.
func (h *hook) OnSessionEstablish(cl *mqtt.Client, _ packets.Packet) {
	if c, ok := cl.Net.Conn.(*conn); ok {
		c.resend(true)
	}
}

func (h *hook) OnSessionEstablished(cl *mqtt.Client, _ packets.Packet) {
	if c, ok := cl.Net.Conn.(*conn); ok {
		c.resend(false)
		c.client.Store(cl)
	}
}

// OnConnectAuthenticate checks the user name and password when the configuration sets them.
func (h *hook) OnConnectAuthenticate(cl *mqtt.Client, pk packets.Packet) bool {
	c := h.e.cfg
	if c.Username == "" {
		return true
	}
	userOK := subtle.ConstantTimeCompare(pk.Connect.Username, []byte(c.Username)) == 1
	passOK := subtle.ConstantTimeCompare(pk.Connect.Password, []byte(c.Password)) == 1
	if !userOK || !passOK {
		h.e.note(&h.e.authRefused).Str("client_id", cl.ID).Str("remote", cl.Net.Remote).
			Msg("local client refused: wrong user name or password")
		return false
	}
	return true
}

// OnACLCheck lets every authenticated local client publish and subscribe.
func (h *hook) OnACLCheck(*mqtt.Client, string, bool) bool { return true }

// OnPacketEncode tells MQTT 5 clients the largest packet they may send, in their CONNACK.
func (h *hook) OnPacketEncode(cl *mqtt.Client, pk packets.Packet) packets.Packet {
	if pk.FixedHeader.Type == packets.Connack && cl.Properties.ProtocolVersion == 5 && pk.ReasonCode == 0 {
		pk.Properties.MaximumPacketSize = uint32(h.e.cfg.MaxPacket())
	}
	return pk
}

// OnRetainMessage and OnRetainedExpired keep the count of retained messages.
func (h *hook) OnRetainMessage(_ *mqtt.Client, pk packets.Packet, _ int64) {
	n := 0
	if len(pk.Payload) > 0 {
		n = len(pk.TopicName) + len(pk.Payload)
	}
	h.e.retained.set(pk.TopicName, n)
}

func (h *hook) OnRetainedExpired(topic string) { h.e.retained.set(topic, 0) }

// OnPublishDropped counts a copy mochi dropped because the subscriber's queue of pending
// writes was full.
func (h *hook) OnPublishDropped(*mqtt.Client, packets.Packet) { h.e.lostPending.Add(1) }

// OnWill keeps a will from being retained past the bounds; it is still published.
func (h *hook) OnWill(cl *mqtt.Client, w mqtt.Will) (mqtt.Will, error) {
	if w.Retain && !h.e.retainFits(w.TopicName, w.Payload) {
		h.e.noteRetainRefused(cl, w.TopicName, len(w.Payload)).Msg("will not retained: the retained messages are at their bound; published only")
		w.Retain = false
	}
	return w, nil
}

func (e *Endpoint) noteRetainRefused(cl *mqtt.Client, topic string, n int) *zerolog.Event {
	count, held := e.retained.totals()
	return e.note(&e.retainRefused).Str("client_id", cl.ID).Str("topic", topic).Int("bytes", n).
		Int("retained", count).Int("retained_bytes", held).Int("max_retained", e.live.Load().MaxRetained).
		Int("max_retained_bytes", e.live.Load().MaxRetainedBytes)
}

// OnPublish runs in the publishing client's goroutine before mochi acknowledges the publish
// (server.go processPublish: the PUBACK/PUBREC is written only after OnPublish returns without
// error). A forwarded message is written to the outbox here, and its ticket goes into the
// connection's queue ahead of the PUBACK mochi writes next: the connection's writer sends
// nothing after it until the outbox says the message is on disk (conn.hold), so the client's
// PUBACK means "on disk", while mochi reads the client's next publish meanwhile. A client with
// several publishes in flight has them share an fdatasync, and at most maxHeld of them wait at
// once: then the client's publishes are not read until the first is durable.
func (h *hook) OnPublish(cl *mqtt.Client, pk packets.Packet) (packets.Packet, error) {
	e := h.e
	if cl.Net.Inline {
		return pk, nil // a downlink from Deliver: never forwarded back up
	}
	v5 := cl.Properties.ProtocolVersion == 5
	retain := pk.FixedHeader.Retain
	if retain && !e.retainFits(pk.TopicName, pk.Payload) {
		ev := e.noteRetainRefused(cl, pk.TopicName, len(pk.Payload))
		if v5 && pk.FixedHeader.Qos == 1 {
			ev.Msg("retained publish refused: the retained messages are at their bound; answered with PUBACK reason 0x97 (quota exceeded)")
			return pk, packets.ErrQuotaExceeded
		}
		ev.Msg("retained publish not retained: the retained messages are at their bound; delivered and forwarded as usual")
		pk.FixedHeader.Retain = false
	}
	qos, ok := e.rule(pk.TopicName)
	if !ok {
		return pk, nil
	}
	if reason, code := e.unsendable(pk.TopicName, pk.Payload); reason != "" {
		e.note(&e.notForwarded).Str("client_id", cl.ID).Str("topic", clip(pk.TopicName)).Int("topic_bytes", len(pk.TopicName)).
			Int("bytes", len(pk.Payload)).Str("reason", reason).
			Msg("publish on a forwarded topic not sent to the cloud: the module cannot send it")
		if v5 && pk.FixedHeader.Qos == 1 {
			return pk, code
		}
		return pk, nil
	}
	c, _ := cl.Net.Conn.(*conn)
	t, err := e.box.Append(c.source(), pk.TopicName, pk.Payload, qos, retain)
	if err == nil {
		if c.hold(t) {
			return pk, nil
		}
		// The connection is closing: no PUBACK is coming, so nothing waits in its queue.
		if err = e.box.Wait(t); err == nil {
			e.stored()
			return pk, nil
		}
	}
	if errors.Is(err, outbox.ErrTooLarge) || errors.Is(err, outbox.ErrInvalid) {
		// No amount of waiting makes room for it: refusing would make the client resend it for
		// ever. The outbox logged it; it stays local.
		e.notForwarded.n.Add(1)
		if v5 && pk.FixedHeader.Qos == 1 {
			return pk, packets.ErrPacketTooLarge
		}
		return pk, nil
	}
	switch {
	case pk.FixedHeader.Qos == 0:
		// The outbox logged and counted the refusal; QoS 0 has nothing to withhold.
		e.refused.n.Add(1)
		return pk, packets.ErrRejectPacket
	case v5 && pk.FixedHeader.Qos == 1:
		e.note(&e.refused).Str("client_id", cl.ID).Str("topic", pk.TopicName).Err(err).
			Msg("outbox refused a local publish; answered with PUBACK reason 0x97 (quota exceeded)")
		return pk, packets.ErrQuotaExceeded
	default:
		total := e.disconnected.Add(1)
		e.note(&e.refused).Str("client_id", cl.ID).Str("topic", pk.TopicName).Err(err).
			Uint64("disconnected_total", total).
			Msg("outbox refused a local publish; closing the client's connection without PUBACK so that it sends the message again after reconnecting")
		cl.Stop(fmt.Errorf("outbox refused the publish: %w", err))
		return pk, packets.ErrRejectPacket
	}
}

// refusedLater reports a forwarded message the outbox took but could not make durable (a
// write or fdatasync failed): its PUBACK is never written and c is closed, so that the client
// sends the message again after reconnecting, whatever its protocol version.
func (e *Endpoint) refusedLater(c *conn, err error) {
	total := e.disconnected.Add(1)
	e.note(&e.refused).Str("client_id", c.id()).Err(err).Uint64("disconnected_total", total).
		Msg("outbox could not store a local publish; closing the client's connection without PUBACK so that it sends the message again after reconnecting")
}

// stored counts a forwarded message the outbox made durable and tells the drainer.
func (e *Endpoint) stored() {
	e.forwarded.Add(1)
	if e.notify != nil {
		e.notify()
	}
}

// clip shortens a topic for a log line.
func clip(s string) string {
	const most = 256
	if len(s) <= most {
		return s
	}
	return s[:most] + "…"
}
