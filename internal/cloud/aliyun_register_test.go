package cloud

import (
	"strings"
	"testing"
)

// The reference's "one type, one secret" vector (clouds.md, Test vectors, computed from the
// ALI-KIT example inputs).
const (
	regPK     = "a1X2bEnP82z"
	regSecret = "7jluWm1zql7bt8qK"
	regDN     = "example1"
)

func TestAliyunRegisterSignVector(t *testing.T) {
	for _, tc := range []struct {
		m        SignMethod
		auth     string
		clientID string
		password string
	}{
		{HMACSHA256, "", "example1|securemode=2,authType=register,random=123,signmethod=hmacsha256|",
			"39f9b36c776e896ae1361c0f06812a155a9393e9ed4b6df03a6fd95ffa883aa4"},
		{HMACSHA1, AliyunRegister, "example1|securemode=2,authType=register,random=123,signmethod=hmacsha1|",
			"eb567763a1116c34ab7daafb3d287c970bc7deb4"},
		{HMACSHA256, AliyunRegNWL, "example1|securemode=-2,authType=regnwl,random=123,signmethod=hmacsha256|",
			"39f9b36c776e896ae1361c0f06812a155a9393e9ed4b6df03a6fd95ffa883aa4"},
	} {
		id, err := AliyunRegisterSign(AliyunRegisterParams{ProductKey: regPK, ProductSecret: regSecret, DeviceName: regDN,
			SignMethod: tc.m, AuthType: tc.auth, Random: 123})
		if err != nil {
			t.Fatalf("%s %s: %v", tc.m, tc.auth, err)
		}
		if id.ClientID != tc.clientID || id.Username != "example1&a1X2bEnP82z" || id.Password != tc.password {
			t.Errorf("%s %s: got %q %q %q, want %q %q %q", tc.m, tc.auth, id.ClientID, id.Username, id.Password,
				tc.clientID, "example1&a1X2bEnP82z", tc.password)
		}
	}
}

// The random must be signed: another random gives another password, and so does another
// product secret.
func TestAliyunRegisterSignRandomSigned(t *testing.T) {
	p := AliyunRegisterParams{ProductKey: regPK, ProductSecret: regSecret, DeviceName: regDN, Random: 123}
	a, _ := AliyunRegisterSign(p)
	p.Random = 124
	b, _ := AliyunRegisterSign(p)
	if a.Password == b.Password {
		t.Fatal("random 123 and 124 sign to the same password: the random is not signed")
	}
	if !strings.Contains(b.ClientID, "random=124,") {
		t.Fatalf("client id %q does not carry random=124", b.ClientID)
	}
	// Another product secret gives another password.
	p.Random = 123
	p.ProductSecret = regSecret + "x"
	c, _ := AliyunRegisterSign(p)
	if c.Password == a.Password {
		t.Fatal("the product secret does not change the password")
	}
}

func TestAliyunRegisterClientIDOverflow(t *testing.T) {
	max := AliyunRegisterMaxClientID(AliyunRegister, "")
	if max < 30 || max > 64 {
		t.Fatalf("max device-chosen client id %d is implausible", max)
	}
	p := AliyunRegisterParams{ProductKey: regPK, ProductSecret: regSecret, DeviceName: strings.Repeat("d", max),
		Random: 18446744073709551615}
	if id, err := AliyunRegisterSign(p); err != nil || len(id.ClientID) != ModuleMaxClientID {
		t.Fatalf("%d-byte name: %v (client id %d bytes)", max, err, len(id.ClientID))
	}
	p.DeviceName += "d"
	if _, err := AliyunRegisterSign(p); err == nil || !strings.Contains(err.Error(), "longer than the module's 128") {
		t.Fatalf("%d-byte name: err %v, want the module limit", max+1, err)
	}
	// The reference's case: a 64-byte id with a 10-digit random is 136 bytes.
	p.DeviceName, p.Random = strings.Repeat("d", 64), 1234567890
	if _, err := AliyunRegisterSign(p); err == nil {
		t.Fatal("64-byte id (136-byte client id per the reference) accepted")
	}
}

