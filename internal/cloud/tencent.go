package cloud

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"strconv"
	"time"
)

// Tencent Cloud IoT Explorer / IoT Hub, key authentication (clouds.md 3.3).

// Tencent defaults.
const (
	CredTencentDeviceSecret = "tencent-device-secret"
	// TencentAppID is the sdkappid the signing page documents (the C SDK sends 21010406).
	TencentAppID = "12010126"
	// TencentConnIDLen is the length of the random connection id (the SDK's MAX_CONN_ID_LEN - 1).
	TencentConnIDLen = 5
	// TencentCA is Tencent's private "Tencent Iothub" root (CN=www.tencent.com, to 2032-11-23),
	// as its device SDK pins it.
	TencentCA = "TencentIothubCA.pem"
)

func tencentSpec() spec {
	return spec{
		title: "Tencent Cloud IoT Explorer",
		fields: []Field{
			{Key: "product_id", Kind: String, Required: true, Console: "ProductID (产品ID)", Host: true},
			{Key: "device_name", Kind: String, Required: true, Console: "DeviceName (设备名称)"},
			{Key: "device_secret", Kind: Secret, Required: true, Cred: CredTencentDeviceSecret, Console: "device key, base64 (设备密钥 / DevicePsk)"},
			{Key: "sign_method", Kind: String, Console: "hmacsha256 (default) or hmacsha1", OneOf: []string{"hmacsha256", "hmacsha1"}},
			{Key: "lifetime", Kind: Duration, Console: "how long each signature is valid (default 24h); the session renews it before it runs out"},
			{Key: "app_id", Kind: String, Console: "sdkappid in the user name (default 12010126, as the signing page documents)"},
		},
		build: buildTencent,
		signs: map[string]string{
			"username": "is signed into the Tencent password (it carries the connection id and the expiry); it is <product_id><device_name>;<app_id>;<connid>;<expiry>",
			"password": "is the HMAC Tencent checks; give mqtt.tencent.device_secret_file instead",
		},
	}
}

type tencent struct {
	base
	productID, deviceName, appID string
	key                          []byte // the base64-DECODED device secret
	method                       SignMethod
	lifetime                     time.Duration
	rand                         io.Reader
}

func buildTencent(r *reader) Platform {
	t := &tencent{}
	t.productID = r.name("product_id", ";/")
	t.deviceName = r.name("device_name", ";/")
	t.appID = r.str("app_id", TencentAppID)
	if r.has("app_id") {
		for i := 0; i < len(t.appID); i++ {
			if t.appID[i] < '0' || t.appID[i] > '9' {
				r.fail("app_id", "%q is not a number", t.appID)
				break
			}
		}
	}
	if sec := r.secret("device_secret"); sec != "" {
		k, err := base64.StdEncoding.DecodeString(sec)
		if err != nil || len(k) == 0 {
			r.fail("device_secret", "is not base64 (value not shown): Tencent's device key is the base64 text the console shows, copied whole")
		}
		t.key = k
	}
	switch m := SignMethod(r.str("sign_method", string(HMACSHA256))); m {
	case HMACSHA256, HMACSHA1:
		t.method = m
	default:
		r.fail("sign_method", "%q: Tencent takes hmacsha256 or hmacsha1", m)
	}
	t.lifetime = r.lifetime("lifetime", DefaultLifetime)
	t.rand = r.s.Rand
	if t.rand == nil {
		t.rand = rand.Reader
	}
	ep := Endpoint{Host: t.productID + ".iotcloud.tencentdevices.com", Port: 1883}
	if r.s.TLS {
		// Tencent's own SDK uses TLS-PSK, not this password, for key authentication over TLS;
		// the password over TLS on 8883 is UNVERIFIED (clouds.md 2): plain 1883 is the path
		// known to work.
		ep.Port, ep.TLS, ep.CAFile = 8883, true, TencentCA
	}
	dev := t.productID + "/" + t.deviceName
	t.base = base{
		name: "tencent",
		ep:   ep,
		topics: map[string]string{
			"product_id":          t.productID,
			"device_name":         t.deviceName,
			"property_post":       "$thing/up/property/" + dev,
			"property_post_reply": "$thing/down/property/" + dev,
			"property_set":        "$thing/down/property/" + dev,
			"property_set_reply":  "$thing/up/property/" + dev,
			"action":              "$thing/down/action/" + dev,
			"action_reply":        "$thing/up/action/" + dev,
			"event_post":          "$thing/up/event/" + dev,
			"event_post_reply":    "$thing/down/event/" + dev,
		},
		limits: Limits{
			KeepAliveMin: 0, KeepAliveMax: 900 * time.Second, KeepAliveOff: true,
			MaxQoS: 1, Retain: false,
			Why: map[string]string{
				"keepalive": "Tencent IoT takes a keep-alive of 0s–900s",
				"qos":       "Tencent IoT has no QoS 2",
				"retain":    "Tencent IoT does not support retained messages",
			},
		},
		hint: tencentHint,
	}
	return t
}

