package config

import (
	"fmt"
	"net"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/gatewayd/gatewayd/internal/cloud"
)

func (b *builder) mqtt(t *table) {
	m := &b.cfg.MQTT
	name := b.platformName(t)

	m.Host = t.str("host", "")
	if m.Host == "" && t.has("host") {
		t.fail("host", "is empty; give the broker's host name or IP address, or leave the key out")
	}
	defPort := DefaultMQTTPort
	if t.has("tls") {
		defPort = DefaultTLSPort
	}
	m.Port = t.integer("port", defPort, 1, 65535)
	m.ClientID = t.str("client_id", "")
	m.Username = t.str("username", "")
	m.Password = b.secret(t, "password", "password_file", CredMQTTPassword, name == "" && m.Username != "")
	m.KeepAlive = t.duration("keepalive", DefaultKeepAlive, 0, 3600*time.Second, true)
	m.CleanSession = t.boolean("clean_session", true)
	m.ClientIndex = t.integer("client_index", 0, 0, 5)
	m.PacketTimeout = t.duration("packet_timeout", DefaultPacketTimeout, time.Second, 60*time.Second, true)
	m.Retries = t.integer("retries", DefaultRetries, 1, 10)

	var p cloud.Platform
	if name == "" {
		p = b.plain(t)
	} else {
		p = b.preset(t, name)
	}
	m.Platform = p
	vars := map[string]string{}
	limits := cloud.Limits{MaxQoS: 2, Retain: true}
	if p != nil {
		vars, limits = p.Topics(), p.Limits()
	}
	if m.Host != "" {
		b.host(t, m.Host)
	}

	seen := map[string]string{}
	for _, st := range t.tables("subscribe") {
		topic := st.str("topic", "")
		qos := st.integer("qos", 0, 0, 2)
		st.done()
		if !st.has("topic") {
			st.fail("topic", "required")
			continue
		}
		topic, ok := b.topic(st, topic, vars, name, true)
		if !ok {
			continue
		}
		if first, dup := seen[topic]; dup {
			st.fail("topic", "%q is already subscribed by %s", topic, first)
			continue
		}
		seen[topic] = st.path.String()
		b.qos(st, qos, limits)
		m.Subscribe = append(m.Subscribe, Subscription{Topic: topic, QoS: qos})
	}
	for _, pt := range t.tables("publish_on_connect") {
		topic := pt.str("topic", "")
		payload := pt.str("payload", "")
		qos := pt.integer("qos", 0, 0, 2)
		retain := pt.boolean("retain", false)
		pt.done()
		if len(payload) > MaxPayload {
			pt.fail("payload", "%d bytes is longer than %d", len(payload), MaxPayload)
		}
		if !pt.has("topic") {
			pt.fail("topic", "required")
			continue
		}
		topic, ok := b.topic(pt, topic, vars, name, false)
		if !ok {
			continue
		}
		b.qos(pt, qos, limits)
		b.retain(pt, retain, limits)
		m.PublishOnConnect = append(m.PublishOnConnect, Publication{Topic: topic, Payload: payload, QoS: qos, Retain: retain})
	}
	if t.has("will") {
		m.Will = b.will(t.sub("will"), vars, name, limits)
	}
	t.done()
}

// platformName returns the name of the one platform section in [mqtt] ([mqtt.tencent], ...),
// "" when there is none: a plain broker with literal credentials.
func (b *builder) platformName(t *table) string {
	var found []string
	for _, n := range cloud.Names() {
		t.mention(n)
		if t.has(n) {
			found = append(found, n)
		}
	}
	for _, n := range found[min(1, len(found)):] {
		t.fail(n, "only one platform section can be configured; [%s] is one already", t.key(found[0]))
	}
	if len(found) == 0 {
		return ""
	}
	return found[0]
}

// plain reads the broker and literal credentials of [mqtt] without a platform section.
func (b *builder) plain(t *table) cloud.Platform {
	m := &b.cfg.MQTT
	b.literalCredentials(t)
	if t.has("tls") {
		m.TLS = b.tls(t.sub("tls"), tlsDefaults{})
	}
	return cloud.Plain(cloud.Endpoint{Host: m.Host, Port: m.Port, TLS: m.TLS != nil},
		cloud.Identity{ClientID: m.ClientID, Username: m.Username, Password: m.Password.Reveal()})
}

