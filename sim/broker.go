package sim

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	mochi "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/listeners"
	"github.com/mochi-mqtt/server/v2/packets"
	"github.com/rs/zerolog"
)

// DefaultBrokerAddr is where the embedded broker listens unless told otherwise.
const DefaultBrokerAddr = "127.0.0.1:1883"

// Broker is an embedded MQTT broker (mochi-mqtt) on a TCP address, accepting every client unless
// an auth function (WithAuth) or a platform's checks (WithPlatform) refuse it.
type Broker struct {
	srv  *mochi.Server
	addr string
	tls  bool
	once sync.Once
	subs atomic.Int64 // inline subscription ids handed out
}

// BrokerOption changes how NewBroker sets the broker up.
type BrokerOption func(*brokerOptions)

type brokerOptions struct {
	log      zerolog.Logger
	auth     func(clientID, username string, password []byte) byte
	tls      *tls.Config
	platform string   // WithPlatform: the cloud whose CONNECT checks to apply
	devices  []Device // WithPlatform: its device registry
	now      func() time.Time
	events   func(BrokerEvent)
	rate     int                                          // CONNECTs accepted per second; 0: no limit
	publish  func(clientID, topic string, payload []byte) // every PUBLISH from a client
	// maxQoS is the highest QoS the broker grants (and delivers at); 0 with setQoS false: 2.
	maxQoS byte
	setQoS bool
	// registrar: WithAliyunRegistration's state; nil without it.
	registrar *aliyunRegistrar
}

// WithTLS makes the broker's listener speak TLS with cfg (its certificate, and ClientAuth and
// ClientCAs to ask for client certificates), as a cloud broker's port 8883 does.
func WithTLS(cfg *tls.Config) BrokerOption {
	return func(o *brokerOptions) { o.tls = cfg }
}

// WithBrokerLogger sends the broker's log to l (debug level and up).
func WithBrokerLogger(l zerolog.Logger) BrokerOption {
	return func(o *brokerOptions) { o.log = l }
}

// WithAuth makes the broker ask auth about each CONNECT: 0 accepts; 1-5 refuses with that
// MQTT 3.1.1 CONNACK return code (4 bad user name or password, 5 not authorised, ...).
func WithAuth(auth func(clientID, username string, password []byte) byte) BrokerOption {
	return func(o *brokerOptions) { o.auth = auth }
}

// WithMaxQoS makes the broker grant at most QoS q (0-2) to a subscription, whatever was asked,
// and deliver at most at q, as Aliyun and ThingsBoard grant 1 for a request of 2 (reference 2.5).
func WithMaxQoS(q byte) BrokerOption {
	return func(o *brokerOptions) { o.maxQoS, o.setQoS = min(q, 2), true }
}

// WithConnectRate makes the broker accept at most perSecond CONNECTs in each second (of the
// broker's clock) and refuse the others with CONNACK return code 3, "server unavailable", as a
// broker with a connection rate limit does (EMQX's max_conn_rate, a cloud's per-instance
// limit). Refused CONNECTs count towards the second too: a fleet that retries at once is
// refused again. 0 or less: no limit. WithEvents reports each refusal ("refused", code 3).
func WithConnectRate(perSecond int) BrokerOption {
	return func(o *brokerOptions) { o.rate = perSecond }
}

// WithPublishObserver calls observe for every PUBLISH a client sends the broker, before the
// broker acknowledges it: a count of what reached the cloud that no subscriber's reconnect can
// miss (Subscribe starts after the broker, so it can miss the first publishes of a client that
// connects at once). It is called from the client's goroutine: it must not block.
func WithPublishObserver(observe func(clientID, topic string, payload []byte)) BrokerOption {
	return func(o *brokerOptions) { o.publish = observe }
}

