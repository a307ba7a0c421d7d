package cloud

import (
	"crypto/rand"
	"encoding/binary"
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
	// AuthType is AliyunRegister (the only variant the daemon runs).
	AuthType string
	// Pin: keep the first device name registered after a module swap.
	Pin bool
	// StateDir is where the DeviceSecret (and the pinned name) are stored.
	StateDir string
}

// Registering is a Platform whose device must register itself before it can log in: Dynamic
// gives the registration's configuration, SetDevice gives the platform the device name and the
// DeviceSecret (registered or read back from the state directory) to log in with.
type Registering interface {
	Platform
	// Dynamic is the registration's configuration; nil when the device does not register.
	Dynamic() *AliyunDynamic
	SetDevice(name, secret string) error
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

// SetDevice implements Registering: from now on Identity signs as device name with secret.
func (a *aliyun) SetDevice(name, secret string) error {
	p := a.p
	p.DeviceName, p.DeviceSecret = name, secret
	if _, err := AliyunSign(p); err != nil {
		return err
	}
	a.mu.Lock()
	a.p.DeviceName, a.p.DeviceSecret = name, secret
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
		SignMethod: d.SignMethod, AuthType: d.AuthType, Random: binary.BigEndian.Uint64(b[:]) % 1e12,
	})
}

// DeviceName fills the template with the module's IMEI and the SIM's ICCID.
func (d AliyunDynamic) DeviceName(imei, iccid string) string {
	return strings.NewReplacer("{imei}", imei, "{iccid}", iccid).Replace(d.Template)
}

// SecretPath is the file the DeviceSecret of device name is stored in:
// <state_dir>/aliyun-<productKey>-<deviceName>.secret.
func (d AliyunDynamic) SecretPath(name string) string {
	return filepath.Join(d.StateDir, "aliyun-"+d.ProductKey+"-"+name+".secret")
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
	switch code {
	case 2:
		return "Alibaba Cloud refused the registration's parameters: registration runs over TLS only (securemode=2), " +
			"so check [mqtt.tls] and mqtt.host, and the client id"
	case 3:
		return "Alibaba Cloud had a server error during registration; it is retried"
	case 4:
		return "Alibaba Cloud refused the registration's signature: check mqtt.aliyun.product_secret_file against the " +
			"console's ProductSecret, and product_key"
	case 5:
		return "Alibaba Cloud did not let this device register: check that the product has dynamic registration enabled, " +
			"that the device name exists in the product (pre-registration), and that the device is not activated already " +
			"(a device that once logged in cannot register again: reset it in the console, or put its DeviceSecret in the state directory)"
	}
	return ""
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
		r.fail("registration", "regnwl (registration without pre-registration, Shanghai only) is not supported by gatewayd yet: "+
			"pre-register the device names and use register")
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
	probe := d.DeviceName(strings.Repeat("9", 15), strings.Repeat("9", 20))
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
	if n, max := len(id), AliyunRegisterMaxClientID(d.AuthType, ""); n > max {
		r.fail(key, "%d bytes (with {imei}/{iccid} at their longest) is too long for dynamic registration: the registration "+
			"client id adds %d bytes, and the module takes at most %d; keep it to %d bytes",
			n, ModuleMaxClientID-max, ModuleMaxClientID, max)
	} else if n > AliyunMaxClientID {
		r.fail(key, "%d bytes is longer than the %d Alibaba Cloud allows for the device-chosen client id", n, AliyunMaxClientID)
	}
	if _, err := AliyunRegisterSign(AliyunRegisterParams{ProductKey: d.ProductKey, ProductSecret: d.ProductSecret,
		DeviceName: probe, ClientID: d.ClientID, SignMethod: d.SignMethod, AuthType: d.AuthType}); err != nil && len(r.errs) == 0 {
		r.fail("product_secret", "%s", strings.TrimPrefix(err.Error(), "aliyun: "))
	}
}

var _ Registering = (*aliyun)(nil)
