package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/BurntSushi/toml"

	"github.com/gatewayd/gatewayd/internal/cloud"
	"github.com/gatewayd/gatewayd/internal/logging"
)

// Defaults.
const (
	DefaultPort            = "/dev/ec600-at" // the name deploy/udev gives the EC600's AT port
	DefaultBaud            = 115200
	DefaultPDPContext      = 1
	DefaultSIMTimeout      = 30 * time.Second
	DefaultRegisterTimeout = 180 * time.Second
	DefaultHealthInterval  = 60 * time.Second // each check wakes the daemon: once a minute keeps it asleep (docs/benchmarks.md)
	DefaultMQTTPort        = 1883
	DefaultKeepAlive       = 60 * time.Second
	DefaultResetPulse      = 500 * time.Millisecond // the reference has no RESET_N timing: check the board
	DefaultPacketTimeout   = 5 * time.Second
	DefaultRetries         = 3
	DefaultSignMethod      = cloud.HMACSHA256
	// DefaultCADir is where the package installs the root CAs the platform presets use (deploy/ca).
	DefaultCADir     = "/usr/share/gatewayd/ca"
	DefaultLogLevel  = "info"
	DefaultLogFormat = logging.FormatJSON
)

// EnvCADir names the environment variable that moves the bundled root CAs' directory (a build
// run from the source tree: GATEWAYD_CA_DIR=deploy/ca).
const EnvCADir = "GATEWAYD_CA_DIR"

// PortAuto as serial.port asks the daemon to find the module's AT port itself.
const PortAuto = "auto"

// Limits on what the module is sent (EC600 limits are unpublished; these are the documented
// limits of sibling modules, see the AT reference section 2.3).
const (
	MaxHost        = 100
	MaxClientID    = 128
	MaxUsername    = 256
	MaxPassword    = 256
	MaxTopic       = 256
	MaxPayload     = 1024 // publish_on_connect payloads; EC600 maximum unconfirmed, 1 KiB is safe
	MaxWillMessage = 256  // AT+QMTCFG="will" message (BC66 document; EC600 unconfirmed)
	MaxAPN         = 100
	MaxAPNUser     = 127
	MaxAPNPass     = 127
	MaxFileSize    = 1 << 20 // the configuration file itself
	MaxSecretFile  = 4096    // a password or device-secret file
)

// Names of systemd credentials ($CREDENTIALS_DIRECTORY/<name>, from LoadCredential= in the unit)
// read when a secret is given neither inline nor as a file; see Options.
const (
	CredMQTTPassword       = "mqtt-password"              // mqtt.password, when mqtt.username is set
	CredAliyunDeviceSecret = cloud.CredAliyunDeviceSecret // mqtt.aliyun.device_secret (the other presets: see docs/clouds.md)
	CredAPNPassword        = "apn-password"               // module.apn_password, when module.apn_user is set
)

// CredPrefix in a *_file value names a systemd credential: "cred:mqtt-password" reads
// $CREDENTIALS_DIRECTORY/mqtt-password.
const CredPrefix = "cred:"

// Config is a validated configuration with every default filled in.
type Config struct {
	File string // the file it came from
	// Files are the files read: File, then its drop-ins in the order they were merged.
	Files []string
	// Origins says where each key set in the files was set, as "file:line", by dotted key
	// ("mqtt.host", "mqtt.subscribe" for a whole array of tables); keys left to their defaults
	// are absent. It never holds a value.
	Origins map[string]string
	// Revision identifies the settings: 12 hex digits of a hash of the merged files' settings
	// (not their comments or layout; secrets left out), for a fleet dashboard to find the
	// gateway whose configuration differs.
	Revision string
	Serial   Serial
	Module   Module
	MQTT     MQTT
	LED      GPIOLine
	// Reset is the module's reset line; nil when [reset] is absent.
	Reset *Reset
	Log   Log
	// Local is the MQTT endpoint for programs on the Pi; nil when [local] is absent.
	Local  *Local
	Outbox Outbox
	Retry  Retry
	// Control is the control socket.
	Control Control
	// Metrics is the Prometheus endpoint; nil when [metrics] is absent.
	Metrics *Metrics
	// Thing binds the LED to a property of the platform's thing model; nil when [thing] is
	// absent (the LED toggles on every downlink).
	Thing *Thing
	// Sources says where each secret came from, by key: "inline", "file /etc/gatewayd/pw" or
	// "systemd credential mqtt-password". It never holds a secret.
	Sources map[string]string
	// Warnings are problems that do not stop the daemon (a password file others can read, a QoS
	// Alibaba Cloud downgrades), formatted like errors; log them at start-up.
	Warnings []string
}

