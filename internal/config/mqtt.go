package config

import (
	"fmt"
	"net"
	"strings"
	"time"

	"github.com/gatewayd/gatewayd/internal/cloud"
)

func (b *builder) mqtt(t *table) {
	m := &b.cfg.MQTT
	aliMode := t.has("aliyun")

	m.Host = t.str("host", "")
	if m.Host == "" && t.has("host") {
		t.fail("host", "is empty; give the broker's host name or IP address, or leave the key out")
	}
	defPort := DefaultMQTTPort
	if t.has("tls") && !aliMode { // Alibaba Cloud takes TLS on 1883 too
		defPort = DefaultTLSPort
	}
	m.Port = t.integer("port", defPort, 1, 65535)
	m.ClientID = t.str("client_id", "")
	m.Username = t.str("username", "")
	if aliMode {
		t.mention("password") // not read: aliyunSection reports them as misplaced
		t.mention("password_file")
	} else {
		m.Password = b.secret(t, "password", "password_file", CredMQTTPassword, m.Username != "")
	}
	m.KeepAlive = t.duration("keepalive", DefaultKeepAlive, 0, 3600*time.Second, true)
	m.CleanSession = t.boolean("clean_session", true)
	m.ClientIndex = t.integer("client_index", 0, 0, 5)
	m.PacketTimeout = t.duration("packet_timeout", DefaultPacketTimeout, time.Second, 60*time.Second, true)
	m.Retries = t.integer("retries", DefaultRetries, 1, 10)

	if t.has("tls") {
		m.TLS = b.tls(t.sub("tls"))
	}
	vars := map[string]string{}
	if aliMode {
		// Even when the section has problems (reported already), its names fill the topics.
		a := b.aliyunSection(t, t.sub("aliyun"))
		vars[VarProductKey], vars[VarDeviceName] = a.ProductKey, a.DeviceName
	} else {
		t.mention("aliyun")
		b.literalCredentials(t)
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
		topic, ok := b.topic(st, topic, vars, true)
		if !ok {
			continue
		}
		if first, dup := seen[topic]; dup {
			st.fail("topic", "%q is already subscribed by %s", topic, first)
			continue
		}
		seen[topic] = st.path.String()
		if aliMode && qos == 2 {
			b.warn(st.key("qos"), "Alibaba Cloud grants QoS 2 subscriptions as QoS 1")
		}
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
		topic, ok := b.topic(pt, topic, vars, false)
		if !ok {
			continue
		}
		if aliMode && retain {
			b.warn(pt.key("retain"), "Alibaba Cloud does not keep retained messages")
		}
		m.PublishOnConnect = append(m.PublishOnConnect, Publication{Topic: topic, Payload: payload, QoS: qos, Retain: retain})
	}
	if t.has("will") {
		m.Will = b.will(t.sub("will"), vars)
	}
	t.done()
}

// will reads [mqtt.will], the message the broker publishes when the link dies without a
// DISCONNECT (AT+QMTCFG="will").
func (b *builder) will(wt *table, vars map[string]string) *Will {
	topic := wt.str("topic", "")
	msg := wt.str("message", "")
	qos := wt.integer("qos", 0, 0, 2)
	retain := wt.boolean("retain", false)
	wt.done()
	if !wt.has("topic") {
		wt.fail("topic", "required")
		return nil
	}
	topic, ok := b.topic(wt, topic, vars, false)
	if !ok {
		return nil
	}
	// The module takes the message inside AT quotes, with no escape.
	b.atString(wt, "message", msg, MaxWillMessage)
	return &Will{Topic: topic, Message: msg, QoS: qos, Retain: retain}
}

