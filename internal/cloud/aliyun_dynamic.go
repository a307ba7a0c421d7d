package cloud

import (
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"time"
)

// CredAliyunProductSecret is the systemd credential mqtt.aliyun.product_secret is read from by
// default.
const CredAliyunProductSecret = "aliyun-product-secret"

// DefaultStateDir is where the daemon keeps what it learns at run time (the unit's
// StateDirectory).
const DefaultStateDir = "/var/lib/gatewayd"

// AliyunDeviceNameVar stands for the device name in an Alibaba Cloud topic while the device name
// is known only at run time (dynamic registration): the session fills it in.
const AliyunDeviceNameVar = "{device_name}"

// DefaultDeviceNameTemplate is the device name of a dynamically registering device unless
// mqtt.aliyun.device_name says otherwise.
const DefaultDeviceNameTemplate = "{imei}"

// AliyunDynamic is the configuration of dynamic registration ("one type, one secret",
// clouds.md 3.2). It holds the ProductSecret: never log it.
type AliyunDynamic struct {
	ProductKey    string
	ProductSecret string
	// Template is the device name with {imei} and {iccid} still in it.
	Template string
	// ClientID is the device-chosen client id; "" means the device name.
	ClientID   string
	SignMethod SignMethod
	// AuthType is AliyunRegister or AliyunRegNWL.
	AuthType string
	// InstanceID goes into the regnwl client id (Enterprise instances); "" leaves it out.
	InstanceID string
	// Pin: keep the first device name registered after a module swap.
	Pin bool
	// StateDir is where the DeviceSecret (and the pinned name) are stored.
	StateDir string
}

// AliyunCredential is what a registration gives a device to log in with: a DeviceSecret
// (authType=register) or a client id and a device token (authType=regnwl, logged in with
// authType=connwl). It holds a secret: never log it.
type AliyunCredential struct {
	DeviceSecret          string
	ClientID, DeviceToken string
}

// Registering is a Platform whose device must register itself before it can log in: Dynamic
// gives the registration's configuration, SetDevice gives the platform the device name and the
// credential (registered or read back from the state directory) to log in with.
type Registering interface {
	Platform
	// Dynamic is the registration's configuration; nil when the device does not register.
	Dynamic() *AliyunDynamic
	SetDevice(name string, c AliyunCredential) error
	// RegisterHint says what a refused registration (CONNACK code) means and what to do.
	RegisterHint(code int) string
}

// Dynamic implements Registering.
func (a *aliyun) Dynamic() *AliyunDynamic {
	if a.dyn == nil {
		return nil
	}
	d := *a.dyn
	return &d
}

// RegisteringOf returns p as a Registering platform when its device registers itself at run
// time (dynamic registration), and false otherwise.
func RegisteringOf(p Platform) (Registering, bool) {
	r, ok := p.(Registering)
	if !ok || r.Dynamic() == nil {
		return nil, false
	}
	return r, true
}

// SetDevice implements Registering: from now on Identity signs as device name with the
// credential's DeviceSecret or, after regnwl, logs in with its client id and device token.
func (a *aliyun) SetDevice(name string, c AliyunCredential) error {
	p := a.p
	p.DeviceName, p.DeviceSecret = name, c.DeviceSecret
	if a.dyn.AuthType == AliyunRegNWL {
		if _, err := AliyunConnWL(p.ProductKey, name, c.ClientID, c.DeviceToken); err != nil {
			return err
		}
		p.DeviceSecret = "unused (connwl)"
	} else if _, err := AliyunSign(p); err != nil {
		return err
	}
	a.mu.Lock()
	a.p.DeviceName, a.p.DeviceSecret, a.conn = name, p.DeviceSecret, c
	a.mu.Unlock()
	return nil
}

// Register returns the registration identity of device name, with a fresh random.
func (d AliyunDynamic) Register(name string) (Identity, error) {
	var b [8]byte
	if _, err := rand.Read(b[:]); err != nil {
		return Identity{}, fmt.Errorf("aliyun: random for the registration: %w", err)
	}
	return AliyunRegisterSign(AliyunRegisterParams{
		ProductKey: d.ProductKey, ProductSecret: d.ProductSecret, DeviceName: name, ClientID: d.ClientID,
		SignMethod: d.SignMethod, AuthType: d.AuthType, InstanceID: d.InstanceID, Random: binary.BigEndian.Uint64(b[:]) % 1e12,
	})
}

// AnswerTopics are the topics the platform's answer to a registration may come on: /ext/register
// for register; for regnwl /ext/regnwl, where Alibaba Cloud's SDK listens, and /ext/register,
// which the documentation's text names for both variants (clouds.md 3.2).
func (d AliyunDynamic) AnswerTopics() []string {
	if d.AuthType == AliyunRegNWL {
		return []string{AliyunRegNWLTopic, AliyunRegisterTopic}
	}
	return []string{AliyunRegisterTopic}
}

