package sim

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"
)

// Identity is what the module says about itself; Replug can change it, as swapping the module on
// the bench would.
type Identity struct {
	IMEI     string // 15 digits (AT+GSN, AT+CGSN)
	Model    string // e.g. EC600N (ATI, AT+CGMM)
	Revision string // firmware revision (ATI, AT+CGMR)
	ICCID    string // SIM card number, 19-20 digits, may end in F (AT+QCCID)
	IMSI     string // 15 digits (AT+CIMI)
}

// DefaultIdentity is the identity a Config without one gets. The ICCID is the one the reference
// quotes; the IMEI passes the Luhn check.
var DefaultIdentity = Identity{
	IMEI:     "866123456789011",
	Model:    "EC600N",
	Revision: "EC600NCNLCR03A09M08",
	ICCID:    "89860025128306012474",
	IMSI:     "460001234567890",
}

// merge returns id with its empty fields taken from base.
func (id Identity) merge(base Identity) Identity {
	if id.IMEI == "" {
		id.IMEI = base.IMEI
	}
	if id.Model == "" {
		id.Model = base.Model
	}
	if id.Revision == "" {
		id.Revision = base.Revision
	}
	if id.ICCID == "" {
		id.ICCID = base.ICCID
	}
	if id.IMSI == "" {
		id.IMSI = base.IMSI
	}
	return id
}

func (id Identity) validate() error {
	if !allIn(id.IMEI, "0123456789") || len(id.IMEI) != 15 {
		return fmt.Errorf("identity: IMEI %q must be 15 digits", id.IMEI)
	}
	if !allIn(id.IMSI, "0123456789") || len(id.IMSI) < 6 || len(id.IMSI) > 15 {
		return fmt.Errorf("identity: IMSI %q must be 6-15 digits", id.IMSI)
	}
	if !allIn(id.ICCID, "0123456789Ff") || len(id.ICCID) < 19 || len(id.ICCID) > 20 {
		return fmt.Errorf("identity: ICCID %q must be 19-20 digits (a trailing F allowed)", id.ICCID)
	}
	for name, v := range map[string]string{"model": id.Model, "revision": id.Revision} {
		if v == "" || strings.ContainsAny(v, "\r\n\"") || len(v) > 64 {
			return fmt.Errorf("identity: %s %q must be 1-64 bytes without CR, LF or quotes", name, v)
		}
	}
	return nil
}

func allIn(s, set string) bool {
	for i := 0; i < len(s); i++ {
		if strings.IndexByte(set, s[i]) < 0 {
			return false
		}
	}
	return true
}

// DefaultResetDelay is the silence between AT+CFUN=1,1 and RDY unless Config.ResetDelay says
// otherwise: about 2.9 s on the BG96 the reference's capture shows.
const DefaultResetDelay = 3 * time.Second

// DefaultSIMBusy is how long the emulated SIM stays busy after RDY unless Config.SIMBusy says
// otherwise: "a second or more" in the reference.
const DefaultSIMBusy = time.Second

