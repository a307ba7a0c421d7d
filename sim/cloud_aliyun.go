package sim

import (
	"crypto/hmac"
	"encoding/hex"
	"strings"
	"time"
)

// verifyAliyun checks a one-device-one-secret login (reference 3.1): client id
// `<id>|securemode=<2|3>,signmethod=<hmacmd5|hmacsha1|hmacsha256>[,timestamp=<ms>][,…]|`, user
// name `<deviceName>&<productKey>`, password the hex (any case) HMAC keyed by the DeviceSecret's
// raw bytes over "clientId"+id+"deviceName"+dn+"productKey"+pk[+"timestamp"+ts]. securemode 2
// must come over TLS and 3 over plain TCP; keep-alive 30–1200 s. The timestamp is not
// freshness-checked (the platform does not, reference pitfall 5). Devices: "pk/dn" → secret.
func verifyAliyun(c cloudConnect, devices map[string]string) verdict {
	id, params, ok := aliyunClientID(c.clientID)
	if !ok {
		return refuse(rcIdentifierRejected, "client id is not <id>|securemode=…,signmethod=…|")
	}
	mode := params["securemode"]
	switch {
	case mode == "":
		return refuse(rcIdentifierRejected, "client id has no securemode")
	case mode == "2" && !c.tls:
		return refuse(rcIdentifierRejected, "securemode=2 (TLS) over a plain TCP connection")
	case mode == "3" && c.tls:
		return refuse(rcIdentifierRejected, "securemode=3 (TCP) over a TLS connection; TLS is securemode=2")
	case mode != "2" && mode != "3":
		return refuse(rcIdentifierRejected, "securemode=%s is not a device login this emulator knows (2 TLS, 3 TCP)", mode)
	}
	method := params["signmethod"]
	if method == "" {
		method = "hmacmd5" // the platform's default
	}
	h := newHash(method)
	if h == nil || !strings.HasPrefix(method, "hmac") {
		return refuse(rcIdentifierRejected, "signmethod=%s is not hmacmd5, hmacsha1 or hmacsha256", method)
	}
	ts, hasTS := params["timestamp"]
	if hasTS && !digits(ts) {
		return refuse(rcIdentifierRejected, "timestamp=%q is not milliseconds", ts)
	}
	if !inRange(c.keepalive, 30, 1200) {
		return refuse(rcIdentifierRejected, "keep-alive %ds is outside 30-1200s", c.keepalive)
	}
	dn, pk, ok := aliyunUser(c.username)
	if !ok {
		return refuse(rcBadUserPassword, "user name is not <deviceName>&<productKey>")
	}
	secret, known := devices[pk+"/"+dn]
	if !known {
		return refuse(rcBadUserPassword, "no such device in this product")
	}
	got, err := hex.DecodeString(string(c.password))
	if err != nil {
		return refuse(rcBadUserPassword, "password is not hex")
	}
	if !hmac.Equal(got, aliyunSign(method, secret, id, dn, pk, ts, hasTS)) {
		return refuse(rcBadUserPassword, "signature does not match (%s keyed by the DeviceSecret over clientId, deviceName, productKey%s)",
			method, map[bool]string{true: ", timestamp", false: ""}[hasTS])
	}
	return accept(pk+"/"+dn, time.Time{})
}

// aliyunSign is the password's HMAC.
func aliyunSign(method, secret, id, dn, pk, ts string, hasTS bool) []byte {
	msg := "clientId" + id + "deviceName" + dn + "productKey" + pk
	if hasTS {
		msg += "timestamp" + ts
	}
	return mac(newHash(method), []byte(secret), msg)
}

// aliyunUser splits the user name <deviceName>&<productKey>; ok is false when it is not that.
func aliyunUser(s string) (dn, pk string, ok bool) {
	dn, pk, ok = strings.Cut(s, "&")
	return dn, pk, ok && dn != "" && pk != "" && !strings.Contains(pk, "&")
}

// aliyunClientID splits `<id>|k=v,k=v|`.
func aliyunClientID(s string) (id string, params map[string]string, ok bool) {
	id, rest, ok := strings.Cut(s, "|")
	if !ok || id == "" || len(id) > 64 || !strings.HasSuffix(rest, "|") {
		return "", nil, false
	}
	params = map[string]string{}
	for _, kv := range strings.Split(strings.TrimSuffix(rest, "|"), ",") {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			return "", nil, false
		}
		params[k] = v
	}
	return id, params, true
}

// digits reports whether s is a non-empty run of ASCII digits.
func digits(s string) bool {
	if s == "" {
		return false
	}
	for _, r := range s {
		if r < '0' || r > '9' {
			return false
		}
	}
	return true
}
