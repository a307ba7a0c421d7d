package cloud

import (
	"crypto/hmac"
	"crypto/md5"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"hash"
	"strconv"
	"strings"
	"time"
)

// China Mobile OneNET (new platform, MQTT thing model), token authentication (clouds.md 3.5).

// OneNET constants.
const (
	CredOneNETDeviceKey = "onenet-device-key"
	// OneNETVersion is the token algorithm version the SDK signs.
	OneNETVersion = "2018-10-31"
	// OneNETCA is China Mobile's private "OneNET MQTTS" root (O=CMIOT, to 2049-05-21), as its
	// device SDK pins it.
	OneNETCA = "OneNET-MQTTS-CA.pem"
)

func onenetSpec() spec {
	return spec{
		title: "China Mobile OneNET",
		fields: []Field{
			{Key: "product_id", Kind: String, Required: true, Console: "product ID (产品ID)"},
			{Key: "device_name", Kind: String, Required: true, Console: "device name (设备名称)"},
			{Key: "device_key", Kind: Secret, Required: true, Cred: CredOneNETDeviceKey, Console: "device key, base64 (设备密钥 — the device-level key, not the product's access key)"},
			{Key: "sign_method", Kind: String, Console: "sha256 (default), sha1 or md5", OneOf: []string{"sha256", "sha1", "md5"}},
			{Key: "lifetime", Kind: Duration, Console: "how long each token is valid (default 24h); the session renews it before it runs out"},
		},
		build: buildOneNET,
		signs: map[string]string{
			"password": "is the token OneNET checks; give mqtt.onenet.device_key_file instead",
		},
	}
}

type onenet struct {
	base
	productID, deviceName string
	key                   []byte // the base64-DECODED device key
	method                string
	lifetime              time.Duration
}

func buildOneNET(r *reader) Platform {
	o := &onenet{}
	o.productID = r.name("product_id", "/&=?#%+ ")
	o.deviceName = r.name("device_name", "/&=?#%+ ")
	if k := r.secret("device_key"); k != "" {
		b, err := base64.StdEncoding.DecodeString(k)
		if err != nil || len(b) == 0 {
			r.fail("device_key", "is not base64 (value not shown): OneNET's device key is the base64 text the console shows, copied whole")
		}
		o.key = b
	}
	o.method = r.str("sign_method", "sha256")
	if onenetHash(o.method) == nil {
		r.fail("sign_method", "%q: OneNET takes sha256, sha1 or md5", o.method)
	}
	o.lifetime = r.lifetime("lifetime", DefaultLifetime)
	ep := Endpoint{Host: "mqtts.heclouds.com", Port: 1883}
	if r.s.TLS {
		ep = Endpoint{Host: "mqttstls.heclouds.com", Port: 8883, TLS: true, CAFile: OneNETCA}
	}
	dev := "$sys/" + o.productID + "/" + o.deviceName + "/thing/"
	o.base = base{
		name: "onenet",
		ep:   ep,
		topics: map[string]string{
			"product_id":          o.productID,
			"device_name":         o.deviceName,
			"property_post":       dev + "property/post",
			"property_post_reply": dev + "property/post/reply",
			"property_set":        dev + "property/set",
			"property_set_reply":  dev + "property/set_reply",
			"property_get":        dev + "property/get",
			"property_get_reply":  dev + "property/get_reply",
			"event_post":          dev + "event/post",
			"event_post_reply":    dev + "event/post/reply",
			"thing":               dev + "#",
		},
		limits: Limits{
			// UNVERIFIED (clouds.md 5): only a third-party restatement gives 10–1800 s and QoS 0/1.
			KeepAliveMin: 10 * time.Second, KeepAliveMax: 1800 * time.Second,
			MaxQoS: 1, Retain: true,
			Why: map[string]string{
				"keepalive": "OneNET takes a keep-alive of 10s–1800s (a third-party restatement of its documentation; unverified)",
				"qos":       "OneNET has no QoS 2 (a third-party restatement of its documentation; unverified)",
			},
		},
		hint: onenetHint,
	}
	return o
}

func onenetHash(method string) func() hash.Hash {
	switch method {
	case "md5":
		return md5.New
	case "sha1":
		return sha1.New
	case "sha256":
		return sha256.New
	}
	return nil
}

// Identity implements Platform: a token valid until now + lifetime.
func (o *onenet) Identity(now time.Time) (Identity, error) {
	if now.Unix() <= 0 {
		return Identity{}, errors.New("onenet: the clock is not set (before 1970); the token's expiry would be wrong")
	}
	exp := now.Add(o.lifetime).Truncate(time.Second)
	return o.apply(Identity{
		ClientID: o.deviceName,
		Username: o.productID,
		Password: onenetToken(o.productID, o.deviceName, o.key, exp.Unix(), o.method),
		Expires:  exp,
	}), nil
}

// OneNETToken is the device token:
//
//	version=2018-10-31&res=products%2F<pid>%2Fdevices%2F<dn>&et=<et>&method=<m>&sign=<urlesc(base64(HMAC_m(base64decode(key), et\nm\nres\nversion)))>
//
// The key is the base64-DECODED device key; the string signed holds res unescaped; sign and res
// are URL-escaped in the token.
func OneNETToken(productID, deviceName, key string, et int64, method string) (string, error) {
	k, err := base64.StdEncoding.DecodeString(key)
	if err != nil {
		return "", errors.New("onenet: the device key is not base64")
	}
	if onenetHash(method) == nil {
		return "", fmt.Errorf("onenet: sign method %q: want sha256, sha1 or md5", method)
	}
	return onenetToken(productID, deviceName, k, et, method), nil
}

func onenetToken(productID, deviceName string, key []byte, et int64, method string) string {
	res := "products/" + productID + "/devices/" + deviceName
	ets := strconv.FormatInt(et, 10)
	mac := hmac.New(onenetHash(method), key)
	mac.Write([]byte(ets + "\n" + method + "\n" + res + "\n" + OneNETVersion))
	sign := base64.StdEncoding.EncodeToString(mac.Sum(nil))
	return "version=" + OneNETVersion + "&res=" + onenetEscape(res) + "&et=" + ets + "&method=" + method + "&sign=" + onenetEscape(sign)
}

// onenetEscape escapes what OneNET's SDK escapes (dev_token.c): + space / ? % # & =.
func onenetEscape(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		switch c := s[i]; c {
		case '+', ' ', '/', '?', '%', '#', '&', '=':
			fmt.Fprintf(&b, "%%%02X", c)
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}

func onenetHint(t Trouble) string {
	switch t.ConnackCode {
	case 4, 5:
		return "OneNET refused the token: check mqtt.onenet.device_key (the device-level key, base64), product_id and device_name, " +
			"and the clock: the token's et must lie in the future"
	}
	return ""
}
