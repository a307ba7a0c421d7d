package cloud

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Azure IoT Hub, SAS token over MQTT (clouds.md 3.7).

// Azure constants.
const (
	CredAzureDeviceKey = "azure-device-key"
	// AzureAPIVersion is the api-version the MQTT documentation names in the user name.
	AzureAPIVersion = "2021-04-12"
	// AzureCA is DigiCert Global Root G2, the root IoT Hub's certificates lead to since 2023.
	AzureCA = "DigiCertGlobalRootG2.pem"
	// azureSuffix ends every IoT hub's host name.
	azureSuffix = ".azure-devices.net"
)

func azureSpec() spec {
	return spec{
		title: "Azure IoT Hub",
		fields: []Field{
			{Key: "hub", Kind: String, Required: true, Console: "IoT hub name (or its host name <hub>.azure-devices.net)", Host: true},
			{Key: "device_id", Kind: String, Required: true, Console: "Device ID"},
			{Key: "device_key", Kind: Secret, Required: true, Cred: CredAzureDeviceKey, Console: "Primary key of the device (base64)"},
			{Key: "lifetime", Kind: Duration, Console: "how long each SAS token is valid (default 24h); the session renews it before it runs out"},
			{Key: "api_version", Kind: String, Console: "api-version in the user name (default " + AzureAPIVersion + ")"},
		},
		build: buildAzure,
		signs: map[string]string{
			"password": "is the SAS token IoT Hub checks; give mqtt.azure.device_key_file instead",
		},
	}
}

type azure struct {
	base
	host, deviceID, apiVersion string
	key                        []byte // the base64-DECODED device key
	lifetime                   time.Duration
}

func buildAzure(r *reader) Platform {
	a := &azure{}
	hub := r.name("hub", "/")
	a.host = hub
	if !strings.HasSuffix(hub, azureSuffix) {
		a.host = hub + azureSuffix
	}
	if r.has("hub") && hub != "" {
		if err := checkHost(a.host); err != nil {
			r.fail("hub", "%v", err)
		}
	}
	a.deviceID = r.name("device_id", "/")
	if k := r.secret("device_key"); k != "" {
		b, err := base64.StdEncoding.DecodeString(k)
		if err != nil || len(b) == 0 {
			r.fail("device_key", "is not base64 (value not shown): the device's primary key is the base64 text the portal shows, copied whole")
		}
		a.key = b
	}
	a.lifetime = r.lifetime("lifetime", DefaultLifetime)
	a.apiVersion = r.name("api_version", "&?/ ")
	if !r.has("api_version") {
		a.apiVersion = AzureAPIVersion
	}
	id := a.deviceID
	a.base = base{
		name: "azure",
		// TLS is mandatory: IoT Hub offers no plain MQTT port.
		ep: Endpoint{Host: a.host, Port: 8883, TLS: true, CAFile: AzureCA},
		topics: map[string]string{
			"device_id":     id,
			"telemetry":     "devices/" + id + "/messages/events/",
			"property_post": "$iothub/twin/PATCH/properties/reported/?$rid=1",
			"property_set":  "$iothub/twin/PATCH/properties/desired/#",
			"twin_response": "$iothub/twin/res/#",
			"method":        "$iothub/methods/POST/#",
			"c2d":           "devices/" + id + "/messages/devicebound/#",
		},
		limits: Limits{
			KeepAliveMax: 1177 * time.Second, KeepAliveOff: true,
			MaxQoS: 1, Retain: false,
			Why: map[string]string{
				"keepalive": "Azure IoT Hub takes a keep-alive of at most 1177s",
				"qos":       "Azure IoT Hub closes the connection on a QoS 2 publish (and grants QoS 2 subscriptions as QoS 1)",
				"retain":    "Azure IoT Hub does not keep retained messages (the flag only becomes an mqtt-retain property)",
			},
		},
		hint: azureHint,
	}
	return a
}

// Identity implements Platform: a SAS token valid until now + lifetime.
func (a *azure) Identity(now time.Time) (Identity, error) {
	if now.Unix() <= 0 {
		return Identity{}, errors.New("azure: the clock is not set (before 1970); the token's expiry would be wrong")
	}
	exp := now.Add(a.lifetime).Truncate(time.Second)
	return a.apply(Identity{
		ClientID: a.deviceID,
		Username: a.host + "/" + a.deviceID + "/?api-version=" + a.apiVersion,
		Password: azureSAS(azureEscape(a.host)+"%2Fdevices%2F"+azureEscape(a.deviceID), a.key, exp.Unix()),
		Expires:  exp,
	}), nil
}

// AzureSAS is the shared access signature for the resource URI resource with the device key
// (base64) and expiry se (Unix seconds):
//
//	SharedAccessSignature sr=<urlenc(resource)>&sig=<urlenc(base64(HMAC-SHA256(base64decode(key), urlenc(resource)+"\n"+se)))>&se=<se>
//
// The string signed holds sr URL-encoded, exactly as it appears in the token.
func AzureSAS(resource, key string, se int64) (string, error) {
	k, err := base64.StdEncoding.DecodeString(key)
	if err != nil {
		return "", errors.New("azure: the device key is not base64")
	}
	return azureSAS(azureEscape(resource), k, se), nil
}

func azureSAS(sr string, key []byte, se int64) string {
	ses := strconv.FormatInt(se, 10)
	sig := azureSignature(key, sr+"\n"+ses)
	return "SharedAccessSignature sr=" + sr + "&sig=" + azureEscape(sig) + "&se=" + ses
}

// azureSignature is base64(HMAC-SHA256(key, s)).
func azureSignature(key []byte, s string) string {
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte(s))
	return base64.StdEncoding.EncodeToString(mac.Sum(nil))
}

// azureEscape percent-encodes every byte but the unreserved ones (RFC 3986: letters, digits,
// - . _ ~), upper-case hex, as azure-sdk-for-c does.
func azureEscape(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '.' || c == '_' || c == '~' {
			b.WriteByte(c)
		} else {
			fmt.Fprintf(&b, "%%%02X", c)
		}
	}
	return b.String()
}

func azureHint(t Trouble) string {
	switch t.ConnackCode {
	case 4, 5:
		return "Azure IoT Hub refused the SAS token: check mqtt.azure.device_key (the device's primary key), hub and device_id, " +
			"and the clock: the token's se must lie in the future"
	}
	if t.Stat != 0 && t.Up < 2*time.Minute {
		return "Azure IoT Hub drops the older connection when the same device connects again (error 400027): another device or " +
			"program may use this device id"
	}
	return ""
}
