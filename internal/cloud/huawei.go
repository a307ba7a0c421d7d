package cloud

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"time"
)

// Huawei Cloud IoTDA, secret authentication (clouds.md 3.4).

// CredHuaweiDeviceSecret is the systemd credential mqtt.huawei.device_secret is read from by default.
const CredHuaweiDeviceSecret = "huawei-device-secret"

// HuaweiCA is the root list Huawei's device SDK presets (resources/root.pem): GlobalSign Root
// R3, R6, R46 and DigiCert Global Root CA, with the GlobalSign RSA OV SSL CA 2018 intermediate.
const HuaweiCA = "huaweicloud-iot-root-ca-list.pem"

func huaweiSpec() spec {
	return spec{
		title: "Huawei Cloud IoTDA",
		fields: []Field{
			{Key: "device_id", Kind: String, Required: true, Console: "device ID (设备ID, usually <product_id>_<node_id>)"},
			{Key: "device_secret", Kind: Secret, Required: true, Cred: CredHuaweiDeviceSecret, Console: "device secret (密钥) set at registration"},
			{Key: "endpoint", Kind: String, Console: "MQTT access address from Overview → Access Details (接入信息), e.g. xxxxxx.st1.iotda-device.cn-north-4.myhuaweicloud.com", Host: true},
			{Key: "check_timestamp", Kind: Bool, Console: "sign type 1: the platform checks the hour in the client id (default true, as Huawei's SDK)"},
		},
		build: buildHuawei,
		signs: map[string]string{
			"client_id": "carries the hour Huawei's password is keyed with; it is <device_id>_0_<sign type>_<YYYYMMDDHH>",
			"password":  "is the HMAC Huawei checks; give mqtt.huawei.device_secret_file instead",
		},
	}
}

type huawei struct {
	base
	deviceID, secret string
	sigType          string
}

func buildHuawei(r *reader) Platform {
	h := &huawei{}
	h.deviceID = r.name("device_id", "")
	h.secret = r.secret("device_secret")
	h.sigType = "0"
	if r.boolean("check_timestamp", true) {
		h.sigType = "1"
	}
	host := r.str("endpoint", "")
	switch {
	case r.has("endpoint"):
		if err := checkHost(host); err != nil {
			r.fail("endpoint", "%v", err)
		}
	case r.s.Override.Host == "":
		r.fail("endpoint", "required: the MQTT access address from the console (Overview → Access Details), or set mqtt.host")
	}
	ep := Endpoint{Host: host, Port: 1883}
	if r.s.TLS {
		ep.Port, ep.TLS, ep.CAFile = 8883, true, HuaweiCA
	}
	dev := "$oc/devices/" + h.deviceID + "/sys/"
	h.base = base{
		name: "huawei",
		ep:   ep,
		topics: map[string]string{
			"device_id":     h.deviceID,
			"property_post": dev + "properties/report",
			"property_set":  dev + "properties/set/#",
			"property_get":  dev + "properties/get/#",
			"command":       dev + "commands/#",
			"event_post":    dev + "events/up",
			"message_up":    dev + "messages/up",
			"message_down":  dev + "messages/down",
		},
		limits: Limits{
			KeepAliveMin: 30 * time.Second, KeepAliveMax: 1200 * time.Second,
			MaxQoS: 1, Retain: false,
			MaxClientID: 256, MaxUsername: 256, MaxPassword: 256,
			Why: map[string]string{
				"keepalive": "Huawei IoTDA refuses a keep-alive outside 30s–1200s",
				"qos":       "Huawei IoTDA has no QoS 2",
				"retain":    "Huawei IoTDA does not support retained messages",
				"client_id": "Huawei IoTDA takes a client id of at most 256 bytes",
				"username":  "Huawei IoTDA takes a user name of at most 256 bytes",
			},
		},
		hint: huaweiHint,
	}
	return h
}

// Identity implements Platform: the client id carries the current UTC hour, which keys the
// password. The password does not expire once the session is up.
func (h *huawei) Identity(now time.Time) (Identity, error) {
	if now.Unix() <= 0 {
		return Identity{}, errors.New("huawei: the clock is not set (before 1970); the hour in the client id would be wrong")
	}
	hour := HuaweiHour(now)
	return h.apply(Identity{
		ClientID: h.deviceID + "_0_" + h.sigType + "_" + hour,
		Username: h.deviceID,
		Password: HuaweiPassword(h.secret, hour),
	}), nil
}

// HuaweiHour is now's UTC hour as YYYYMMDDHH.
func HuaweiHour(now time.Time) string { return now.UTC().Format("2006010215") }

// HuaweiPassword is hex(HMAC-SHA256(key = hour "YYYYMMDDHH", message = secret)): the hour is the
// KEY and the secret the message, the opposite of every other platform.
func HuaweiPassword(secret, hour string) string {
	mac := hmac.New(sha256.New, []byte(hour))
	mac.Write([]byte(secret))
	return hex.EncodeToString(mac.Sum(nil))
}

func huaweiHint(t Trouble) string {
	switch t.ConnackCode {
	case 4, 5:
		return "Huawei IoTDA refused the credentials: check mqtt.huawei.device_id and device_secret; with check_timestamp " +
			"the Pi's clock must be right to the hour (UTC)"
	}
	if t.Stat != 0 && t.Up < 2*time.Minute {
		return "Huawei IoTDA allows one connection per device: another device or program may use the same device id"
	}
	return ""
}
