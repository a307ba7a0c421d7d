package supervisor

import (
	"context"
	"errors"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/gatewayd/gatewayd/at"
	"github.com/gatewayd/gatewayd/modem"
)

// Status is a snapshot of what the supervisor knows: the module, the SIM and the network as last
// seen, the session and its retries, and what it has counted. `gatewayd status`, `gatewayd
// doctor` and the metrics read it; taking it never waits for the loop or the module.
type Status struct {
	Started  time.Time // when Run started
	Port     string    // the configured AT port
	PortOpen bool      // an AT port is open now

	// Stage is the bring-up step the session is at: "port", "module", "sim", "register", "pdp",
	// "mqtt", or "connected".
	Stage string
	// Doing says in words what the supervisor does or waits for (the STATUS= text).
	Doing string

	Module     modem.Identity // model, revision, IMEI (and ICCID once the SIM is ready)
	SIM        string         // the SIM state AT+CPIN? last gave ("READY", "SIM PIN", ...) or why not
	Registered bool
	// Registration is the last registration state in words ("registered, home network", ...).
	Registration string
	Operator     string    // the network operator AT+COPS? names, "" when unknown
	Signal       Signal    // the last signal reading
	SignalAt     time.Time // when it was read
	PDPAddress   string    // the PDP context's address once active
	// PDPAddresses are every address AT+QIACT? lists for the context (an IPv4 and an IPv6 one
	// on a dual-stack bearer), in the module's order; PDPAddress is the first.
	PDPAddresses []string

	// NetworkType is the kind of network the registration is on, by the query that found it:
	// "LTE" (AT+CEREG), "2G/3G packet" (AT+CGREG), "2G/3G circuit" (AT+CREG); "" when unknown.
	NetworkType string

	Connected   bool
	ConnectedAt time.Time // the current session's start (zero while not connected)
	Host        string
	BrokerPort  int
	ClientID    string
	// DeviceName is the device name a dynamically registering platform resolved for this
	// module (its template filled in, or the pinned name); "" otherwise.
	DeviceName string
	// IdentityExpires is when the current session's password stops being accepted (zero: it
	// does not expire); the session must be renewed before then.
	IdentityExpires time.Time
	// Renewals counts the planned renewals of an expiring password (not failures).
	Renewals uint64
	// LastError is the last failure in words, LastErrorAt its time; NextAttempt is when the next
	// attempt starts (zero when none is pending), Attempt the number of failures in a row.
	LastError   string
	LastErrorAt time.Time
	NextAttempt time.Time
	Attempt     int

	Subscriptions []string // the topic filters subscribed, as sent
	// Subscribed gives each subscription with the QoS asked and the QoS the broker granted,
	// which may be lower (Aliyun and ThingsBoard grant 1 for 2).
	Subscribed []Subscribed
	LEDKnown   bool
	LEDOn      bool

	// Reconnects counts the sessions lost, by reason (see LossReason).
	Reconnects map[string]uint64
	// Downlinks and DownlinkBytes count the messages handled (and their payload bytes).
	Downlinks     uint64
	DownlinkBytes uint64
	// Published counts the daemon's own publishes on connect that the module reported done.
	Published uint64
}

// Subscribed is one subscription of the session.
type Subscribed struct {
	Topic   string
	QoS     int // asked
	Granted int // granted by the broker; -1 when the module did not report it
}

// Signal is a signal reading; a field is meaningful when its Has flag is set.
type Signal struct {
	RSSI    int // dBm, from AT+CSQ
	HasRSSI bool
}

// Loss reasons, the keys of Status.Reconnects.
const (
	LossLinkClosed   = "link_closed"     // +QMTSTAT: the broker or the network closed the link
	LossPing         = "ping_failed"     // the keep-alive ping failed
	LossPDP          = "pdp_deactivated" // the network deactivated the PDP context
	LossReboot       = "module_rebooted" // RDY, POWERED DOWN, echo back on
	LossSIM          = "sim"             // the SIM went away or needs a PIN
	LossPort         = "port_lost"       // the AT port failed (unplugged)
	LossUnresponsive = "unresponsive"    // the module stopped answering
	LossOther        = "other"
)

// loss is why a connected session was lost, as the machine carries it from the event that
// ended the session to the count in Status.Reconnects. The zero value is lossOther.
type loss int

const (
	lossOther loss = iota
	lossLinkClosed
	lossPing
	lossPDP
	lossReboot
	lossSIM
	lossPort
	lossUnresponsive
	numLosses
)