// Serial is the AT port.
type Serial struct {
	Port string // device path, or PortAuto
	Baud int    // fixed line rate; irrelevant for USB ports, used by UARTs
	// URCPort is the AT+QURCCFG="urcport" value gatewayd makes sure of at every bring-up, so
	// that URCs reach the port it reads: "usbat" on the USB AT port, "uart1" on a UART (the
	// default follows the port's name), or "keep" to leave the module's setting alone.
	URCPort string
}

// URCPortKeep as serial.urc_port leaves the module's AT+QURCCFG="urcport" setting alone.
const URCPortKeep = "keep"

// DefaultURCPort is the urcport value for the port at path: "uart1" for a UART's device names,
// "usbat" for anything else (ttyUSB*, a udev symlink, auto).
func DefaultURCPort(path string) string {
	base := filepath.Base(path)
	for _, uart := range []string{"ttyAMA", "ttyS", "serial", "ttyAML", "ttySC"} {
		if strings.HasPrefix(base, uart) {
			return "uart1"
		}
	}
	return "usbat"
}

// Module is the cellular side of the bring-up.
type Module struct {
	APN         string // empty: leave the module's / network's default PDP context settings
	APNUser     string
	APNPassword Secret
	// APNAuth is the authentication AT+QICSGP is sent with when apn_user is set: "auto" (PAP or
	// CHAP, where the module offers that), "pap", "chap", "pap_or_chap" or "none".
	APNAuth         string
	PDPContext      int           // PDP context id 1–15, also the one MQTT uses
	SIMTimeout      time.Duration // how long to wait for +CPIN: READY
	RegisterTimeout time.Duration // how long to wait for network registration
	// HealthInterval is how often an idle module is asked AT; three failures in a row reset it.
	HealthInterval time.Duration
}

// Retry is the back-off every failure is retried on: the port, the module and network steps, and
// MQTT each keep a counter of their own.
type Retry struct {
	Initial time.Duration // the delay after the first failure (before jitter)
	Max     time.Duration // the cap on any one delay
	// StableAfter is how long a session must stay connected before its loss resets the
	// back-off; a session that dies sooner counts as one more failure.
	StableAfter time.Duration
	// ReconnectWindow is the window the first reconnect after the broker closed a lasting
	// session is drawn from, uniformly (full jitter); each later failure doubles it up to
	// ReconnectMax.
	ReconnectWindow, ReconnectMax time.Duration
}

// Retry defaults.
const (
	DefaultRetryInitial     = time.Second
	DefaultRetryMax         = 2 * time.Minute
	DefaultRetryStableAfter = time.Minute
	// DefaultRetryReconnectWindow spreads a fleet's reconnects after a broker restart over 5 s.
	DefaultRetryReconnectWindow = 5 * time.Second
	// DefaultRetryReconnectMax: the last gateway of a fleet is back at most 30 s after its broker.
	DefaultRetryReconnectMax = 30 * time.Second
)

