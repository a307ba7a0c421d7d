package sim

import (
	"crypto/hmac"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"time"
)

// Alibaba Cloud dynamic registration, "one type, one secret" (reference 3.2), as the checking
// broker plays it: a CONNECT with authType=register in its client id is a registration, not a
// login. Written from the reference alone, like verifyAliyun; it shares nothing with the daemon.
//
//	client id  <id>|securemode=2,authType=register,random=<r>,signmethod=<m>|
//	user name  <deviceName>&<productKey>
//	password   hex(HMAC_m(ProductSecret, "deviceName"+dn+"productKey"+pk+"random"+r))
//
// CONNACK codes: the reference gives 2 (bad parameters, or TCP instead of TLS), 3 (server error)
// and 4 (bad signature). It names no code for a product without dynamic registration, a device
// not in the product, or a device already activated; the emulator answers those with 5 (not
// authorised), the MQTT 3.1.1 code for an identity the platform does not let in.
//
// After CONNACK 0 the platform publishes {"productKey","deviceName","deviceSecret"} on
// /ext/register to that client (no subscription needed) and drops the link 15 s later. A device
// registered but not yet activated (never logged in with its secret) gets the same secret again,
// so a device that lost power between the answer and storing it can register again; once it has
// logged in with the secret it is activated and a registration is refused.
//
// The variant without pre-registration ("免预注册", reference 3.2), for a product with RegNWL:
//
//	client id  <id>|securemode=-2,authType=regnwl,random=<r>,signmethod=<m>[,instanceId=<id>]|
//	user name, password as above; any device name (none is pre-registered)
//
// answered with {"productKey","deviceName","clientId","deviceToken"} on /ext/regnwl (where the
// SDK listens; RegistrationOptions.ReplyTopic can move it, e.g. to /ext/register, which the
// documentation's text names). The device then logs in with
//
//	client id  <clientId from the answer>|securemode=-2,authType=connwl|
//	user name  <deviceName>&<productKey>
//	password   <deviceToken> verbatim
//
// which activates it. The reference names no refusal codes for connwl; the emulator answers a
// wrong or absent token with 4 (bad user name or password) and another client id with 2.

// AliyunProduct is a product on the emulated Alibaba Cloud with dynamic registration enabled
// (Secret is its ProductSecret; "" means dynamic registration is off) and its pre-registered
// device names. Secrets the broker hands out are random, and reported by WithRegistrations.
type AliyunProduct struct {
	Key, Secret string
	Devices     []string
	// RegNWL turns on registration without pre-registration (authType=regnwl): any device name.
	RegNWL bool
}

// ParseAliyunProduct reads "PK=PRODUCTSECRET:DN[,DN...]", as ec600sim -aliyun-product takes it;
// a DN of "*" turns on registration without pre-registration (regnwl).
func ParseAliyunProduct(s string) (AliyunProduct, error) {
	pk, rest, ok1 := strings.Cut(s, "=")
	secret, names, ok2 := strings.Cut(rest, ":")
	if !ok1 || !ok2 || pk == "" || secret == "" || names == "" {
		return AliyunProduct{}, fmt.Errorf("aliyun product %q: want PK=PRODUCTSECRET:DN[,DN...] (DN * for regnwl)", pk)
	}
	p := AliyunProduct{Key: pk, Secret: secret}
	for _, n := range strings.Split(names, ",") {
		if n == "*" {
			p.RegNWL = true
		} else {
			p.Devices = append(p.Devices, n)
		}
	}
	return p, nil
}

// AliyunRegistration is one answered registration, for tests (WithAliyunRegistration's report).
type AliyunRegistration struct {
	// ClientID is the registration CONNECT's client id.
	ProductKey, DeviceName, DeviceSecret, ClientID string
	// AuthType is register or regnwl; a regnwl answer carries IssuedClientID and DeviceToken.
	AuthType, IssuedClientID, DeviceToken string
	Repeat                                bool // the same secret or token again (not activated yet)
}

// RegistrationOptions tune the emulated registration.
type RegistrationOptions struct {
	// Delay is how long after CONNACK the answer is published (0: at once): a window for a test
	// to kill the device between its registration CONNECT and the secret's arrival.
	Delay time.Duration
	// Drop is how long after CONNACK the platform closes the link; 0: 15 s, as Alibaba Cloud.
	Drop time.Duration
	// Report, when set, is called for every answered registration (from the broker's goroutines).
	Report func(AliyunRegistration)
	// ServerErrors refuses the first that many good registrations with CONNACK 3, the
	// reference's "server error".
	ServerErrors int
	// Silent accepts registrations (CONNACK 0) but never publishes the answer: the platform
	// only drops the link after Drop.
	Silent bool
	// ReplyTopic is where a regnwl answer is published; "" is /ext/regnwl.
	ReplyTopic string
	// InstanceID is the instance's id a regnwl client id must carry (instanceId=…); "" means
	// none may be given.
	InstanceID string
}