// Config says how to build a Module.
type Config struct {
	// Link is the path of a symlink to the emulated AT port, kept up to date as udev would keep
	// /dev/ec600-at (it disappears on Unplug and comes back on Replug). Empty: no symlink; use TTY.
	Link string
	// Broker is where every AT+QMTOPEN connects, whatever host and port the command names, as a
	// test network would route it: "host:port", "tcp://host:port" or "mqtt://host:port".
	Broker string
	// Identity: empty fields take DefaultIdentity's.
	Identity Identity
	// Logger receives what the emulator does (commands at debug, faults and links at info, raw
	// bytes at trace). The zero value logs nothing.
	Logger zerolog.Logger
	// BootDelay is the time from power-on (Start, Reboot, AT+CFUN=1,1, Replug) to RDY; input is
	// ignored meanwhile. Zero boots at once.
	BootDelay time.Duration
	// ResetDelay is the silence from AT+CFUN=1,1 (after POWERED DOWN and the stale pdpdeact) to
	// RDY; 0 means DefaultResetDelay, a negative value none (BootDelay still applies).
	ResetDelay time.Duration
	// AppReady, when positive, is the firmware variant that prints a second ready URC, APP RDY,
	// this long after RDY (a BG77 at power-on; an EC200U driver expects it late after a reset;
	// reference 2.10). Zero: RDY only.
	AppReady time.Duration
	// StrayError is the firmware variant that answers ERROR to a command line with bytes before
	// "AT" — an ESC the host sent to end a data prompt that was not there, line noise — instead
	// of finding the AT in it (one real module answered a stray first line ERROR; reference 0).
	StrayError bool
	// MaxPayload is the largest AT+QMTPUBEX / AT+QMTPUB length accepted; 0 means 4096 (the limit
	// BG770A/EC2x print; the EC600 limit is unconfirmed).
	MaxPayload int
	// URCPort is the AT+QURCCFG="urcport" name of the interface this pty stands for; URCs appear
	// on it only while urcport is this value or "all". Empty means "usbat".
	URCPort string
	// OpenTimeout bounds the TCP connect of AT+QMTOPEN; 0 means 10 s.
	OpenTimeout time.Duration
	// TLSBroker is where AT+QMTOPEN connects for a client with TLS on (AT+QMTCFG="ssl",<idx>,1):
	// a broker's TLS listener, as host:port. Empty: Broker, where a TLS handshake with a plain
	// listener fails as it would in the field. The certificate is checked against the host
	// AT+QMTOPEN names, not against this address.
	TLSBroker string
	// ListUFSPrefix is the firmware variant whose AT+QFLST names carry a "UFS:" prefix.
	ListUFSPrefix bool
	// BareCertNames is the firmware variant whose AT+QSSLCFG wants bare file names: a name
	// with a "UFS:" prefix is answered with ERROR.
	BareCertNames bool
	// SavedURCPort is the AT+QURCCFG="urcport" value the module's NV holds at power-on: a
	// module that someone set up for another interface ("uart1") answers every command on this
	// one but sends its URCs there (reference 2.10). Empty means "usbat".
	SavedURCPort string
	// Operator is the network AT+COPS? names while registered; "" means DefaultOperator. Digits
	// only ("46000") are printed in the numeric format.
	Operator string
	// MaxLine is the longest command line the module takes; a longer one is answered with ERROR
	// (the publish with a 2,000-byte topic, say). 0 means DefaultMaxLine. The EC600's own limit
	// is UNCONFIRMED (reference 2.6: "Maximum topic length: UNCONFIRMED").
	MaxLine int
	// SIMBusy is how long the SIM stays busy after power-on (RDY) and after it is put back: the
	// real module prints RDY before the SIM is ready, and until it is AT+QCCID, AT+CIMI and
	// AT+CPIN? answer +CME ERROR: 14, then +CPIN: READY follows (reference 4.1). 0 means
	// DefaultSIMBusy; a negative value makes the SIM ready at once, kinder than the field.
	SIMBusy time.Duration
	// NoPAPOrCHAP is the firmware variant whose AT+QICSGP offers authentication (0-2) only, as
	// a BG770A capture shows (reference 4.2, VARIANT): 3 (PAP or CHAP) answers ERROR.
	NoPAPOrCHAP bool
	// Unisoc is the EC600U (Unisoc) firmware variant (reference 1 and 8, VARIANT): the ASR-only
	// AT+QMTCFG names (willex, send/mode, dataformat, view/mode, edit/timeout, qmtping, onenet,
	// hwauth, hwprodid, CTWing) are missing from the =? list and refused with
	// +CME ERROR: 4 (operation not supported) under CMEE=1 — plain ERROR under CMEE=0, the text
	// under CMEE=2 (UNCONFIRMED which code the real firmware gives).
	Unisoc bool
	// SilentRefusal is a kinder module than the field's: after a refused CONNACK
	// (+QMTCONN: <idx>,0,<code>) it does not report the broker closing the link. By default the
	// emulator reports +QMTSTAT: <idx>,1 after it, as a module does when the broker closes the
	// connection, which MQTT 3.1.1 (3.2.2.3) requires of it.
	SilentRefusal bool
	// RefusalStat is the +QMTSTAT code reported after a refused CONNACK; 0 means 1 (the broker
	// closed the link). 4 is the BG95-M3 form (reference 2.3, VARIANT): +QMTCONN: <idx>,0,<rc>
	// then +QMTSTAT: <idx>,4.
	RefusalStat int
	// RefusalStatOnly is the M95 form of a refused CONNECT (reference 2.3, VARIANT): no
	// +QMTCONN at all, only +QMTSTAT: <idx>,1 as the broker closes the link.
	RefusalStatOnly bool
	// ConnAckTwoFields is the older-firmware success form (reference 2.3, VARIANT, UNCONFIRMED):
	// an accepted CONNECT is reported as +QMTCONN: <idx>,0, without the ret_code.
	ConnAckTwoFields bool
	// FirstATError is the EC2x-class module that answers the first command line after it comes
	// up (Start, a reboot, a replug) with ERROR, and the next ones normally (reference 0 and 4.2).
	FirstATError bool
	// DualStack, when 1 or 3, lists every active PDP context in AT+QIACT? with an IPv4 and an
	// IPv6 address under that type field: 1 as an EC600S printed it, 3 as an EC200U did (reference
	// 4.2, VARIANT: the type does not tell how many addresses follow). 0: the addresses follow
	// the context's AT+QICSGP type.
	DualStack int
	// StrictQMTCFG refuses AT+QMTCFG (set) with ERROR on a connected client index too. By
	// default only an index that is open but not connected (opening, open, connecting, closing)
	// refuses it (reference 1, EC600K-CN note; which states exactly is UNCONFIRMED), and a
	// connected one takes it, recv/mode at once, the others at the next CONNECT.
	StrictQMTCFG bool

	// Data-path variants (reference 0, 2.6, 2.7; ec600sim -variant names in brackets).

	// RecvForm is how a +QMTRECV with the length field prints its payload: RecvQuoted (the
	// default), RecvNextLine [recv-next-line] or RecvUnquoted [recv-unquoted].
	RecvForm RecvForm
	// RecvBlankLines frames each +QMTRECV with an empty line on each side,
	// \r\n\r\n+QMTRECV: …\r\n\r\n, as a BG96 byte trace shows [recv-blank-lines].
	RecvBlankLines bool
	// PromptDelay holds a data command's "> " prompt back this long; URCs due meanwhile are
	// written before it, as a BG96 trace shows a +QMTRECV between AT+QMTPUB and its prompt
	// [urc-before-prompt]. 0: the prompt follows the command at once.
	PromptDelay time.Duration
	// SplitPrompt writes the prompt as "\r\n>" and its space in front of the module's next
	// output (" \r\nOK\r\n"), as an EC200U trace shows [split-prompt].
	SplitPrompt bool
	// Coalesce makes the writer gather what the module sends within this long of the first
	// block and write it with one write(2), so that a publish result and a downlink (BC26), or
	// an OK and a URC (BG770A), reach the host in one read [coalesce]. 0: block by block.
	Coalesce time.Duration
}