// lossKeys are the Status.Reconnects keys of the losses, by loss.
var lossKeys = [numLosses]string{
	lossOther:        LossOther,
	lossLinkClosed:   LossLinkClosed,
	lossPing:         LossPing,
	lossPDP:          LossPDP,
	lossReboot:       LossReboot,
	lossSIM:          LossSIM,
	lossPort:         LossPort,
	lossUnresponsive: LossUnresponsive,
}

// String is the loss's key in Status.Reconnects.
func (r loss) String() string {
	if r < 0 || r >= numLosses {
		return LossOther
	}
	return lossKeys[r]
}

// statusBook holds the Status the loop keeps up to date (all of it but the LED, see ledState,
// and the downlinks counted, see downlinkCount).
// Its lock is for Status's readers; the one way to change it is the loop's setStatus, so that
// only the loop goroutine writes it.
type statusBook struct {
	mu sync.Mutex
	st Status
}

// setStatus changes the status under its lock. Loop goroutine only.
func (l *loop) setStatus(f func(*Status)) {
	l.book.mu.Lock()
	defer l.book.mu.Unlock()
	f(&l.book.st)
}

// Status returns a snapshot of what the supervisor knows now. It is safe to call at any time from
// any goroutine; it never waits for the module.
func (s *Supervisor) Status() Status {
	s.book.mu.Lock()
	defer s.book.mu.Unlock()
	st := s.book.st
	st.Subscriptions = slices.Clone(st.Subscriptions)
	st.Subscribed = slices.Clone(st.Subscribed)
	st.PDPAddresses = slices.Clone(st.PDPAddresses)
	st.Reconnects = maps.Clone(st.Reconnects)
	st.LEDOn, st.LEDKnown = s.LEDState()
	s.downlinks.mu.Lock()
	st.Downlinks, st.DownlinkBytes = s.downlinks.n, s.downlinks.bytes
	s.downlinks.mu.Unlock()
	return st
}

// pollInterval is how often, at most, a health check also reads the signal, the registration and
// the operator for Status.
const pollInterval = time.Minute

// poll reads the signal, the registration and the operator for Status; a reading that fails is
// not in what it returns. It runs in the health check's goroutine.
func (s *Supervisor) poll(ctx context.Context, k *link) findings {
	var f findings
	if dbm, ok, err := k.mod.SignalDBm(ctx); err == nil {
		f.signal, f.signalAt = &Signal{RSSI: dbm, HasRSSI: ok}, time.Now()
	}
	if reg, err := k.mod.Registration(ctx); err == nil {
		f.reg = &reg
	}
	if op, err := k.mod.Operator(ctx); err == nil {
		f.operator = &op
	}
	return f
}

// networkType names the network a registration is on (see Status.NetworkType).
func networkType(r modem.Registration) string {
	if !r.Registered() {
		return ""
	}
	switch r.Command {
	case "CEREG":
		return "LTE"
	case "CGREG":
		return "2G/3G packet"
	case "CREG":
		return "2G/3G circuit"
	}
	return ""
}

// ErrNoModule is returned by Command while no AT port is open.
var ErrNoModule = errors.New("no module attached now")

// Command sends one AT command line to the module, in turn with the supervisor's own commands,
// and returns its answer: for an operator's `gatewayd at`. The caller decides what may be sent.
func (s *Supervisor) Command(ctx context.Context, line string) (at.Response, error) {
	conn := s.reader.Load()
	if conn == nil {
		return at.Response{}, ErrNoModule
	}
	return conn.Do(ctx, at.Command{Line: line, Answers: ownLines(line)})
}

// ownLines claims, for the command line, the lines that carry its own name (`+CPIN:` for
// AT+CPIN?), which would otherwise be taken for URCs of that name and not printed.
func ownLines(line string) func(at.Line) bool {
	up := strings.ToUpper(line)
	name, ok := strings.CutPrefix(up, "AT+")
	if !ok {
		return nil
	}
	if i := strings.IndexAny(name, "=?;"); i >= 0 {
		name = name[:i]
	}
	prefix := "+" + name + ":"
	return func(l at.Line) bool { return strings.HasPrefix(strings.ToUpper(l.Text), prefix) }
}

// Resolve asks the module's DNS, through the session's PDP context, for host's addresses.
func (s *Supervisor) Resolve(ctx context.Context, host string) ([]string, error) {
	conn := s.reader.Load()
	if conn == nil {
		return nil, ErrNoModule
	}
	return modem.New(conn).ResolveHost(ctx, s.set.PDPContext, host)
}
