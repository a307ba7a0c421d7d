package sim

import (
	"crypto/hmac"
	"crypto/md5"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"hash"
	"slices"
	"sort"
	"strings"
	"time"
)

// The checking broker: a Broker made WithPlatform plays one IoT cloud's MQTT front door. It
// checks every CONNECT the way that platform does, recomputing the credentials from what arrived
// (the client id, user name and password, the transport) and the device registry it was given,
// and refuses what is wrong with the CONNACK return code the platform uses, saying why in its
// log. It is written from the project's cloud reference (clouds.md) alone and shares no code with
// the daemon's signing, so a misreading in one is caught by the other.
//
// CONNACK codes: the reference gives few of them (Aliyun registration: 2 bad parameters or TCP
// instead of TLS, 4 bad signature; ThingsBoard: 4 empty user name, 5 bad token; AWS: 7 when not
// authorised, which the module cannot report, so 5 here — see verifyAWS). Where it is silent the checker follows MQTT 3.1.1: 2 for a client id the platform
// cannot parse, 4 for a user name or password that does not check out (expired included), 5 for
// an identity the platform does not let in. Azure IoT Hub answers 5 for a bad or expired SAS
// token (what device SDK users report; not in the reference) and has no plain port at all (3 here).

// Platform names the checking broker knows (WithPlatform, ec600sim -platform).
const (
	PlatformAliyun      = "aliyun"
	PlatformTencent     = "tencent"
	PlatformHuawei      = "huawei"
	PlatformOneNET      = "onenet"
	PlatformAzure       = "azure"
	PlatformAWS         = "aws"
	PlatformThingsBoard = "thingsboard"
)

// Device is one device registered on the emulated platform: its identity as the platform's
// console names it, and its secret as the console shows it (not decoded). ID is, per platform:
//
//	aliyun       ProductKey/DeviceName          Secret: DeviceSecret
//	tencent      ProductId/DeviceName           Secret: DeviceSecret (base64, as shown)
//	huawei       device_id                      Secret: the device secret
//	onenet       ProductId/DeviceName           Secret: the device key (base64, as shown)
//	azure        hub-host/deviceId              Secret: the device's primary key (base64)
//	             (e.g. myhub.azure-devices.net/dev1)
//	aws          thing name (the client id)     Secret: the client certificate's CN, "" for any
//	thingsboard  access token                   Secret: unused
//
// A Device's ID and Secret never appear in the broker's log.
type Device struct {
	ID, Secret string
}

// ParseDevice reads "ID=SECRET" (ID alone for AWS and ThingsBoard), as ec600sim -device takes it.
func ParseDevice(s string) (Device, error) {
	id, secret, _ := strings.Cut(s, "=")
	if id == "" {
		return Device{}, fmt.Errorf("device %q: want ID=SECRET", s)
	}
	return Device{ID: id, Secret: secret}, nil
}

// Platforms lists the platform names WithPlatform takes.
func Platforms() []string {
	names := make([]string, 0, len(verifiers))
	for n := range verifiers {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// WithPlatform makes the broker check every CONNECT as the named platform does, against the
// devices given. NewBroker fails for a name Platforms does not list. Azure and AWS accept only a
// TLS listener's clients (WithTLS); AWS needs WithTLS to ask for client certificates.
func WithPlatform(name string, devices ...Device) BrokerOption {
	return func(o *brokerOptions) {
		o.platform = name
		o.devices = slices.Clone(devices)
	}
}

// WithBrokerClock makes the checking broker take the time from now (expiry checks); default
// time.Now.
func WithBrokerClock(now func() time.Time) BrokerOption {
	return func(o *brokerOptions) { o.now = now }
}

// BrokerEvent is one thing a broker saw happen to a client's session, for tests watching it
// (WithEvents).
type BrokerEvent struct {
	Kind     string    // "connect" (accepted), "refused", "kicked" (forced offline by a login of the same device), "disconnect" (a DISCONNECT packet) or "lost" (no DISCONNECT)
	ClientID string    // as sent
	Code     byte      // "refused": the CONNACK return code
	Why      string    // "refused": why, in words
	Expires  time.Time // "connect" on a checking broker: the credential's expiry; zero when it has none
	At       time.Time
}

// WithEvents calls fn (from the broker's goroutines, one call at a time per client) for every
// CONNECT accepted or refused and every session's end.
func WithEvents(fn func(BrokerEvent)) BrokerOption {
	return func(o *brokerOptions) { o.events = fn }
}

// cloudConnect is what a platform sees of one CONNECT.
type cloudConnect struct {
	clientID, username string
	password           []byte
	keepalive          uint16 // seconds
	tls                bool
	peer               *x509.Certificate // the verified client certificate; nil without one
	now                time.Time
}

// verdict is a platform's answer to a CONNECT: code 0 accepts.
type verdict struct {
	code    byte
	why     string
	expires time.Time // accepted: when the credential expires; zero when it does not
	// device is who was let in, as the platform keys its one connection per device (the
	// registry's ID): a later login of the same device forces this one offline.
	device string
}

// accept is the verdict that lets device in.
func accept(device string, expires time.Time) verdict {
	return verdict{device: device, expires: expires}
}

// refuse is a refusal with code, and why in words.
func refuse(code byte, format string, args ...any) verdict {
	return verdict{code: code, why: fmt.Sprintf(format, args...)}
}

// MQTT 3.1.1 CONNACK return codes.
const (
	rcIdentifierRejected = 2
	rcServerUnavailable  = 3
	rcBadUserPassword    = 4
	rcNotAuthorized      = 5
)

// tlsConnectionRequired is why a TLS-only platform refuses a plain connection.
const tlsConnectionRequired = "this platform has no plain MQTT port: connect with TLS"

// verifier checks one CONNECT against a platform's device registry (ID → Secret).
type verifier func(c cloudConnect, devices map[string]string) verdict

var verifiers = map[string]verifier{
	PlatformAliyun:      verifyAliyun,
	PlatformTencent:     verifyTencent,
	PlatformHuawei:      verifyHuawei,
	PlatformOneNET:      verifyOneNET,
	PlatformAzure:       verifyAzure,
	PlatformAWS:         verifyAWS,
	PlatformThingsBoard: verifyThingsBoard,
}

// newHash gives the hash of an HMAC sign method name ("hmacsha256", "sha256", ...); nil for
// one the platforms do not use.
func newHash(method string) func() hash.Hash {
	switch strings.TrimPrefix(strings.ToLower(method), "hmac") {
	case "md5":
		return md5.New
	case "sha1":
		return sha1.New
	case "sha256":
		return sha256.New
	}
	return nil
}

// mac is HMAC-h(key, msg).
func mac(h func() hash.Hash, key []byte, msg string) []byte {
	m := hmac.New(h, key)
	m.Write([]byte(msg))
	return m.Sum(nil)
}

// connTLS tells whether c is a TLS connection and gives its verified client certificate.
func connTLS(c any) (isTLS bool, peer *x509.Certificate) {
	tc, ok := c.(*tls.Conn)
	if !ok {
		return false, nil
	}
	st := tc.ConnectionState()
	if len(st.VerifiedChains) > 0 && len(st.PeerCertificates) > 0 {
		peer = st.PeerCertificates[0]
	}
	return true, peer
}

// inRange reports whether a keep-alive of ka seconds is within [lo, hi].
func inRange(ka uint16, lo, hi int) bool { return int(ka) >= lo && int(ka) <= hi }