// preset reads the platform section [mqtt.<name>], builds the platform from it with the
// overrides of [mqtt], and derives the broker, TLS and limits from it. It returns nil when the
// section has problems (reported).
func (b *builder) preset(t *table, name string) cloud.Platform {
	m := &b.cfg.MQTT
	pt := t.sub(name)
	fields, err := cloud.Fields(name)
	if err != nil {
		t.fail(name, "%v", err)
		return nil
	}
	vals := map[string]any{}
	hostFrom := "mqtt." + name
	for _, f := range fields {
		k := f.Key
		var v any
		switch f.Kind {
		case cloud.String:
			if len(f.OneOf) > 0 {
				v = pt.oneOf(k, f.OneOf[0], f.OneOf...)
			} else {
				v = pt.str(k, "")
			}
		case cloud.Bool:
			v = pt.boolean(k, false)
		case cloud.Int:
			v = int64(pt.integer(k, 0, int(f.Min), int(f.Max)))
		case cloud.Duration:
			v = pt.duration(k, cloud.DefaultLifetime, cloud.MinLifetime, cloud.MaxLifetime, true)
		case cloud.Secret:
			var sec Secret
			switch {
			case inlineSecretAllowed(name):
				sec = b.secret(pt, k, k+"_file", f.Cred, implicitSecret(name, k, pt))
			case pt.has(k):
				pt.mention(k)
				pt.fail(k, "a secret is not written in the configuration: put it in a file (chmod 600) named by %s, "+
					"or in the systemd credential %s", pt.key(k+"_file"), f.Cred)
				continue
			default:
				sec = b.secretFrom(pt, k, k+"_file", f.Cred, true)
			}
			if sec.IsZero() {
				if (pt.has(k) || pt.has(k+"_file")) && !pt.failed[k] && !pt.failed[k+"_file"] {
					pt.fail(pt.secretKey(k), "is empty")
				}
				continue
			}
			v = sec.Reveal()
			if i, c, bad := findControl(sec.Reveal()); bad {
				pt.fail(pt.secretKey(k), "control byte %q at offset %d (value not shown)", c, i)
				continue
			}
		}
		if pt.failed[k] || !pt.has(k) && !(f.Kind == cloud.Secret && v != nil) {
			continue
		}
		vals[k] = v
		if f.Host && hostFrom == "mqtt."+name {
			hostFrom = pt.key(k).String()
		}
	}
	pt.done()

	o := cloud.Overrides{Host: m.Host}
	if t.has("port") {
		o.Port = m.Port
	}
	if t.has("client_id") {
		o.ClientID = &m.ClientID
	}
	if t.has("username") {
		o.Username = &m.Username
	}
	if t.has("password") || t.has("password_file") {
		pw := m.Password.Reveal()
		o.Password = &pw
	}
	p, err := cloud.New(name, cloud.Settings{Values: vals, TLS: t.has("tls"), Override: o})
	fes := cloud.FieldErrors(err)
	for _, fe := range fes {
		if k, ok := strings.CutPrefix(fe.Key, "mqtt."); ok {
			if k == "password" {
				k = t.secretKey(k)
			}
			t.fail(k, "%s", fe.Msg)
			continue
		}
		if pt.failed[fe.Key] || pt.failed[fe.Key+"_file"] {
			continue // the file reading reported it
		}
		pt.fail(pt.secretKey(fe.Key), "%s", fe.Msg)
	}
	if err != nil {
		if fes == nil {
			t.ps.add(pt.path, false, "%v", err)
		}
		return nil
	}

	ep := p.Endpoint()
	m.Host, m.Port, m.HostFrom = ep.Host, ep.Port, hostFrom
	if o.Host != "" {
		m.HostFrom = "mqtt.host"
	}
	title := cloud.Title(name)
	if ep.TLS {
		d := tlsDefaults{hint: ep.CAHint, clientCert: ep.ClientCert, who: title}
		if ep.CAFile != "" {
			d.ca = filepath.Join(b.caDir, ep.CAFile)
		}
		m.TLS = b.tls(t.sub("tls"), d)
		if m.TLS == nil {
			return nil
		}
	}
	if !b.limits(t, pt, p) {
		return nil
	}
	return p
}