// WithAliyunRegistration turns on dynamic registration on an Aliyun checking broker
// (WithPlatform(PlatformAliyun, ...)) for products. Secrets issued are accepted for logins
// (reference 3.1) from then on, as the console's devices are.
func WithAliyunRegistration(o RegistrationOptions, products ...AliyunProduct) BrokerOption {
	return func(bo *brokerOptions) {
		r := &aliyunRegistrar{opts: o, products: map[string]AliyunProduct{}, issued: map[string]string{}, active: map[string]bool{},
			grants: map[string]nwlGrant{}}
		if r.opts.Drop <= 0 {
			r.opts.Drop = 15 * time.Second
		}
		for _, p := range products {
			r.products[p.Key] = p
		}
		bo.registrar = r
	}
}

// aliyunRegistrar is the registration state of the emulated platform.
type aliyunRegistrar struct {
	opts     RegistrationOptions
	products map[string]AliyunProduct // by ProductKey (read only)

	mu     sync.Mutex
	issued map[string]string   // "pk/dn" → DeviceSecret handed out
	grants map[string]nwlGrant // "pk/dn" → regnwl client id and device token handed out
	active map[string]bool     // "pk/dn" → logged in with its secret or token
	// serverErrors counts the registrations refused with CONNACK 3 so far (ServerErrors).
	serverErrors int
}

// nwlGrant is what a regnwl registration hands out.
type nwlGrant struct{ clientID, token string }

// isRegistration reports whether a client id asks for a registration (authType register or
// regnwl), which verifyRegistration answers instead of a login check.
func isRegistration(clientID string) bool {
	_, params, ok := aliyunClientID(clientID)
	return ok && (params["authType"] == "register" || params["authType"] == "regnwl")
}

// verifyRegistration checks a registration CONNECT and, when it is good, returns the answer to
// publish (topic, payload) after CONNACK 0.
func (r *aliyunRegistrar) verifyRegistration(c cloudConnect) (v verdict, topic string, payload []byte) {
	_, params, ok := aliyunClientID(c.clientID)
	if !ok {
		return refuse(rcIdentifierRejected, "client id is not <id>|securemode=…,authType=…,random=…,signmethod=…|"), "", nil
	}
	nwl := params["authType"] == "regnwl"
	switch {
	case !c.tls:
		return refuse(rcIdentifierRejected, "registration is TLS only: TCP was used instead of TLS"), "", nil
	case nwl && params["securemode"] != "-2":
		return refuse(rcIdentifierRejected, "authType=regnwl needs securemode=-2, got %q", params["securemode"]), "", nil
	case nwl && params["instanceId"] != r.opts.InstanceID:
		return refuse(rcIdentifierRejected, "instanceId=%q is not this instance's", params["instanceId"]), "", nil
	case !nwl && params["securemode"] != "2":
		return refuse(rcIdentifierRejected, "registration needs securemode=2, got %q", params["securemode"]), "", nil
	}
	rnd, method := params["random"], params["signmethod"]
	if !digits(rnd) {
		return refuse(rcIdentifierRejected, "random=%q is not a number", rnd), "", nil
	}
	h := newHash(method)
	if method == "" || h == nil || !strings.HasPrefix(method, "hmac") {
		return refuse(rcIdentifierRejected, "signmethod=%q is not hmacmd5, hmacsha1 or hmacsha256", method), "", nil
	}
	dn, pk, ok := aliyunUser(c.username)
	if !ok {
		return refuse(rcIdentifierRejected, "user name is not <deviceName>&<productKey>"), "", nil
	}
	prod, known := r.products[pk]
	if !known || prod.Secret == "" {
		return refuse(rcNotAuthorized, "product %s does not have dynamic registration enabled", pk), "", nil
	}
	got, err := hex.DecodeString(string(c.password))
	if err != nil || !hmac.Equal(got, mac(h, []byte(prod.Secret), "deviceName"+dn+"productKey"+pk+"random"+rnd)) {
		return refuse(rcBadUserPassword, "signature does not match (%s keyed by the ProductSecret over deviceName, productKey, random)", method), "", nil
	}
	found := false
	for _, d := range prod.Devices {
		found = found || d == dn
	}
	switch {
	case nwl && !prod.RegNWL:
		return refuse(rcNotAuthorized, "product %s does not have registration without pre-registration (regnwl) enabled", pk), "", nil
	case !nwl && !found:
		return refuse(rcNotAuthorized, "device %s is not registered in product %s (pre-registration is required)", dn, pk), "", nil
	}
	key := pk + "/" + dn
	r.mu.Lock()
	if r.serverErrors < r.opts.ServerErrors {
		r.serverErrors++
		r.mu.Unlock()
		return refuse(rcServerUnavailable, "server error (emulated, %d of %d)", r.serverErrors, r.opts.ServerErrors), "", nil
	}
	if r.opts.Silent {
		r.mu.Unlock()
		return verdict{}, "", nil
	}
	if r.active[key] {
		r.mu.Unlock()
		return refuse(rcNotAuthorized, "device %s is already activated: dynamic registration answers a device once", dn), "", nil
	}
	if nwl {
		g, repeat := r.grants[key]
		if !repeat {
			// Another client id than the device's own, so that a device logging in with its own
			// is caught.
			g = nwlGrant{clientID: pk + "." + dn, token: randomHex()}
			r.grants[key] = g
		}
		r.mu.Unlock()
		payload, _ = json.Marshal(map[string]string{"productKey": pk, "deviceName": dn, "clientId": g.clientID, "deviceToken": g.token})
		if r.opts.Report != nil {
			r.opts.Report(AliyunRegistration{ProductKey: pk, DeviceName: dn, ClientID: c.clientID, AuthType: "regnwl",
				IssuedClientID: g.clientID, DeviceToken: g.token, Repeat: repeat})
		}
		topic = r.opts.ReplyTopic
		if topic == "" {
			topic = "/ext/regnwl"
		}
		return verdict{}, topic, payload
	}
	secret, repeat := r.issued[key]
	if !repeat {
		secret = randomHex()
		r.issued[key] = secret
	}
	r.mu.Unlock()
	payload, _ = json.Marshal(map[string]string{"productKey": pk, "deviceName": dn, "deviceSecret": secret})
	if r.opts.Report != nil {
		r.opts.Report(AliyunRegistration{ProductKey: pk, DeviceName: dn, DeviceSecret: secret, ClientID: c.clientID, AuthType: "register", Repeat: repeat})
	}
	return verdict{}, "/ext/register", payload
}