// RecvForm is how a +QMTRECV with the length field prints its payload (reference 2.7, VARIANT).
type RecvForm int

const (
	// RecvQuoted is `+QMTRECV: <idx>,<msgid>,"<topic>",<len>,"<payload>"` (EC600S, BG96).
	RecvQuoted RecvForm = iota
	// RecvNextLine is `+QMTRECV: <idx>,<msgid>,"<topic>",<len>` CR LF `<payload>` (EC200U note).
	RecvNextLine
	// RecvUnquoted is `+QMTRECV: <idx>,<msgid>,"<topic>",<len>,<payload>` (BC25).
	RecvUnquoted
)

// Stats counts what the emulator wrote to the host. A write is counted just before it is made,
// so once the host has read some bytes, Stats already includes them.
type Stats struct {
	BytesOut int64 // bytes written to the pty
	Writes   int64 // write(2) calls on the pty
	MaxWrite int64 // the largest single write
	Commands int64 // command lines executed
	// URCsBeforePrompt counts URCs written between a data command and its prompt (PromptDelay).
	URCsBeforePrompt int64
	// Coalesced counts writes that joined more than one block of output (Coalesce);
	// CoalescedDownlinks those of them that hold a +QMTRECV and something else.
	Coalesced, CoalescedDownlinks int64
}

var (
	// ErrNotRunning is returned by a fault method when the module is not started or already closed.
	ErrNotRunning = errors.New("sim: module is not running")
	// ErrUnplugged is returned by a fault that needs the module plugged in.
	ErrUnplugged = errors.New("sim: module is unplugged")
	// ErrPlugged is returned by Replug when the module is plugged in.
	ErrPlugged = errors.New("sim: module is already plugged in")
	// ErrNoLink is returned by DropLink and PingFail when no MQTT client has a link to drop.
	ErrNoLink = errors.New("sim: no MQTT client has a broker link")
)

// Module is one emulated EC600. Create it with New, run it with Start, end it with Close.
// Every method is safe for concurrent use.
type Module struct {
	cfg       Config
	log       zerolog.Logger
	broker    string // host:port every QMTOPEN dials
	tlsBroker string // host:port a QMTOPEN with TLS on dials

	reqs   chan func(*engine)
	events chan any
	wg     sync.WaitGroup

	mu      sync.Mutex
	state   int // 0 new, 1 running, 2 closed
	cancel  context.CancelFunc
	done    chan struct{}
	tty     string
	ident   Identity
	plugged bool

	// Knobs read by the writer and the engine without a round trip.
	slow          atomic.Int64 // time.Duration
	brokerDelay   atomic.Int64 // time.Duration
	resultDelay   atomic.Int64 // time.Duration
	lostPUBACKs   atomic.Int32 // LosePUBACK: QoS 1/2 publishes still to lose the PUBACK of
	chunk         atomic.Int32
	unresponsive  atomic.Bool
	refuseConnect atomic.Int32
	refuseOpen    atomic.Int32
	dnsDown       atomic.Bool            // SetDNS(false): no host name resolves
	clockOffset   atomic.Int64           // SetNetworkClock: the network's time minus the host's, ns
	clockZone     atomic.Int32           // ... the zone in quarter hours
	clockUnknown  atomic.Bool            // ... no time from the network
	refuseCmd     atomic.Pointer[string] // Refuse: commands starting with this answer ERROR

	bytesOut, writes, maxWrite, commands atomic.Int64
	urcsBeforePrompt, coalesced          atomic.Int64
	coalescedDownlinks                   atomic.Int64
}

