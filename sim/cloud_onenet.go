package sim

import (
	"crypto/hmac"
	"encoding/base64"
	"net/url"
	"strconv"
	"time"
)

// onenetVersion is the token version the platform documents.
const onenetVersion = "2018-10-31"

// verifyOneNET checks a OneNET (thing model) device login (reference 3.5): client id the device
// name, user name the product id, password the token
// `version=2018-10-31&res=products%2F<pid>%2Fdevices%2F<dn>&et=<expiry>&method=<md5|sha1|sha256>&sign=<sign>`,
// read as a URL query (so a sign with its `+`, `/`, `=` not escaped does not check out), with
// sign the base64 HMAC keyed by the base64-decoded device key over
// et+"\n"+method+"\n"+res+"\n"+version (res unescaped). An `et` that has passed is refused.
// Devices: "pid/dn" → the base64 device key.
func verifyOneNET(c cloudConnect, devices map[string]string) verdict {
	pid, dn := c.username, c.clientID
	key, known := devices[pid+"/"+dn]
	if !known {
		return refuse(rcBadUserPassword, "no device with this name (client id) in this product (user name)")
	}
	q, err := url.ParseQuery(string(c.password))
	if err != nil {
		return refuse(rcBadUserPassword, "token is not a URL query: %v", err)
	}
	for _, f := range []string{"version", "res", "et", "method", "sign"} {
		if len(q[f]) != 1 {
			return refuse(rcBadUserPassword, "token has %d %q fields, want 1", len(q[f]), f)
		}
	}
	version, res, et, method, sign := q.Get("version"), q.Get("res"), q.Get("et"), q.Get("method"), q.Get("sign")
	if version != onenetVersion {
		return refuse(rcBadUserPassword, "token version %q is not %s", version, onenetVersion)
	}
	if want := "products/" + pid + "/devices/" + dn; res != want {
		return refuse(rcBadUserPassword, "token res %q is not %q", res, want)
	}
	if !digits(et) {
		return refuse(rcBadUserPassword, "token et %q is not UNIX seconds", et)
	}
	exp, err := strconv.ParseInt(et, 10, 64)
	if err != nil {
		return refuse(rcBadUserPassword, "token et %q out of range", et)
	}
	expires := time.Unix(exp, 0)
	if !c.now.Before(expires) {
		return refuse(rcBadUserPassword, "token expired at %s (now %s)", expires.UTC().Format(time.RFC3339), c.now.UTC().Format(time.RFC3339))
	}
	h := newHash(method)
	if h == nil || method != "md5" && method != "sha1" && method != "sha256" {
		return refuse(rcBadUserPassword, "token method %q is not md5, sha1 or sha256", method)
	}
	k, err := base64.StdEncoding.DecodeString(key)
	if err != nil {
		return refuse(rcBadUserPassword, "the device's key is not base64")
	}
	got, err := base64.StdEncoding.DecodeString(sign)
	if err != nil {
		return refuse(rcBadUserPassword, "token sign is not base64 once unescaped (is it URL-escaped?)")
	}
	if !hmac.Equal(got, mac(h, k, et+"\n"+method+"\n"+res+"\n"+version)) {
		return refuse(rcBadUserPassword, "token sign does not match (%s keyed by the base64-decoded device key)", method)
	}
	return accept(pid+"/"+dn, expires)
}
