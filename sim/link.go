package sim

import (
	"context"
	"crypto/hmac"
	"crypto/sha1"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
	"github.com/eclipse/paho.mqtt.golang/packets"
)

// Operations the engine queues for a link's worker, in command order.
type (
	opOpen struct {
		tls *tlsSetup // nil: plain TCP
		err error     // the TLS settings cannot work: the open fails
	}
	opConnect struct{ p connectParams }
	opSub     struct {
		msgid     int
		topics    []string
		qos       []byte
		notBefore time.Time
	}
	opUns struct {
		msgid     int
		topics    []string
		notBefore time.Time
	}
	opPub struct {
		cmd       string
		msgid     int
		qos       byte
		retain    bool
		topic     string
		payload   []byte
		notBefore time.Time
		// losePUBACK (LosePUBACK): the broker's acknowledgement never reaches the module, which
		// reports each retransmission every pktTimeout, retries times, then gives up.
		losePUBACK bool
		pktTimeout time.Duration
		retries    int
	}
	opDisc  struct{}
	opClose struct{}
)

// Events a link sends to the engine.
type (
	evOpened struct {
		l    *link
		code int
	}
	evConnected struct {
		l    *link
		rc   int // CONNACK return code when fail == 0
		fail int // 0: CONNACK received; connSendFailed; a +QMTSTAT code; reasonSilent
	}
	evLost struct {
		l    *link
		code int
	}
	evDisc    struct{ l *link }
	evClosed  struct{ l *link }
	evSubDone struct {
		l       *link
		msgid   int
		ok      bool
		granted []int
	}
	evUnsDone struct {
		l     *link
		msgid int
		ok    bool
	}
	evPubRetry struct {
		l     *link
		cmd   string
		msgid int
		count int
	}
	evPubDone struct {
		l     *link
		cmd   string
		msgid int
		ok    bool
	}
	evMsg struct {
		l       *link
		msgid   int
		topic   string
		payload []byte
	}
)

// connectParams is what AT+QMTCONN and the client's AT+QMTCFG settings ask of CONNECT.
type connectParams struct {
	clientID, user, pass string
	version              int
	clean                bool
	keepalive            int // seconds, 0 = off
	pingTimeout          int // seconds
	pktTimeout           int // seconds
	retries              int
	will                 *willSpec
	refuse               byte // RefuseConnect: rewrite the CONNACK code
}

type willSpec struct {
	topic   string
	payload []byte
	qos     byte
	retain  bool
}

// aliyunCredentials derives what the module sends when AT+QMTCFG="aliauth" is set. The firmware's
// choice of securemode/signmethod is undocumented; this uses securemode=3, hmacsha1, no timestamp.
func aliyunCredentials(clientID, pk, dn, secret string) (id, user, pass string) {
	m := hmac.New(sha1.New, []byte(secret))
	m.Write([]byte("clientId" + clientID + "deviceName" + dn + "productKey" + pk))
	return clientID + "|securemode=3,signmethod=hmacsha1|", dn + "&" + pk, hex.EncodeToString(m.Sum(nil))
}

// pending is a submitted SUBSCRIBE, UNSUBSCRIBE or PUBLISH waiting for its acknowledgement.
type pending struct {
	tok       mqtt.Token
	sub       *opSub
	uns       *opUns
	pub       *opPub
	notBefore time.Time
}

// link is one client index's connection to the broker: a worker goroutine that runs operations
// in order (TCP connect, then paho over that same socket) and a completer goroutine that turns
// acknowledgements into result events in submission order.
type link struct {
	m      *Module
	idx    int
	boot   uint64
	ctx    context.Context
	cancel context.CancelFunc
	ops    *queue[any]
	pend   *queue[pending]
	tap    atomic.Pointer[tapConn]

	lost      chan struct{} // closed by paho's connection-lost handler
	lostOnce  sync.Once
	complDone chan struct{}

	client    mqtt.Client // worker-owned
	connected bool        // worker-owned: paho is connected and will report a loss
}

func newLink(m *Module, parent context.Context, idx int, boot uint64) *link {
	ctx, cancel := context.WithCancel(parent)
	l := &link{
		m: m, idx: idx, boot: boot, ctx: ctx, cancel: cancel,
		ops: newQueue[any](), pend: newQueue[pending](),
		lost: make(chan struct{}), complDone: make(chan struct{}),
	}
	m.wg.Add(2)
	go l.run()
	go l.complete()
	return l
}

func (l *link) push(op any) { l.ops.push(op) }

// stop ends the link without DISCONNECT; its goroutines finish in the background.
func (l *link) stop() { l.cancel() }

// kill breaks the TCP connection as a network fault would, reporting code in +QMTSTAT. It
// reports false when there is no connection yet.
func (l *link) kill(code int) bool {
	t := l.tap.Load()
	if t == nil {
		return false
	}
	t.closeWith(code)
	return true
}