// MQTT is the module's MQTT client and the session gatewayd keeps.
type MQTT struct {
	Host string // broker host: as configured, or derived by the platform preset
	// HostFrom says where Host came from: "mqtt.host", or the preset key it is derived from
	// ("mqtt.aliyun.region", "mqtt.azure.hub", ...), or the preset ("mqtt.onenet") for a fixed host.
	HostFrom      string
	Port          int
	ClientID      string // as given in [mqtt]: the literal one, or a preset's override
	Username      string // as given in [mqtt]
	Password      Secret // as given in [mqtt]
	KeepAlive     time.Duration
	CleanSession  bool
	ClientIndex   int // the module's MQTT client 0–5
	PacketTimeout time.Duration
	Retries       int
	// Platform is the cloud the session connects to, asked for the identity at every connect:
	// the preset of the platform section ([mqtt.aliyun], [mqtt.tencent], ...) or, without one, a
	// plain broker with the literal credentials. Set when [mqtt] is valid.
	Platform         cloud.Platform
	Subscribe        []Subscription
	PublishOnConnect []Publication
	// Will is the last-will message; nil when [mqtt.will] is not configured.
	Will *Will
	// TLS is set when [mqtt.tls] is configured (and valid).
	TLS *TLS
}

// Will is the message the broker publishes for gatewayd when its link dies without a DISCONNECT.
type Will struct {
	Topic   string
	Message string // at most MaxWillMessage bytes, no '"' (the module has no escape)
	QoS     int
	Retain  bool
}

// Subscription is one topic filter subscribed after every connect.
type Subscription struct {
	Topic string // {product_key} and {device_name} expanded; {imei} and {iccid} left for bring-up
	QoS   int
}

// Publication is one message published after every connect.
type Publication struct {
	Topic   string // placeholders as in Subscription
	Payload string
	QoS     int
	Retain  bool
}

// GPIOLine is a GPIO output line: the LED toggled by downlinks, or the module's reset input.
type GPIOLine struct {
	Chip      string // "gpiochip0" or "/dev/gpiochip0"; empty with an empty Name: no line (a virtual LED)
	Offset    int    // line offset on Chip; -1 when the line is given by Name (or there is none)
	Name      string // line name, e.g. "GPIO24", when the line is given by name
	ActiveLow bool
}

// Virtual reports whether no GPIO line is configured, so the LED only logs.
func (l GPIOLine) Virtual() bool { return l.Chip == "" && l.Name == "" && l.Offset < 0 }

// String describes the line as `gatewayd check` shows it.
func (l GPIOLine) String() string {
	switch {
	case l.Name != "" && l.Chip == "":
		return fmt.Sprintf("line %q on whichever chip has it, active_low %t", l.Name, l.ActiveLow)
	case l.Name != "":
		return fmt.Sprintf("line %q on %s, active_low %t", l.Name, l.Chip, l.ActiveLow)
	}
	return fmt.Sprintf("line %d on %s, active_low %t", l.Offset, l.Chip, l.ActiveLow)
}

// Reset is [reset]: a GPIO line wired to the module's reset (or power-key) input, pulsed when
// the module stops answering even AT+CFUN=1,1.
type Reset struct {
	Line  GPIOLine
	Pulse time.Duration // how long the line is held asserted
}

// Log is the logger's set-up, for logging.New.
type Log struct {
	Level  string // trace, debug, info, warn or error
	Format string // json or console
	// ATTrace logs every byte on the AT port (secrets masked); it shows only at level trace.
	ATTrace bool
}

// Options change how a file is read. The zero value reads the process environment.
type Options struct {
	// Getenv looks up environment variables (CREDENTIALS_DIRECTORY and GATEWAYD_CA_DIR); nil means os.Getenv.
	Getenv func(string) string
	// CADir is where the bundled root CAs are (deploy/ca in the source); "" means
	// $GATEWAYD_CA_DIR, or DefaultCADir when that is not set either.
	CADir string
}

// Load reads and checks the file at path with the zero Options.
func Load(path string) (*Config, error) { return Options{}.Load(path) }

// Parse checks data with the zero Options; name is used in messages and relative *_file paths
// are taken from its directory.
func Parse(data []byte, name string) (*Config, error) { return Options{}.Parse(data, name) }

// Load reads and checks the file at path, merged with its drop-ins: the files *.toml in the
// directory path + ".d" (DropInDir), in name order (see merge for the rules). Relative *_file
// paths are taken from the main file's directory.
func (o Options) Load(path string) (*Config, error) {
	data, err := readFile(path)
	if err != nil {
		return nil, err
	}
	files := []source{{name: path, data: data}}
	names, err := dropIns(DropInDir(path))
	if err != nil {
		return nil, err
	}
	for _, name := range names {
		data, err := readFile(name)
		if err != nil {
			return nil, err
		}
		files = append(files, source{name: name, data: data})
	}
	return o.parseFiles(files, nil)
}

