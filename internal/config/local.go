package config

import (
	"net"
	"path/filepath"
	"strings"
	"time"

	"github.com/gatewayd/gatewayd/internal/drain"
	"github.com/gatewayd/gatewayd/internal/outbox"
	"github.com/gatewayd/gatewayd/internal/topic"
)

// Defaults of [local]. Those of [outbox] are the outbox's own (outbox.DefaultMaxBytes,
// DefaultMaxAge, DefaultCommitWait, OverflowRefuse) and the drainer's (drain.DefaultWindow).
const (
	DefaultLocalListen = "127.0.0.1:1883"
	CredLocalPassword  = "local-password" // local.password, when local.username is set

	// What local clients may cost (internal/local has the same defaults).
	DefaultLocalMaxClients       = 32
	DefaultLocalMaxTopic         = 1024      // a guess: the module's limit is undocumented
	DefaultLocalMaxRetained      = 1000      // retained messages kept
	DefaultLocalMaxRetainedBytes = 256 << 10 // their topics and payloads
	// MaxLocalTopic is the highest local.max_topic: an AT+QMTPUBEX line is 31 bytes plus the
	// topic, and the emulator (like any AT parser, with some limit) refuses lines over 4096.
	MaxLocalTopic = 4000
)

// Local is the MQTT endpoint for programs on the Pi; nil in Config when [local] is absent.
type Local struct {
	Listen           string // TCP address; "" = none (a unix socket only)
	Socket           string // unix socket path; "" = none
	Username         string // required of local clients when set
	Password         Secret
	AllowNonLoopback bool
	Forward          []Forward
	MaxClients       int // local clients connected at once
	MaxTopic         int // the longest topic forwarded, in bytes
	MaxRetained      int // retained messages kept
	MaxRetainedBytes int // bytes of their topics and payloads
}

// Forward is one forwarding rule: what local clients publish on Topic goes to the cloud.
type Forward struct {
	Topic string // a topic filter
	QoS   int    // 0, or 1 for the durable outbox
}

// Outbox bounds the store of forwarded messages waiting for the cloud.
type Outbox struct {
	Dir      string // "" = systemd's StateDirectory ($STATE_DIRECTORY) or /var/lib/gatewayd
	MaxBytes int64
	MaxAge   time.Duration
	Overflow string // "refuse" or "drop_oldest"
	Window   int    // publishes in flight at once while draining
	// CommitWait is how long a commit may wait for other publishers to share its fdatasync
	// while several publish at once; 0 = never wait.
	CommitWait time.Duration
}

func (b *builder) local(t *table) {
	l := &Local{}
	l.Listen = t.str("listen", DefaultLocalListen)
	l.Socket = t.str("socket", "")
	l.Username = t.str("username", "")
	l.Password = b.secret(t, "password", "password_file", CredLocalPassword, l.Username != "")
	l.AllowNonLoopback = t.boolean("allow_non_loopback", false)
	l.MaxClients = t.integer("max_clients", DefaultLocalMaxClients, 1, 1024)
	l.MaxTopic = t.integer("max_topic", DefaultLocalMaxTopic, 1, MaxLocalTopic)
	l.MaxRetained = t.integer("max_retained", DefaultLocalMaxRetained, 1, 100000)
	l.MaxRetainedBytes = t.integer("max_retained_bytes", DefaultLocalMaxRetainedBytes, 1024, 64<<20)
	if l.Listen != "" {
		host, _, err := net.SplitHostPort(l.Listen)
		switch ip := net.ParseIP(host); {
		case err != nil:
			t.fail("listen", "%q is not host:port: %v", l.Listen, err)
		case !l.AllowNonLoopback && (ip == nil || !ip.IsLoopback()):
			t.fail("listen", "%q is not a loopback address; set local.allow_non_loopback = true to listen beyond this machine", l.Listen)
		}
	}
	if l.Listen == "" && l.Socket == "" {
		t.fail("listen", "is empty and no local.socket is given: local clients could not connect")
	}
	if l.Username == "" && !l.Password.IsZero() {
		t.fail("password", "needs local.username")
	}
	for _, ft := range t.tables("forward") {
		f := Forward{Topic: ft.str("topic", ""), QoS: ft.integer("qos", 1, 0, 1)}
		ft.done()
		if !ft.has("topic") {
			ft.fail("topic", "required")
			continue
		}
		if err := topic.CheckFilter(f.Topic); err != nil {
			ft.fail("topic", "%v", err)
			continue
		}
		if !b.atString(ft, "topic", f.Topic, MaxTopic) {
			continue
		}
		if n := shortestTopic(f.Topic); n > l.MaxTopic {
			ft.fail("topic", "matches only topics of %d bytes or more, longer than local.max_topic (%d): nothing would be forwarded", n, l.MaxTopic)
			continue
		}
		l.Forward = append(l.Forward, f)
	}
	t.done()
	b.cfg.Local = l
}

// shortestTopic is the length of the shortest topic the (valid) filter f matches: '+' matches
// an empty level, and "a/#" matches "a".
func shortestTopic(f string) int {
	levels := strings.Split(f, "/")
	if levels[len(levels)-1] == "#" {
		levels = levels[:len(levels)-1]
	}
	for i, l := range levels {
		if l == "+" {
			levels[i] = ""
		}
	}
	return len(strings.Join(levels, "/"))
}

func (b *builder) outbox(t *table) {
	o := &b.cfg.Outbox
	o.Dir = t.str("dir", "")
	if o.Dir != "" && !filepath.IsAbs(o.Dir) {
		t.fail("dir", "%q is not an absolute path", o.Dir)
	}
	o.MaxBytes = int64(t.integer("max_bytes", outbox.DefaultMaxBytes, 64<<10, 1<<30))
	// The lower bound is for tests and experiments; a real outbox keeps messages for days.
	o.MaxAge = t.duration("max_age", outbox.DefaultMaxAge, time.Second, 365*24*time.Hour, false)
	o.Overflow = t.str("overflow", string(outbox.OverflowRefuse))
	if o := outbox.Overflow(o.Overflow); o != outbox.OverflowRefuse && o != outbox.OverflowDropOldest {
		t.fail("overflow", "%q: want %q or %q", o, outbox.OverflowRefuse, outbox.OverflowDropOldest)
	}
	o.Window = t.integer("window", drain.DefaultWindow, 1, 32)
	o.CommitWait = t.duration("commit_wait", outbox.DefaultCommitWait, 0, time.Second, false)
	t.done()
}
