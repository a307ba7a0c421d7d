package config

import (
	"errors"
	"fmt"
	"io"
	"net"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/gatewayd/gatewayd/internal/cloud"
	"github.com/gatewayd/gatewayd/internal/thing"
	"github.com/gatewayd/gatewayd/qssl"
)

// Credentials are the client id, user name and password of one MQTT CONNECT.
type Credentials struct {
	ClientID string
	Username string
	Password Secret
}

// Credentials returns what to send in the next MQTT CONNECT at now: the platform's identity
// (literal for a plain broker, signed for a preset). Call it at every connect.
func (c *Config) Credentials(now time.Time) (Credentials, error) {
	p := c.MQTT.Platform
	if p == nil {
		return Credentials{}, errors.New("config: no MQTT platform (the configuration was not validated)")
	}
	id, err := p.Identity(now)
	if err != nil {
		return Credentials{}, fmt.Errorf("config: %w", err)
	}
	return Credentials{ClientID: id.ClientID, Username: id.Username, Password: NewSecret(id.Password)}, nil
}

// Platform is the cloud platform the session connects to, asked for the identity at every
// connect: the plain broker of [mqtt] with literal credentials, or the platform of the preset.
func (c *Config) Platform() cloud.Platform { return c.MQTT.Platform }

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
	p := m.Platform
	if p != nil && p.Name() != cloud.PlainName {
		line("mqtt.platform", "%s ([mqtt.%s]; the identity is derived on the host at every connect)", cloud.Title(p.Name()), p.Name())
	}
	line("mqtt.broker", "%s (host from %s)", net.JoinHostPort(m.Host, strconv.Itoa(m.Port)), m.HostFrom)
	if p != nil {
		c.describeIdentity(line, secret, orNone, now)
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
	if p != nil && p.Name() != cloud.PlainName {
		c.describeTopics(line, p)
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
	if th := c.Thing; th != nil {
		line("thing", "LED follows property %s (%s thing model), telemetry every %s", th.LEDProperty, th.Dialect, fmtDuration(th.ReportInterval))
		tp := th.Topics
		for _, kv := range [][2]string{{"set", tp.Set}, {"set_reply", tp.SetReply}, {"report", tp.Report},
			{"report_reply", tp.ReportReply}, {"service", tp.Service}, {"service_reply", tp.ServiceReply}} {
			if kv[1] != "" {
				line("thing.topics."+kv[0], "%s", kv[1])
			}
		}
		for _, f := range thing.TelemetryFields() {
			if n, ok := th.Telemetry[f]; ok {
				line("thing.telemetry."+f, "%s", n)
			}
		}
	} else {
		line("thing", "off (the LED toggles on every downlink)")
	}
	if r := c.Reset; r != nil {
		line("reset", "%s, pulse %s", r.Line, fmtDuration(r.Pulse))
	}
	line("retry", "initial %s, doubling to %s, half jitter; reset by a session up %s; after the broker closes a lasting session, reconnect within %s, doubling to %s (full jitter)", fmtDuration(c.Retry.Initial), fmtDuration(c.Retry.Max), fmtDuration(c.Retry.StableAfter), fmtDuration(c.Retry.ReconnectWindow), fmtDuration(c.Retry.ReconnectMax))
	line("revision", "%s (of the merged settings, secrets left out)", c.Revision)
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

// describeIdentity writes the identity the next CONNECT at now sends, secrets masked.
func (c *Config) describeIdentity(line func(k, format string, args ...any), secret func(string, Secret) string, orNone func(string) string, now time.Time) {
	p := c.MQTT.Platform
	if reg, ok := cloud.RegisteringOf(p); ok {
		d := reg.Dynamic()
		if d.AuthType == cloud.AliyunRegNWL {
			inst := ""
			if d.InstanceID != "" {
				inst = ", instanceId=" + d.InstanceID
			}
			line("mqtt.credentials", "dynamic registration (regnwl%s, TLS, no pre-registration): device name %s; the client id and "+
				"device token it logs in with (authType=connwl) are kept in %s (registered at the first connect when missing)",
				inst, d.Template, d.SecretPath(d.Template))
			own := d.ClientID
			if own == "" {
				own = d.LongestDeviceName()
			}
			line("", "the registration client id is at most %d bytes (the module takes %d)",
				cloud.ModuleMaxClientID-cloud.AliyunRegisterMaxClientID(d.AuthType, d.InstanceID)+len(own), cloud.ModuleMaxClientID)
		} else {
			line("mqtt.credentials", "dynamic registration (%s, TLS): device name %s; the DeviceSecret is kept in %s "+
				"(registered at the first connect when missing)", d.AuthType, d.Template, d.SecretPath(d.Template))
		}
		if d.Pin {
			line("", "pin_device_name: the first registered device name is kept in %s and used after a module swap", d.PinPath())
		} else {
			line("", "a module with another IMEI is another device name: it registers as a new device")
		}
		if d.AuthType == cloud.AliyunRegNWL {
			line("mqtt.password", "*** (registration: signed with the ProductSecret from %s; login: the stored device token)", c.secretSource(p.Name()))
		} else {
			line("mqtt.password", "*** (signed with the ProductSecret from %s)", c.secretSource(p.Name()))
		}
		return
	}
	id, err := p.Identity(now)
	if err != nil {
		line("mqtt.credentials", "cannot compute: %v", err)
		return
	}
	line("mqtt.client_id", "%s", id.ClientID)
	if id.SecretUsername && id.Username != "" {
		line("mqtt.username", "*** (the access token from %s)", c.secretSource(p.Name()))
	} else {
		line("mqtt.username", "%s", orNone(id.Username))
	}
	switch {
	case p.Name() == cloud.PlainName || c.Sources["mqtt.password"] != "":
		line("mqtt.password", "%s", secret("mqtt.password", NewSecret(id.Password)))
	case id.Password == "" && id.SecretUsername:
		line("mqtt.password", "(none: the access token is the user name)")
	case id.Password == "":
		line("mqtt.password", "(none: the device is authenticated by its client certificate)")
	default:
		line("mqtt.password", "*** (signed with the secret from %s; %d bytes)", c.secretSource(p.Name()), len(id.Password))
	}
	if !id.Expires.IsZero() {
		line("", "signed at %s, expires %s (after %s); the session renews it before then",
			now.UTC().Format(time.RFC3339), id.Expires.UTC().Format(time.RFC3339), fmtDuration(id.Expires.Sub(now).Round(time.Second)))
	} else if p.Name() != cloud.PlainName && id.Password != "" {
		line("", "signed afresh at every connect (now %s)", now.UTC().Format(time.RFC3339))
	}
}

// secretSource says where the platform section's secret came from.
func (c *Config) secretSource(name string) string {
	prefix := "mqtt." + name + "."
	var out []string
	for k, v := range c.Sources {
		if strings.HasPrefix(k, prefix) {
			out = append(out, k+": "+v)
		}
	}
	sort.Strings(out)
	if len(out) == 0 {
		return "(unknown)"
	}
	return strings.Join(out, ", ")
}

// describeTopics writes the platform's {name} templates.
func (c *Config) describeTopics(line func(k, format string, args ...any), p cloud.Platform) {
	vars := p.Topics()
	names := make([]string, 0, len(vars))
	for k := range vars {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, k := range names {
		line("mqtt.templates", "{%s}  %s", k, vars[k])
	}
}