// readFile reads a configuration file, at most MaxFileSize bytes.
func readFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, MaxFileSize+1))
	if err != nil {
		return nil, fmt.Errorf("config: read %s: %w", path, err)
	}
	if len(data) > MaxFileSize {
		return nil, &Problem{File: path, Msg: fmt.Sprintf("larger than %d bytes; is this the right file?", MaxFileSize)}
	}
	return data, nil
}

// Parse checks data, the contents of the file name. It reports every problem it finds, joined
// with errors.Join, each a *Problem naming the file, line and key.
func (o Options) Parse(data []byte, name string) (*Config, error) {
	return o.parse(data, name, nil)
}

// parse is Parse; when known is not nil it receives every key path the builder asked about.
func (o Options) parse(data []byte, name string, known map[string]bool) (*Config, error) {
	return o.parseFiles([]source{{name: name, data: data}}, known)
}

// parseFiles decodes each file, merges them in order (the first is the main file) and checks
// the result.
func (o Options) parseFiles(files []source, known map[string]bool) (*Config, error) {
	var errs []error
	for i := range files {
		f := &files[i]
		if _, err := toml.Decode(string(f.data), &f.raw); err != nil {
			var pe toml.ParseError
			if errors.As(err, &pe) {
				line, col := syntaxPosition(f.data, pe.Position)
				errs = append(errs, &Problem{File: f.name, Line: line, Col: col, Msg: pe.Message})
			} else {
				errs = append(errs, &Problem{File: f.name, Msg: err.Error()})
			}
			continue
		}
		f.loc = newLocator(string(f.data))
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	m := merge(files)
	if len(m.conflicts) > 0 {
		return nil, errors.Join(m.conflicts...)
	}
	getenv := o.Getenv
	if getenv == nil {
		getenv = os.Getenv
	}
	name := files[0].name
	ps := &problems{file: name, loc: files[0].loc, known: known, where: m.where}
	for _, f := range files {
		ps.files = append(ps.files, f.name)
	}
	caDir := o.CADir
	if caDir == "" {
		caDir = getenv(EnvCADir)
	}
	if caDir == "" {
		caDir = DefaultCADir
	}
	if abs, err := filepath.Abs(caDir); err == nil {
		caDir = abs // relative to the working directory, not to the configuration file
	}
	b := &builder{
		ps:     ps,
		getenv: getenv,
		dir:    filepath.Dir(name),
		caDir:  caDir,
		cfg:    &Config{File: name, Files: ps.files, Origins: m.origins(), Revision: revision(m.root), Sources: map[string]string{}},
	}
	b.build(newTable(b.ps, nil, m.root))
	if err := b.ps.err(); err != nil {
		return nil, err
	}
	return b.cfg, nil
}

// syntaxPosition computes line and column from the byte offset of a TOML syntax error; the
// library's own line number is one too high when the offending byte is a newline.
func syntaxPosition(data []byte, p toml.Position) (line, col int) {
	if p.Start < 0 || p.Start > len(data) {
		return p.Line, p.Col
	}
	before := data[:p.Start]
	line = 1 + bytes.Count(before, []byte("\n"))
	col = p.Start - bytes.LastIndexByte(before, '\n')
	return line, col
}

// builder turns the decoded TOML tree into a Config, collecting problems.
type builder struct {
	ps     *problems
	getenv func(string) string
	dir    string
	caDir  string
	cfg    *Config
}

func (b *builder) warn(k keyPath, format string, args ...any) {
	file, line := b.ps.locate(k)
	p := &Problem{File: file, Line: line, Key: k.String(), Msg: fmt.Sprintf(format, args...)}
	b.cfg.Warnings = append(b.cfg.Warnings, p.Error())
}

func (b *builder) build(root *table) {
	b.serial(root.sub("serial"))
	b.module(root.sub("module"))
	b.mqtt(root.sub("mqtt"))
	b.led(root.sub("led"))
	if root.has("thing") {
		b.thing(root.sub("thing"))
	}
	if root.has("reset") {
		b.reset(root.sub("reset"))
	}
	b.log(root.sub("log"))
	if root.has("local") {
		b.local(root.sub("local"))
	} else if root.has("outbox") {
		b.warn(root.key("outbox"), "has no effect without [local]: only messages from local clients go through the outbox")
	}
	b.outbox(root.sub("outbox"))
	b.retry(root.sub("retry"))
	b.control(root.sub("control"))
	if root.has("metrics") {
		b.metrics(root.sub("metrics"))
	}
	root.done()
}

func (b *builder) serial(t *table) {
	s := &b.cfg.Serial
	s.Port = t.str("port", DefaultPort)
	if s.Port != PortAuto {
		if !filepath.IsAbs(s.Port) {
			t.fail("port", "%q is neither a device path (such as /dev/ttyUSB2 or /dev/ec600-at) nor %q", s.Port, PortAuto)
		} else if i, c, bad := findControl(s.Port); bad {
			t.fail("port", "control byte %q at offset %d", c, i)
		}
	}
	s.Baud = t.integer("baud", DefaultBaud, 1, math.MaxInt32)
	if !supportedBaud(s.Baud) {
		t.fail("baud", "%d is not a supported rate (4800, 9600, 19200, 38400, 57600, 115200, 230400, 460800 or 921600)", s.Baud)
	}
	s.URCPort = t.str("urc_port", DefaultURCPort(s.Port))
	switch s.URCPort {
	case "usbat", "usbmodem", "uart1", "uart2", "all", URCPortKeep:
	default:
		t.fail("urc_port", "%q is not one of usbat, usbmodem, uart1, uart2, all or %s", s.URCPort, URCPortKeep)
	}
	t.done()
}

func supportedBaud(n int) bool {
	switch n {
	case 4800, 9600, 19200, 38400, 57600, 115200, 230400, 460800, 921600:
		return true
	}
	return false
}

func (b *builder) module(t *table) {
	m := &b.cfg.Module
	m.APN = t.str("apn", "")
	b.atString(t, "apn", m.APN, MaxAPN)
	m.APNUser = t.str("apn_user", "")
	b.atString(t, "apn_user", m.APNUser, MaxAPNUser)
	m.APNPassword = b.secret(t, "apn_password", "apn_password_file", CredAPNPassword, m.APNUser != "")
	b.atSecret(t, "apn_password", m.APNPassword, MaxAPNPass)
	m.APNAuth = t.str("apn_auth", "auto")
	switch m.APNAuth {
	case "auto", "pap", "chap", "pap_or_chap", "none":
	default:
		t.fail("apn_auth", "%q is not one of auto, pap, chap, pap_or_chap or none", m.APNAuth)
	}
	if m.APN == "" {
		if m.APNUser != "" {
			t.fail("apn_user", "needs module.apn")
		}
		if !m.APNPassword.IsZero() {
			t.fail("apn_password", "needs module.apn")
		}
	}
	if m.APNUser == "" && !m.APNPassword.IsZero() {
		t.fail("apn_password", "needs module.apn_user")
	}
	m.PDPContext = t.integer("pdp_context", DefaultPDPContext, 1, 15)
	m.SIMTimeout = t.duration("sim_timeout", DefaultSIMTimeout, time.Second, 10*time.Minute, false)
	m.RegisterTimeout = t.duration("register_timeout", DefaultRegisterTimeout, 10*time.Second, time.Hour, false)
	m.HealthInterval = t.duration("health_interval", DefaultHealthInterval, time.Second, 10*time.Minute, false)
	t.done()
}

func (b *builder) retry(t *table) {
	r := &b.cfg.Retry
	r.Initial = t.duration("initial", DefaultRetryInitial, 10*time.Millisecond, 10*time.Minute, false)
	r.Max = t.duration("max", DefaultRetryMax, 100*time.Millisecond, time.Hour, false)
	if r.Max < r.Initial {
		t.fail("max", "%s is shorter than retry.initial (%s)", fmtDuration(r.Max), fmtDuration(r.Initial))
	}
	r.StableAfter = t.duration("stable_after", DefaultRetryStableAfter, 100*time.Millisecond, time.Hour, false)
	r.ReconnectWindow = t.duration("reconnect_window", DefaultRetryReconnectWindow, 10*time.Millisecond, 10*time.Minute, false)
	r.ReconnectMax = t.duration("reconnect_max", DefaultRetryReconnectMax, 10*time.Millisecond, time.Hour, false)
	if r.ReconnectMax < r.ReconnectWindow {
		t.fail("reconnect_max", "%s is shorter than retry.reconnect_window (%s)", fmtDuration(r.ReconnectMax), fmtDuration(r.ReconnectWindow))
	}
	t.done()
}

func (b *builder) led(t *table) {
	b.cfg.LED = b.gpioLine(t)
	t.done()
}

// reset reads [reset]: the line is required, the pulse defaults to DefaultResetPulse.
func (b *builder) reset(t *table) {
	r := &Reset{Line: b.gpioLine(t)}
	r.Pulse = t.duration("pulse", DefaultResetPulse, 10*time.Millisecond, 30*time.Second, false)
	t.done()
	if r.Line.Virtual() && !t.has("line") {
		t.fail("line", "required: the GPIO line wired to the module's reset input (an offset with chip, or a line name)")
		return
	}
	if led := b.cfg.LED; !led.Virtual() && led.Chip == r.Line.Chip && led.Offset == r.Line.Offset && led.Name == r.Line.Name {
		t.fail("line", "is the LED's line too; the reset needs a line of its own")
		return
	}
	b.cfg.Reset = r
}

// gpioLine reads chip, line and active_low of a GPIO output line from t.
func (b *builder) gpioLine(t *table) GPIOLine {
	l := GPIOLine{Offset: -1}
	l.Chip = t.str("chip", "")
	if l.Chip != "" {
		if i, c, bad := findControl(l.Chip); bad {
			t.fail("chip", "control byte %q at offset %d", c, i)
		} else if filepath.Base(l.Chip) != l.Chip && !filepath.IsAbs(l.Chip) {
			t.fail("chip", "%q is neither a chip name (gpiochip0) nor an absolute path (/dev/gpiochip0)", l.Chip)
		}
	}
	hasLine := false
	if v, ok := t.lookup("line"); ok {
		switch x := v.(type) {
		case int64:
			if x < 0 || x > 65535 {
				t.fail("line", "offset %d is out of range 0–65535", x)
			} else {
				l.Offset, hasLine = int(x), true
			}
		case string:
			if x == "" {
				t.fail("line", "is empty; give an offset (24) or a line name (\"GPIO24\")")
			} else if i, c, bad := findControl(x); bad {
				t.fail("line", "control byte %q at offset %d", c, i)
			} else {
				l.Name, hasLine = x, true
			}
		default:
			t.fail("line", "want an offset (24) or a line name (\"GPIO24\"), got %s", describeValue(v))
		}
	}
	l.ActiveLow = t.boolean("active_low", false)
	switch {
	case l.Chip != "" && !hasLine && !t.has("line"):
		t.fail("line", "required when %s is set (the line offset, or its name)", t.key("chip"))
	case l.Chip == "" && l.Offset >= 0:
		t.fail("line", "offset %d needs %s (or give the line by name)", l.Offset, t.key("chip"))
	}
	return l
}

func (b *builder) log(t *table) {
	b.cfg.Log.Level = t.oneOf("level", DefaultLogLevel, "trace", "debug", "info", "warn", "error")
	b.cfg.Log.Format = t.oneOf("format", DefaultLogFormat, logging.FormatJSON, logging.FormatConsole)
	b.cfg.Log.ATTrace = t.boolean("at_trace", false)
	if b.cfg.Log.ATTrace && b.cfg.Log.Level != "trace" {
		b.warn(t.key("at_trace"), "has no effect unless log.level is \"trace\"")
	}
	t.done()
}