// New checks cfg and returns a Module that is not yet running.
func New(cfg Config) (*Module, error) {
	addr, err := brokerAddr(cfg.Broker)
	if err != nil {
		return nil, err
	}
	cfg.Identity = cfg.Identity.merge(DefaultIdentity)
	if err := cfg.Identity.validate(); err != nil {
		return nil, fmt.Errorf("sim config: %w", err)
	}
	if cfg.MaxPayload == 0 {
		cfg.MaxPayload = 4096
	}
	if cfg.MaxPayload < 1 || cfg.MaxPayload > 1<<20 {
		return nil, fmt.Errorf("sim config: MaxPayload %d out of range 1-1048576", cfg.MaxPayload)
	}
	tlsAddr := addr
	if cfg.TLSBroker != "" {
		if tlsAddr, err = brokerAddr(cfg.TLSBroker); err != nil {
			return nil, fmt.Errorf("TLSBroker: %w", err)
		}
	}
	if cfg.RefusalStat < 0 || cfg.RefusalStat > 255 {
		return nil, fmt.Errorf("sim config: RefusalStat %d out of range 0-255", cfg.RefusalStat)
	}
	if cfg.DualStack != 0 && cfg.DualStack != 1 && cfg.DualStack != 3 {
		return nil, fmt.Errorf("sim config: DualStack %d must be 0, 1 or 3", cfg.DualStack)
	}
	switch {
	case cfg.SIMBusy == 0:
		cfg.SIMBusy = DefaultSIMBusy
	case cfg.SIMBusy < 0:
		cfg.SIMBusy = 0
	}
	if cfg.SavedURCPort == "" {
		cfg.SavedURCPort = "usbat"
	}
	if cfg.URCPort == "" {
		cfg.URCPort = "usbat"
	}
	if cfg.OpenTimeout == 0 {
		cfg.OpenTimeout = 10 * time.Second
	}
	if cfg.BootDelay < 0 || cfg.OpenTimeout < 0 || cfg.PromptDelay < 0 || cfg.Coalesce < 0 {
		return nil, errors.New("sim config: BootDelay, OpenTimeout, PromptDelay and Coalesce must not be negative")
	}
	if cfg.RecvForm < RecvQuoted || cfg.RecvForm > RecvUnquoted {
		return nil, fmt.Errorf("sim config: RecvForm %d unknown", cfg.RecvForm)
	}
	m := &Module{
		cfg:       cfg,
		log:       cfg.Logger.With().Str("component", "ec600sim").Logger(),
		broker:    addr,
		tlsBroker: tlsAddr,
		reqs:      make(chan func(*engine)),
		events:    make(chan any),
		ident:     cfg.Identity,
		done:      make(chan struct{}),
	}
	m.clockZone.Store(32) // UTC+8: the networks EC600s are sold for
	return m, nil
}

// brokerAddr turns Config.Broker into a host:port to dial.
func brokerAddr(s string) (string, error) {
	if s == "" {
		return "", errors.New("sim config: Broker is empty: give the broker address every AT+QMTOPEN connects to (host:port or tcp://host:port)")
	}
	if strings.Contains(s, "://") {
		u, err := url.Parse(s)
		if err != nil {
			return "", fmt.Errorf("sim config: Broker %q: %w", s, err)
		}
		switch u.Scheme {
		case "tcp", "mqtt":
		default:
			return "", fmt.Errorf("sim config: Broker %q: scheme %q not supported (use tcp:// or mqtt://)", s, u.Scheme)
		}
		s = u.Host
	}
	if _, _, err := net.SplitHostPort(s); err != nil {
		return "", fmt.Errorf("sim config: Broker %q is not host:port: %w", s, err)
	}
	return s, nil
}

// Start allocates the pty, publishes the link and powers the module on (boot URCs follow after
// BootDelay). The module runs until Close or until ctx ends.
func (m *Module) Start(ctx context.Context) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.state != 0 {
		return errors.New("sim: Start called twice or after Close")
	}
	p, err := openPort()
	if err != nil {
		return err
	}
	if err := publishLink(m.cfg.Link, p.tty); err != nil {
		p.close()
		return err
	}
	ctx, cancel := context.WithCancel(ctx)
	m.cancel = cancel
	m.state = 1
	m.tty = p.tty
	m.plugged = true
	e := newEngine(m)
	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		defer close(m.done)
		e.run(ctx, p)
	}()
	m.log.Info().Str("tty", p.tty).Str("link", m.cfg.Link).Str("broker", m.broker).Str("imei", m.ident.IMEI).Msg("module powered on")
	return nil
}

