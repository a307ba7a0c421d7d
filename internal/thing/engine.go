package thing

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"

	"github.com/gatewayd/gatewayd/internal/backoff"
)

// LED is the light a property drives.
type LED interface {
	// SetLED switches the LED; why is logged.
	SetLED(on bool, why string) error
	// LEDState is the LED's state; known is false before it was first set.
	LEDState() (on, known bool)
}

// Publisher is the daemon's publish path: the outbox when there is one, else the session.
type Publisher interface {
	// Publish sends m, waiting while the path is busy (back-pressure) until ctx ends. It
	// returns ErrOffline while there is no session to send on (the engine keeps the message and
	// tries again at the next connect), an error wrapping ErrRefused when m can never be sent
	// (the outbox refused it), and any other error for a failure worth retrying.
	Publish(ctx context.Context, m Message) error
}

// Publish-path errors.
var (
	ErrOffline = errors.New("no MQTT session")
	ErrRefused = errors.New("refused by the publish path")
)

// Telemetry is what the module reports; a zero field is unknown and left out of a report.
type Telemetry struct {
	SignalDBm    *int
	Registration string
	Operator     string
	NetworkType  string
	IMEI         string
	ICCID        string
	Revision     string
	Uptime       time.Duration
	Reconnects   *uint64
}

// Telemetry field names, the keys of Config.Telemetry.
const (
	TeleSignal       = "signal"
	TeleRegistration = "registration"
	TeleOperator     = "operator"
	TeleNetworkType  = "network_type"
	TeleIMEI         = "imei"
	TeleICCID        = "iccid"
	TeleRevision     = "firmware"
	TeleUptime       = "uptime"
	TeleReconnects   = "reconnects"
)

// TelemetryFields lists the telemetry fields, in report order.
func TelemetryFields() []string {
	return []string{TeleSignal, TeleRegistration, TeleOperator, TeleNetworkType, TeleIMEI, TeleICCID, TeleRevision, TeleUptime, TeleReconnects}
}

// value is the field's value in t, and whether it is known.
func (t Telemetry) value(field string) (any, bool) {
	str := func(s string) (any, bool) { return s, s != "" }
	switch field {
	case TeleSignal:
		if t.SignalDBm == nil {
			return nil, false
		}
		return *t.SignalDBm, true
	case TeleRegistration:
		return str(t.Registration)
	case TeleOperator:
		return str(t.Operator)
	case TeleNetworkType:
		return str(t.NetworkType)
	case TeleIMEI:
		return str(t.IMEI)
	case TeleICCID:
		return str(t.ICCID)
	case TeleRevision:
		return str(t.Revision)
	case TeleUptime:
		return int64(t.Uptime / time.Second), t.Uptime > 0
	case TeleReconnects:
		if t.Reconnects == nil {
			return nil, false
		}
		return *t.Reconnects, true
	}
	return nil, false
}

// Services the engine offers.
const (
	ServiceGetStatus = "get_status"
	ServiceBlink     = "blink"
)

// Config is how the engine behaves.
type Config struct {
	// Property is the name of the LED's property ("LEDSwitch").
	Property string
	// Telemetry maps telemetry fields (TeleSignal, ...) to property names; unmapped fields are
	// not reported.
	Telemetry map[string]string
	// ReportInterval is how often the telemetry is reported after the one at connect; 0 = only
	// at connect.
	ReportInterval time.Duration
	// QoS of replies and reports (1 unless set).
	QoS int
	// Queue bounds the replies and reports waiting for the publish path (DefaultQueue unless
	// set).
	Queue int
	// BlinkPeriod is one on-off cycle of blink (500 ms unless set).
	BlinkPeriod time.Duration
	// Backoff paces the retries of a failed publish (backoff.Default unless set).
	Backoff backoff.Policy
	// Unbound says the dialect's topics are templates until Rebind gives the dialect with the
	// device's own (a device that learns its name at run time, by registering): until then
	// nothing is handled or reported.
	Unbound bool
}

// DefaultQueue is Config.Queue unless set: a burst of this many sets is answered in full (a
// reply is some 40 bytes, get_status's about 1 KiB).
const DefaultQueue = 1024

// MaxBlinks bounds blink's "times".
const MaxBlinks = 20

// DefaultBlinks is blink's "times" when the call names none.
const DefaultBlinks = 3