// implicitSecret tells whether the secret at key k of [mqtt.<name>] is read from its systemd
// credential when neither k nor k_file is given. Alibaba Cloud's two secrets exclude each other:
// the DeviceSecret's credential is not looked at once a product_secret is given (dynamic
// registration), and the ProductSecret is never implicit (name it: product_secret_file =
// "cred:aliyun-product-secret"), so an image holding both credentials stays one device, one secret.
func implicitSecret(name, k string, pt *table) bool {
	if name != "aliyun" {
		return true
	}
	switch k {
	case "device_secret":
		return !pt.has("product_secret") && !pt.has("product_secret_file")
	case "product_secret":
		return false
	}
	return true
}

// inlineSecretAllowed: only [mqtt.aliyun] keeps taking its secret inline, as before presets.
func inlineSecretAllowed(name string) bool { return name == "aliyun" }

// limits checks the session against the platform's rules, at start rather than on the air: the
// keep-alive, and the derived identity against the module's and the platform's lengths.
func (b *builder) limits(t, pt *table, p cloud.Platform) bool {
	m := &b.cfg.MQTT
	l := p.Limits()
	title := cloud.Title(p.Name())
	ok := true
	switch ka := m.KeepAlive; {
	case ka == 0 && !l.KeepAliveOff && (l.KeepAliveMin > 0 || l.KeepAliveMax > 0):
		t.fail("keepalive", "0s (no keep-alive) is not accepted by %s (%s–%s)", title, fmtDuration(l.KeepAliveMin), fmtDuration(l.KeepAliveMax))
		ok = false
	case ka != 0 && (ka < l.KeepAliveMin || l.KeepAliveMax > 0 && ka > l.KeepAliveMax):
		t.fail("keepalive", "%s is out of range for %s (%s–%s)", fmtDuration(ka), title, fmtDuration(l.KeepAliveMin), fmtDuration(l.KeepAliveMax))
		ok = false
	}
	if _, dyn := cloud.RegisteringOf(p); dyn {
		// The device name and secret come at run time; the platform checked the registration's
		// client id against the module's limit with {imei} and {iccid} at their longest.
		return ok
	}
	id, err := p.Identity(time.UnixMilli(1700000000000))
	if err != nil {
		t.ps.add(pt.path, false, "%v", err)
		return false
	}
	for _, f := range []struct {
		key, what, v     string
		module, platform int
		secret           bool
	}{
		{"client_id", "client id", id.ClientID, MaxClientID, l.MaxClientID, false},
		{"username", "user name", id.Username, MaxUsername, l.MaxUsername, id.SecretUsername},
		{"password", "password", id.Password, MaxPassword, l.MaxPassword, true},
	} {
		max, rule := f.module, fmt.Sprintf("the module takes at most %d bytes (AT+QMTCONN, ec600-at.md 2.3)", f.module)
		if f.platform > 0 && f.platform < max {
			max, rule = f.platform, l.Why[f.key]
		}
		shown := fmt.Sprintf("%q", f.v)
		if f.secret {
			shown = "(value not shown)"
		}
		// An override is reported at its key in [mqtt]; a derived value at the platform section.
		fail := func(format string, args ...any) {
			if t.has(f.key) || f.key == "password" && t.has("password_file") {
				t.fail(t.secretKey(f.key), format, args...)
			} else {
				t.ps.add(pt.path, false, "derived "+format, args...)
			}
			ok = false
		}
		if len(f.v) > max {
			fail("%s %s is %d bytes: %s", f.what, shown, len(f.v), rule)
			continue
		}
		for i := 0; i < len(f.v); i++ {
			if c := f.v[i]; c == '"' || c < 0x20 || c == 0x7f {
				fail("%s %s: byte %q at offset %d cannot be sent inside an AT command string", f.what, shown, c, i)
				break
			}
		}
	}
	return ok
}

// qos refuses a QoS the platform does not have.
func (b *builder) qos(t *table, qos int, l cloud.Limits) {
	if qos > l.MaxQoS {
		t.fail("qos", "%d: %s", qos, l.Why["qos"])
	}
}

// retain refuses the retain flag where the platform ignores it.
func (b *builder) retain(t *table, retain bool, l cloud.Limits) {
	if retain && !l.Retain {
		t.fail("retain", "%s", l.Why["retain"])
	}
}