// Close powers the module off for good: MQTT links are dropped without DISCONNECT, the pty is
// closed and the symlink removed. It returns when every goroutine of the module has ended.
func (m *Module) Close() error {
	m.mu.Lock()
	cancel := m.cancel
	m.state = 2
	m.mu.Unlock()
	if cancel != nil {
		cancel()
	}
	m.wg.Wait()
	return nil
}

// Done is closed when the module has stopped (Close, or the Start context ended).
func (m *Module) Done() <-chan struct{} { return m.done }

// Path is the symlink to the AT port (Config.Link).
func (m *Module) Path() string { return m.cfg.Link }

// TTY is the pty slave the AT port currently is (/dev/pts/N), or "" while unplugged.
func (m *Module) TTY() string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.tty
}

// Identity is the identity the module currently reports.
func (m *Module) Identity() Identity {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.ident
}

// BrokerAddr is the host:port every AT+QMTOPEN connects to.
func (m *Module) BrokerAddr() string { return m.broker }

// Stats returns the output counters.
func (m *Module) Stats() Stats {
	return Stats{BytesOut: m.bytesOut.Load(), Writes: m.writes.Load(), MaxWrite: m.maxWrite.Load(), Commands: m.commands.Load(),
		URCsBeforePrompt: m.urcsBeforePrompt.Load(), Coalesced: m.coalesced.Load(), CoalescedDownlinks: m.coalescedDownlinks.Load()}
}

func (m *Module) noteWrite(n int) {
	if n <= 0 {
		return
	}
	m.bytesOut.Add(int64(n))
	m.writes.Add(1)
	for {
		cur := m.maxWrite.Load()
		if int64(n) <= cur || m.maxWrite.CompareAndSwap(cur, int64(n)) {
			return
		}
	}
}

// do runs fn on the engine goroutine and returns its error.
func (m *Module) do(fn func(*engine) error) error {
	m.mu.Lock()
	running := m.state == 1
	m.mu.Unlock()
	if !running {
		return ErrNotRunning
	}
	res := make(chan error, 1)
	select {
	case m.reqs <- func(e *engine) { res <- fn(e) }:
		return <-res
	case <-m.done:
		return ErrNotRunning
	}
}

// DropLink breaks every MQTT client's TCP link to the broker as a network fault would; the host
// sees +QMTSTAT: <idx>,1. It returns ErrNoLink when no client has a link.
func (m *Module) DropLink() error {
	return m.do(func(e *engine) error { return e.killLinks(statPeerClosed) })
}

// DropLinkLate breaks every connected MQTT client's link as DropLink does, but the module reports
// it late: commands on the client are refused at once (a publish answers ERROR), while
// +QMTSTAT: <idx>,1 comes only after d — a URC that explains a failure arriving after the command
// it explains, as when a publish is sent in the moment before the module reports the link's loss.
// It returns ErrNoLink when no client is connected.
//
// The link dies between two commands: while the host is typing a publish's data after its
// prompt, the drop waits for the data to be in (up to a second), so that the next command is the
// one refused — a publish whose data is in when its link dies is answered OK and then failed
// (+QMTPUBEX: <idx>,<msgid>,2), a different case.
func (m *Module) DropLinkLate(d time.Duration) error {
	for deadline := time.Now().Add(time.Second); ; time.Sleep(time.Millisecond) {
		err := m.dropLinkLate(d)
		if !errors.Is(err, errTyping) || time.Now().After(deadline) {
			return err
		}
	}
}

// errTyping: the host is typing data after a prompt.
var errTyping = errors.New("sim: the host is typing data after a prompt")

func (m *Module) dropLinkLate(d time.Duration) error {
	return m.do(func(e *engine) error {
		if e.data != nil {
			return errTyping
		}
		n := 0
		for _, cl := range e.clients {
			if cl == nil || cl.link == nil || cl.state != stConnected {
				continue
			}
			e.detachLink(cl)
			n++
			idx, boot := cl.idx, e.boot
			time.AfterFunc(d, func() {
				_ = m.do(func(e *engine) error {
					if e.boot == boot && e.port != nil {
						e.statURC(idx, statPeerClosed)
					}
					return nil
				})
			})
		}
		if n == 0 {
			return ErrNoLink
		}
		e.log.Info().Int("links", n).Dur("stat_after", d).Msg("fault: broker links broken, reported late")
		return nil
	})
}

// LoseLink breaks the broker link of every client that has one with +QMTSTAT: <idx>,<code>
// (1-255): code 8 is what EC200-family firmware reports after a run of QoS 1 retransmissions
// (reference 2.8), 7 "link not alive". The socket closes without DISCONNECT, as with DropLink.
func (m *Module) LoseLink(code int) error {
	if code < 1 || code > 255 {
		return fmt.Errorf("sim: +QMTSTAT code %d out of range 1-255", code)
	}
	return m.do(func(e *engine) error { return e.killLinks(code) })
}