// Stats counts what the engine did.
type Stats struct {
	Sets, SetsRefused   uint64 // property sets applied / refused (answered with an error code)
	Calls, CallsRefused uint64 // service calls answered / refused
	Replies             uint64 // replies the publish path took
	Reports             uint64 // reports the publish path took
	// Dropped counts replies and reports that were never sent: the queue was full or the
	// publish path refused them (each logged).
	Dropped uint64
	// PublishRetries counts failed publishes tried again.
	PublishRetries                uint64
	ReportRepliesOK, ReportErrors uint64 // report replies with a success / an error code
	Queued                        int    // replies and reports waiting now
}

// Engine is the device side of the thing model. Create it with NewEngine, call Run once, and
// give it every downlink (Handle) and every session start (Connected). Handle and Connected
// never wait: they queue what must be published for Run.
type Engine struct {
	d         atomic.Pointer[dialectBox] // Rebind replaces it
	bound     atomic.Bool                // false while Config.Unbound and no Rebind yet
	cfg       Config
	led       LED
	pub       Publisher
	status    func() any
	telemetry func() Telemetry
	log       zerolog.Logger

	queue chan outgoing
	wake  chan struct{} // poked at every connect: the sender tries again at once
	seq   atomic.Uint64

	mu   sync.Mutex
	form Form // how the LED's value is typed: as the last set sent it, else the platform's way
	want bool // the LED's state as last set by the property (restored after a blink)

	ctx      atomic.Pointer[context.Context] // Run's; blink stops with it
	blinking atomic.Bool
	ledDue   atomic.Bool // a report of the LED's state waits in the queue

	sets, setsRefused, calls, callsRefused, replies, reports, dropped, retries, repOK, repErr atomic.Uint64
}

// dialectBox holds the engine's dialect for an atomic swap.
type dialectBox struct{ d Dialect }

// outgoing is a message waiting for the publish path, with what it is for the counters and log.
type outgoing struct {
	m    Message
	kind string // "reply" or "report"
	// led marks the report of the LED's state after a set: its payload is written when it is
	// sent, with the state then (and the id seq, taken when it was queued, so that reports keep
	// their order), and one such report waiting stands for any later ones.
	led bool
	seq uint64
}

// NewEngine returns an engine for dialect d. status is what get_status answers (the daemon's
// status, as `gatewayd status -json` prints it); telemetry is read for every report.
func NewEngine(d Dialect, cfg Config, led LED, pub Publisher, status func() any, telemetry func() Telemetry, log zerolog.Logger) *Engine {
	if cfg.QoS == 0 {
		cfg.QoS = 1
	}
	if cfg.Queue <= 0 {
		cfg.Queue = DefaultQueue
	}
	if cfg.BlinkPeriod <= 0 {
		cfg.BlinkPeriod = 500 * time.Millisecond
	}
	if cfg.Backoff == (backoff.Policy{}) {
		cfg.Backoff = backoff.Default
	}
	e := &Engine{cfg: cfg, led: led, pub: pub, status: status, telemetry: telemetry,
		log: log.With().Str("thing", d.Name()).Logger(), queue: make(chan outgoing, cfg.Queue),
		wake: make(chan struct{}, 1), form: d.Form()}
	e.d.Store(&dialectBox{d})
	e.bound.Store(!cfg.Unbound)
	return e
}

// Rebind makes d (the same dialect with other topics: a registered device's own) the engine's
// from now on, and lets an Unbound engine start. Replies and reports already queued keep the
// topics they were made with.
func (e *Engine) Rebind(d Dialect) {
	e.d.Store(&dialectBox{d})
	e.bound.Store(true)
}

// Want is the LED's state as the property last set it (off before any set): what the LED
// shows when nothing else is going on.
func (e *Engine) Want() bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.want
}

// Dialect is the engine's dialect now (Rebind changes it).
func (e *Engine) Dialect() Dialect { return e.d.Load().d }

// Stats returns the counters.
func (e *Engine) Stats() Stats {
	return Stats{Sets: e.sets.Load(), SetsRefused: e.setsRefused.Load(), Calls: e.calls.Load(), CallsRefused: e.callsRefused.Load(),
		Replies: e.replies.Load(), Reports: e.reports.Load(), Dropped: e.dropped.Load(), PublishRetries: e.retries.Load(),
		ReportRepliesOK: e.repOK.Load(), ReportErrors: e.repErr.Load(), Queued: len(e.queue)}
}