// NewBroker starts an embedded broker on addr ("127.0.0.1:0" picks a free port; Addr tells which).
func NewBroker(addr string, opts ...BrokerOption) (*Broker, error) {
	if addr == "" {
		addr = DefaultBrokerAddr
	}
	o := brokerOptions{log: zerolog.Nop(), now: time.Now}
	for _, opt := range opts {
		opt(&o)
	}
	caps := mochi.NewDefaultServerCapabilities()
	if o.setQoS {
		caps.MaximumQos = o.maxQoS
	}
	hook := &authHook{auth: o.auth, now: o.now, events: o.events, rate: o.rate, publish: o.publish,
		log: o.log.With().Str("component", "broker").Logger()}
	if o.platform != "" {
		v, ok := verifiers[o.platform]
		if !ok {
			return nil, fmt.Errorf("broker: no platform %q (have %s)", o.platform, strings.Join(Platforms(), ", "))
		}
		hook.platform, hook.verify, hook.devices = o.platform, v, map[string]string{}
		if o.registrar != nil {
			if o.platform != PlatformAliyun {
				return nil, fmt.Errorf("broker: dynamic registration is an Alibaba Cloud feature, not %s", o.platform)
			}
			hook.registrar = o.registrar
		}
		for _, d := range o.devices {
			hook.devices[d.ID] = d.Secret
		}
	}
	srv := mochi.New(&mochi.Options{
		InlineClient: true,
		Capabilities: caps,
		Logger:       slog.New(&slogToZerolog{log: o.log.With().Str("component", "broker").Logger()}),
	})
	hook.srv = srv
	if err := srv.AddHook(hook, nil); err != nil {
		return nil, fmt.Errorf("broker hook: %w", err)
	}
	tcp := &trackedListener{addr: addr, tls: o.tls, conns: make(map[net.Conn]struct{}), served: make(chan struct{})}
	if err := srv.AddListener(tcp); err != nil {
		return nil, fmt.Errorf("broker listen on %s: %w", addr, err)
	}
	if err := srv.Serve(); err != nil {
		srv.Close()
		return nil, fmt.Errorf("broker serve: %w", err)
	}
	return &Broker{srv: srv, addr: tcp.Address(), tls: o.tls != nil}, nil
}

// Addr is the host:port the broker listens on.
func (b *Broker) Addr() string { return b.addr }

// URL is the broker's address as tcp://host:port, or ssl://host:port for a TLS listener.
func (b *Broker) URL() string {
	if b.tls {
		return "ssl://" + b.addr
	}
	return "tcp://" + b.addr
}

// Publish sends a message from the broker itself to every matching subscriber.
func (b *Broker) Publish(topic string, payload []byte, retain bool, qos byte) error {
	return b.srv.Publish(topic, payload, retain, qos)
}

// Subscribe calls fn for every message published on a topic matching filter, as the cloud's own
// side sees it (no client, no credentials to check). fn runs in the publisher's goroutine and
// must not block.
func (b *Broker) Subscribe(filter string, fn func(topic string, payload []byte)) error {
	return b.srv.Subscribe(filter, int(b.subs.Add(1)), func(_ *mochi.Client, _ packets.Subscription, pk packets.Packet) {
		fn(pk.TopicName, append([]byte(nil), pk.Payload...))
	})
}

// Clients is the number of clients connected now.
func (b *Broker) Clients() int { return int(atomic.LoadInt64(&b.srv.Info.ClientsConnected)) }

// Close stops the broker and disconnects its clients, and waits for their goroutines.
func (b *Broker) Close() error {
	b.once.Do(func() { b.srv.Close() })
	return nil
}

// trackedListener is a TCP listener for mochi that, unlike mochi's own, closes every accepted
// connection on Close (also those that never sent CONNECT, which mochi would wait for forever)
// and waits for their goroutines. That also keeps mochi's client WaitGroup from being added to
// while the server waits on it.
type trackedListener struct {
	addr    string
	tls     *tls.Config // nil: plain TCP
	ln      net.Listener
	mu      sync.Mutex
	conns   map[net.Conn]struct{}
	closed  bool
	started bool
	wg      sync.WaitGroup
	served  chan struct{}
}

func (l *trackedListener) ID() string       { return "tcp" }
func (l *trackedListener) Protocol() string { return "tcp" }
func (l *trackedListener) Address() string {
	if l.ln != nil {
		return l.ln.Addr().String()
	}
	return l.addr
}

func (l *trackedListener) Init(*slog.Logger) error {
	ln, err := net.Listen("tcp", l.addr)
	if err != nil {
		return err
	}
	l.ln = ln
	return nil
}

func (l *trackedListener) Serve(establish listeners.EstablishFn) {
	defer close(l.served)
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return
	}
	l.started = true
	l.mu.Unlock()
	for {
		c, err := l.ln.Accept()
		if err != nil {
			return
		}
		l.mu.Lock()
		if l.closed {
			l.mu.Unlock()
			c.Close()
			return
		}
		l.conns[c] = struct{}{}
		l.wg.Add(1)
		l.mu.Unlock()
		go func() {
			defer l.wg.Done()
			var conn net.Conn = c
			if l.tls != nil {
				conn = tls.Server(c, l.tls)
			}
			_ = establish("tcp", conn)
			c.Close()
			l.mu.Lock()
			delete(l.conns, c)
			l.mu.Unlock()
		}()
	}
}

func (l *trackedListener) Close(closeClients listeners.CloseFn) {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return
	}
	l.closed = true
	started := l.started
	l.mu.Unlock()
	closeClients("tcp")
	l.ln.Close()
	if started {
		<-l.served
	}
	l.mu.Lock()
	for c := range l.conns {
		c.Close()
	}
	l.mu.Unlock()
	l.wg.Wait()
}