// Occupy leaves MQTT client idx as a host restart can leave it: still opening a link (an open
// can take 75-120 s) that no one will use. AT+QMTOPEN? lists nothing for it, AT+QMTOPEN answers
// +QMTOPEN: <idx>,2 (index occupied), and AT+QMTCLOSE frees it (reference 2.1, 2.2).
func (m *Module) Occupy(idx int) error {
	if idx < 0 || idx > 5 {
		return fmt.Errorf("sim: client index %d out of range 0-5", idx)
	}
	return m.do(func(e *engine) error {
		cl := e.clients[idx]
		e.detachLink(cl)
		cl.state, cl.host, cl.port = stOpening, "", 0
		e.log.Info().Int("client", idx).Msg("fault: client index left opening")
		return nil
	})
}

// PingFail makes every connected client's keep-alive fail: +QMTPING: <idx>,1 then +QMTSTAT: <idx>,2.
func (m *Module) PingFail() error {
	return m.do(func(e *engine) error { return e.killLinks(statPingFailed) })
}

// Reboot restarts the module as AT+CFUN=1,1 does, on the same pty: every setting and link is
// gone, echo is back on, and the boot URCs come again after BootDelay.
func (m *Module) Reboot() error {
	return m.do(func(e *engine) error {
		if e.port == nil {
			return ErrUnplugged
		}
		e.log.Info().Msg("fault: reboot")
		e.reboot()
		return nil
	})
}

// Unplug removes the module as pulling its USB cable would: links drop, the pty closes (host
// reads and writes fail) and the symlink disappears.
func (m *Module) Unplug() error {
	return m.do(func(e *engine) error {
		if e.port == nil {
			return ErrUnplugged
		}
		e.log.Info().Msg("fault: unplug")
		e.unplug()
		return nil
	})
}

// Replug plugs a module in again: a new pty behind the same symlink, powered on from scratch.
// Non-empty fields of id replace the current identity (a different module); Identity{} brings
// the same one back.
func (m *Module) Replug(id Identity) error {
	return m.do(func(e *engine) error {
		if e.port != nil {
			return ErrPlugged
		}
		next := id.merge(e.id)
		if err := next.validate(); err != nil {
			return err
		}
		e.log.Info().Str("imei", next.IMEI).Str("revision", next.Revision).Msg("fault: replug")
		return e.replug(next)
	})
}

// Swap is a bench swap: Unplug, then Replug(id). Give id a different IMEI for another module
// (its own NV and an empty file system).
func (m *Module) Swap(id Identity) error {
	if err := m.Unplug(); err != nil {
		return err
	}
	return m.Replug(id)
}

// Noise writes b to the host as line noise (nil: a few bytes of typical garbage).
func (m *Module) Noise(b []byte) error {
	if len(b) == 0 {
		b = []byte("\x00\xff\x1b[\xfe~\x80\r\x00")
	}
	b = append([]byte(nil), b...)
	return m.do(func(e *engine) error {
		if e.port == nil {
			return ErrUnplugged
		}
		e.log.Info().Int("bytes", len(b)).Msg("fault: noise")
		e.w.enqueue(outItem{b: b})
		return nil
	})
}

// SetUnresponsive makes the module read commands and answer nothing (no echo, no result, no
// URC) until it is called with false, like a wedged firmware.
func (m *Module) SetUnresponsive(on bool) {
	m.log.Info().Bool("on", on).Msg("fault: unresponsive")
	m.unresponsive.Store(on)
}

// SetSlow delays every command's reply by d (0: answer at once).
func (m *Module) SetSlow(d time.Duration) {
	m.log.Info().Dur("delay", d).Msg("fault: slow answers")
	m.slow.Store(int64(max(d, 0)))
}

// SetChunking makes the module write its output in pieces of n bytes with a short pause between
// them (0: whole blocks).
func (m *Module) SetChunking(n int) {
	m.log.Info().Int("bytes", n).Msg("fault: chunked output")
	m.chunk.Store(int32(max(min(n, 1<<20), 0)))
}

// SetBrokerDelay holds each publish result (+QMTPUBEX/+QMTPUB) until at least d after the
// command was accepted, as a distant broker would, so publish pipelining can be measured.
func (m *Module) SetBrokerDelay(d time.Duration) {
	m.log.Info().Dur("delay", d).Msg("fault: broker round-trip delay")
	m.brokerDelay.Store(int64(max(d, 0)))
}

// SetResultDelay holds every SUB, UNS and publish result (+QMTSUB, +QMTUNS, +QMTPUBEX, +QMTPUB)
// until at least d after the command was accepted (0: as soon as the broker answers), as a
// module does that retransmits: a result may come up to packet timeout × (retries+1) after the
// command (reference 3.1). Set d beyond the host's wait to make results come late.
func (m *Module) SetResultDelay(d time.Duration) {
	m.log.Info().Dur("delay", d).Msg("fault: results late")
	m.resultDelay.Store(int64(max(d, 0)))
}