// Handle acts on one downlink and reports whether it was one of the thing model's. It never
// waits: replies and reports are queued for Run.
func (e *Engine) Handle(topic string, payload []byte) bool {
	if !e.bound.Load() {
		return false // no thing-model topic is subscribed before the device name is known
	}
	req, ok, err := e.Dialect().Parse(topic, payload)
	if !ok {
		return false
	}
	switch req.Kind {
	case Set:
		e.set(req, err)
	case Call:
		e.call(req, err)
	case ReportReply:
		e.reportReply(req, err)
	default:
		ev := e.log.Debug().Str("topic", topic)
		if req.Text != "" {
			ev = ev.Str("what", req.Text)
		}
		ev.Msg("thing-model message not for this device; ignored")
	}
	return true
}

// set applies a property set and answers it. Nothing changes unless the whole set is valid.
func (e *Engine) set(req Request, perr error) {
	if perr == nil && req.Lenient {
		v, ok := req.Props[e.cfg.Property]
		if !ok {
			e.log.Debug().Str("topic", req.Topic).Strs("names", sortedKeys(req.Props)).
				Msg("attribute update without the LED's property; ignored")
			return
		}
		req.Props = map[string]json.RawMessage{e.cfg.Property: v}
	}
	on, form, err := e.validate(req, perr)
	e.mu.Lock()
	before, known := e.led.LEDState()
	if err == nil {
		e.form, e.want = form, on
	}
	form = e.form
	e.mu.Unlock()
	changed := false
	if err == nil {
		changed = !known || before != on
		if lerr := e.led.SetLED(on, "property "+e.cfg.Property+" set"); lerr != nil {
			err = fmt.Errorf("the LED cannot be set: %v: %w", lerr, ErrBusy)
			changed = false
		}
	}
	now, _ := e.led.LEDState()
	res := Result{Err: err, Props: []Prop{{e.cfg.Property, form.Value(now)}}, Seq: e.seq.Add(1)}
	if err != nil {
		e.setsRefused.Add(1)
		e.log.Warn().Str("event", "thing_set_refused").Str("id", req.ID).Str("topic", req.Topic).Err(err).
			Bool("led", now).Msg("property set refused; nothing changed: " + err.Error())
	} else {
		e.sets.Add(1)
		e.log.Info().Str("event", "thing_set").Str("id", req.ID).Str("property", e.cfg.Property).Bool("on", on).
			Bool("changed", changed).Msg("property set applied")
	}
	if m, ok := e.Dialect().Reply(req, res); ok {
		e.enqueue(outgoing{m: m, kind: "reply"})
	}
	if (changed || err != nil) && e.ledDue.CompareAndSwap(false, true) {
		// The console learns the real state: after a change, and after a refusal so that a
		// rejected value does not stay as its "latest value". One report waiting is enough: it
		// is written when sent, with the state then.
		if !e.enqueue(outgoing{kind: "report", led: true, seq: e.seq.Add(1)}) {
			e.ledDue.Store(false)
		}
	}
}

// validate checks a set: it must name the LED's property only, with an on/off value.
func (e *Engine) validate(req Request, perr error) (bool, Form, error) {
	if perr != nil {
		return false, 0, perr
	}
	if len(req.Props) == 0 {
		return false, 0, fmt.Errorf("the set names no property: %w", ErrMalformed)
	}
	var unknown []string
	for _, k := range sortedKeys(req.Props) {
		if k != e.cfg.Property {
			unknown = append(unknown, k)
		}
	}
	if len(unknown) > 0 {
		return false, 0, fmt.Errorf("%s (this device has %q): %w", strings.Join(quoteAll(unknown), ", "), e.cfg.Property, ErrUnknownProperty)
	}
	on, form, err := ParseSwitch(req.Props[e.cfg.Property])
	if err != nil {
		return false, 0, fmt.Errorf("%s: %w", e.cfg.Property, err)
	}
	return on, form, nil
}

func quoteAll(ss []string) []string {
	out := make([]string, len(ss))
	for i, s := range ss {
		out[i] = fmt.Sprintf("%q", s)
	}
	return out
}