// literalCredentials checks the client id, user name and password sent as they are.
func (b *builder) literalCredentials(t *table) {
	m := &b.cfg.MQTT
	m.HostFrom = "mqtt.host"
	if !t.has("host") {
		t.fail("host", "required: the broker's host name or IP address (or configure [mqtt.aliyun])")
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

// aliyunSection reads [mqtt.aliyun] and derives the broker host from it. It sets MQTT.Aliyun
// when the section is valid, and returns what it read in any case.
func (b *builder) aliyunSection(mt, t *table) *Aliyun {
	m := &b.cfg.MQTT
	for _, k := range []string{"client_id", "username", "password", "password_file"} {
		if mt.has(k) {
			mt.fail(k, "not used with [mqtt.aliyun], which signs the client id, user name and password; "+
				"remove it (a device-chosen client id goes in mqtt.aliyun.client_id)")
		}
	}
	a := &Aliyun{}
	a.ProductKey = t.str("product_key", "")
	a.DeviceName = t.str("device_name", "")
	a.DeviceSecret = b.secret(t, "device_secret", "device_secret_file", CredAliyunDeviceSecret, true)
	a.ClientID = t.str("client_id", "")
	a.SignMethod = cloud.SignMethod(t.oneOf("sign_method", string(DefaultSignMethod),
		string(cloud.HMACSHA256), string(cloud.HMACSHA1), string(cloud.HMACMD5)))
	a.Timestamp = t.boolean("timestamp", true)
	tlsOn := mt.has("tls")
	defMode := cloud.AliyunSecureModePlain
	if tlsOn {
		defMode = cloud.AliyunSecureModeTLS
	}
	a.SecureMode = t.integer("secure_mode", defMode, cloud.AliyunSecureModeTLS, cloud.AliyunSecureModePlain)
	a.Region = t.str("region", "")
	a.InstanceID = t.str("instance_id", "")
	t.done()

	ok := true
	for _, f := range []struct{ key, v, bad string }{
		{"product_key", a.ProductKey, "&|"},
		{"device_name", a.DeviceName, "&|"},
	} {
		if !t.has(f.key) {
			t.fail(f.key, "required")
			ok = false
		} else if !b.identity(t, f.key, f.v, f.bad) {
			ok = false
		}
	}
	if a.ClientID == "" {
		if t.has("client_id") {
			t.fail("client_id", "is empty; leave it out to use the device name")
			ok = false
		}
	} else if !b.identity(t, "client_id", a.ClientID, "|") {
		ok = false
	}
	if a.DeviceSecret.IsZero() {
		if !t.has("device_secret") && !t.has("device_secret_file") {
			t.fail("device_secret", "required: give device_secret_file (or device_secret), or the systemd credential %s", CredAliyunDeviceSecret)
		}
		ok = false
	} else if i, c, bad := findControl(a.DeviceSecret.Reveal()); bad {
		t.fail(t.secretKey("device_secret"), "control byte %q at offset %d (value not shown)", c, i)
		ok = false
	}
	switch {
	case a.SecureMode == cloud.AliyunSecureModeTLS && !tlsOn:
		t.fail("secure_mode", "2 means TLS: configure [mqtt.tls] (ca_file) too, or use 3 for plain TCP")
		ok = false
	case a.SecureMode == cloud.AliyunSecureModePlain && tlsOn:
		t.fail("secure_mode", "3 means plain TCP, but [mqtt.tls] is configured: use 2 (or leave secure_mode out)")
		ok = false
	}
	if m.KeepAlive < 30*time.Second || m.KeepAlive > 1200*time.Second {
		mt.fail("keepalive", "%s is out of range for Alibaba Cloud (30s–1200s)", fmtDuration(m.KeepAlive))
	}

	switch {
	case m.Host != "" && (a.Region != "" || a.InstanceID != ""):
		mt.fail("host", "give either mqtt.host or mqtt.aliyun.region / instance_id, not both")
	case m.Host != "":
		m.HostFrom = "mqtt.host"
	case a.Region == "" && a.InstanceID == "":
		t.fail("region", "required to find the broker: give region (legacy public instance) or instance_id, or set mqtt.host")
	case a.InstanceID == "" && a.ProductKey == "":
		// The legacy host name needs the product key, already reported missing.
	default:
		key := "region"
		if a.InstanceID != "" {
			key = "instance_id"
		}
		host, err := cloud.AliyunEndpoint(a.ProductKey, a.Region, a.InstanceID)
		if err != nil {
			t.fail(key, "%s", strings.TrimPrefix(err.Error(), "aliyun: "))
		} else {
			m.Host, m.HostFrom = host, "mqtt.aliyun."+key
		}
	}
	if !ok {
		return a
	}
	// Sign once now so that anything aliyun.Sign would refuse at connect time is refused here.
	cr, err := cloud.AliyunSign(a.params(time.UnixMilli(1700000000000)))
	if err != nil {
		t.ps.add(t.path, false, "%s", strings.TrimPrefix(err.Error(), "aliyun: "))
		return a
	}
	if len(cr.Username) > MaxUsername {
		t.fail("device_name", "user name %q is longer than %d bytes", cr.Username, MaxUsername)
		return a
	}
	m.Aliyun = a
	return a
}

// secretKey names the key a secret was given under: key itself, or key_file.
func (t *table) secretKey(key string) string {
	if t.has(key + "_file") {
		return key + "_file"
	}
	return key
}

// identity checks an Aliyun identity field: not empty, no byte from bad, nothing AT cannot carry.
func (b *builder) identity(t *table, key, v, bad string) bool {
	if v == "" {
		t.fail(key, "is empty")
		return false
	}
	for i := 0; i < len(v); i++ {
		if c := v[i]; strings.IndexByte(bad, c) >= 0 {
			t.fail(key, "%q holds %q at offset %d, which would break the signed client id or user name", v, c, i)
			return false
		}
	}
	return b.atString(t, key, v, cloud.AliyunMaxClientID)
}

func (a *Aliyun) params(now time.Time) cloud.AliyunParams {
	p := cloud.AliyunParams{
		ProductKey:   a.ProductKey,
		DeviceName:   a.DeviceName,
		DeviceSecret: a.DeviceSecret.Reveal(),
		ClientID:     a.ClientID,
		SignMethod:   a.SignMethod,
		SecureMode:   a.SecureMode,
	}
	if a.Timestamp {
		p.Timestamp = now.UnixMilli()
	}
	return p
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

// Topic placeholders. {product_key} and {device_name} are expanded from [mqtt.aliyun] when the
// file is read; {imei} and {iccid} are left in place and expanded at bring-up from the module.
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
func (b *builder) topic(st *table, t string, vars map[string]string, filter bool) (string, bool) {
	const key = "topic"
	for _, name := range placeholders(t) {
		switch name {
		case VarIMEI, VarICCID:
		case VarProductKey, VarDeviceName:
			if _, ok := vars[name]; !ok {
				st.fail(key, "{%s} needs [mqtt.aliyun]", name)
				return "", false
			}
		default:
			st.fail(key, "unknown placeholder {%s} (known: {product_key}, {device_name}, {imei}, {iccid})", name)
			return "", false
		}
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