// emit sends ev to the engine unless the link was stopped.
func (l *link) emit(ev any) {
	select {
	case l.m.events <- ev:
	case <-l.ctx.Done():
	}
}

func (l *link) run() {
	defer l.m.wg.Done()
	defer l.teardown()
	for {
		select {
		case <-l.ctx.Done():
			return
		case <-l.ops.ready():
		}
		for _, op := range l.ops.take() {
			if l.ctx.Err() != nil || !l.do(op) {
				return
			}
		}
	}
}

// teardown closes the socket and waits for paho and the completer to finish.
func (l *link) teardown() {
	t := l.tap.Load()
	if t != nil {
		t.closeWith(reasonSilent)
		t.stopWatch()
	}
	if l.connected {
		select {
		case <-l.lost:
		case <-time.After(5 * time.Second):
			l.m.log.Warn().Int("client", l.idx).Msg("paho did not report the closed connection within 5 s")
		}
	}
	l.cancel()
	<-l.complDone
}

// do runs one operation; false means the link is finished.
func (l *link) do(op any) bool {
	switch op := op.(type) {
	case opOpen:
		return l.open(op)
	case opConnect:
		return l.connect(op.p)
	case opSub:
		filters := make(map[string]byte, len(op.topics))
		for i, t := range op.topics {
			filters[t] = op.qos[i]
		}
		l.pend.push(pending{tok: l.client.SubscribeMultiple(filters, nil), sub: &op, notBefore: op.notBefore})
	case opUns:
		l.pend.push(pending{tok: l.client.Unsubscribe(op.topics...), uns: &op, notBefore: op.notBefore})
	case opPub:
		l.pend.push(pending{tok: l.client.Publish(op.topic, op.qos, op.retain, op.payload), pub: &op, notBefore: op.notBefore})
	case opDisc:
		t := l.tap.Load()
		if l.connected {
			l.client.Disconnect(2000)
			l.connected = false
		}
		t.closeWith(reasonSilent)
		l.emit(evDisc{l: l})
		return false
	case opClose:
		l.tap.Load().closeWith(reasonSilent)
		if l.connected {
			select {
			case <-l.lost:
			case <-time.After(5 * time.Second):
			}
			l.connected = false
		}
		l.emit(evClosed{l: l})
		return false
	}
	return true
}

// open makes the TCP connection to the configured broker, whatever host the command named, and
// the TLS handshake when TLS is on.
func (l *link) open(op opOpen) bool {
	if op.err != nil {
		l.m.log.Info().Err(op.err).Int("client", l.idx).Int("result", -1).Msg("QMTOPEN failed: TLS settings")
		l.emit(evOpened{l: l, code: -1})
		return false
	}
	addr := l.m.broker
	if op.tls != nil {
		addr = l.m.tlsBroker
	}
	d := net.Dialer{Timeout: l.m.cfg.OpenTimeout}
	conn, err := d.DialContext(l.ctx, "tcp", addr)
	if err == nil && op.tls != nil {
		conn, err = l.handshake(conn, op.tls)
	}
	if err != nil {
		if l.ctx.Err() != nil {
			return false
		}
		code := -1
		if errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ENETUNREACH) || errors.Is(err, syscall.EHOSTUNREACH) {
			code = 5
		}
		l.m.log.Info().Err(err).Int("client", l.idx).Int("result", code).Msg("QMTOPEN failed")
		l.emit(evOpened{l: l, code: code})
		return false
	}
	t := &tapConn{Conn: conn}
	l.tap.Store(t)
	t.startWatch(l)
	l.m.log.Info().Int("client", l.idx).Str("broker", addr).Bool("tls", op.tls != nil).Msg("link open")
	l.emit(evOpened{l: l, code: 0})
	return true
}

// handshake runs the TLS client handshake over conn within the context's negotiate time; on
// failure conn is closed.
func (l *link) handshake(conn net.Conn, s *tlsSetup) (net.Conn, error) {
	ctx, cancel := context.WithTimeout(l.ctx, s.timeout)
	defer cancel()
	tc := tls.Client(conn, s.cfg)
	if err := tc.HandshakeContext(ctx); err != nil {
		conn.Close()
		return nil, fmt.Errorf("TLS handshake: %w", err)
	}
	st := tc.ConnectionState()
	l.m.log.Info().Int("client", l.idx).Str("tls_version", tls.VersionName(st.Version)).
		Str("cipher", tls.CipherSuiteName(st.CipherSuite)).Str("sni", s.cfg.ServerName).Msg("TLS handshake done")
	return tc, nil
}