func TestParseAliyunRegistration(t *testing.T) {
	r, err := ParseAliyunRegistration(AliyunRegister, AliyunRegisterTopic, []byte(`{"productKey":"a1X2bEnP82z","deviceName":"example1","deviceSecret":"s3cr3t"}`), regPK, regDN)
	if err != nil || r.DeviceSecret != "s3cr3t" {
		t.Fatalf("%+v %v", r, err)
	}
	for _, bad := range []string{
		`{"productKey":"a1X2bEnP82z","deviceName":"other","deviceSecret":"s3cr3t"}`,
		`{"productKey":"a1X2bEnP82z","deviceName":"example1"}`,
		`{"productKey":"a1X2bEnP82z","deviceName":"example1","deviceSecret":"a\"b"}`,
		`not json`,
	} {
		if _, err := ParseAliyunRegistration(AliyunRegister, AliyunRegisterTopic, []byte(bad), regPK, regDN); err == nil {
			t.Errorf("%s accepted", bad)
		} else if strings.Contains(err.Error(), "s3cr3t") {
			t.Errorf("error quotes the secret: %v", err)
		}
	}
	// A register answer comes on /ext/register only.
	if _, err := ParseAliyunRegistration(AliyunRegister, AliyunRegNWLTopic, []byte(`{"productKey":"a1X2bEnP82z","deviceName":"example1","deviceSecret":"s3cr3t"}`), regPK, regDN); err == nil {
		t.Error("a register answer taken on /ext/regnwl")
	}
}

// The regnwl answer: on /ext/regnwl (the SDK) or /ext/register (the documentation's text), never
// elsewhere; it must carry a client id and a token the device can log in with.
func TestParseAliyunRegNWL(t *testing.T) {
	good := []byte(`{"productKey":"a1X2bEnP82z","deviceName":"example1","clientId":"c1","deviceToken":"t0k3n"}`)
	for _, topic := range []string{AliyunRegNWLTopic, AliyunRegisterTopic} {
		r, err := ParseAliyunRegistration(AliyunRegNWL, topic, good, regPK, regDN)
		if err != nil || r.ClientID != "c1" || r.DeviceToken != "t0k3n" {
			t.Fatalf("on %s: %+v %v", topic, r, err)
		}
	}
	if _, err := ParseAliyunRegistration(AliyunRegNWL, "/ext/other", good, regPK, regDN); err == nil {
		t.Error("a regnwl answer taken on /ext/other")
	}
	for _, bad := range []string{
		`{"productKey":"a1X2bEnP82z","deviceName":"example1","deviceSecret":"t0k3n"}`,
		`{"productKey":"a1X2bEnP82z","deviceName":"example1","clientId":"c1"}`,
		`{"productKey":"a1X2bEnP82z","deviceName":"example1","clientId":"a|b","deviceToken":"t0k3n"}`,
		`{"productKey":"a1X2bEnP82z","deviceName":"example1","clientId":"` + strings.Repeat("c", 98) + `","deviceToken":"t0k3n"}`,
		`{"productKey":"a1X2bEnP82z","deviceName":"example1","clientId":"c1","deviceToken":"` + strings.Repeat("t0k3n", 52) + `"}`,
	} {
		if _, err := ParseAliyunRegistration(AliyunRegNWL, AliyunRegNWLTopic, []byte(bad), regPK, regDN); err == nil {
			t.Errorf("%.100s accepted", bad)
		} else if strings.Contains(err.Error(), "t0k3n") {
			t.Errorf("error quotes the token: %v", err)
		}
	}
}

