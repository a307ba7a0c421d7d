package qmt

import (
	"fmt"
	"strconv"
	"time"
)

// Config is everything AT+QMTCFG sets for one client. The module keeps these settings in RAM only,
// so Client.Configure applies all of them at every bring-up. The zero value is usable: MQTT 3.1.1,
// PDP context 1, plain TCP, keep-alive 120 s, persistent session (CleanSession false), packet
// timeout 5 s with 3 retries, no will, direct receive with a length field.
type Config struct {
	// Version is the MQTT protocol version: 3 (MQTT 3.1) or 4 (MQTT 3.1.1); 0 means 4.
	Version int
	// PDPCID is the PDP context the MQTT socket uses, 1-16 (1-15 on ASR modules); 0 means 1.
	PDPCID int
	// KeepAlive is the MQTT keep-alive in whole seconds, up to 3600 s; 0 means the module
	// default of 120 s; a negative value turns keep-alive off.
	KeepAlive time.Duration
	// CleanSession asks the broker to drop the session state on connect (module default: true).
	CleanSession bool
	// PacketTimeout is how long the module waits for an acknowledgement before it retransmits,
	// in whole seconds, 1-1200 s (1-60 s on EC2x); 0 means 5 s.
	PacketTimeout time.Duration
	// Retries is how often the module retransmits, 1-10; 0 means 3.
	Retries int
	// TimeoutNotice asks the module to report a packet timeout.
	TimeoutNotice bool
	// RecvMode says how received messages reach the host; the zero value is the recommended
	// direct mode with a length field.
	RecvMode RecvMode
	// Will is the last-will message; nil clears it.
	Will *Will
	// SSL turns TLS on with an AT+QSSLCFG context; nil means plain TCP.
	SSL *SSL
	// AliAuth lets the module sign Alibaba Cloud credentials itself; nil leaves it unset.
	AliAuth *AliAuth
	// EditTimeout, when positive, makes the module give up a publish's data mode (the bytes
	// after the "> " prompt) after this long, whole seconds 1-180 ("edit/timeout", ASR family).
	// Without it a host that dies between a publish command and its payload leaves the module
	// waiting for bytes, and whatever the next host sends is published. Firmware without the
	// setting (Unisoc, EC600U) answers ERROR or +CME ERROR: <n>; Configure then goes on without
	// it, and ConfigureReport says so.
	EditTimeout time.Duration
}

// optionalConfig names the QMTCFG settings that not every firmware has: an ERROR for them is
// not a failure of Configure.
var optionalConfig = []string{`AT+QMTCFG="edit/timeout"`}

// RecvMode is the "recv/mode" setting.
type RecvMode int

// The receive modes.
const (
	// RecvDirectLength: payload inside +QMTRECV with a length field (recv/mode <idx>,0,1). The
	// recommended mode: binary-safe.
	RecvDirectLength RecvMode = iota
	// RecvDirect: payload inside +QMTRECV in quotes, no length (recv/mode <idx>,0,0). A payload
	// holding `"` CR LF cannot be delimited reliably.
	RecvDirect
	// RecvBuffered: +QMTRECV only announces a slot; read it with Client.ReadStored (recv/mode <idx>,1,0).
	RecvBuffered
	// RecvBufferedLength: as RecvBuffered, read-out lines carry a length field (recv/mode <idx>,1,1).
	RecvBufferedLength
)

// Will is the last-will message the broker publishes when the link dies.
type Will struct {
	Topic   string
	Message string // may not hold `"`: the module has no escape
	QoS     int
	Retain  bool
}

// SSL selects TLS for the MQTT link.
type SSL struct {
	Context int // the AT+QSSLCFG context, 0-5
}

// AliAuth are Alibaba Cloud device credentials for the module's own signing ("aliauth").
type AliAuth struct {
	ProductKey   string
	DeviceName   string
	DeviceSecret string // a secret: masked in traces, never shown in errors
}

// seconds converts d to whole seconds within lo-hi, or explains why it cannot.
func seconds(field string, d time.Duration, lo, hi int) (int, error) {
	if d%time.Second != 0 {
		return 0, fmt.Errorf("mqtt: %s %s is not a whole number of seconds: %w", field, d, ErrInvalidArgument)
	}
	s := d / time.Second
	if s < time.Duration(lo) || s > time.Duration(hi) {
		return 0, fmt.Errorf("mqtt: %s %s out of range %d-%d s: %w", field, d, lo, hi, ErrInvalidArgument)
	}
	return int(s), nil
}

// timing gives the packet timeout and retry count the config asks for, defaults applied.
func (c Config) timing() (pkt time.Duration, retries int) {
	pkt, retries = c.PacketTimeout, c.Retries
	if pkt == 0 {
		pkt = 5 * time.Second
	}
	if retries == 0 {
		retries = 3
	}
	return pkt, retries
}

// Validate checks the config without a client index.
func (c Config) Validate() error {
	_, err := c.Commands(0)
	return err
}