// Credential is what the answer r gives the device to log in with.
func (d AliyunDynamic) Credential(r AliyunRegistration) AliyunCredential {
	if d.AuthType == AliyunRegNWL {
		return AliyunCredential{ClientID: r.ClientID, DeviceToken: r.DeviceToken}
	}
	return AliyunCredential{DeviceSecret: r.DeviceSecret}
}

// EncodeCredential is c as its file in the state directory holds it: the DeviceSecret, or
// <clientId>|<deviceToken> (a client id holds no '|'), so that one atomic write stores both.
func (d AliyunDynamic) EncodeCredential(c AliyunCredential) []byte {
	if d.AuthType == AliyunRegNWL {
		return []byte(c.ClientID + "|" + c.DeviceToken)
	}
	return []byte(c.DeviceSecret)
}

// DecodeCredential reads what EncodeCredential wrote. Errors never quote the content.
func (d AliyunDynamic) DecodeCredential(v string) (AliyunCredential, error) {
	if d.AuthType != AliyunRegNWL {
		return AliyunCredential{DeviceSecret: v}, nil
	}
	id, token, ok := strings.Cut(v, "|")
	if !ok || id == "" || token == "" {
		return AliyunCredential{}, errors.New("aliyun: the stored regnwl credential is not <clientId>|<deviceToken>")
	}
	return AliyunCredential{ClientID: id, DeviceToken: token}, nil
}

// DeviceName fills the template with the module's IMEI and the SIM's ICCID.
func (d AliyunDynamic) DeviceName(imei, iccid string) string {
	return strings.NewReplacer("{imei}", imei, "{iccid}", iccid).Replace(d.Template)
}

// LongestDeviceName is the template filled with an {imei} and an {iccid} at their longest (15
// and 20 digits): what the limits on the client id are checked with.
func (d AliyunDynamic) LongestDeviceName() string {
	return d.DeviceName(strings.Repeat("9", 15), strings.Repeat("9", 20))
}

// SecretPath is the file the credential of device name is stored in:
// <state_dir>/aliyun-<productKey>-<deviceName>.secret (the DeviceSecret) or, after regnwl,
// <state_dir>/aliyun-<productKey>-<deviceName>.connwl (client id and device token).
func (d AliyunDynamic) SecretPath(name string) string {
	ext := ".secret"
	if d.AuthType == AliyunRegNWL {
		ext = ".connwl"
	}
	return filepath.Join(d.StateDir, "aliyun-"+d.ProductKey+"-"+name+ext)
}

// PinPath is the file the pinned device name is stored in: <state_dir>/aliyun-<productKey>.device_name.
func (d AliyunDynamic) PinPath() string {
	return filepath.Join(d.StateDir, "aliyun-"+d.ProductKey+".device_name")
}

// AliyunRegisterWait is how long the device waits for the answer on /ext/register after CONNACK
// (the platform drops the link after 15 s).
const AliyunRegisterWait = 20 * time.Second

// RegisterHint implements Registering, from the CONNACK codes of clouds.md 3.2.
func (a *aliyun) RegisterHint(code int) string {
	nwl := a.dyn != nil && a.dyn.AuthType == AliyunRegNWL
	switch {
	case code == 2 && nwl:
		return "Alibaba Cloud refused the registration's parameters: regnwl runs over TLS only (securemode=-2), " +
			"so check [mqtt.tls] and mqtt.host, the client id, and mqtt.aliyun.instance_id (an Enterprise instance's id goes into the client id)"
	case code == 2:
		return "Alibaba Cloud refused the registration's parameters: registration runs over TLS only (securemode=2), " +
			"so check [mqtt.tls] and mqtt.host, and the client id"
	case code == 3:
		return "Alibaba Cloud had a server error during registration; it is retried"
	case code == 4:
		return "Alibaba Cloud refused the registration's signature: check mqtt.aliyun.product_secret_file against the " +
			"console's ProductSecret, and product_key"
	case code == 5 && nwl:
		return "Alibaba Cloud did not let this device register without pre-registration (regnwl): check that the product has " +
			"dynamic registration and \"免预注册\" (no pre-registration) enabled — offered in cn-shanghai only — that " +
			"mqtt.aliyun.instance_id is this instance's, and that the device is not activated already (reset it in the console, " +
			"or put its client id and device token in the state directory)"
	case code == 5:
		return "Alibaba Cloud did not let this device register: check that the product has dynamic registration enabled, " +
			"that the device name exists in the product (pre-registration), and that the device is not activated already " +
			"(a device that once logged in cannot register again: reset it in the console, or put its DeviceSecret in the state directory)"
	}
	return ""
}