// LosePUBACK makes the next n QoS 1/2 publishes lose their acknowledgement on the way back
// from the broker (which has the message), while the link stays up: the module reports
// +QMTPUBEX: <idx>,<msgid>,1,<count> after each packet timeout of AT+QMTCFG="timeout", retries
// times, then +QMTPUBEX: <idx>,<msgid>,2 (reference 2.6). 0 stops losing.
func (m *Module) LosePUBACK(n int) {
	m.log.Info().Int("publishes", n).Msg("fault: PUBACKs lost")
	m.lostPUBACKs.Store(int32(max(min(n, 1<<20), 0)))
}

// takeLostPUBACK reports whether the publish being sent loses its PUBACK (LosePUBACK).
func (m *Module) takeLostPUBACK() bool {
	for {
		n := m.lostPUBACKs.Load()
		if n <= 0 {
			return false
		}
		if m.lostPUBACKs.CompareAndSwap(n, n-1) {
			return true
		}
	}
}

// resultNotBefore is when a result of a command accepted now may be reported at the earliest:
// after extra (SetBrokerDelay, for publishes) or SetResultDelay, whichever is longer.
func (m *Module) resultNotBefore(extra time.Duration) time.Time {
	return time.Now().Add(max(extra, time.Duration(m.resultDelay.Load())))
}

// RefuseConnect makes every following AT+QMTCONN end in +QMTCONN: <idx>,0,<code>: the CONNECT
// goes to the broker, and the CONNACK it answers is rewritten in flight to carry code, so the
// MQTT client sees a real refusal. Codes 1-5 are the MQTT 3.1.1 refusals; 0 stops refusing.
func (m *Module) RefuseConnect(code int) error {
	if code < 0 || code > 5 {
		return fmt.Errorf("sim: CONNACK refusal code %d out of range 1-5 (0 to stop refusing)", code)
	}
	m.log.Info().Int("code", code).Msg("fault: refuse CONNECT")
	m.refuseConnect.Store(int32(code))
	return nil
}

// Refuse makes every following command that starts with prefix (case-insensitive, for example
// "AT+QICSGP") answer ERROR, as a module whose firmware refuses a setting does, until Refuse("")
// clears it.
func (m *Module) Refuse(prefix string) {
	prefix = strings.ToUpper(strings.TrimSpace(prefix))
	m.log.Info().Str("prefix", prefix).Msg("fault: refuse commands")
	if prefix == "" {
		m.refuseCmd.Store(nil)
		return
	}
	m.refuseCmd.Store(&prefix)
}

// refused reports whether Refuse covers the command line raw.
func (m *Module) refused(raw string) bool {
	p := m.refuseCmd.Load()
	return p != nil && strings.HasPrefix(strings.ToUpper(raw), *p)
}

// RefuseOpen makes every following AT+QMTOPEN end in +QMTOPEN: <idx>,<code> without connecting
// (-1, 1-5 as in the reference). 0 stops refusing.
func (m *Module) RefuseOpen(code int) {
	m.log.Info().Int("code", code).Msg("fault: refuse QMTOPEN")
	m.refuseOpen.Store(int32(code))
}

// SetSIM inserts or removes the SIM. Removing it reports +CPIN: NOT READY, makes AT+CPIN?,
// AT+CIMI and AT+QCCID fail with CME error 10, and deregisters (PDP and MQTT links go down).
func (m *Module) SetSIM(present bool) error {
	return m.do(func(e *engine) error {
		e.log.Info().Bool("present", present).Msg("fault: SIM")
		e.setSIM(present)
		return nil
	})
}

// SetRegistered attaches the module to the network or takes it off (+CEREG: 0,2 searching);
// losing registration deactivates the PDP contexts (+QIURC: "pdpdeact",<cid>) and the MQTT
// links on them.
func (m *Module) SetRegistered(on bool) error {
	return m.do(func(e *engine) error {
		e.log.Info().Bool("registered", on).Msg("fault: registration")
		e.setRegistered(on)
		return nil
	})
}

// DeactivatePDP has the network deactivate every active PDP context: +QIURC: "pdpdeact",<cid>,
// then +QMTSTAT: <idx>,1 for each MQTT link on it. The contexts stay down until AT+QIACT.
func (m *Module) DeactivatePDP() error {
	return m.do(func(e *engine) error {
		e.log.Info().Msg("fault: PDP deactivated by the network")
		return e.deactivatePDP()
	})
}

// BearerRace arms a one-shot race: the next AT+QIACT? that finds context 1 inactive says so, and
// right after it the network brings the default bearer back by itself (as an LTE attach does),
// so the host's AT+QIACT=1 that follows finds it active and is answered ERROR (reference 4.2: no
// code tells "already active" from a failure).
func (m *Module) BearerRace() error {
	return m.do(func(e *engine) error {
		e.log.Info().Msg("fault: the default bearer comes back right after the next AT+QIACT? query")
		e.bearerRace = true
		return nil
	})
}