// Commands gives the AT+QMTCFG lines (without CR) that apply c to client idx, in the order they
// are sent: version, pdpcid, ssl, keepalive, session, timeout, will, recv/mode, aliauth. It is a
// pure function of c and idx. A value out of range or a string that cannot be quoted gives an
// error naming the field. The lines hold the aliauth secret; use Secrets to mask it.
func (c Config) Commands(idx int) ([]string, error) {
	if err := checkIdx(idx); err != nil {
		return nil, err
	}
	cfg := func(name string, vs ...string) string {
		s := `AT+QMTCFG="` + name + `",` + strconv.Itoa(idx)
		for _, v := range vs {
			s += "," + v
		}
		return s
	}
	itoa := strconv.Itoa
	q := func(s string) string { return `"` + s + `"` }
	var out []string

	version := c.Version
	if version == 0 {
		version = 4
	}
	if version != 3 && version != 4 {
		return nil, fmt.Errorf("mqtt: version %d: must be 3 (MQTT 3.1) or 4 (MQTT 3.1.1): %w", version, ErrInvalidArgument)
	}
	out = append(out, cfg("version", itoa(version)))

	cid := c.PDPCID
	if cid == 0 {
		cid = 1
	}
	if err := checkRange("pdpcid", cid, 1, 16); err != nil {
		return nil, err
	}
	out = append(out, cfg("pdpcid", itoa(cid)))

	if c.SSL == nil {
		out = append(out, cfg("ssl", "0"))
	} else {
		if err := checkRange("ssl context", c.SSL.Context, 0, 5); err != nil {
			return nil, err
		}
		out = append(out, cfg("ssl", "1", itoa(c.SSL.Context)))
	}

	keep := 120
	switch {
	case c.KeepAlive < 0:
		keep = 0
	case c.KeepAlive > 0:
		var err error
		if keep, err = seconds("keepalive", c.KeepAlive, 1, 3600); err != nil {
			return nil, err
		}
	}
	out = append(out, cfg("keepalive", itoa(keep)))

	out = append(out, cfg("session", itoa(boolInt(c.CleanSession))))

	pkt, retries := c.timing()
	pktS, err := seconds("packet timeout", pkt, 1, 1200)
	if err != nil {
		return nil, err
	}
	if err := checkRange("retries", retries, 1, 10); err != nil {
		return nil, err
	}
	out = append(out, cfg("timeout", itoa(pktS), itoa(retries), itoa(boolInt(c.TimeoutNotice))))

	if c.Will == nil {
		out = append(out, cfg("will", "0"))
	} else {
		w := c.Will
		if err := checkQoS("will QoS", w.QoS); err != nil {
			return nil, err
		}
		if err := checkLen("will topic", w.Topic, true, MaxWillLen, false); err != nil {
			return nil, err
		}
		if err := checkTopicName("will topic", w.Topic); err != nil {
			return nil, err
		}
		if err := checkLen("will message", w.Message, false, MaxWillLen, false); err != nil {
			return nil, err
		}
		out = append(out, cfg("will", "1", itoa(w.QoS), itoa(boolInt(w.Retain)), q(w.Topic), q(w.Message)))
	}

	if c.EditTimeout > 0 {
		secs, err := seconds("edit timeout", c.EditTimeout, 1, 180)
		if err != nil {
			return nil, err
		}
		out = append(out, cfg("edit/timeout", "1", itoa(secs)))
	}

	switch c.RecvMode {
	case RecvDirectLength:
		out = append(out, cfg("recv/mode", "0", "1"))
	case RecvDirect:
		out = append(out, cfg("recv/mode", "0", "0"))
	case RecvBuffered:
		out = append(out, cfg("recv/mode", "1", "0"))
	case RecvBufferedLength:
		out = append(out, cfg("recv/mode", "1", "1"))
	default:
		return nil, fmt.Errorf("mqtt: unknown receive mode %d: %w", c.RecvMode, ErrInvalidArgument)
	}

	if a := c.AliAuth; a != nil {
		if err := checkLen("aliauth product key", a.ProductKey, true, MaxAliAuthLen, false); err != nil {
			return nil, err
		}
		if err := checkLen("aliauth device name", a.DeviceName, true, MaxAliAuthLen, false); err != nil {
			return nil, err
		}
		if err := checkLen("aliauth device secret", a.DeviceSecret, true, MaxAliAuthLen, true); err != nil {
			return nil, err
		}
		out = append(out, cfg("aliauth", q(a.ProductKey), q(a.DeviceName), q(a.DeviceSecret)))
	}
	return out, nil
}

// Secrets gives the values of c that must never appear in a log (the aliauth device secret).
func (c Config) Secrets() []string {
	if c.AliAuth != nil && c.AliAuth.DeviceSecret != "" {
		return []string{c.AliAuth.DeviceSecret}
	}
	return nil
}