// devices returns the platform's registry: the given devices and the secrets handed out.
func (r *aliyunRegistrar) devices(given map[string]string) map[string]string {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.issued) == 0 {
		return given
	}
	all := make(map[string]string, len(given)+len(r.issued))
	for k, v := range given {
		all[k] = v
	}
	for k, v := range r.issued {
		all[k] = v
	}
	return all
}

// activate marks a device that logged in with its secret or token as activated.
func (r *aliyunRegistrar) activate(device string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	_, secret := r.issued[device]
	_, token := r.grants[device]
	if secret || token {
		r.active[device] = true
	}
}

// randomHex is 16 random bytes in hex: a secret or token the platform hands out.
func randomHex() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// isConnWL reports whether a client id is the login after a regnwl registration
// (authType=connwl), which verifyConnWL checks instead of a signature.
func isConnWL(clientID string) bool {
	_, params, ok := aliyunClientID(clientID)
	return ok && params["authType"] == "connwl"
}

// verifyConnWL checks a connwl login: TLS, securemode=-2, the client id and the device token
// the device's regnwl registration was answered with.
func (r *aliyunRegistrar) verifyConnWL(c cloudConnect) verdict {
	id, params, _ := aliyunClientID(c.clientID)
	switch {
	case !c.tls:
		return refuse(rcIdentifierRejected, "authType=connwl is TLS only: TCP was used instead of TLS")
	case params["securemode"] != "-2":
		return refuse(rcIdentifierRejected, "authType=connwl needs securemode=-2, got %q", params["securemode"])
	case !inRange(c.keepalive, 30, 1200):
		return refuse(rcIdentifierRejected, "keep-alive %ds is outside 30-1200s", c.keepalive)
	}
	dn, pk, ok := aliyunUser(c.username)
	if !ok {
		return refuse(rcBadUserPassword, "user name is not <deviceName>&<productKey>")
	}
	r.mu.Lock()
	g, known := r.grants[pk+"/"+dn]
	r.mu.Unlock()
	switch {
	case !known:
		return refuse(rcBadUserPassword, "device %s of product %s has no device token: it did not register with regnwl", dn, pk)
	case id != g.clientID:
		return refuse(rcIdentifierRejected, "client id %q is not the one the registration answered", id)
	case len(c.password) == 0 || !hmac.Equal(c.password, []byte(g.token)):
		return refuse(rcBadUserPassword, "the password is not the device token the registration answered")
	}
	return accept(pk+"/"+dn, time.Time{})
}
