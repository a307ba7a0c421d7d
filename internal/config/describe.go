package config

import (
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"text/tabwriter"
	"time"

	"github.com/gatewayd/gatewayd/internal/cloud"
	"github.com/gatewayd/gatewayd/qssl"
)

// Credentials are the client id, user name and password of one MQTT CONNECT.
type Credentials struct {
	ClientID string
	Username string
	Password Secret
}

// Credentials returns what to send in the next MQTT CONNECT: the literal mqtt.client_id,
// mqtt.username and mqtt.password, or, with [mqtt.aliyun], the signed ones with now as the
// timestamp (when mqtt.aliyun.timestamp is on). Call it at every connect.
func (c *Config) Credentials(now time.Time) (Credentials, error) {
	a := c.MQTT.Aliyun
	if a == nil {
		return Credentials{ClientID: c.MQTT.ClientID, Username: c.MQTT.Username, Password: c.MQTT.Password}, nil
	}
	if a.Timestamp && now.UnixMilli() <= 0 {
		return Credentials{}, errors.New("config: the clock is not set (before 1970); cannot time-stamp the Alibaba Cloud signature")
	}
	cr, err := cloud.AliyunSign(a.params(now))
	if err != nil {
		return Credentials{}, fmt.Errorf("config: %w", err)
	}
	return Credentials{ClientID: cr.ClientID, Username: cr.Username, Password: NewSecret(cr.Password)}, nil
}

// Platform is the cloud platform the session connects to, asked for the identity at every
// connect: the plain broker of [mqtt] with literal credentials, or the platform of the preset.
func (c *Config) Platform() cloud.Platform {
	m := c.MQTT
	ep := cloud.Endpoint{Host: m.Host, Port: m.Port, TLS: m.TLS != nil}
	if m.Aliyun == nil {
		return cloud.Plain(ep, cloud.Identity{ClientID: m.ClientID, Username: m.Username, Password: m.Password.Reveal()})
	}
	return configPlatform{c}
}

// configPlatform is the Alibaba Cloud preset, signed through Config.Credentials.
type configPlatform struct{ c *Config }

func (p configPlatform) Name() string { return "aliyun" }
func (p configPlatform) Endpoint() cloud.Endpoint {
	return cloud.Endpoint{Host: p.c.MQTT.Host, Port: p.c.MQTT.Port, TLS: p.c.MQTT.TLS != nil}
}
func (p configPlatform) Identity(now time.Time) (cloud.Identity, error) {
	cr, err := p.c.Credentials(now)
	if err != nil {
		return cloud.Identity{}, err
	}
	return cloud.Identity{ClientID: cr.ClientID, Username: cr.Username, Password: cr.Password.Reveal()}, nil
}
func (p configPlatform) Topics() map[string]string   { return nil }
func (p configPlatform) Limits() cloud.Limits        { return cloud.Limits{MaxQoS: 1} }
func (p configPlatform) Hint(t cloud.Trouble) string { return "" }

