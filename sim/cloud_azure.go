package sim

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// sasPrefix starts an IoT Hub SAS token.
const sasPrefix = "SharedAccessSignature "

// verifyAzure checks an IoT Hub device login with a SAS token (reference 3.7): TLS only; client
// id the device id; user name `<hub host>/<deviceId>/?api-version=…`; password
// `SharedAccessSignature sr=<url-encoded host/devices/deviceId>&sig=<url-encoded base64>&se=<expiry>`
// read as a URL query. The signature is recomputed as the SDKs compute it: base64 HMAC-SHA256
// keyed by the base64-decoded device key over the URL-encoded (upper-case %2F) resource, "\n",
// se. An `se` that has passed is refused (5). Keep-alive at most 1177 s. Devices:
// "host/deviceId" → the device key.
func verifyAzure(c cloudConnect, devices map[string]string) verdict {
	if !c.tls {
		return refuse(rcServerUnavailable, tlsConnectionRequired)
	}
	var host, key string
	for id, k := range devices {
		if h, dev, ok := strings.Cut(id, "/"); ok && dev == c.clientID {
			host, key = h, k
			break
		}
	}
	if host == "" {
		return refuse(rcIdentifierRejected, "no device with this id (client id) in the hub")
	}
	if c.keepalive > 1177 {
		return refuse(rcIdentifierRejected, "keep-alive %ds is above 1177s", c.keepalive)
	}
	if want := host + "/" + c.clientID + "/?"; !strings.HasPrefix(c.username, want) || !strings.Contains(c.username[len(want):], "api-version=") {
		return refuse(rcNotAuthorized, "user name is not %s/%s/?api-version=…", host, c.clientID)
	}
	tok, ok := strings.CutPrefix(string(c.password), sasPrefix)
	if !ok {
		return refuse(rcNotAuthorized, "password is not a SharedAccessSignature token")
	}
	q, err := url.ParseQuery(tok)
	if err != nil {
		return refuse(rcNotAuthorized, "SAS token is not a URL query: %v", err)
	}
	for _, f := range []string{"sr", "sig", "se"} {
		if len(q[f]) != 1 {
			return refuse(rcNotAuthorized, "SAS token has %d %q fields, want 1", len(q[f]), f)
		}
	}
	sr, sig, se := q.Get("sr"), q.Get("sig"), q.Get("se")
	if h, dev, _ := strings.Cut(sr, "/devices/"); !strings.EqualFold(h, host) || dev != c.clientID {
		return refuse(rcNotAuthorized, "SAS token's sr %q is not %q", sr, host+"/devices/"+c.clientID)
	}
	exp, err := strconv.ParseInt(se, 10, 64)
	if err != nil || !digits(se) {
		return refuse(rcNotAuthorized, "SAS token's se %q is not UNIX seconds", se)
	}
	expires := time.Unix(exp, 0)
	if !c.now.Before(expires) {
		return refuse(rcNotAuthorized, "SAS token expired at %s (now %s)", expires.UTC().Format(time.RFC3339), c.now.UTC().Format(time.RFC3339))
	}
	k, err := base64.StdEncoding.DecodeString(key)
	if err != nil {
		return refuse(rcNotAuthorized, "the device's key is not base64")
	}
	got, err := base64.StdEncoding.DecodeString(sig)
	if err != nil {
		return refuse(rcNotAuthorized, "SAS token's sig is not base64 once unescaped (is it URL-encoded?)")
	}
	if !hmac.Equal(got, azureSign(k, url.QueryEscape(sr), se)) {
		return refuse(rcNotAuthorized, "SAS signature does not match (HMAC-SHA256 keyed by the base64-decoded device key over the URL-encoded sr and se)")
	}
	return accept(host+"/"+c.clientID, expires)
}

// azureSign is HMAC-SHA256(key, encodedResource+"\n"+expiry).
func azureSign(key []byte, encodedResource, expiry string) []byte {
	return mac(sha256.New, key, encodedResource+"\n"+expiry)
}