// SetSignal sets what AT+CSQ reports (rssi 0-31 or 99, ber 0-7 or 99).
func (m *Module) SetSignal(rssi, ber int) error {
	if (rssi < 0 || rssi > 31) && rssi != 99 || (ber < 0 || ber > 7) && ber != 99 {
		return fmt.Errorf("sim: signal %d,%d out of range (rssi 0-31 or 99, ber 0-7 or 99)", rssi, ber)
	}
	return m.do(func(e *engine) error {
		e.rssi, e.ber = rssi, ber
		return nil
	})
}

// SetNetworkClock sets what the network told the module the time is: offset from the host's
// clock (0: the same), and the time zone in quarter hours that AT+CCLK? and AT+QLTS report (32
// is UTC+8, China's; the default). known false: the network sent no time (NITZ), so AT+CCLK?
// answers the module's power-on default (1980-01-06 plus the time since power-on) and AT+QLTS
// answers "".
func (m *Module) SetNetworkClock(offset time.Duration, zoneQuarters int, known bool) error {
	if zoneQuarters < -48 || zoneQuarters > 56 {
		return fmt.Errorf("sim: time zone %d quarter hours out of range (-48 to 56)", zoneQuarters)
	}
	m.log.Info().Dur("offset", offset).Int("zone", zoneQuarters).Bool("known", known).Msg("fault: network clock")
	m.clockOffset.Store(int64(offset))
	m.clockZone.Store(int32(zoneQuarters))
	m.clockUnknown.Store(!known)
	return nil
}

// SetDNS makes host names resolve (true, the default: every name to the emulator's broker) or
// not: AT+QIDNSGIP then reports error 565 and AT+QMTOPEN with a host name +QMTOPEN: <idx>,4, as
// when the network's DNS fails.
func (m *Module) SetDNS(ok bool) {
	m.log.Info().Bool("ok", ok).Msg("fault: DNS")
	m.dnsDown.Store(!ok)
}

// DefaultOperator is the network the emulated module is registered on.
const DefaultOperator = "CHINA MOBILE"

// burstBacklog is how much output Burst lets wait for a host that reads slowly before it waits
// itself: half of what the module buffers.
const burstBacklog = maxQueued / 2

// burstBatch is how many messages Burst hands the engine at a time.
const burstBatch = 64

// ErrNotDirect is returned by Burst when the connected client is in buffer receive mode, where the
// module holds five messages at most.
var ErrNotDirect = errors.New(`sim: burst needs recv/mode 0 (messages inside +QMTRECV)`)

// Burst has the broker deliver n messages on topic to the first connected MQTT client back to
// back, as a persistent session's backlog after a reconnect or a flood of retained messages does:
// +QMTRECV URCs (in the client's recv/mode and dataformat, message ids 1-65535 in turn) written
// as fast as the host takes them. payload gives the i-th payload (nil: "burst-<i>"). Burst holds
// messages back while the host does not read (flow control), so none is dropped; what a real
// module does when the host stops reading for long is UNCONFIRMED (reference: only that the
// module acknowledges QoS 1 downlinks to the broker itself). It returns when all n are queued
// for the host, or with the error that stopped it.
func (m *Module) Burst(ctx context.Context, topic string, n int, payload func(i int) []byte) error {
	if payload == nil {
		payload = func(i int) []byte { return []byte(fmt.Sprintf("burst-%d", i)) }
	}
	for i := 0; i < n; {
		var w *writer
		from := i
		err := m.do(func(e *engine) error {
			cl := e.connectedClient()
			switch {
			case e.w == nil:
				return ErrUnplugged
			case cl == nil:
				return ErrNoLink
			case cl.cfg.n("recv/mode", 0) != 0:
				return ErrNotDirect
			}
			w = e.w
			// Not while the host is inside a data prompt: the engine would hold the URCs.
			for end := min(i+burstBatch, n); i < end && e.data == nil && w.backlog() < burstBacklog; i++ {
				e.deliver(cl, i%65535+1, topic, payload(i))
			}
			return nil
		})
		if err != nil {
			return fmt.Errorf("sim: burst stopped after %d of %d messages: %w", i, n, err)
		}
		if i-from < burstBatch && i < n { // held up: wait for the host to take some
			t := time.NewTimer(5 * time.Millisecond)
			select {
			case <-w.room:
			case <-t.C:
			case <-ctx.Done():
				t.Stop()
				return fmt.Errorf("sim: burst stopped after %d of %d messages: %w", i, n, ctx.Err())
			case <-m.done:
				t.Stop()
				return ErrNotRunning
			}
			t.Stop()
		}
	}
	return nil
}