// Describe writes the settings the daemon will use, resolved: derived broker host, the client id
// and user name it will send (signed at now for Alibaba Cloud), expanded topics, defaults filled
// in. Secrets show as *** with where they came from. It is what `gatewayd check` prints.
func (c *Config) Describe(w io.Writer, now time.Time) error {
	tw := tabwriter.NewWriter(w, 0, 8, 2, ' ', 0)
	line := func(k, format string, args ...any) {
		fmt.Fprintf(tw, "%s\t%s\n", k, fmt.Sprintf(format, args...))
	}
	secret := func(key string, s Secret) string {
		if s.IsZero() {
			return "(none)"
		}
		return fmt.Sprintf("%v (%s)", s, c.Sources[key])
	}
	orNone := func(s string) string {
		if s == "" {
			return "(none)"
		}
		return s
	}

	line("config", "%s", c.File)
	line("serial.port", "%s", c.Serial.Port)
	line("serial.baud", "%d", c.Serial.Baud)
	line("serial.urc_port", "%s", c.Serial.URCPort)
	line("module.apn", "%s", orNone(c.Module.APN))
	if c.Module.APNUser != "" {
		line("module.apn_user", "%s", c.Module.APNUser)
		line("module.apn_password", "%s", secret("module.apn_password", c.Module.APNPassword))
		line("module.apn_auth", "%s", c.Module.APNAuth)
	}
	line("module.pdp_context", "%d", c.Module.PDPContext)
	line("module.sim_timeout", "%s", fmtDuration(c.Module.SIMTimeout))
	line("module.register_timeout", "%s", fmtDuration(c.Module.RegisterTimeout))
	line("module.health_interval", "%s", fmtDuration(c.Module.HealthInterval))

	m := c.MQTT
	line("mqtt.broker", "%s (host from %s)", net.JoinHostPort(m.Host, strconv.Itoa(m.Port)), m.HostFrom)
	cr, err := c.Credentials(now)
	if err != nil {
		line("mqtt.credentials", "cannot compute: %v", err)
	} else {
		line("mqtt.client_id", "%s", cr.ClientID)
		line("mqtt.username", "%s", orNone(cr.Username))
		if a := m.Aliyun; a != nil {
			line("mqtt.password", "%v (%s of the device secret from %s)", cr.Password, a.SignMethod, c.Sources["mqtt.aliyun.device_secret"])
			if a.Timestamp {
				line("", "timestamp %d = %s; signed afresh at every connect", now.UnixMilli(), now.UTC().Format(time.RFC3339))
			}
		} else {
			line("mqtt.password", "%s", secret("mqtt.password", cr.Password))
		}
	}
	line("mqtt.keepalive", "%s", fmtDuration(m.KeepAlive))
	line("mqtt.clean_session", "%t", m.CleanSession)
	line("mqtt.client_index", "%d", m.ClientIndex)
	line("mqtt.packet_timeout", "%s", fmtDuration(m.PacketTimeout))
	line("mqtt.retries", "%d", m.Retries)
	if len(m.Subscribe) == 0 {
		line("mqtt.subscribe", "(none)")
	}
	for _, s := range m.Subscribe {
		line("mqtt.subscribe", "qos %d  %s", s.QoS, s.Topic)
	}
	for _, p := range m.PublishOnConnect {
		line("mqtt.publish_on_connect", "qos %d  retain %t  %s  (%d bytes)", p.QoS, p.Retain, p.Topic, len(p.Payload))
	}
	if t := m.TLS; t != nil {
		level := map[int]string{0: "encrypted only, the broker is NOT verified", 1: "the broker is verified", 2: "mutual: the broker is verified and gatewayd shows a client certificate"}[t.QSSL().SecLevel()]
		line("mqtt.tls", "%s; module context %d, TLS %s, sni %t, ignore_module_clock %t", level, t.Context,
			map[qssl.Version]string{qssl.TLS12: "1.2", qssl.TLS11: "1.1", qssl.TLS10: "1.0", qssl.All: "any version"}[t.Version], t.SNI, t.IgnoreModuleClock)
		if t.CAFile != "" {
			line("mqtt.tls.ca_file", "%s", t.CAFile)
		}
		if t.CertFile != "" {
			line("mqtt.tls.cert_file", "%s", t.CertFile)
			line("mqtt.tls.key_file", "%v (%s)", t.Key, c.Sources["mqtt.tls.key_file"])
		}
		if t.NegotiateTimeout != 0 {
			line("mqtt.tls.negotiate_timeout", "%s", fmtDuration(t.NegotiateTimeout))
		}
		if t.CipherSuite != 0 {
			line("mqtt.tls.cipher_suite", "0x%04X", t.CipherSuite)
		}
	}
	if w := m.Will; w != nil {
		line("mqtt.will", "qos %d  retain %t  %s  (%d bytes)", w.QoS, w.Retain, w.Topic, len(w.Message))
	}
	if l := c.Local; l != nil {
		line("local.listen", "%q  socket %q  allow_non_loopback %t", l.Listen, l.Socket, l.AllowNonLoopback)
		line("local.limits", "max_clients %d  max_topic %d  max_retained %d  max_retained_bytes %d", l.MaxClients, l.MaxTopic, l.MaxRetained, l.MaxRetainedBytes)
		if l.Username != "" {
			line("local.username", "%s  password %s", l.Username, l.Password)
		}
		for _, f := range l.Forward {
			line("local.forward", "qos %d  %s", f.QoS, f.Topic)
		}
		o := c.Outbox
		dir := o.Dir
		if dir == "" {
			dir = "$STATE_DIRECTORY or /var/lib/gatewayd"
		}
		line("outbox", "dir %s  max_bytes %d  max_age %s  overflow %s  window %d  commit_wait %s", dir, o.MaxBytes, fmtDuration(o.MaxAge), o.Overflow, o.Window, o.CommitWait)
	} else {
		line("local", "off")
	}

	if c.LED.Virtual() {
		line("led", "virtual (only logged)")
	} else {
		line("led", "%s", c.LED)
	}
	if r := c.Reset; r != nil {
		line("reset", "%s, pulse %s", r.Line, fmtDuration(r.Pulse))
	}
	line("retry", "initial %s, doubling to %s, half jitter; reset by a session up %s", fmtDuration(c.Retry.Initial), fmtDuration(c.Retry.Max), fmtDuration(c.Retry.StableAfter))
	line("log", "level %s, format %s, at_trace %t", c.Log.Level, c.Log.Format, c.Log.ATTrace)
	switch {
	case c.Control.Socket == "":
		line("control", "off")
	case c.Control.Group != "":
		line("control", "%s (mode 0660, group %s)", c.Control.Socket, c.Control.Group)
	default:
		line("control", "%s (mode 0660)", c.Control.Socket)
	}
	if m := c.Metrics; m != nil {
		line("metrics", "http://%s/metrics  allow_non_loopback %t", m.Listen, m.AllowNonLoopback)
	} else {
		line("metrics", "off")
	}
	for _, w := range c.Warnings {
		line("warning", "%s", w)
	}
	return tw.Flush()
}