// The connwl login (clouds.md 3.2 and its test vector): the client id from the answer with
// securemode=-2,authType=connwl, the usual user name, the token verbatim as the password.
func TestAliyunConnWL(t *testing.T) {
	id, err := AliyunConnWL(regPK, regDN, "c1", "t0k3n|x")
	if err != nil {
		t.Fatal(err)
	}
	if id.ClientID != "c1|securemode=-2,authType=connwl|" || id.Username != "example1&a1X2bEnP82z" || id.Password != "t0k3n|x" {
		t.Errorf("%+v", id)
	}
	if _, err := AliyunConnWL(regPK, regDN, strings.Repeat("c", 97), "t"); err != nil {
		t.Errorf("a 97-byte client id makes a 128-byte connwl id: %v", err)
	}
	if _, err := AliyunConnWL(regPK, regDN, strings.Repeat("c", 98), "t"); err == nil {
		t.Error("a 129-byte connwl client id accepted")
	}
}

// The stored regnwl credential: one value holding both, read back whole; a torn or foreign
// file is refused without quoting it.
func TestAliyunCredentialFile(t *testing.T) {
	nwl := AliyunDynamic{ProductKey: regPK, AuthType: AliyunRegNWL, StateDir: "/s"}
	c := AliyunCredential{ClientID: "c1", DeviceToken: "t0k|3n"}
	got, err := nwl.DecodeCredential(string(nwl.EncodeCredential(c)))
	if err != nil || got != c {
		t.Fatalf("round trip %+v %v", got, err)
	}
	for _, bad := range []string{"c1", "|t0k3n", "c1|"} {
		if _, err := nwl.DecodeCredential(bad); err == nil || strings.Contains(err.Error(), "t0k3n") {
			t.Errorf("%q: %v", bad, err)
		}
	}
	if p := nwl.SecretPath("dn"); p != "/s/aliyun-a1X2bEnP82z-dn.connwl" {
		t.Errorf("path %s", p)
	}
	reg := AliyunDynamic{ProductKey: regPK, AuthType: AliyunRegister, StateDir: "/s"}
	if p := reg.SecretPath("dn"); p != "/s/aliyun-a1X2bEnP82z-dn.secret" {
		t.Errorf("path %s", p)
	}
	if got, _ := reg.DecodeCredential(string(reg.EncodeCredential(AliyunCredential{DeviceSecret: "s"}))); got.DeviceSecret != "s" {
		t.Errorf("secret round trip %+v", got)
	}
}

// The reference's fit check (clouds.md 5): regnwl with an instance id leaves room for a short
// device-chosen id only; the bound is exact.
func TestAliyunRegNWLClientIDOverflow(t *testing.T) {
	inst := "iot-06z00ax1o4qyfb8" // 19 bytes, the reference's iot-06z00… form
	max := AliyunRegisterMaxClientID(AliyunRegNWL, inst)
	if max >= 64 || max < 15 {
		t.Fatalf("max %d with an instance id: the reference says a 64-byte id does not fit, an IMEI must", max)
	}
	p := AliyunRegisterParams{ProductKey: regPK, ProductSecret: regSecret, DeviceName: strings.Repeat("d", max),
		AuthType: AliyunRegNWL, InstanceID: inst, Random: 18446744073709551615}
	id, err := AliyunRegisterSign(p)
	if err != nil || len(id.ClientID) != ModuleMaxClientID || !strings.HasSuffix(id.ClientID, ",instanceId="+inst+"|") {
		t.Fatalf("%d-byte name: %v (client id %q)", max, err, id.ClientID)
	}
	p.DeviceName += "d"
	if _, err := AliyunRegisterSign(p); err == nil {
		t.Fatalf("%d-byte name with instanceId accepted", max+1)
	}
	// The reference's case: 64-byte id, 10-digit random, instanceId: 166 bytes.
	p.DeviceName, p.Random = strings.Repeat("d", 64), 1234567890
	if _, err := AliyunRegisterSign(p); err == nil || !strings.Contains(err.Error(), "is 166 bytes, longer than the module's 128") {
		t.Fatalf("64-byte id with instanceId: %v", err)
	}
}
