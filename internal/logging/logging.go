package logging

import (
	"fmt"
	"io"
	"os"
	"strings"
	"syscall"
	"time"

	"github.com/mattn/go-isatty"
	"github.com/rs/zerolog"
)

// Values of the stable `event` field. A log line that reports one of these happenings carries
// Str(EventKey, Event...) so that operators, alerts and tests can match on it; the message text is
// free to change, these are not.
const (
	EventKey = "event" // the field name

	EventModule            = "module"              // a module was identified (model, revision, IMEI)
	EventSIMReady          = "sim_ready"           // +CPIN: READY and the SIM's ICCID read
	EventURCPortSet        = "urc_port_set"        // AT+QURCCFG="urcport" named another port; set to ours
	EventNetworkReady      = "network_ready"       // SIM ready, registered and PDP context active
	EventMQTTConnected     = "mqtt_connected"      // CONNACK accepted
	EventSessionUp         = "session_up"          // the whole bring-up done: subscribed, published on connect
	EventMQTTConnectFailed = "mqtt_connect_failed" // open or connect refused or failed
	EventMQTTDisconnected  = "mqtt_disconnected"   // the link to the broker went down
	EventSubscribed        = "subscribed"          // SUBACK received
	EventPublished         = "published"           // a publish completed
	EventDownlink          = "downlink"            // a message arrived from the broker
	EventLED               = "led"                 // the LED changed state
	EventModuleLost        = "module_lost"         // the AT port failed or stopped answering
	EventModuleReplaced    = "module_replaced"     // a module with a different IMEI came back
	EventModuleReset       = "module_reset"        // the module stopped answering: reset by AT+CFUN=1,1 or its reset line
	EventBringUpFailed     = "bringup_failed"      // a module, SIM, registration or PDP step failed; retried after retry_in
	EventTLSReady          = "tls_ready"           // the module's TLS context and certificate files are set
	EventHeldBack          = "held_back"           // downlinks came faster than handled: the AT reader paused (nothing lost)
	EventTokenRenewed      = "token_renewed"       // an expiring password was re-signed and the session re-established, as planned
	EventClockWrong        = "clock_wrong"         // the system clock is before the build's date: signatures made with it fail
	EventClockNetwork      = "clock_network"       // signing with the module's network clock (the system clock is not synchronised)

	// Dynamic registration (Alibaba Cloud "one type, one secret").
	EventRegistering      = "registering"        // no DeviceSecret stored for this device name: registering
	EventRegistered       = "registered"         // the DeviceSecret arrived and is stored in the state directory
	EventDeviceSecret     = "device_secret"      // a stored DeviceSecret read: logging in with it
	EventDeviceNamePinned = "device_name_pinned" // pin_device_name: the pinned name is used, not the one from this module

	// EventMQTTReconnectSpread: the broker closed a session that had lasted; the reconnect waits
	// retry_in, drawn from the reconnect window so that a fleet does not reconnect in one second.
	EventMQTTReconnectSpread = "mqtt_reconnect_spread"

	// The outbox (internal/outbox, internal/drain, internal/local) logs these names; the daemon
	// logs EventOutboxStats, and EventPublished with from "outbox" for each forwarded message.
	EventOutboxStats         = "outbox_stats"          // the outbox counters of this run, at exit
	EventOutboxRefused       = "outbox_refused"        // a message refused: full, too large or a disk error
	EventOutboxExpired       = "outbox_expired"        // messages older than max_age dropped
	EventOutboxDroppedOldest = "outbox_dropped_oldest" // messages dropped to make room (drop_oldest)
	EventOutboxRejected      = "outbox_rejected"       // a message the module can never send dropped
	EventOutboxResend        = "outbox_resend"         // a message sent again: the broker may get it twice
	EventOutboxSetAside      = "outbox_set_aside"      // a damaged store file renamed, a fresh one started
	EventOutboxUnavailable   = "outbox_unavailable"    // the outbox directory cannot be used: running without it
	EventControlUnavailable  = "control_unavailable"   // the control socket cannot be created: running without it
	EventMetricsUnavailable  = "metrics_unavailable"   // the metrics listener cannot be opened: running without it
	EventOutboxDamaged       = "outbox_damaged_record" // a damaged record dropped from a sound store
	EventDrainWindowShrunk   = "drain_window_shrunk"   // the module refused a publish; window cut to 1
	EventDrainWindowRestored = "drain_window_restored" // the cut window back to full: a streak of publishes, or a dying link
	EventPublishUndelivered  = "publish_undelivered"   // the module gave up on a QoS 1 publish (result 2); sent again
	EventLocalRefused        = "local_refused"         // a local client's publish refused (no PUBACK)
	EventLocalNotForwarded   = "local_not_forwarded"   // a local publish the module could never send
	EventLocalUnavailable    = "local_unavailable"     // the local endpoint stopped: local clients are cut off until a restart
)

