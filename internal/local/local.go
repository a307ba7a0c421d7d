package local

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"sync"
	"sync/atomic"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/listeners"
	"github.com/mochi-mqtt/server/v2/packets"
	"github.com/rs/zerolog"

	"github.com/gatewayd/gatewayd/internal/outbox"
	"github.com/gatewayd/gatewayd/internal/topic"
	"github.com/gatewayd/gatewayd/qmt"
)

// DefaultListen is the [local] listen address unless the configuration says otherwise.
const DefaultListen = "127.0.0.1:1883"

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
}

// Outbox stores forwarded messages durably; *outbox.Store is one.
type Outbox interface {
	Put(topic string, payload []byte, qos int, retain bool) (uint64, error)
}

// Stats counts what the endpoint did since New.
type Stats struct {
	Forwarded    uint64 // publishes stored in the outbox
	Refused      uint64 // publishes on forwarded topics the outbox refused (full, disk error)
	Disconnected uint64 // MQTT 3.1.1 clients disconnected because of such a refusal
	NotForwarded uint64 // publishes on forwarded topics the module could never send (logged)
	Delivered    uint64 // downlinks published locally by Deliver
	Clients      int    // local clients connected now
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
// MaxPayload, a topic holding '"' or a control byte), or that the outbox could never hold
// (larger than its max_bytes), is not stored: it is delivered to local subscribers as usual
// and, over MQTT 3.1.1, acknowledged — refusing it would only make the client send it again for
// ever — and it is logged and counted (NotForwarded). An MQTT 5 client publishing it with QoS 1
// gets a PUBACK with reason 0x99 (payload format invalid), 0x90 (topic name invalid) or 0x95
// (packet too large) instead, and the message goes nowhere.
type Endpoint struct {
	cfg    Config
	box    Outbox
	notify func()
	log    zerolog.Logger
	srv    *mqtt.Server
	addrs  []net.Addr

	runOnce sync.Once

	forwarded, refused, disconnected, notForwarded, delivered atomic.Uint64
}

// New checks cfg, binds the listeners (so that address problems show at start-up) and returns
// the endpoint; Run serves. notify (may be nil) is called after each message stored in box —
// pass the drainer's Notify.
func New(cfg Config, box Outbox, notify func(), log zerolog.Logger) (*Endpoint, error) {
	if err := cfg.check(); err != nil {
		return nil, err
	}
	if cfg.MaxPayload == 0 {
		cfg.MaxPayload = qmt.DefaultMaxPayload
	}
	e := &Endpoint{cfg: cfg, box: box, notify: notify, log: log.With().Str("component", "local").Logger()}

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
		l, err := listenUnix(cfg.Socket)
		if err != nil {
			closeAll()
			return nil, err
		}
		lns = append(lns, l)
	}

	// mochi logs through slog; its own messages reach our log at warning and above.
	mlog := e.log.With().Str("component", "local-broker").Logger()
	mlog = mlog.Level(max(mlog.GetLevel(), zerolog.WarnLevel))
	e.srv = mqtt.New(&mqtt.Options{InlineClient: true, Logger: slog.New(zerolog.NewSlogHandler(mlog))})
	if err := e.srv.AddHook(&hook{e: e}, nil); err != nil {
		closeAll()
		return nil, fmt.Errorf("local: %w", err)
	}
	for i, l := range lns {
		if err := e.srv.AddListener(listeners.NewNet(fmt.Sprintf("%s-%d", l.Addr().Network(), i), l)); err != nil {
			closeAll()
			return nil, fmt.Errorf("local: %w", err)
		}
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
	if c.MaxPayload < 0 {
		return fmt.Errorf("local: max payload %d is negative", c.MaxPayload)
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

// listenUnix listens on a unix socket at path, replacing a stale socket file (one nobody
// answers on) but never another kind of file or a live socket.
func listenUnix(path string) (net.Listener, error) {
	if fi, err := os.Lstat(path); err == nil {
		if fi.Mode()&os.ModeSocket == 0 {
			return nil, fmt.Errorf("local: socket %s: a file that is not a socket is in the way", path)
		}
		if c, err := net.Dial("unix", path); err == nil {
			c.Close()
			return nil, fmt.Errorf("local: socket %s is in use by another process (another gatewayd?)", path)
		}
		if err := os.Remove(path); err != nil {
			return nil, fmt.Errorf("local: removing the stale socket: %w", err)
		}
	}
	l, err := net.Listen("unix", path)
	if err != nil {
		return nil, fmt.Errorf("local: %w", err)
	}
	// The owner and its group may connect: share the socket by the group of its directory.
	if err := os.Chmod(path, 0o660); err != nil {
		l.Close()
		return nil, fmt.Errorf("local: %w", err)
	}
	return l, nil
}

// Addrs are the addresses the endpoint listens on (TCP first, then the unix socket).
func (e *Endpoint) Addrs() []net.Addr { return e.addrs }

// Run serves local clients until ctx ends, then disconnects them and closes the listeners.
// Call it once.
func (e *Endpoint) Run(ctx context.Context) error {
	started := false
	e.runOnce.Do(func() { started = true })
	if !started {
		return errors.New("local: Run called twice")
	}
	if err := e.srv.Serve(); err != nil {
		return fmt.Errorf("local: %w", err)
	}
	for _, a := range e.addrs {
		e.log.Info().Str("address", a.String()).Str("network", a.Network()).Int("forward_rules", len(e.cfg.Forward)).
			Msg("local MQTT endpoint listening")
	}
	<-ctx.Done()
	if err := e.srv.Close(); err != nil {
		return fmt.Errorf("local: %w", err)
	}
	if e.cfg.Socket != "" {
		_ = os.Remove(e.cfg.Socket)
	}
	return nil
}

// Deliver publishes a downlink locally on its topic (QoS 1 to subscribers that asked for it,
// not retained), for host programs subscribed with an ordinary MQTT client. It is never
// forwarded back to the cloud, whatever the forwarding rules say. Call it for every downlink
// the module reports.
func (e *Endpoint) Deliver(topic string, payload []byte) error {
	if err := checkTopicName(topic); err != nil {
		return fmt.Errorf("local: deliver: %w", err)
	}
	if err := e.srv.Publish(topic, payload, false, 1); err != nil {
		return fmt.Errorf("local: deliver to %q: %w", topic, err)
	}
	e.delivered.Add(1)
	return nil
}

// Stats returns a snapshot of the counters.
func (e *Endpoint) Stats() Stats {
	clients := 0
	for _, cl := range e.srv.Clients.GetAll() {
		if !cl.Net.Inline && !cl.Closed() {
			clients++
		}
	}
	return Stats{
		Forwarded:    e.forwarded.Load(),
		Refused:      e.refused.Load(),
		Disconnected: e.disconnected.Load(),
		NotForwarded: e.notForwarded.Load(),
		Delivered:    e.delivered.Load(),
		Clients:      clients,
	}
}

// rule returns the QoS to forward topic with, and whether any rule matches.
func (e *Endpoint) rule(name string) (int, bool) {
	qos, ok := 0, false
	for _, f := range e.cfg.Forward {
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
// control bytes, which would end or split the AT command).
func (e *Endpoint) unsendable(topic string, payload []byte) (reason string, code packets.Code) {
	if len(payload) == 0 || len(payload) > e.cfg.MaxPayload {
		return fmt.Sprintf("payload of %d bytes; the module sends 1 to %d", len(payload), e.cfg.MaxPayload), packets.ErrPayloadFormatInvalid
	}
	for i := 0; i < len(topic); i++ {
		if b := topic[i]; b == '"' || b < 0x20 || b == 0x7F {
			return fmt.Sprintf("topic byte 0x%02X at offset %d cannot go into an AT command", b, i), packets.ErrTopicNameInvalid
		}
	}
	return "", packets.Code{}
}

// hook plugs the endpoint into mochi: authentication, and the store-before-PUBACK step.
type hook struct {
	mqtt.HookBase
	e *Endpoint
}

func (h *hook) ID() string { return "gatewayd-local" }

func (h *hook) Provides(b byte) bool {
	return b == mqtt.OnConnectAuthenticate || b == mqtt.OnACLCheck || b == mqtt.OnPublish
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
		h.e.log.Warn().Str("client_id", cl.ID).Str("remote", cl.Net.Remote).
			Msg("local client refused: wrong user name or password")
		return false
	}
	return true
}

// OnACLCheck lets every authenticated local client publish and subscribe.
func (h *hook) OnACLCheck(*mqtt.Client, string, bool) bool { return true }

// OnPublish runs in the publishing client's goroutine before mochi acknowledges the publish
// (server.go processPublish: the PUBACK/PUBREC is written only after OnPublish returns without
// error). A forwarded message is stored — written and fsynced — here, so the client's PUBACK
// means "on disk".
func (h *hook) OnPublish(cl *mqtt.Client, pk packets.Packet) (packets.Packet, error) {
	e := h.e
	if cl.Net.Inline {
		return pk, nil // a downlink from Deliver: never forwarded back up
	}
	qos, ok := e.rule(pk.TopicName)
	if !ok {
		return pk, nil
	}
	v5 := cl.Properties.ProtocolVersion == 5
	if reason, code := e.unsendable(pk.TopicName, pk.Payload); reason != "" {
		total := e.notForwarded.Add(1)
		e.log.Warn().Str("event", "local_not_forwarded").Str("client_id", cl.ID).Str("topic", pk.TopicName).
			Int("bytes", len(pk.Payload)).Str("reason", reason).Uint64("not_forwarded_total", total).
			Msg("publish on a forwarded topic not sent to the cloud: the module cannot send it")
		if v5 && pk.FixedHeader.Qos == 1 {
			return pk, code
		}
		return pk, nil
	}
	_, err := e.box.Put(pk.TopicName, pk.Payload, qos, pk.FixedHeader.Retain)
	if err == nil {
		e.forwarded.Add(1)
		if e.notify != nil {
			e.notify()
		}
		return pk, nil
	}
	if errors.Is(err, outbox.ErrTooLarge) || errors.Is(err, outbox.ErrInvalid) {
		// No amount of waiting makes room for it: refusing would make the client resend it for
		// ever. The outbox logged and counted it; it stays local.
		e.notForwarded.Add(1)
		if v5 && pk.FixedHeader.Qos == 1 {
			return pk, packets.ErrPacketTooLarge
		}
		return pk, nil
	}
	e.refused.Add(1)
	switch {
	case pk.FixedHeader.Qos == 0:
		// The outbox logged and counted the refusal; QoS 0 has nothing to withhold.
		return pk, packets.ErrRejectPacket
	case v5 && pk.FixedHeader.Qos == 1:
		e.log.Warn().Str("event", "local_refused").Str("client_id", cl.ID).Str("topic", pk.TopicName).Err(err).
			Msg("outbox refused a local publish; answered with PUBACK reason 0x97 (quota exceeded)")
		return pk, packets.ErrQuotaExceeded
	default:
		total := e.disconnected.Add(1)
		e.log.Warn().Str("event", "local_refused").Str("client_id", cl.ID).Str("topic", pk.TopicName).Err(err).
			Uint64("disconnected_total", total).
			Msg("outbox refused a local publish; closing the client's connection without PUBACK so that it sends the message again after reconnecting")
		cl.Stop(fmt.Errorf("outbox refused the publish: %w", err))
		return pk, packets.ErrRejectPacket
	}
}