// will reads [mqtt.will], the message the broker publishes when the link dies without a
// DISCONNECT (AT+QMTCFG="will").
func (b *builder) will(wt *table, vars map[string]string, platform string, l cloud.Limits) *Will {
	topic := wt.str("topic", "")
	msg := wt.str("message", "")
	qos := wt.integer("qos", 0, 0, 2)
	retain := wt.boolean("retain", false)
	wt.done()
	if !wt.has("topic") {
		wt.fail("topic", "required")
		return nil
	}
	topic, ok := b.topic(wt, topic, vars, platform, false)
	if !ok {
		return nil
	}
	b.qos(wt, qos, l)
	b.retain(wt, retain, l)
	// The module takes the message inside AT quotes, with no escape.
	b.atString(wt, "message", msg, MaxWillMessage)
	return &Will{Topic: topic, Message: msg, QoS: qos, Retain: retain}
}

// literalCredentials checks the client id, user name and password sent as they are.
func (b *builder) literalCredentials(t *table) {
	m := &b.cfg.MQTT
	m.HostFrom = "mqtt.host"
	if !t.has("host") {
		t.fail("host", "required: the broker's host name or IP address (or configure a platform section such as [mqtt.aliyun])")
	}
	if !t.has("client_id") {
		t.fail("client_id", "required: AT+QMTCONN needs a client id")
	} else if m.ClientID == "" {
		t.fail("client_id", "is empty; AT+QMTCONN needs a client id")
	}
	b.atString(t, "client_id", m.ClientID, MaxClientID)
	b.atString(t, "username", m.Username, MaxUsername)
	b.atSecret(t, "password", m.Password, MaxPassword)
	if m.Username == "" && !m.Password.IsZero() {
		t.fail("password", "needs mqtt.username (MQTT sends a password only with a user name)")
	}
}

// secretKey names the key a secret was given under: key itself, or key_file.
func (t *table) secretKey(key string) string {
	if t.has(key + "_file") {
		return key + "_file"
	}
	return key
}

// host checks a broker host name or IP address.
func (b *builder) host(t *table, h string) {
	key := "host"
	if b.cfg.MQTT.HostFrom != "mqtt.host" {
		key = strings.TrimPrefix(b.cfg.MQTT.HostFrom, "mqtt.")
	}
	if !b.atString(t, key, h, MaxHost) {
		return
	}
	if net.ParseIP(h) != nil {
		return
	}
	for i, label := range strings.Split(strings.TrimSuffix(h, "."), ".") {
		if label == "" {
			t.fail(key, "%q has an empty label (part %d)", h, i+1)
			return
		}
		if len(label) > 63 {
			t.fail(key, "%q: label %q is longer than 63 bytes", h, label)
			return
		}
		for j := 0; j < len(label); j++ {
			c := label[j]
			if !(isAlnum(c) || c == '_' || c == '-' && j > 0 && j < len(label)-1) {
				t.fail(key, "%q is not a host name or IP address (byte %q in label %q)", h, c, label)
				return
			}
		}
	}
}

func isAlnum(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
}

// findControl returns the first control byte (C0 or DEL) in s.
func findControl(s string) (i int, c byte, found bool) {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c == 0x7f {
			return i, c, true
		}
	}
	return 0, 0, false
}

// atString checks a value that is sent inside an AT command's double quotes: there is no escape,
// so a '"' would end the string and CR, LF, NUL or another control byte would end or split the
// command line.
func (b *builder) atString(t *table, key, v string, max int) bool {
	if len(v) > max {
		t.fail(key, "%d bytes is longer than %d", len(v), max)
		return false
	}
	for i := 0; i < len(v); i++ {
		if c := v[i]; c == '"' || c < 0x20 || c == 0x7f {
			t.fail(key, "byte %q at offset %d cannot be sent inside an AT command string", c, i)
			return false
		}
	}
	return true
}

// atSecret is atString for a secret: the problem never quotes the value.
func (b *builder) atSecret(t *table, key string, s Secret, max int) {
	v := s.Reveal()
	key = t.secretKey(key)
	if len(v) > max {
		t.fail(key, "%d bytes is longer than %d", len(v), max)
		return
	}
	for i := 0; i < len(v); i++ {
		if c := v[i]; c == '"' || c < 0x20 || c == 0x7f {
			t.fail(key, "byte %q at offset %d cannot be sent inside an AT command string (value not shown)", c, i)
			return
		}
	}
}