// Output formats.
const (
	FormatJSON    = "json"    // one JSON object per line (the default)
	FormatConsole = "console" // human-readable lines
)

// TimeLayout is the layout of the `time` field: RFC 3339 with exactly six fractional digits.
const TimeLayout = "2006-01-02T15:04:05.000000Z07:00"

// ParseLevel accepts exactly trace, debug, info, warn or error.
func ParseLevel(s string) (zerolog.Level, error) {
	switch s {
	case "trace":
		return zerolog.TraceLevel, nil
	case "debug":
		return zerolog.DebugLevel, nil
	case "info":
		return zerolog.InfoLevel, nil
	case "warn":
		return zerolog.WarnLevel, nil
	case "error":
		return zerolog.ErrorLevel, nil
	}
	return zerolog.NoLevel, fmt.Errorf("log level %q: want trace, debug, info, warn or error", s)
}

// CheckFormat accepts FormatJSON and FormatConsole.
func CheckFormat(s string) error {
	if s == FormatJSON || s == FormatConsole {
		return nil
	}
	return fmt.Errorf("log format %q: want json or console", s)
}

// New returns a logger writing to w at the given level ("" means info) in the given format
// ("" means json).
//
// JSON lines always carry a `time` field in TimeLayout (microseconds). The console format shows the
// time too, except when w is the stream systemd's journal reads (JOURNAL_STREAM names w's device
// and inode), because the journal stamps every line itself. On that stream each line, in either
// format, starts with its level's sd-daemon priority (see Priority), which journald strips. The
// console format is coloured only when w is a terminal and NO_COLOR is unset.
//
// New changes none of zerolog's package-level settings: the time field is added by a hook of this
// logger, not through zerolog.TimeFieldFormat.
func New(w io.Writer, level, format string) (zerolog.Logger, error) {
	return newLogger(w, level, format, os.Getenv, time.Now)
}

func newLogger(w io.Writer, level, format string, getenv func(string) string, now func() time.Time) (zerolog.Logger, error) {
	if level == "" {
		level = "info"
	}
	if format == "" {
		format = FormatJSON
	}
	lvl, err := ParseLevel(level)
	if err != nil {
		return zerolog.Nop(), err
	}
	if err := CheckFormat(format); err != nil {
		return zerolog.Nop(), err
	}
	stamp := timeHook{now: now}
	journal := journalStream(w, getenv)

	if format == FormatJSON {
		out := w
		if journal {
			out = priorityWriter{w}
		}
		return zerolog.New(out).Level(lvl).Hook(stamp), nil
	}

	cw := zerolog.ConsoleWriter{
		Out:        w,
		NoColor:    !isTerminal(w) || getenv("NO_COLOR") != "",
		TimeFormat: "2006-01-02 15:04:05.000000",
	}
	if journal {
		cw.PartsExclude = []string{zerolog.TimestampFieldName}
		return zerolog.New(consolePriority{cw, w}).Level(lvl), nil
	}
	return zerolog.New(cw).Level(lvl).Hook(stamp), nil
}

// timeHook adds the `time` field to each event as it is written.
type timeHook struct{ now func() time.Time }

// Run implements zerolog.Hook.
func (h timeHook) Run(e *zerolog.Event, _ zerolog.Level, _ string) {
	e.Str(zerolog.TimestampFieldName, h.now().Format(TimeLayout))
}

// file returns the *os.File behind w (also behind a BatchWriter), if any.
func file(w io.Writer) (*os.File, bool) {
	if b, ok := w.(*BatchWriter); ok {
		w = b.w
	}
	f, ok := w.(*os.File)
	return f, ok
}

func isTerminal(w io.Writer) bool {
	f, ok := file(w)
	return ok && isatty.IsTerminal(f.Fd())
}

// journalStream reports whether w is the file systemd connected to the journal: JOURNAL_STREAM
// holds "<device>:<inode>" of that stream, and is inherited by children that may log elsewhere, so
// the identity of w is compared rather than the variable merely tested.
func journalStream(w io.Writer, getenv func(string) string) bool {
	js := getenv("JOURNAL_STREAM")
	if js == "" {
		return false
	}
	f, ok := file(w)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	if err != nil {
		return false
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return false
	}
	dev, ino, ok := strings.Cut(js, ":")
	return ok && dev == fmt.Sprint(st.Dev) && ino == fmt.Sprint(st.Ino)
}