// connect runs MQTT CONNECT with paho over the already-open socket.
func (l *link) connect(p connectParams) bool {
	t := l.tap.Load()
	if !t.stopWatch() {
		return false // the link died while idle; the watcher reported it
	}
	t.refuse = p.refuse
	timeout := time.Duration(p.pktTimeout*(p.retries+1)) * time.Second
	opts := mqtt.NewClientOptions().
		AddBroker("tcp://" + l.m.broker).
		SetClientID(p.clientID).
		SetUsername(p.user).
		SetPassword(p.pass).
		SetCleanSession(p.clean).
		SetProtocolVersion(uint(p.version)).
		SetKeepAlive(time.Duration(p.keepalive) * time.Second).
		SetPingTimeout(time.Duration(p.pingTimeout) * time.Second).
		SetConnectTimeout(timeout).
		SetWriteTimeout(timeout).
		SetAutoReconnect(false).
		SetConnectRetry(false).
		SetResumeSubs(false).
		SetOrderMatters(true).
		SetDefaultPublishHandler(l.onMessage).
		SetConnectionLostHandler(l.onLost).
		SetCustomOpenConnectionFn(func(*url.URL, mqtt.ClientOptions) (net.Conn, error) { return t, nil })
	if p.will != nil {
		opts.SetBinaryWill(p.will.topic, p.will.payload, p.will.qos, p.will.retain)
	}
	l.client = mqtt.NewClient(opts)
	tok := l.client.Connect()
	select {
	case <-tok.Done():
	case <-l.ctx.Done():
		t.closeWith(reasonSilent)
		<-tok.Done()
		l.connected = tok.Error() == nil
		return false
	}
	if tok.Error() == nil {
		l.connected = true
		l.m.log.Info().Int("client", l.idx).Str("client_id", p.clientID).Msg("MQTT connected")
		l.emit(evConnected{l: l})
		return true
	}
	rc := tok.(*mqtt.ConnectToken).ReturnCode()
	l.m.log.Info().Err(tok.Error()).Int("client", l.idx).Int("rc", int(rc)).Msg("MQTT connect failed")
	switch {
	case rc != packets.ErrNetworkError && rc != packets.ErrProtocolViolation:
		l.emit(evConnected{l: l, rc: int(rc)})
	case t.reason() != 0:
		l.emit(evConnected{l: l, fail: t.reason()})
	case t.written.Load() == 0:
		l.emit(evConnected{l: l, fail: connSendFailed})
	default:
		l.emit(evConnected{l: l, fail: statConnackFailed})
	}
	return false
}

// onMessage is paho's handler for every incoming PUBLISH; it runs in paho's router goroutine,
// in order, and paho acknowledges a QoS 1/2 message only after it returns.
func (l *link) onMessage(_ mqtt.Client, msg mqtt.Message) {
	l.emit(evMsg{l: l, msgid: int(msg.MessageID()), topic: msg.Topic(), payload: append([]byte(nil), msg.Payload()...)})
}

// onLost is paho's connection-lost handler; paho calls it once its goroutines have stopped.
func (l *link) onLost(_ mqtt.Client, err error) {
	code := statPeerClosed
	if strings.Contains(err.Error(), "pingresp not received") {
		code = statPingFailed
	}
	if t := l.tap.Load(); t != nil && t.reason() != 0 {
		code = t.reason()
	}
	l.lostOnce.Do(func() { close(l.lost) })
	ev := l.m.log.Info()
	if code <= 0 {
		ev = l.m.log.Debug() // the emulator closed it on purpose
	}
	ev.Err(err).Int("client", l.idx).Int("qmtstat", code).Msg("MQTT connection lost")
	if code > 0 {
		l.emit(evLost{l: l, code: code})
	}
}

// complete reports acknowledgements in submission order; a result is held until its notBefore
// (SetBrokerDelay, SetResultDelay).
func (l *link) complete() {
	defer l.m.wg.Done()
	defer close(l.complDone)
	for {
		select {
		case <-l.ctx.Done():
			return
		case <-l.pend.ready():
		}
		for _, p := range l.pend.take() {
			select {
			case <-p.tok.Done():
			case <-l.lost:
			case <-l.ctx.Done():
				return
			}
			var ok bool
			select {
			case <-p.tok.Done():
				ok = p.tok.Error() == nil
			default:
				continue // the link is gone: +QMTSTAT reports it, outstanding commands get no result
			}
			if wait := time.Until(p.notBefore); wait > 0 && !sleepCtx(l.ctx, wait) {
				return
			}
			switch {
			case p.sub != nil:
				ev := evSubDone{l: l, msgid: p.sub.msgid, ok: ok}
				if ok {
					res := p.tok.(*mqtt.SubscribeToken).Result()
					for _, t := range p.sub.topics {
						ev.granted = append(ev.granted, int(res[t]))
					}
				}
				l.emit(ev)
			case p.uns != nil:
				l.emit(evUnsDone{l: l, msgid: p.uns.msgid, ok: ok})
			case p.pub != nil && p.pub.losePUBACK:
				l.m.wg.Add(1)
				go l.lostPUBACK(*p.pub)
			case p.pub != nil:
				l.emit(evPubDone{l: l, cmd: p.pub.cmd, msgid: p.pub.msgid, ok: ok})
			}
		}
	}
}

