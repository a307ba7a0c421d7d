package cloud

import (
	"errors"
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Identity is what the device presents in one MQTT CONNECT.
type Identity struct {
	ClientID, Username string
	Password           string    // a secret: never log it (String and GoString mask it)
	Expires            time.Time // when the password stops being accepted; zero: it does not expire
	// SecretUsername is set when the user name is a secret too (ThingsBoard's access token):
	// never log it either.
	SecretUsername bool
}

// String shows the identity with the password masked.
func (id Identity) String() string {
	pw := "(none)"
	if id.Password != "" {
		pw = "***"
	}
	user := strconv.Quote(id.Username)
	if id.SecretUsername && id.Username != "" {
		user = "***"
	}
	s := fmt.Sprintf("client id %q, user name %s, password %s", id.ClientID, user, pw)
	if !id.Expires.IsZero() {
		s += ", expires " + id.Expires.UTC().Format(time.RFC3339)
	}
	return s
}

// GoString masks the password as String does, so %#v cannot reveal it either.
func (id Identity) GoString() string { return "cloud.Identity{" + id.String() + "}" }

// Endpoint is where and how to connect.
type Endpoint struct {
	Host string
	Port int
	TLS  bool // the link must (or, by the user's choice, does) run over TLS
	// CAFile is the base name of the root CA file under the CA directory (deploy/ca, installed
	// to /usr/share/gatewayd/ca); "" = none bundled: with TLS the user must give mqtt.tls.ca_file.
	CAFile string
	// CAHint, when TLS is on and CAFile is "", says which CA the broker needs and where to get it.
	CAHint string
	// ClientCert is set when the platform authenticates the device by its client certificate
	// (mutual TLS): mqtt.tls.cert_file and key_file are required.
	ClientCert bool
}

// Limits are a platform's rules for what a CONNECT and the session may carry. A zero maximum
// length means the platform sets none below the module's own.
type Limits struct {
	// KeepAliveMin and KeepAliveMax bound the keep-alive the broker accepts; both 0: any.
	KeepAliveMin, KeepAliveMax time.Duration
	// KeepAliveOff is set when a keep-alive of 0 (no pings) is accepted.
	KeepAliveOff bool
	// MaxQoS is the highest QoS the platform supports (1 on most clouds: QoS 2 is refused or
	// downgraded).
	MaxQoS int
	// Retain is false when the platform ignores or refuses the retain flag.
	Retain                                bool
	MaxClientID, MaxUsername, MaxPassword int
	// Why, by limit ("keepalive", "qos", "retain", "client_id", "username", "password"), is the
	// platform's rule in words for a message that refuses a value.
	Why map[string]string
}

// Trouble is a failed or lost session, for Platform.Hint.
type Trouble struct {
	// ConnackCode is the CONNACK return code of a refused CONNECT (1-5), 0 when not refused.
	ConnackCode int
	// Stat is the +QMTSTAT code of a lost link, 0 when the link was not lost.
	Stat int
	// Up is how long the session had been connected when the link was lost.
	Up time.Duration
}

// Platform is one cloud's rules for one device.
type Platform interface {
	// Name is the platform's short name: "aliyun", "tencent", "huawei", "onenet", "azure",
	// "aws", "thingsboard" or "plain".
	Name() string
	// Endpoint is where and how to connect.
	Endpoint() Endpoint
	// Identity is the identity to present in a CONNECT sent at now. The session asks for it at
	// every connect, so time-stamped and expiring passwords are always fresh.
	Identity(now time.Time) (Identity, error)
	// Topics maps template names to text for {name} templates in topics: the platform's
	// standard topics ("property_post", "property_set", ...) and the device's names
	// ("device_name", "product_key", ...).
	Topics() map[string]string
	// Limits are the platform's rules for keep-alive, QoS, retain and identity lengths.
	Limits() Limits
	// Hint says, in the platform's terms, what a refused or lost session most likely means;
	// "" when the platform adds nothing to the MQTT meaning.
	Hint(t Trouble) string
}

// Title is a platform's name for people ("Tencent Cloud IoT Explorer").
func Title(name string) string {
	if s, ok := lookup(name); ok {
		return s.title
	}
	if name == PlainName {
		return "MQTT broker"
	}
	return name
}

// Kind is the type of a configuration value.
type Kind int

// Kinds of configuration values.
const (
	String   Kind = iota // a string
	Secret               // a string read from a file or a systemd credential, never shown
	Bool                 // a boolean
	Int                  // an integer (int64 in Settings.Values)
	Duration             // a duration (time.Duration in Settings.Values)
)

// Field is one key of a platform's configuration section.
type Field struct {
	Key  string
	Kind Kind
	// Required: New refuses the section without it.
	Required bool
	// Cred is the systemd credential a Secret is read from when the section gives neither the
	// key nor key_file.
	Cred string
	// Console is what the platform's console calls the value, for messages and docs.
	Console string
	// OneOf, when not empty, lists the values a String may take.
	OneOf []string
	// Min and Max bound an Int.
	Min, Max int64
	// Host is set on the keys the broker's host name is derived from (region, endpoint, ...).
	Host bool
}

// Settings are the values of a platform's configuration section.
type Settings struct {
	// Values by key, as Fields describes them: string (String and Secret), bool, int64 or
	// time.Duration. Absent keys take the platform's defaults.
	Values map[string]any
	// TLS is set when the user configured TLS for a platform where it is optional.
	TLS bool
	// Override replaces derived values key by key (mqtt.host, mqtt.client_id, ...).
	Override Overrides
	// Rand is the source of random connection ids (Tencent); nil means crypto/rand.
	Rand io.Reader
}

// Overrides are values the user gave in [mqtt] that replace the derived ones. Problems with them
// are reported under the keys "mqtt.host", "mqtt.port", "mqtt.client_id", "mqtt.username" and
// "mqtt.password".
type Overrides struct {
	Host                         string // "" keeps the derived host
	Port                         int    // 0 keeps the derived port
	ClientID, Username, Password *string
}

// FieldError is a problem with one key of a platform's section.
type FieldError struct {
	// Key is the key in the platform's section, e.g. "device_secret", or, for an override,
	// the key in [mqtt] with its prefix: "mqtt.client_id".
	Key string
	Msg string // what is wrong, in words; never quotes a secret
}

func (e *FieldError) Error() string { return e.Key + ": " + e.Msg }

// Errors are the problems New found, one per key.
type Errors []*FieldError

func (e Errors) Error() string {
	s := make([]string, len(e))
	for i, fe := range e {
		s[i] = fe.Error()
	}
	return strings.Join(s, "; ")
}

// FieldErrors returns the per-key problems in err (from New or Override); nil when err holds none.
func FieldErrors(err error) []*FieldError {
	var es Errors
	if errors.As(err, &es) {
		return es
	}
	var fe *FieldError
	if errors.As(err, &fe) {
		return []*FieldError{fe}
	}
	return nil
}

// spec describes one platform: its fields and how to build it from checked values.
type spec struct {
	title  string
	fields []Field
	build  func(r *reader) Platform
	// signs maps the [mqtt] keys an override of which would break the signature ("client_id",
	// "username", "password") to the reason, in words.
	signs map[string]string
}

// lookup returns the spec of a platform by name.
func lookup(name string) (spec, bool) {
	switch name {
	case "aliyun":
		return aliyunSpec(), true
	case "tencent":
		return tencentSpec(), true
	case "huawei":
		return huaweiSpec(), true
	case "onenet":
		return onenetSpec(), true
	case "azure":
		return azureSpec(), true
	case "aws":
		return awsSpec(), true
	case "thingsboard":
		return thingsboardSpec(), true
	}
	return spec{}, false
}

// Names are the platforms New knows, sorted (PlainName is not among them: see Plain).
func Names() []string {
	var names []string
	for _, n := range []string{"aliyun", "tencent", "huawei", "onenet", "azure", "aws", "thingsboard"} {
		if _, ok := lookup(n); ok {
			names = append(names, n)
		}
	}
	sort.Strings(names)
	return names
}

// Fields are the keys of the named platform's configuration section.
func Fields(name string) ([]Field, error) {
	s, ok := lookup(name)
	if !ok {
		return nil, fmt.Errorf("cloud: unknown platform %q (known: %s)", name, strings.Join(Names(), ", "))
	}
	return append([]Field(nil), s.fields...), nil
}

// New builds the named platform from the values of its section. Its error lists every problem,
// each a *FieldError naming the key (see FieldErrors).
func New(name string, s Settings) (Platform, error) {
	sp, ok := lookup(name)
	if !ok {
		return nil, fmt.Errorf("cloud: unknown platform %q (known: %s)", name, strings.Join(Names(), ", "))
	}
	r := &reader{s: s, fields: sp.fields}
	for _, f := range sp.fields {
		if f.Required {
			if _, ok := s.Values[f.Key]; !ok {
				r.fail(f.Key, "required: %s", what(f))
			}
		}
	}
	for k := range s.Values {
		if !r.known(k) {
			r.fail(k, "is not a key of this platform")
		}
	}
	p := sp.build(r)
	o := s.Override
	for k, v := range map[string]*string{"client_id": o.ClientID, "username": o.Username, "password": o.Password} {
		if why, signed := sp.signs[k]; signed && v != nil {
			r.fail("mqtt."+k, "%s", why)
		}
	}
	if o.Port < 0 || o.Port > 65535 {
		r.fail("mqtt.port", "%d is not a TCP port", o.Port)
	}
	if len(r.errs) == 0 {
		b := p.(interface{ own() *base }).own()
		if o.Host != "" {
			b.ep.Host = o.Host
		}
		if o.Port != 0 {
			b.ep.Port = o.Port
		}
		b.ov = o
	}
	if len(r.errs) > 0 {
		sort.SliceStable(r.errs, func(i, j int) bool { return r.order(r.errs[i].Key) < r.order(r.errs[j].Key) })
		return nil, r.errs
	}
	return p, nil
}

// what describes a field for a "required" message.
func what(f Field) string {
	s := "the " + f.Console
	if f.Kind == Secret {
		s += fmt.Sprintf(" (in a file named by %s_file", f.Key)
		if f.Cred != "" {
			s += ", or the systemd credential " + f.Cred
		}
		s += ")"
	}
	return s
}

// reader hands a platform's build function the checked values and collects its problems.
type reader struct {
	s      Settings
	fields []Field
	errs   Errors
}

func (r *reader) known(k string) bool { return r.order(k) < len(r.fields) }

func (r *reader) order(k string) int {
	for i, f := range r.fields {
		if f.Key == k {
			return i
		}
	}
	return len(r.fields)
}

// fail records a problem with key k, once per key.
func (r *reader) fail(k, format string, args ...any) {
	for _, e := range r.errs {
		if e.Key == k {
			return
		}
	}
	r.errs = append(r.errs, &FieldError{Key: k, Msg: fmt.Sprintf(format, args...)})
}

func (r *reader) has(k string) bool { _, ok := r.s.Values[k]; return ok }

// str returns the string at k, def when absent.
func (r *reader) str(k, def string) string {
	v, ok := r.s.Values[k]
	if !ok {
		return def
	}
	s, ok := v.(string)
	if !ok {
		r.fail(k, "want a string, got %T", v)
	}
	return s
}

func (r *reader) boolean(k string, def bool) bool {
	v, ok := r.s.Values[k]
	if !ok {
		return def
	}
	b, ok := v.(bool)
	if !ok {
		r.fail(k, "want true or false, got %T", v)
	}
	return b
}

func (r *reader) integer(k string, def int64) int64 {
	v, ok := r.s.Values[k]
	if !ok {
		return def
	}
	n, ok := v.(int64)
	if !ok {
		r.fail(k, "want an integer, got %T", v)
	}
	return n
}

func (r *reader) duration(k string, def time.Duration) time.Duration {
	v, ok := r.s.Values[k]
	if !ok {
		return def
	}
	d, ok := v.(time.Duration)
	if !ok {
		r.fail(k, "want a duration, got %T", v)
	}
	return d
}

// name reads a required identity string at k: not empty, none of the bytes in bad, nothing an
// AT command string cannot carry.
func (r *reader) name(k, bad string) string {
	v := r.str(k, "")
	if !r.has(k) {
		return v // reported as required
	}
	if v == "" {
		r.fail(k, "is empty")
		return v
	}
	for i := 0; i < len(v); i++ {
		c := v[i]
		if c < 0x20 || c == 0x7f || c == '"' || strings.IndexByte(bad, c) >= 0 {
			r.fail(k, "%q holds byte %q at offset %d, which it cannot contain", v, c, i)
			return v
		}
	}
	return v
}

// secret reads a required secret at k: not empty, no control byte. Messages never quote it.
func (r *reader) secret(k string) string {
	v := r.str(k, "")
	if !r.has(k) {
		return v
	}
	if v == "" {
		r.fail(k, "is empty")
		return v
	}
	for i := 0; i < len(v); i++ {
		if c := v[i]; c < 0x20 || c == 0x7f {
			r.fail(k, "control byte %q at offset %d (value not shown)", c, i)
			return v
		}
	}
	return v
}

// lifetime reads an expiring token's lifetime at k.
func (r *reader) lifetime(k string, def time.Duration) time.Duration {
	d := r.duration(k, def)
	switch {
	case d < MinLifetime:
		r.fail(k, "%s is shorter than %s: the session would spend its life renewing the token", d, MinLifetime)
	case d > MaxLifetime:
		r.fail(k, "%s is longer than %s", d, MaxLifetime)
	}
	return d
}

// Token lifetimes: the bounds of every platform's lifetime key.
const (
	MinLifetime = 10 * time.Second
	MaxLifetime = 365 * 24 * time.Hour
	// DefaultLifetime is the lifetime of an expiring password (Tencent, OneNET, Azure) unless
	// the section's lifetime says otherwise: the session renews it shortly before it runs out.
	DefaultLifetime = 24 * time.Hour
)

// checkLabel accepts one DNS label: letters, digits and inner hyphens, at most 63 bytes.
func checkLabel(v string) error {
	if v == "" {
		return errors.New("is empty")
	}
	if len(v) > 63 {
		return fmt.Errorf("%q is longer than a DNS label (63 bytes)", v)
	}
	for i := 0; i < len(v); i++ {
		c := v[i]
		ok := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' && i > 0 && i < len(v)-1
		if !ok {
			return fmt.Errorf("%q: byte %q at offset %d does not belong in a host name", v, c, i)
		}
	}
	return nil
}

// checkHost accepts a host name of DNS labels separated by dots.
func checkHost(v string) error {
	if v == "" {
		return errors.New("is empty")
	}
	for _, l := range strings.Split(v, ".") {
		if err := checkLabel(l); err != nil {
			return fmt.Errorf("%q is not a host name: label %w", v, err)
		}
	}
	return nil
}
