package cloud

import (
	"crypto/sha256"
	"encoding/hex"
	"time"
)

// ThingsBoard, access-token authentication (clouds.md 3.8).

// ThingsBoard constants.
const (
	CredThingsBoardToken = "thingsboard-access-token"
	// ThingsBoardCloud is ThingsBoard Cloud's MQTT host (EU: mqtt.eu.thingsboard.cloud).
	ThingsBoardCloud = "mqtt.thingsboard.cloud"
)

func thingsboardSpec() spec {
	return spec{
		title: "ThingsBoard",
		fields: []Field{
			{Key: "access_token", Kind: Secret, Required: true, Cred: CredThingsBoardToken, Console: "access token (device → Manage credentials)"},
			{Key: "host", Kind: String, Console: "your ThingsBoard server (default " + ThingsBoardCloud + ")", Host: true},
			{Key: "client_id", Kind: String, Console: "MQTT client id (any; default derived from the token)"},
		},
		build: buildThingsBoard,
		signs: map[string]string{
			"username": "is the ThingsBoard access token; give mqtt.thingsboard.access_token_file instead",
		},
	}
}

type thingsboard struct {
	base
	token, clientID string
}

func buildThingsBoard(r *reader) Platform {
	t := &thingsboard{}
	t.token = r.secret("access_token")
	for i := 0; i < len(t.token); i++ {
		if t.token[i] == '"' {
			r.fail("access_token", "holds '\"' at offset %d, which cannot be sent inside an AT command (value not shown)", i)
			break
		}
	}
	host := r.str("host", ThingsBoardCloud)
	if r.has("host") {
		if err := checkHost(host); err != nil {
			r.fail("host", "%v", err)
		}
	}
	if r.has("client_id") {
		t.clientID = r.name("client_id", "")
	} else {
		// Stable and different per device, without showing the token.
		sum := sha256.Sum256([]byte(t.token))
		t.clientID = "gatewayd-" + hex.EncodeToString(sum[:6])
	}
	ep := Endpoint{Host: host, Port: 1883}
	if r.s.TLS {
		ep.Port, ep.TLS = 8883, true
		ep.CAHint = "ThingsBoard's broker certificate is your server's; for ThingsBoard Cloud download ca-root.pem from the device's " +
			"\"Check connectivity\" page, and name it in mqtt.tls.ca_file"
	}
	const me = "v1/devices/me/"
	t.base = base{
		name: "thingsboard",
		ep:   ep,
		topics: map[string]string{
			"telemetry":          me + "telemetry",
			"property_post":      me + "attributes",
			"property_set":       me + "attributes",
			"attribute_response": me + "attributes/response/+",
			"rpc_request":        me + "rpc/request/+",
		},
		limits: Limits{MaxQoS: 1, Retain: true, Why: map[string]string{"qos": "ThingsBoard supports QoS 0 and 1 only"}},
		hint:   thingsboardHint,
	}
	return t
}

// Identity implements Platform: the access token is the user name (a secret: see
// Identity.SecretUsername); there is no password.
func (t *thingsboard) Identity(time.Time) (Identity, error) {
	return t.apply(Identity{ClientID: t.clientID, Username: t.token, SecretUsername: true}), nil
}

func thingsboardHint(t Trouble) string {
	switch t.ConnackCode {
	case 4:
		return "ThingsBoard got no access token: check mqtt.thingsboard.access_token_file"
	case 5:
		return "ThingsBoard does not know this access token: copy it again from the device's Manage credentials"
	}
	return ""
}