// authHook allows every client and topic, except the CONNECTs auth or the platform's checks
// refuse, and reports what it sees to events.
type authHook struct {
	mochi.HookBase
	srv  *mochi.Server
	auth func(clientID, username string, password []byte) byte
	log  zerolog.Logger
	now  func() time.Time

	platform string            // "" for none
	verify   verifier          // the platform's CONNECT check
	devices  map[string]string // the platform's registry, ID → secret (read only)
	// registrar answers Aliyun registrations; nil without WithAliyunRegistration.
	registrar *aliyunRegistrar
	answers   sync.Map // *mochi.Client → registration answer (regAnswer) to send after CONNACK

	events  func(BrokerEvent)
	rate    int
	publish func(clientID, topic string, payload []byte)

	mu        sync.Mutex
	sessions  map[string]*mochi.Client // the platform's one connection per device
	sessionOf map[*mochi.Client]string // ... and whose each is
	second    int64                    // the Unix second the rate count is of
	count     int                      // CONNECTs received in that second
}

// overRate counts a CONNECT that arrived at now and reports whether it is above the rate.
func (h *authHook) overRate(now time.Time) bool {
	if h.rate <= 0 {
		return false
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if s := now.Unix(); s != h.second {
		h.second, h.count = s, 0
	}
	h.count++
	return h.count > h.rate
}

// OnPublish shows a client's PUBLISH to the publish observer, unchanged.
func (h *authHook) OnPublish(cl *mochi.Client, pk packets.Packet) (packets.Packet, error) {
	if h.publish != nil && !cl.Net.Inline {
		h.publish(cl.ID, pk.TopicName, pk.Payload)
	}
	return pk, nil
}

func (h *authHook) ID() string { return "ec600sim-auth" }

func (h *authHook) Provides(b byte) bool {
	return bytes.Contains([]byte{mochi.OnConnect, mochi.OnConnectAuthenticate, mochi.OnACLCheck, mochi.OnDisconnect, mochi.OnPublish, mochi.OnSessionEstablished}, []byte{b})
}

// OnConnect sends the refusal CONNACK itself, so any return code can be chosen, then ends the
// connection by returning an error.
func (h *authHook) OnConnect(cl *mochi.Client, pk packets.Packet) error {
	id := pk.Connect.ClientIdentifier
	code, why, dev := byte(0), "", ""
	var expires time.Time
	if h.overRate(h.now()) {
		code, why = 3, fmt.Sprintf("above the connect rate (%d a second): server unavailable", h.rate)
	}
	if code == 0 && h.auth != nil {
		if code = h.auth(id, string(pk.Connect.Username), pk.Connect.Password); code != 0 {
			why = "refused by the broker's auth function"
		}
	}
	if code == 0 && h.verify != nil {
		isTLS, peer := connTLS(cl.Net.Conn)
		cc := cloudConnect{
			clientID: id, username: string(pk.Connect.Username), password: pk.Connect.Password,
			keepalive: pk.Connect.Keepalive, tls: isTLS, peer: peer, now: h.now(),
		}
		var v verdict
		switch {
		case h.registrar != nil && isRegistration(id):
			var topic string
			var payload []byte
			v, topic, payload = h.registrar.verifyRegistration(cc)
			if v.code == 0 {
				// A silent registrar's answer has no topic: the link is only dropped.
				h.answers.Store(cl, regAnswer{topic: topic, payload: payload})
			}
		case h.registrar != nil && isConnWL(id):
			v = h.registrar.verifyConnWL(cc)
			if v.code == 0 {
				h.registrar.activate(v.device)
			}
		case h.registrar != nil:
			v = h.verify(cc, h.registrar.devices(h.devices))
			if v.code == 0 {
				h.registrar.activate(v.device)
			}
		default:
			v = h.verify(cc, h.devices)
		}
		code, why, expires, dev = v.code, v.why, v.expires, v.device
		if code != 0 {
			// Never the secret, the password or the user name (a ThingsBoard token): the client id
			// and why.
			h.log.Info().Str("platform", h.platform).Str("client_id", id).Int("code", int(code)).Str("why", why).
				Msg("CONNECT refused")
		} else {
			ev := h.log.Debug().Str("platform", h.platform).Str("client_id", id).Bool("tls", isTLS)
			if !expires.IsZero() {
				ev = ev.Time("expires", expires)
			}
			ev.Msg("CONNECT credentials check out")
		}
	}
	if code == 0 {
		h.event(BrokerEvent{Kind: "connect", ClientID: id, Expires: expires})
		if dev != "" {
			h.takeOver(cl, dev)
		}
		return nil
	}
	h.event(BrokerEvent{Kind: "refused", ClientID: id, Code: code, Why: why})
	if err := h.srv.SendConnack(cl, packets.Code{Code: code}, false, nil); err != nil {
		return err
	}
	return fmt.Errorf("connect refused with return code %d: %s", code, why)
}

// regAnswer is a registration's answer, published to the client after its CONNACK.
type regAnswer struct {
	topic   string
	payload []byte
}

// OnSessionEstablished publishes a registration's answer to the client that asked (it needs no
// subscription), after the registrar's delay, and drops the link after the platform's 15 s.
func (h *authHook) OnSessionEstablished(cl *mochi.Client, _ packets.Packet) {
	a, ok := h.answers.LoadAndDelete(cl)
	if !ok {
		return
	}
	ans, o := a.(regAnswer), h.registrar.opts
	go func() {
		if ans.topic == "" {
			return
		}
		if o.Delay > 0 {
			time.Sleep(o.Delay)
		}
		if cl.Closed() {
			return
		}
		err := cl.WritePacket(packets.Packet{
			FixedHeader: packets.FixedHeader{Type: packets.Publish},
			TopicName:   ans.topic, Payload: ans.payload,
		})
		h.log.Info().Str("platform", h.platform).Str("client_id", cl.ID).Str("topic", ans.topic).AnErr("err", err).
			Msg("registration answered") // never the payload: it holds the DeviceSecret
	}()
	time.AfterFunc(o.Drop, func() {
		if !cl.Closed() {
			h.log.Info().Str("platform", h.platform).Str("client_id", cl.ID).Msg("registration link dropped after the platform's time")
			cl.Stop(errors.New("registration link closed by the platform"))
		}
	})
}

// takeOver makes cl device dev's one connection: an older connection of the same device is
// forced offline (its socket closed, as the clouds do: reference 5, "second connection with same
// identity"), whatever client id either used.
func (h *authHook) takeOver(cl *mochi.Client, dev string) {
	h.mu.Lock()
	if h.sessions == nil {
		h.sessions, h.sessionOf = map[string]*mochi.Client{}, map[*mochi.Client]string{}
	}
	old := h.sessions[dev]
	h.sessions[dev], h.sessionOf[cl] = cl, dev
	h.mu.Unlock()
	if old != nil && old != cl && !old.Closed() {
		h.log.Info().Str("platform", h.platform).Str("client_id", old.ID).Str("new_client_id", cl.ID).
			Msg("the same device logged in again: its older connection is forced offline")
		h.event(BrokerEvent{Kind: "kicked", ClientID: old.ID, Why: "the same device logged in as " + cl.ID})
		old.Stop(packets.ErrSessionTakenOver)
	}
}

// OnDisconnect reports a session's end: "disconnect" when the client sent DISCONNECT.
func (h *authHook) OnDisconnect(cl *mochi.Client, _ error, _ bool) {
	h.mu.Lock()
	if dev, ok := h.sessionOf[cl]; ok {
		delete(h.sessionOf, cl)
		if h.sessions[dev] == cl {
			delete(h.sessions, dev)
		}
	}
	h.mu.Unlock()
	kind := "lost"
	if errors.Is(cl.StopCause(), packets.CodeDisconnect) {
		kind = "disconnect"
	}
	h.event(BrokerEvent{Kind: kind, ClientID: cl.ID})
}

func (h *authHook) event(e BrokerEvent) {
	if h.events != nil {
		e.At = h.now()
		h.events(e)
	}
}

func (h *authHook) OnConnectAuthenticate(*mochi.Client, packets.Packet) bool { return true }

func (h *authHook) OnACLCheck(*mochi.Client, string, bool) bool { return true }

// slogToZerolog forwards mochi's slog records to zerolog.
type slogToZerolog struct {
	log   zerolog.Logger
	attrs []slog.Attr
}

func (s *slogToZerolog) Enabled(_ context.Context, l slog.Level) bool {
	return s.log.GetLevel() <= zerolog.DebugLevel || l >= slog.LevelWarn && s.log.GetLevel() <= zerolog.WarnLevel
}

func (s *slogToZerolog) Handle(_ context.Context, r slog.Record) error {
	var ev *zerolog.Event
	switch {
	case r.Level >= slog.LevelError:
		ev = s.log.Error()
	case r.Level >= slog.LevelWarn:
		ev = s.log.Warn()
	case r.Level >= slog.LevelInfo:
		ev = s.log.Debug() // mochi's info lines are chatty; they are debug for us
	default:
		ev = s.log.Trace()
	}
	add := func(a slog.Attr) bool {
		ev = ev.Str(a.Key, a.Value.String())
		return true
	}
	for _, a := range s.attrs {
		add(a)
	}
	r.Attrs(add)
	ev.Msg(r.Message)
	return nil
}

func (s *slogToZerolog) WithAttrs(attrs []slog.Attr) slog.Handler {
	return &slogToZerolog{log: s.log, attrs: append(append([]slog.Attr(nil), s.attrs...), attrs...)}
}

func (s *slogToZerolog) WithGroup(string) slog.Handler { return s }
