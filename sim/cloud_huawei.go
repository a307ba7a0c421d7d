package sim

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"strings"
	"time"
)

// huaweiSkew is how far from the broker's hour a sigType 1 (timestamp checked) client id's hour
// may be. The platform's window is not documented (UNVERIFIED); one hour either side.
const huaweiSkew = time.Hour

// verifyHuawei checks an IoTDA secret login (reference 3.4): client id
// `<device_id>_0_<sigType>_<YYYYMMDDHH>` (UTC hour), user name `<device_id>`, password the hex
// HMAC-SHA256 keyed by the hour string as it arrived in the client id, over the secret. sigType 1
// also checks the hour against the clock (huaweiSkew); keep-alive 30–1200 s. Devices:
// "device_id" → secret.
func verifyHuawei(c cloudConnect, devices map[string]string) verdict {
	id, sigType, hour, ok := huaweiClientID(c.clientID)
	if !ok {
		return refuse(rcIdentifierRejected, "client id is not <device_id>_0_<0|1>_<YYYYMMDDHH>")
	}
	t, err := time.Parse("2006010215", hour)
	if err != nil {
		return refuse(rcIdentifierRejected, "client id's hour %q is not YYYYMMDDHH", hour)
	}
	if sigType == "1" && (t.Before(c.now.Add(-huaweiSkew).Truncate(time.Hour)) || t.After(c.now.Add(huaweiSkew))) {
		return refuse(rcBadUserPassword, "timestamp %s is too far from the platform's time %s", hour, c.now.UTC().Format("2006010215"))
	}
	if !inRange(c.keepalive, 30, 1200) {
		return refuse(rcIdentifierRejected, "keep-alive %ds is outside 30-1200s", c.keepalive)
	}
	if c.username != id {
		return refuse(rcBadUserPassword, "user name is not the device id of the client id")
	}
	secret, known := devices[id]
	if !known {
		return refuse(rcBadUserPassword, "no such device")
	}
	got, err := hex.DecodeString(string(c.password))
	if err != nil {
		return refuse(rcBadUserPassword, "password is not hex")
	}
	if !hmac.Equal(got, mac(sha256.New, []byte(hour), secret)) {
		return refuse(rcBadUserPassword, "password does not match (HMAC-SHA256 keyed by the hour %s over the secret)", hour)
	}
	return accept(id, time.Time{})
}

// huaweiClientID splits `<device_id>_0_<sigType>_<YYYYMMDDHH>`.
func huaweiClientID(s string) (id, sigType, hour string, ok bool) {
	const tail = len("_0_1_2006010215")
	if len(s) <= tail {
		return "", "", "", false
	}
	id, rest := s[:len(s)-tail], s[len(s)-tail:]
	if !strings.HasPrefix(rest, "_0_") || rest[4] != '_' || (rest[3] != '0' && rest[3] != '1') || !digits(rest[5:]) {
		return "", "", "", false
	}
	return id, rest[3:4], rest[5:], true
}
