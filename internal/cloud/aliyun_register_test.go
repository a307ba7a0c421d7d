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
	r, err := ParseAliyunRegistration(AliyunRegisterTopic, []byte(`{"productKey":"a1X2bEnP82z","deviceName":"example1","deviceSecret":"s3cr3t"}`), regPK, regDN)
	if err != nil || r.DeviceSecret != "s3cr3t" {
		t.Fatalf("%+v %v", r, err)
	}
	for _, bad := range []string{
		`{"productKey":"a1X2bEnP82z","deviceName":"other","deviceSecret":"s3cr3t"}`,
		`{"productKey":"a1X2bEnP82z","deviceName":"example1"}`,
		`{"productKey":"a1X2bEnP82z","deviceName":"example1","deviceSecret":"a\"b"}`,
		`not json`,
	} {
		if _, err := ParseAliyunRegistration(AliyunRegisterTopic, []byte(bad), regPK, regDN); err == nil {
			t.Errorf("%s accepted", bad)
		} else if strings.Contains(err.Error(), "s3cr3t") {
			t.Errorf("error quotes the secret: %v", err)
		}
	}
	if _, err := ParseAliyunRegistration(AliyunRegNWLTopic, []byte(`{"productKey":"a1X2bEnP82z","deviceName":"example1","clientId":"c1","deviceToken":"tok"}`), regPK, regDN); err != nil {
		t.Fatal(err)
	}
}