// call runs one of the fixed services and answers it.
func (e *Engine) call(req Request, perr error) {
	res := Result{Err: perr, Seq: e.seq.Add(1)}
	if perr == nil {
		res.Output, res.Err = e.service(req.Service, req.Args)
	}
	if res.Err != nil {
		e.callsRefused.Add(1)
		e.log.Warn().Str("event", "thing_call_refused").Str("id", req.ID).Str("service", req.Service).Err(res.Err).
			Msg("service call refused: " + res.Err.Error())
	} else {
		e.calls.Add(1)
		e.log.Info().Str("event", "thing_call").Str("id", req.ID).Str("service", req.Service).Msg("service call answered")
	}
	if m, ok := e.Dialect().Reply(req, res); ok {
		e.enqueue(outgoing{m: m, kind: "reply"})
	}
}

// service runs the service name with args.
func (e *Engine) service(name string, args json.RawMessage) (any, error) {
	switch name {
	case ServiceGetStatus:
		return e.status(), nil
	case ServiceBlink:
		n, err := blinkTimes(args)
		if err != nil {
			return nil, err
		}
		if !e.blinking.CompareAndSwap(false, true) {
			return nil, fmt.Errorf("already blinking: %w", ErrBusy)
		}
		go e.blink(n)
		return map[string]int{"times": n}, nil
	}
	return nil, fmt.Errorf("%q (this device offers %q and %q): %w", name, ServiceGetStatus, ServiceBlink, ErrUnknownService)
}

// blinkTimes reads blink's parameter: {"times":N}, or N alone; none means DefaultBlinks.
func blinkTimes(args json.RawMessage) (int, error) {
	var n json.Number
	var obj struct {
		Times *json.Number `json:"times"`
	}
	switch {
	case len(args) == 0 || string(args) == "null" || string(args) == "{}":
		return DefaultBlinks, nil
	case json.Unmarshal(args, &n) == nil:
	case json.Unmarshal(args, &obj) == nil && obj.Times != nil:
		n = *obj.Times
	default:
		return 0, fmt.Errorf("blink takes {\"times\": 1-%d}, not %s: %w", MaxBlinks, short(args), ErrBadArgs)
	}
	v, err := n.Int64()
	if err != nil || v < 1 || v > MaxBlinks {
		return 0, fmt.Errorf("times %s is not 1-%d: %w", n, MaxBlinks, ErrBadArgs)
	}
	return int(v), nil
}

