package cloud

import (
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"
)

// Alibaba Cloud IoT Platform, one device one secret (clouds.md 3.1, ec600-at.md 7.3).

// CredAliyunDeviceSecret is the systemd credential mqtt.aliyun.device_secret is read from by default.
const CredAliyunDeviceSecret = "aliyun-device-secret"

// AliyunCA is the root CA Alibaba Cloud's SDK pins for TLS (securemode=2): GlobalSign Root CA (R1).
const AliyunCA = "GlobalSign_Root_CA.pem"

func aliyunSpec() spec {
	return spec{
		title: "Alibaba Cloud",
		fields: []Field{
			{Key: "product_key", Kind: String, Required: true, Console: "ProductKey"},
			{Key: "device_name", Kind: String, Console: "DeviceName"},
			{Key: "device_secret", Kind: Secret, Cred: CredAliyunDeviceSecret, Console: "DeviceSecret"},
			{Key: "product_secret", Kind: Secret, Cred: CredAliyunProductSecret, Console: "ProductSecret (dynamic registration: the device asks the platform for its DeviceSecret)"},
			{Key: "registration", Kind: String, Console: "dynamic registration variant: register (pre-registered devices) or regnwl (no pre-registration; logs in with authType=connwl)", OneOf: []string{AliyunRegister, AliyunRegNWL}},
			{Key: "pin_device_name", Kind: Bool, Console: "keep the first registered device name after a module swap (default false: a new {imei} is a new device)"},
			{Key: "state_dir", Kind: String, Console: "where the registered DeviceSecret is kept (default " + DefaultStateDir + ")"},
			{Key: "client_id", Kind: String, Console: "device-chosen client id (MAC or serial number; default: the DeviceName)"},
			{Key: "sign_method", Kind: String, Console: "signmethod: hmacsha256 (default), hmacsha1 or hmacmd5", OneOf: []string{"hmacsha256", "hmacsha1", "hmacmd5"}},
			{Key: "timestamp", Kind: Bool, Console: "whether the connect time goes into the client id and signature (default true)"},
			{Key: "secure_mode", Kind: Int, Console: "securemode: 3 = TCP, 2 = TLS (default follows [mqtt.tls])", Min: 2, Max: 3},
			{Key: "region", Kind: String, Console: "RegionId of a public instance, e.g. cn-shanghai", Host: true},
			{Key: "instance_id", Kind: String, Console: "instance id of a new public or Enterprise instance (console: Instance details); with registration = regnwl it goes into the registration client id too", Host: true},
		},
		build: buildAliyun,
		signs: map[string]string{
			"client_id": "is signed into the Alibaba Cloud password (client id, device name and product key are); a device-chosen client id goes in mqtt.aliyun.client_id",
			"username":  "is signed into the Alibaba Cloud password; it is always <device_name>&<product_key>",
			"password":  "is the HMAC Alibaba Cloud checks; give mqtt.aliyun.device_secret_file instead",
		},
	}
}

// aliyun signs Alibaba Cloud credentials at every connect.
type aliyun struct {
	base
	p         AliyunParams
	timestamp bool
	// dyn is set in dynamic registration mode: the device name and secret are known only at run
	// time (SetDevice).
	dyn *AliyunDynamic
	// conn is the registered credential (dynamic mode); regnwl logs in with its client id and token.
	conn AliyunCredential
	mu   sync.Mutex // guards p.DeviceName, p.DeviceSecret and conn in dynamic mode
}

