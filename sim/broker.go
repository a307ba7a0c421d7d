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
	log  zerolog.Logger
	auth func(clientID, username string, password []byte) byte
	tls  *tls.Config
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
	o := brokerOptions{log: zerolog.Nop()}
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
	if err := srv.AddHook(&authHook{srv: srv, auth: o.auth}, nil); err != nil {
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

// Subscribe calls fn with every message published on a topic that matches filter: a
// subscription of the broker itself, as a cloud platform's console sees the device's messages.
// id tells the broker's subscriptions apart (1 and up). fn runs on the broker's delivery path
// and must not wait.
func (b *Broker) Subscribe(filter string, id int, fn func(topic string, payload []byte)) error {
	return b.srv.Subscribe(filter, id, func(_ *mochi.Client, _ packets.Subscription, pk packets.Packet) {
		fn(pk.TopicName, bytes.Clone(pk.Payload))
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

// authHook allows every client and topic, except the CONNECTs auth refuses.
type authHook struct {
	mochi.HookBase
	srv  *mochi.Server
	auth func(clientID, username string, password []byte) byte
}

func (h *authHook) ID() string { return "ec600sim-auth" }

func (h *authHook) Provides(b byte) bool {
	return bytes.Contains([]byte{mochi.OnConnect, mochi.OnConnectAuthenticate, mochi.OnACLCheck}, []byte{b})
}

// OnConnect sends the refusal CONNACK itself, so any return code can be chosen, then ends the
// connection by returning an error.
func (h *authHook) OnConnect(cl *mochi.Client, pk packets.Packet) error {
	if h.auth == nil {
		return nil
	}
	code := h.auth(pk.Connect.ClientIdentifier, string(pk.Connect.Username), pk.Connect.Password)
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