// Topic placeholders. The platform's names and standard topics ({product_key}, {device_name},
// {property_set}, ... see cloud.Platform.Topics) are expanded when the file is read; {imei} and
// {iccid} are left in place and expanded at bring-up from the module.
const (
	VarProductKey = "product_key"
	VarDeviceName = "device_name"
	VarIMEI       = "imei"
	VarICCID      = "iccid"
)

// ExpandTopic replaces each {name} in t for which vars has a value, in one pass (a value is not
// itself expanded); other text, including unknown placeholders, is left as it is.
func ExpandTopic(t string, vars map[string]string) string {
	var out strings.Builder
	for {
		i := strings.IndexByte(t, '{')
		if i < 0 {
			break
		}
		j := strings.IndexByte(t[i:], '}')
		if j < 0 {
			break
		}
		if v, ok := vars[t[i+1:i+j]]; ok {
			out.WriteString(t[:i])
			out.WriteString(v)
		} else {
			out.WriteString(t[:i+j+1])
		}
		t = t[i+j+1:]
	}
	out.WriteString(t)
	return out.String()
}

// placeholders returns the {name} placeholders in t, in order.
func placeholders(t string) []string {
	var names []string
	for {
		i := strings.IndexByte(t, '{')
		if i < 0 {
			return names
		}
		j := strings.IndexByte(t[i:], '}')
		if j < 0 {
			return names
		}
		names = append(names, t[i+1:i+j])
		t = t[i+j+1:]
	}
}

// topic expands the file-time placeholders of the topic at st.topic and checks it as an MQTT topic
// filter (filter) or topic name (!filter). The worst-case length of {imei} (15 digits) and {iccid}
// (20 digits) counts against MaxTopic.
func (b *builder) topic(st *table, t string, vars map[string]string, platform string, filter bool) (string, bool) {
	const key = "topic"
	for _, name := range placeholders(t) {
		if _, ok := vars[name]; ok || name == VarIMEI || name == VarICCID {
			continue
		}
		if b.cfg.MQTT.Platform == nil && platform != "" {
			return "", false // the platform section is broken, and reported
		}
		if platform == "" && (name == VarProductKey || name == VarDeviceName) {
			st.fail(key, "{%s} needs [mqtt.aliyun]", name)
			return "", false
		}
		names := make([]string, 0, len(vars)+2)
		for k := range vars {
			names = append(names, k)
		}
		sort.Strings(names)
		names = append(names, VarIMEI, VarICCID)
		known := make([]string, len(names))
		for i, k := range names {
			known[i] = "{" + k + "}"
		}
		where := "here"
		if platform != "" {
			where = "with [mqtt." + platform + "]"
		}
		st.fail(key, "unknown placeholder {%s} (known %s: %s)", name, where, strings.Join(known, ", "))
		return "", false
	}
	t = ExpandTopic(t, vars)
	probe := ExpandTopic(t, map[string]string{VarIMEI: strings.Repeat("0", 15), VarICCID: strings.Repeat("0", 20)})
	if probe == "" {
		st.fail(key, "is empty")
		return "", false
	}
	if len(probe) > MaxTopic {
		st.fail(key, "%q is %d bytes (with {imei}/{iccid} at their longest), longer than %d", t, len(probe), MaxTopic)
		return "", false
	}
	if !b.atString(st, key, t, MaxTopic) {
		return "", false
	}
	if err := checkTopic(probe, filter); err != nil {
		st.fail(key, "%q: %v", t, err)
		return "", false
	}
	return t, true
}

// checkTopic applies MQTT 3.1.1 section 4.7: valid UTF-8; in a filter '+' fills a whole level and
// '#' is the whole last level; a topic name has no wildcards. Empty levels ("a//b", "/a") are valid.
func checkTopic(t string, filter bool) error {
	if !isUTF8(t) {
		return fmt.Errorf("not valid UTF-8")
	}
	levels := strings.Split(t, "/")
	for i, l := range levels {
		if !filter {
			if strings.ContainsAny(l, "+#") {
				return fmt.Errorf("a publish topic cannot contain the wildcards + or #")
			}
			continue
		}
		if strings.Contains(l, "#") && (l != "#" || i != len(levels)-1) {
			return fmt.Errorf("'#' must be a whole level and the last one (as in a/b/#)")
		}
		if strings.Contains(l, "+") && l != "+" {
			return fmt.Errorf("'+' must be a whole level (as in a/+/c)")
		}
	}
	return nil
}