func buildAliyun(r *reader) Platform {
	a := &aliyun{}
	a.p.ProductKey = r.name("product_key", "&|")
	if r.has("product_secret") {
		a.dyn = buildAliyunDynamic(r)
		a.p.DeviceName, a.p.DeviceSecret = AliyunDeviceNameVar, "unset"
	} else {
		for _, k := range []string{"registration", "pin_device_name", "state_dir"} {
			if r.has(k) {
				r.fail(k, "is for dynamic registration: give product_secret_file (and no device_secret)")
			}
		}
		if !r.has("device_name") {
			r.fail("device_name", "required: the DeviceName")
		}
		a.p.DeviceName = r.name("device_name", "&|")
		if !r.has("device_secret") {
			r.fail("device_secret", "required: the DeviceSecret (in a file named by device_secret_file, or the systemd credential %s)", CredAliyunDeviceSecret)
		}
		a.p.DeviceSecret = r.secret("device_secret")
	}
	a.p.ClientID = r.str("client_id", "")
	if r.has("client_id") && a.p.ClientID == "" {
		r.fail("client_id", "is empty; leave it out to use the device name")
	} else if a.p.ClientID != "" {
		r.name("client_id", "|")
		if len(a.p.ClientID) > AliyunMaxClientID {
			r.fail("client_id", "%d bytes is longer than the %d Alibaba Cloud allows for the device-chosen client id", len(a.p.ClientID), AliyunMaxClientID)
		}
	}
	m, err := ParseSignMethod(r.str("sign_method", string(DefaultSignMethod)))
	if err != nil {
		r.fail("sign_method", "%v", err)
	}
	a.p.SignMethod = m
	a.timestamp = r.boolean("timestamp", true)
	defMode := int64(AliyunSecureModePlain)
	if r.s.TLS {
		defMode = AliyunSecureModeTLS
	}
	mode := r.integer("secure_mode", defMode)
	switch {
	case mode != AliyunSecureModeTLS && mode != AliyunSecureModePlain:
		r.fail("secure_mode", "%d: want 2 (TLS) or 3 (TCP)", mode)
	case mode == AliyunSecureModeTLS && !r.s.TLS:
		r.fail("secure_mode", "2 means TLS: configure [mqtt.tls] too, or use 3 for plain TCP")
	case mode == AliyunSecureModePlain && r.s.TLS:
		r.fail("secure_mode", "3 means plain TCP, but [mqtt.tls] is configured: use 2 (or leave secure_mode out)")
	}
	a.p.SecureMode = int(mode)

	region, instance := r.str("region", ""), r.str("instance_id", "")
	host := ""
	switch {
	case region != "" && instance != "":
		r.fail("instance_id", "give either an instance id or a region, not both")
	case region == "" && instance == "":
		if r.s.Override.Host == "" {
			r.fail("region", "required to find the broker: give region (legacy public instance) or instance_id, or set mqtt.host")
		}
	default:
		key := "region"
		if instance != "" {
			key = "instance_id"
		}
		if region != "" && a.p.ProductKey == "" {
			break // the legacy host needs the product key, reported already
		}
		h, err := AliyunEndpoint(a.p.ProductKey, region, instance)
		if err != nil {
			r.fail(key, "%s", strings.TrimPrefix(err.Error(), "aliyun: "))
		}
		host = h
	}
	if a.dyn != nil {
		a.dyn.ClientID, a.dyn.SignMethod = a.p.ClientID, a.p.SignMethod
		if a.dyn.AuthType == AliyunRegNWL {
			a.dyn.InstanceID = instance
		}
		a.dyn.check(r)
	}
	if len(r.errs) == 0 && a.dyn == nil {
		// Sign once now, so that anything AliyunSign would refuse at connect time is refused here.
		if _, err := AliyunSign(a.p); err != nil {
			r.fail("device_name", "%s", strings.TrimPrefix(err.Error(), "aliyun: "))
		}
	}
	a.base = base{
		name: "aliyun",
		ep:   Endpoint{Host: host, Port: AliyunPort, TLS: r.s.TLS},
		topics: map[string]string{
			"product_key":         a.p.ProductKey,
			"device_name":         a.p.DeviceName,
			"property_post":       aliyunTopic(a.p, "thing/event/property/post"),
			"property_post_reply": aliyunTopic(a.p, "thing/event/property/post_reply"),
			"property_set":        aliyunTopic(a.p, "thing/service/property/set"),
			"property_set_reply":  aliyunTopic(a.p, "thing/service/property/set_reply"),
			"service":             aliyunTopic(a.p, "thing/service/+"),
			"rrpc_request":        aliyunTopic(a.p, "rrpc/request/+"),
			"thing":               aliyunTopic(a.p, "thing/#"),
		},
		limits: Limits{
			KeepAliveMin: 30 * time.Second, KeepAliveMax: 1200 * time.Second,
			MaxQoS: 1, Retain: false,
			Why: map[string]string{
				"keepalive": "Alibaba Cloud refuses a CONNECT whose keep-alive is outside 30s–1200s",
				"qos":       "Alibaba Cloud has no QoS 2 (it grants QoS 2 subscriptions as QoS 1)",
				"retain":    "Alibaba Cloud does not keep retained messages (MQTT 3.1.1 retain is not supported)",
			},
		},
		hint: aliyunHint,
	}
	if a.dyn != nil {
		a.base.hint = a.dynamicHint
	}
	if r.s.TLS {
		a.ep.CAFile = AliyunCA
	}
	return a
}

func aliyunTopic(p AliyunParams, rest string) string {
	return "/sys/" + p.ProductKey + "/" + p.DeviceName + "/" + rest
}

// Identity implements Platform: signed afresh, time-stamped with now unless timestamp = false.
// Alibaba Cloud does not check the timestamp's freshness, so the password does not expire.
func (a *aliyun) Identity(now time.Time) (Identity, error) {
	a.mu.Lock()
	p, conn := a.p, a.conn
	a.mu.Unlock()
	if a.dyn != nil && p.DeviceName == AliyunDeviceNameVar {
		return Identity{}, errors.New("aliyun: the device is not registered yet (no DeviceSecret stored)")
	}
	if a.dyn != nil && a.dyn.AuthType == AliyunRegNWL {
		id, err := AliyunConnWL(p.ProductKey, p.DeviceName, conn.ClientID, conn.DeviceToken)
		if err != nil {
			return Identity{}, err
		}
		return a.apply(id), nil
	}
	if a.timestamp {
		if now.UnixMilli() <= 0 {
			return Identity{}, errors.New("aliyun: the clock is not set (before 1970); cannot time-stamp the Alibaba Cloud signature")
		}
		p.Timestamp = now.UnixMilli()
	}
	id, err := AliyunSign(p)
	if err != nil {
		return Identity{}, err
	}
	return a.apply(id), nil
}

// AliyunKickWindow is how soon after a CONNECT a lost link suggests that another device with the
// same triple logged in (Alibaba Cloud forces the older connection offline).
const AliyunKickWindow = 2 * time.Minute

func aliyunHint(t Trouble) string {
	switch {
	case t.ConnackCode == 4:
		return "Alibaba Cloud refused the signature: check mqtt.aliyun.device_secret against the console's DeviceSecret, and product_key and device_name"
	case t.ConnackCode == 5:
		return "Alibaba Cloud did not authorize the device: check that it exists and is enabled in the console, and product_key / device_name"
	case t.ConnackCode == 2:
		return "Alibaba Cloud refused the client id: check mqtt.aliyun.client_id, and that secure_mode matches TLS"
	case t.Stat != 0 && t.Up < AliyunKickWindow:
		return fmt.Sprintf("Alibaba Cloud closed the link %s after it was accepted: when a second device logs in with the same "+
			"ProductKey, DeviceName and DeviceSecret, the platform forces the older connection offline, so two gateways (or a test "+
			"program) sharing this device's credentials evict each other in a loop; give each box its own device", t.Up.Round(time.Second))
	}
	return ""
}