// blink flashes the LED n times and puts it back as the property wants it.
func (e *Engine) blink(n int) {
	defer e.blinking.Store(false)
	half := e.cfg.BlinkPeriod / 2
	t := time.NewTicker(half)
	defer t.Stop()
	done := context.Background().Done()
	if c := e.ctx.Load(); c != nil {
		done = (*c).Done()
	}
	e.mu.Lock()
	on := !e.want
	e.mu.Unlock()
	for i := 0; i < 2*n; i++ {
		if err := e.led.SetLED(on, "blink"); err != nil {
			e.log.Error().Err(err).Msg("blink: cannot set the LED")
			break
		}
		on = !on
		select {
		case <-t.C:
		case <-done:
			return
		}
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if err := e.led.SetLED(e.want, "blink done"); err != nil {
		e.log.Error().Err(err).Msg("blink: cannot restore the LED")
	}
}

// reportReply checks the platform's answer to a report.
func (e *Engine) reportReply(req Request, err error) {
	switch {
	case err != nil:
		e.repErr.Add(1)
		e.log.Warn().Str("topic", req.Topic).Err(err).Msg("report reply not understood")
	case req.OK:
		e.repOK.Add(1)
		e.log.Debug().Str("id", req.ID).Int("code", req.Code).Msg("report accepted")
	default:
		e.repErr.Add(1)
		ev := e.log.Error().Str("event", "thing_report_refused").Str("id", req.ID).Int("code", req.Code).
			Str("meaning", e.Dialect().Words(req.Code))
		if req.Text != "" {
			ev = ev.Str("message", req.Text)
		}
		ev.Msg(fmt.Sprintf("the platform refused a property report: code %d, %s", req.Code, e.Dialect().Words(req.Code)))
	}
}

// Connected reports the LED's state and the telemetry at the start of a session.
func (e *Engine) Connected() {
	select {
	case e.wake <- struct{}{}:
	default:
	}
	e.ReportAll("connect")
}

// ReportAll queues a report of the LED and every mapped telemetry field.
func (e *Engine) ReportAll(why string) {
	if !e.bound.Load() {
		e.log.Debug().Str("why", why).Msg("no report: the device name (and so the thing model's topics) is not known yet")
		return
	}
	on, known := e.led.LEDState()
	var ps []Prop
	e.mu.Lock()
	form := e.form
	e.mu.Unlock()
	if known {
		ps = append(ps, Prop{e.cfg.Property, form.Value(on)})
	}
	t := e.telemetry()
	for _, f := range TelemetryFields() {
		name, ok := e.cfg.Telemetry[f]
		if !ok || name == "" {
			continue
		}
		if v, ok := t.value(f); ok {
			ps = append(ps, Prop{name, v})
		}
	}
	if len(ps) == 0 {
		return
	}
	seq := e.seq.Add(1)
	e.log.Debug().Str("event", "thing_report").Str("why", why).Uint64("seq", seq).Int("properties", len(ps)).Msg("reporting properties")
	e.enqueue(outgoing{m: e.Dialect().Report(seq, ps), kind: "report"})
}

// enqueue hands o to Run without waiting; a full queue refuses it, counted and logged.
func (e *Engine) enqueue(o outgoing) bool {
	select {
	case e.queue <- o:
		return true
	default:
		e.dropped.Add(1)
		e.log.Error().Str("event", "thing_dropped").Str("kind", o.kind).Str("topic", o.m.Topic).Int("waiting", cap(e.queue)).
			Msg(fmt.Sprintf("the %s was not sent: %d replies and reports already wait for the module", o.kind, cap(e.queue)))
		return false
	}
}

// ledReport is the report of the LED's state now, in the form the last set used, with id seq.
func (e *Engine) ledReport(seq uint64) Message {
	e.ledDue.Store(false) // a change from now on needs a report of its own
	on, _ := e.led.LEDState()
	e.mu.Lock()
	form := e.form
	e.mu.Unlock()
	return e.Dialect().Report(seq, []Prop{{e.cfg.Property, form.Value(on)}})
}

// Run sends the queued replies and reports in order, and reports the telemetry every
// ReportInterval, until ctx ends.
func (e *Engine) Run(ctx context.Context) {
	e.ctx.Store(&ctx)
	var tick <-chan time.Time
	if e.cfg.ReportInterval > 0 {
		t := time.NewTicker(e.cfg.ReportInterval)
		defer t.Stop()
		tick = t.C
	}
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick:
			e.ReportAll("interval")
		case o := <-e.queue:
			if o.led {
				o.m = e.ledReport(o.seq)
			}
			e.send(ctx, o, tick)
		}
	}
}

// send publishes o, retrying on a capped back-off with jitter (and at once at the next connect)
// until it is taken or refused for good. Interval reports due meanwhile are queued behind it.
func (e *Engine) send(ctx context.Context, o outgoing, tick <-chan time.Time) {
	b := backoff.New(e.cfg.Backoff)
	for {
		err := e.pub.Publish(ctx, o.m)
		switch {
		case err == nil:
			if o.kind == "reply" {
				e.replies.Add(1)
			} else {
				e.reports.Add(1)
			}
			return
		case ctx.Err() != nil:
			return
		case errors.Is(err, ErrRefused):
			e.dropped.Add(1)
			e.log.Error().Str("event", "thing_dropped").Str("kind", o.kind).Str("topic", o.m.Topic).Err(err).
				Msg("the " + o.kind + " was refused by the publish path and is not sent")
			return
		}
		e.retries.Add(1)
		d := b.Next()
		ev := e.log.Debug()
		if !errors.Is(err, ErrOffline) {
			ev = e.log.Warn()
		}
		ev.Str("kind", o.kind).Str("topic", o.m.Topic).Err(err).Str("retry_in", d.String()).Msg("the " + o.kind + " waits to be published")
		t := time.NewTimer(d)
	wait:
		for {
			select {
			case <-ctx.Done():
				t.Stop()
				return
			case <-e.wake:
				b.Reset()
				t.Stop()
				break wait
			case <-t.C:
				break wait
			case <-tick:
				e.ReportAll("interval")
			}
		}
	}
}
