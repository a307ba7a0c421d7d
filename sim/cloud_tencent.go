package sim

import (
	"crypto/hmac"
	"encoding/base64"
	"encoding/hex"
	"strconv"
	"strings"
	"time"
)

// verifyTencent checks an IoT Explorer / IoT Hub key login (reference 3.3): client id
// `<ProductId><DeviceName>`, user name `<ProductId><DeviceName>;<sdkappid>;<connid>;<expiry>`,
// password `<hex HMAC(base64-decoded DeviceSecret, user name)>;hmacsha256` (or `;hmacsha1`).
// The connid and the expiry are taken from the user name as it arrived; an expiry (UNIX seconds)
// that has passed is refused. Keep-alive 0–900 s. Devices: "pid/dn" → the base64 secret.
func verifyTencent(c cloudConnect, devices map[string]string) verdict {
	secret, known := "", false
	for id, s := range devices {
		if strings.Replace(id, "/", "", 1) == c.clientID {
			secret, known = s, true
			break
		}
	}
	if !known {
		return refuse(rcIdentifierRejected, "client id is not <ProductId><DeviceName> of a device of this product")
	}
	if !inRange(c.keepalive, 0, 900) {
		return refuse(rcIdentifierRejected, "keep-alive %ds is outside 0-900s", c.keepalive)
	}
	f := strings.Split(c.username, ";")
	if len(f) != 4 {
		return refuse(rcBadUserPassword, "user name is not <ProductId><DeviceName>;<sdkappid>;<connid>;<expiry>")
	}
	switch {
	case f[0] != c.clientID:
		return refuse(rcBadUserPassword, "user name starts with another device than the client id")
	case !digits(f[1]):
		return refuse(rcBadUserPassword, "sdkappid %q is not a number", f[1])
	case f[2] == "" || len(f[2]) > 5:
		return refuse(rcBadUserPassword, "connid %q is not 1-5 characters", f[2])
	case !digits(f[3]):
		return refuse(rcBadUserPassword, "expiry %q is not UNIX seconds", f[3])
	}
	exp, err := strconv.ParseInt(f[3], 10, 64)
	if err != nil {
		return refuse(rcBadUserPassword, "expiry %q out of range", f[3])
	}
	expires := time.Unix(exp, 0)
	if !c.now.Before(expires) {
		return refuse(rcBadUserPassword, "signature expired at %s (now %s)", expires.UTC().Format(time.RFC3339), c.now.UTC().Format(time.RFC3339))
	}
	sig, method, ok := strings.Cut(string(c.password), ";")
	if !ok {
		return refuse(rcBadUserPassword, "password has no ;hmacsha256 or ;hmacsha1 suffix")
	}
	if method != "hmacsha256" && method != "hmacsha1" {
		return refuse(rcBadUserPassword, "password's sign method %q is not hmacsha256 or hmacsha1", method)
	}
	key, err := base64.StdEncoding.DecodeString(secret)
	if err != nil {
		return refuse(rcBadUserPassword, "the device's secret is not base64")
	}
	got, err := hex.DecodeString(sig)
	if err != nil {
		return refuse(rcBadUserPassword, "password's signature is not hex")
	}
	if !hmac.Equal(got, mac(newHash(method), key, c.username)) {
		return refuse(rcBadUserPassword, "signature does not match (%s keyed by the base64-decoded DeviceSecret over the user name)", method)
	}
	return accept(c.clientID, expires)
}
