package sim

import "time"

// verifyAWS checks an AWS IoT Core X.509 login on 8883 (reference 3.6): TLS with a client
// certificate the broker verified, and no password (a user name and password login is AWS's
// custom authoriser, which it takes only on 443 with ALPN "mqtt"). With devices registered, the
// client id must be a thing's name (the usual policy binds the two) and, when the thing names a
// certificate CN, the client certificate must be that one; otherwise CONNACK 5. The reference
// (3.6) says AWS answers 7 there, a code MQTT 3.1.1 does not define: the module's table
// (ec600-at.md, +QMTCONN ret_code) stops at 5 and the emulator's MQTT client (paho) takes an
// undefined code for success, so the emulator says 5. Devices: thing name → certificate CN ("" for any).
func verifyAWS(c cloudConnect, devices map[string]string) verdict {
	switch {
	case !c.tls:
		return refuse(rcServerUnavailable, tlsConnectionRequired)
	case c.peer == nil:
		return refuse(rcNotAuthorized, "no client certificate: AWS IoT Core on 8883 authenticates devices by X.509 certificate")
	case len(c.password) > 0:
		return refuse(rcBadUserPassword, "a password on the X.509 port: user name/password (custom authoriser) is only taken on 443 with ALPN mqtt")
	}
	if len(devices) > 0 {
		cn, ok := devices[c.clientID]
		switch {
		case !ok:
			return refuse(rcNotAuthorized, "client id %q is no thing's name: the policy does not allow it", c.clientID)
		case cn != "" && cn != c.peer.Subject.CommonName:
			return refuse(rcNotAuthorized, "the client certificate (CN %q) is not attached to thing %q", c.peer.Subject.CommonName, c.clientID)
		}
	}
	return accept(c.clientID, time.Time{})
}