// Identity implements Platform: a fresh connection id and an expiry of now + lifetime, signed.
func (t *tencent) Identity(now time.Time) (Identity, error) {
	if now.Unix() <= 0 {
		return Identity{}, errors.New("tencent: the clock is not set (before 1970); the signature's expiry would be wrong")
	}
	connID, err := randomConnID(t.rand)
	if err != nil {
		return Identity{}, fmt.Errorf("tencent: connection id: %w", err)
	}
	exp := now.Add(t.lifetime).Truncate(time.Second)
	user := TencentUsername(t.productID, t.deviceName, t.appID, connID, exp.Unix())
	return t.apply(Identity{
		ClientID: t.productID + t.deviceName,
		Username: user,
		Password: tencentPassword(t.key, user, t.method),
		Expires:  exp,
	}), nil
}

// TencentUsername is <productID><deviceName>;<appID>;<connID>;<expiry>, expiry in Unix seconds.
func TencentUsername(productID, deviceName, appID, connID string, expiry int64) string {
	return productID + deviceName + ";" + appID + ";" + connID + ";" + strconv.FormatInt(expiry, 10)
}

// TencentPassword is hex(HMAC(key = base64decode(secret), username)) + ";hmacsha256" (or
// ";hmacsha1"). The key is the DECODED secret: keying with the base64 text is the classic mistake.
func TencentPassword(secret, username string, m SignMethod) (string, error) {
	key, err := base64.StdEncoding.DecodeString(secret)
	if err != nil {
		return "", errors.New("tencent: the device secret is not base64")
	}
	if m != HMACSHA256 && m != HMACSHA1 {
		return "", fmt.Errorf("tencent: sign method %q: want hmacsha256 or hmacsha1", m)
	}
	return tencentPassword(key, username, m), nil
}

func tencentPassword(key []byte, username string, m SignMethod) string {
	h := sha256.New
	if m == HMACSHA1 {
		h = sha1.New
	}
	mac := hmac.New(h, key)
	mac.Write([]byte(username))
	return hex.EncodeToString(mac.Sum(nil)) + ";" + string(m)
}

// randomConnID draws TencentConnIDLen letters and digits from r.
func randomConnID(r io.Reader) (string, error) {
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
	b := make([]byte, TencentConnIDLen)
	if _, err := io.ReadFull(r, b); err != nil {
		return "", err
	}
	for i := range b {
		b[i] = alphabet[int(b[i])%len(alphabet)]
	}
	return string(b), nil
}

func tencentHint(t Trouble) string {
	switch t.ConnackCode {
	case 4, 5:
		return "Tencent refused the signature: check mqtt.tencent.device_secret (the console's device key, base64, copied whole), " +
			"product_id and device_name, and the clock: the user name carries an expiry that must lie in the future"
	}
	if t.Stat != 0 && t.Up < 2*time.Minute {
		return "Tencent allows one connection per device: another device or program logged in with the same credentials"
	}
	return ""
}