// dynamicHint is the hint for a refused login of a registered device: its credential comes
// from the state directory, not from the configuration.
func (a *aliyun) dynamicHint(t Trouble) string {
	if t.ConnackCode != 4 && t.ConnackCode != 5 {
		return aliyunHint(t)
	}
	what := "DeviceSecret"
	if a.dyn.AuthType == AliyunRegNWL {
		what = "device token (authType=connwl)"
	}
	return fmt.Sprintf("Alibaba Cloud refused the registered %s stored in %s: the device may have been deleted or reset in the "+
		"console; remove the file (aliyun-%s-<device name>.*) so that the device registers again", what, a.dyn.StateDir, a.p.ProductKey)
}

// buildAliyunDynamic reads the dynamic registration keys of [mqtt.aliyun].
func buildAliyunDynamic(r *reader) *AliyunDynamic {
	d := &AliyunDynamic{
		ProductSecret: r.secret("product_secret"),
		Template:      r.str("device_name", DefaultDeviceNameTemplate),
		AuthType:      r.str("registration", AliyunRegister),
		Pin:           r.boolean("pin_device_name", false),
		StateDir:      r.str("state_dir", DefaultStateDir),
	}
	d.ProductKey = r.str("product_key", "")
	if r.has("device_secret") {
		r.fail("device_secret", "give either device_secret (one device, one secret) or product_secret (dynamic registration), not both")
	}
	switch d.AuthType {
	case AliyunRegister:
	case AliyunRegNWL:
		// The login after regnwl is authType=connwl with securemode=-2, whatever secure_mode says.
		if r.has("secure_mode") {
			r.fail("secure_mode", "regnwl devices log in with securemode=-2 (authType=connwl), set by gatewayd: leave secure_mode out")
		}
		if r.has("timestamp") {
			r.fail("timestamp", "regnwl devices log in with the device token (authType=connwl), which is not signed: leave timestamp out")
		}
	default:
		r.fail("registration", "%q: want register or regnwl", d.AuthType)
	}
	if !filepath.IsAbs(d.StateDir) {
		r.fail("state_dir", "%q is not an absolute path", d.StateDir)
	}
	if !r.s.TLS {
		r.fail("product_secret", "dynamic registration runs over TLS only (Alibaba Cloud answers CONNACK 2 over TCP): configure [mqtt.tls]")
	}
	return d
}

// check refuses at start a device name template or client id that cannot work: unknown
// placeholders, bytes a name cannot hold, and a registration client id longer than the module's
// limit with {imei} and {iccid} at their longest (15 and 20 digits).
func (d *AliyunDynamic) check(r *reader) {
	probe := d.LongestDeviceName()
	if strings.ContainsAny(probe, "{}") {
		r.fail("device_name", "%q: only {imei} and {iccid} can be filled in", d.Template)
		return
	}
	if err := checkName("device name", probe, "&|/+#"); err != nil {
		r.fail("device_name", "%s", strings.TrimPrefix(err.Error(), "aliyun: "))
		return
	}
	key, id := "device_name", probe
	if d.ClientID != "" {
		key, id = "client_id", d.ClientID
	}
	if n, max := len(id), AliyunRegisterMaxClientID(d.AuthType, d.InstanceID); n > max && max <= 0 {
		r.fail("instance_id", "%q is too long for regnwl: the registration client id with instanceId=%s is longer than the "+
			"module's %d bytes whatever the device name", d.InstanceID, d.InstanceID, ModuleMaxClientID)
	} else if n > max {
		with := ""
		if d.AuthType == AliyunRegNWL && d.InstanceID != "" {
			with = fmt.Sprintf(" (authType=regnwl with instanceId=%s, clouds.md 5: a long id does not fit with an instance id)", d.InstanceID)
		}
		r.fail(key, "%d bytes (with {imei}/{iccid} at their longest) is too long for dynamic registration: the registration "+
			"client id adds %d bytes%s, and the module takes at most %d; keep it to %d bytes",
			n, ModuleMaxClientID-max, with, ModuleMaxClientID, max)
	} else if n > AliyunMaxClientID {
		r.fail(key, "%d bytes is longer than the %d Alibaba Cloud allows for the device-chosen client id", n, AliyunMaxClientID)
	}
	if _, err := AliyunRegisterSign(AliyunRegisterParams{ProductKey: d.ProductKey, ProductSecret: d.ProductSecret,
		DeviceName: probe, ClientID: d.ClientID, SignMethod: d.SignMethod, AuthType: d.AuthType, InstanceID: d.InstanceID}); err != nil && len(r.errs) == 0 {
		r.fail("product_secret", "%s", strings.TrimPrefix(err.Error(), "aliyun: "))
	}
}

var _ Registering = (*aliyun)(nil)
