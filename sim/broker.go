package sim

import (
	"bytes"
	"context"
	"crypto/tls"
	"fmt"
	"log/slog"
	"net"
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
// an auth function refuses it.
type Broker struct {
	srv  *mochi.Server
	addr string
	tls  bool
	once sync.Once
}

// BrokerOption changes how NewBroker sets the broker up.
type BrokerOption func(*brokerOptions)

type brokerOptions struct {
	log     zerolog.Logger
	auth    func(clientID, username string, password []byte) byte
	tls     *tls.Config
	rate    int                                            // CONNECTs accepted per second; 0: no limit
	observe func(clientID string, at time.Time, code byte) // every CONNECT and its CONNACK code
	publish func(clientID, topic string, payload []byte)   // every PUBLISH from a client
	now     func() time.Time
	// maxQoS is the highest QoS the broker grants (and delivers at); 0 with setQoS false: 2.
	maxQoS byte
	setQoS bool
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

// WithConnectRate makes the broker accept at most perSecond CONNECTs in each second (of the
// wall clock) and refuse the others with CONNACK return code 3, "server unavailable", as a
// broker with a connection rate limit does (EMQX's max_conn_rate, a cloud's per-instance
// limit). Refused CONNECTs count towards the second too: a fleet that retries at once is
// refused again. 0 or less: no limit.
func WithConnectRate(perSecond int) BrokerOption {
	return func(o *brokerOptions) { o.rate = perSecond }
}

// WithConnectObserver calls observe for every CONNECT the broker receives, with the time it
// arrived and the CONNACK return code it got (0 accepted, 3 refused by the rate limit, or what
// the auth function returned). It is called from the client's goroutine: it must not block.
func WithConnectObserver(observe func(clientID string, at time.Time, code byte)) BrokerOption {
	return func(o *brokerOptions) { o.observe = observe }
}

// WithPublishObserver calls observe for every PUBLISH a client sends the broker, before the
// broker acknowledges it: a count of what reached the cloud that no subscriber's reconnect can
// miss. It is called from the client's goroutine: it must not block.
func WithPublishObserver(observe func(clientID, topic string, payload []byte)) BrokerOption {
	return func(o *brokerOptions) { o.publish = observe }
}

// WithMaxQoS makes the broker grant at most QoS q (0-2) to a subscription, whatever was asked,
// and deliver at most at q, as Aliyun and ThingsBoard grant 1 for a request of 2 (reference 2.5).
func WithMaxQoS(q byte) BrokerOption {
	return func(o *brokerOptions) { o.maxQoS, o.setQoS = min(q, 2), true }
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
	srv := mochi.New(&mochi.Options{
		InlineClient: true,
		Capabilities: caps,
		Logger:       slog.New(&slogToZerolog{log: o.log.With().Str("component", "broker").Logger()}),
	})
	if err := srv.AddHook(&authHook{srv: srv, auth: o.auth, rate: o.rate, observe: o.observe, publish: o.publish, now: o.now}, nil); err != nil {
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

// authHook allows every client and topic, except the CONNECTs auth or the rate limit refuses.
type authHook struct {
	mochi.HookBase
	srv     *mochi.Server
	auth    func(clientID, username string, password []byte) byte
	rate    int
	observe func(clientID string, at time.Time, code byte)
	publish func(clientID, topic string, payload []byte)
	now     func() time.Time

	mu     sync.Mutex
	second int64 // the Unix second the count is of
	count  int   // CONNECTs received in that second
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

func (h *authHook) ID() string { return "ec600sim-auth" }

func (h *authHook) Provides(b byte) bool {
	return bytes.Contains([]byte{mochi.OnConnect, mochi.OnConnectAuthenticate, mochi.OnACLCheck, mochi.OnPublish}, []byte{b})
}

// OnPublish shows a client's PUBLISH to the publish observer, unchanged.
func (h *authHook) OnPublish(cl *mochi.Client, pk packets.Packet) (packets.Packet, error) {
	if h.publish != nil && !cl.Net.Inline {
		h.publish(cl.ID, pk.TopicName, pk.Payload)
	}
	return pk, nil
}

// OnConnect sends the refusal CONNACK itself, so any return code can be chosen, then ends the
// connection by returning an error.
func (h *authHook) OnConnect(cl *mochi.Client, pk packets.Packet) error {
	now := h.now()
	var code byte
	switch {
	case h.overRate(now):
		code = 3 // server unavailable
	case h.auth != nil:
		code = h.auth(pk.Connect.ClientIdentifier, string(pk.Connect.Username), pk.Connect.Password)
	}
	if h.observe != nil {
		h.observe(pk.Connect.ClientIdentifier, now, code)
	}
	if code == 0 {
		return nil
	}
	if err := h.srv.SendConnack(cl, packets.Code{Code: code}, false, nil); err != nil {
		return err
	}
	return fmt.Errorf("connect refused with return code %d", code)
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