// lostPUBACK reports a QoS 1/2 publish whose acknowledgement was lost on the way back (the
// broker has the message): a retransmission report every packet timeout, then the failure,
// while the link stays up (reference 2.6: result 1 = retransmitting, value = count; 2 = failed).
// Later results are not held back meanwhile. It ends early when the link does.
func (l *link) lostPUBACK(p opPub) {
	defer l.m.wg.Done()
	for k := 1; k <= p.retries; k++ {
		if !l.sleepLinked(p.pktTimeout) {
			return
		}
		l.emit(evPubRetry{l: l, cmd: p.cmd, msgid: p.msgid, count: k})
	}
	if l.sleepLinked(p.pktTimeout) {
		l.emit(evPubDone{l: l, cmd: p.cmd, msgid: p.msgid, ok: false})
	}
}

// sleepLinked waits d and reports whether the link is still up.
func (l *link) sleepLinked(d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-l.lost:
	case <-l.ctx.Done():
	}
	return false
}

// tapConn is the module's TCP socket to the broker. It remembers why the emulator closed it (the
// +QMTSTAT code a fault asked for), can rewrite the CONNACK return code (RefuseConnect), and,
// between QMTOPEN and QMTCONN, watches for the broker closing the idle socket.
type tapConn struct {
	net.Conn
	mu      sync.Mutex
	pending []byte // bytes the watcher read before CONNECT (a broker sends none; kept to be safe)
	inOff   int    // bytes of the broker's stream handed to paho so far
	refuse  byte   // set before CONNECT, then read only by the reading goroutine
	written atomic.Int64
	why     atomic.Int32

	watchOnce sync.Once
	stopping  atomic.Bool
	dead      atomic.Bool
	watchDone chan struct{}
}

func (t *tapConn) Read(p []byte) (int, error) {
	t.mu.Lock()
	if len(t.pending) > 0 {
		n := copy(p, t.pending)
		t.pending = t.pending[n:]
		t.mu.Unlock()
		t.rewrite(p[:n])
		return n, nil
	}
	t.mu.Unlock()
	n, err := t.Conn.Read(p)
	t.rewrite(p[:n])
	if err != nil && t.reason() != 0 {
		// paho ignores "use of closed network connection" (it takes it for its own Disconnect);
		// a socket the emulator closed must be reported as lost.
		err = errLinkBroken
	}
	return n, err
}

// errLinkBroken is what paho reads from a socket the emulator closed.
var errLinkBroken = errors.New("ec600sim: link to the broker broken")

// rewrite replaces byte 3 of the broker's stream, the CONNACK return code, when refusing.
func (t *tapConn) rewrite(b []byte) {
	if t.refuse != 0 && t.inOff <= 3 && t.inOff+len(b) > 3 {
		b[3-t.inOff] = t.refuse
	}
	t.inOff += len(b)
}

func (t *tapConn) Write(p []byte) (int, error) {
	n, err := t.Conn.Write(p)
	t.written.Add(int64(n))
	return n, err
}

// closeWith closes the socket; the first reason given is what the loss is reported as.
func (t *tapConn) closeWith(reason int) {
	if t == nil {
		return
	}
	t.why.CompareAndSwap(0, int32(reason))
	t.Conn.Close()
}

func (t *tapConn) reason() int { return int(t.why.Load()) }

// startWatch reads the idle socket until stopWatch; a read error means the broker closed it.
func (t *tapConn) startWatch(l *link) {
	t.watchDone = make(chan struct{})
	l.m.wg.Add(1)
	go func() {
		defer l.m.wg.Done()
		defer close(t.watchDone)
		buf := make([]byte, 512)
		for {
			n, err := t.Conn.Read(buf)
			if n > 0 {
				t.mu.Lock()
				t.pending = append(t.pending, buf[:n]...)
				t.mu.Unlock()
			}
			if err != nil {
				if t.stopping.Load() {
					return
				}
				t.dead.Store(true)
				code := statPeerClosed
				if r := t.reason(); r != 0 {
					code = r
				}
				if code > 0 {
					l.emit(evLost{l: l, code: code})
				}
				return
			}
		}
	}()
}

// stopWatch ends the watcher and reports whether the socket is still usable.
func (t *tapConn) stopWatch() bool {
	t.watchOnce.Do(func() {
		t.stopping.Store(true)
		t.Conn.SetReadDeadline(time.Now())
		<-t.watchDone
		t.Conn.SetReadDeadline(time.Time{})
	})
	return !t.dead.Load()
}
