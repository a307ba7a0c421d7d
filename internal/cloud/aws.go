package cloud

import (
	"strings"
	"time"
)

// AWS IoT Core, X.509 client certificate on 8883 (clouds.md 3.6).

// AWSCA is Amazon Root CA 1, the root of the ATS data endpoints' certificates.
const AWSCA = "AmazonRootCA1.pem"

func awsSpec() spec {
	return spec{
		title: "AWS IoT Core",
		fields: []Field{
			{Key: "endpoint", Kind: String, Console: "device data endpoint (Settings → Device data endpoint), <prefix>-ats.iot.<region>.amazonaws.com", Host: true},
			{Key: "thing_name", Kind: String, Required: true, Console: "thing name (Manage → Things)"},
			{Key: "client_id", Kind: String, Console: "MQTT client id the certificate's policy allows (default: the thing name)"},
		},
		build: buildAWS,
	}
}

type aws struct {
	base
	clientID string
}

func buildAWS(r *reader) Platform {
	a := &aws{}
	thing := r.name("thing_name", "/#+")
	a.clientID = thing
	if r.has("client_id") {
		a.clientID = r.name("client_id", "")
	}
	host := r.str("endpoint", "")
	switch {
	case r.has("endpoint"):
		if err := checkHost(host); err != nil {
			r.fail("endpoint", "%v", err)
		} else if !strings.Contains(host, "-ats.iot.") {
			r.fail("endpoint", "%q is not an ATS endpoint (<prefix>-ats.iot.<region>.amazonaws.com): the legacy endpoint's "+
				"certificates lead to a Symantec root that gatewayd does not ship; copy the endpoint from Settings → Device data endpoint", host)
		}
	case r.s.Override.Host == "":
		r.fail("endpoint", "required: the device data endpoint (Settings → Device data endpoint), or set mqtt.host")
	}
	shadow := "$aws/things/" + thing + "/shadow/"
	a.base = base{
		name: "aws",
		// Mutual TLS is the only authentication that works on 8883 without ALPN.
		ep: Endpoint{Host: host, Port: 8883, TLS: true, CAFile: AWSCA, ClientCert: true},
		topics: map[string]string{
			"thing_name":          thing,
			"property_post":       shadow + "update",
			"property_set":        shadow + "update/delta",
			"shadow_accepted":     shadow + "update/accepted",
			"shadow_rejected":     shadow + "update/rejected",
			"shadow_get":          shadow + "get",
			"shadow_get_accepted": shadow + "get/accepted",
		},
		limits: Limits{
			KeepAliveMin: 30 * time.Second, KeepAliveMax: 1200 * time.Second,
			MaxQoS: 1, Retain: true,
			MaxClientID: 128,
			Why: map[string]string{
				"keepalive": "AWS IoT Core takes a keep-alive of 30s–1200s",
				"qos":       "AWS IoT Core has no QoS 2 (a QoS 2 publish or subscription gets no answer)",
				"client_id": "AWS IoT Core takes a client id of at most 128 bytes",
			},
		},
		hint: awsHint,
	}
	return a
}

// Identity implements Platform: the client id only; the certificate authenticates the device.
func (a *aws) Identity(time.Time) (Identity, error) {
	return a.apply(Identity{ClientID: a.clientID}), nil
}

func awsHint(t Trouble) string {
	if t.ConnackCode != 0 || t.Stat != 0 && t.Up < 2*time.Minute {
		return "AWS IoT Core refuses or drops a connection whose certificate is inactive or whose policy does not allow iot:Connect " +
			"for this client id, and drops the older connection when another one uses the same client id: check the certificate, " +
			"its policy and mqtt.aws.thing_name / client_id"
	}
	return ""
}
