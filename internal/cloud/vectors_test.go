package cloud

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"strings"
	"testing"
	"time"
)

// The vectors of /work/shared/reference/clouds.md, "Test vectors": "official" ones come from the
// vendor's documentation or test suite, "computed" ones from the reference's Python script.

func TestAliyunSignsTheReferenceVectors(t *testing.T) {
	ref := AliyunParams{ProductKey: "pk", DeviceName: "device", DeviceSecret: "secret", ClientID: "12345", Timestamp: 789}
	tests := []struct {
		name     string
		edit     func(p *AliyunParams)
		clientID string
		password string
	}{
		{"official doc 73742 example, hmacsha1", func(p *AliyunParams) { p.SignMethod = HMACSHA1 },
			"12345|securemode=3,signmethod=hmacsha1,timestamp=789|", "fafd82a3d602b37fb0fa8b7892f24a477f851a14"},
		{"computed hmacsha256", func(p *AliyunParams) { p.SignMethod = HMACSHA256 },
			"12345|securemode=3,signmethod=hmacsha256,timestamp=789|", "6074a46a91b1ebb2cc4ea42790ad0e80202c9843859fc292e57c4eb19fad9e57"},
		{"computed hmacmd5", func(p *AliyunParams) { p.SignMethod = HMACMD5 },
			"12345|securemode=3,signmethod=hmacmd5,timestamp=789|", "14b198324fe55e1d3c88f2e705e201ee"},
		{"computed hmacsha256 without a timestamp", func(p *AliyunParams) { p.SignMethod = HMACSHA256; p.Timestamp = 0 },
			"12345|securemode=3,signmethod=hmacsha256|", "c8cb3dcb7159682438e5fd9a9c34f398e41bb8edb6f222795e307bafee151090"},
		{"computed C SDK v3 example triple with its fixed 2050 timestamp (SDK prints upper case)", func(p *AliyunParams) {
			*p = AliyunParams{ProductKey: "a1X2bEnP82z", DeviceName: "example1", DeviceSecret: "ga7XA6KdlEeiPXQPpRbAjOZXwG8ydgSe",
				ClientID: "a1X2bEnP82z.example1", Timestamp: 2524608000000, SignMethod: HMACSHA256}
		}, "a1X2bEnP82z.example1|securemode=3,signmethod=hmacsha256,timestamp=2524608000000|",
			strings.ToLower("B8CE8F1D706DD3C61D13BFD9855DEF7E321B785084CA9C93F0169A2B46785DD2")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := ref
			tt.edit(&p)
			id, err := AliyunSign(p)
			if err != nil {
				t.Fatal(err)
			}
			if id.ClientID != tt.clientID || id.Password != tt.password {
				t.Errorf("got %q / %q\nwant %q / %q", id.ClientID, id.Password, tt.clientID, tt.password)
			}
		})
	}
}

// Negative: the most likely Aliyun mistake is a timestamp in the client id that is left out of
// the signed string (or the other way round).
func TestAliyunSignsTheTimestampItSends(t *testing.T) {
	id, err := AliyunSign(AliyunParams{ProductKey: "pk", DeviceName: "device", DeviceSecret: "secret", ClientID: "12345", Timestamp: 789, SignMethod: HMACSHA256})
	if err != nil {
		t.Fatal(err)
	}
	const unsigned = "c8cb3dcb7159682438e5fd9a9c34f398e41bb8edb6f222795e307bafee151090" // the no-timestamp signature
	if id.Password == unsigned || !strings.Contains(id.ClientID, "timestamp=789") {
		t.Errorf("client id %q carries the timestamp but the password %q does not sign it", id.ClientID, id.Password)
	}
}

// fixedRand yields 0, 1, 2, ...: the connection id "ABCDE".
type fixedRand struct{ n byte }

func (r *fixedRand) Read(p []byte) (int, error) {
	for i := range p {
		p[i], r.n = r.n, r.n+1
	}
	return len(p), nil
}

const (
	tcSecret = "MTIzNDU2Nzg5MGFiY2RlZg==" // base64 of "1234567890abcdef"
	tcUser   = "1A17RZR3XXgate_dev01;12010126;ABCDE;1700000000"
)

func TestTencentSignsTheReferenceVectors(t *testing.T) {
	for _, tt := range []struct {
		m    SignMethod
		want string
	}{
		{HMACSHA256, "156974d7a90905d651edc9a9c602891c877693ea59a6e8143249743be9f40a9e;hmacsha256"},
		{HMACSHA1, "c65f0a83ea8cbc2af0b01843be8698341e64efdb;hmacsha1"},
	} {
		got, err := TencentPassword(tcSecret, tcUser, tt.m)
		if err != nil || got != tt.want {
			t.Errorf("TencentPassword(%s) = %q, %v; want %q", tt.m, got, err, tt.want)
		}
	}
}

// Negative: keying the HMAC with the base64 TEXT of the secret instead of its decoded bytes.
func TestTencentKeysWithTheDecodedSecret(t *testing.T) {
	const wrong = "1737f8c1cc38ecd2c48eded2d7f94f10300f166b271902ee790b6837a6acc316"
	got, err := TencentPassword(tcSecret, tcUser, HMACSHA256)
	if err != nil {
		t.Fatal(err)
	}
	if strings.HasPrefix(got, wrong) {
		t.Fatalf("password %q is keyed with the base64 text of the secret", got)
	}
}

func TestTencentIdentityCarriesConnIDAndExpiry(t *testing.T) {
	p, err := New("tencent", Settings{Values: map[string]any{
		"product_id": "1A17RZR3XX", "device_name": "gate_dev01", "device_secret": tcSecret, "lifetime": time.Hour,
	}, Rand: &fixedRand{}})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Unix(1700000000-3600, 0)
	id, err := p.Identity(now)
	if err != nil {
		t.Fatal(err)
	}
	want := Identity{ClientID: "1A17RZR3XXgate_dev01", Username: tcUser,
		Password: "156974d7a90905d651edc9a9c602891c877693ea59a6e8143249743be9f40a9e;hmacsha256", Expires: time.Unix(1700000000, 0)}
	if id != want {
		t.Errorf("Identity:\n got %#v %q\nwant %#v %q", id, id.Password, want, want.Password)
	}
	if ep := p.Endpoint(); ep != (Endpoint{Host: "1A17RZR3XX.iotcloud.tencentdevices.com", Port: 1883}) {
		t.Errorf("Endpoint = %+v", ep)
	}
	if p.Topics()["property_set"] != "$thing/down/property/1A17RZR3XX/gate_dev01" {
		t.Errorf("property_set = %q", p.Topics()["property_set"])
	}
}

func TestHuaweiSignsTheReferenceVector(t *testing.T) {
	// official: HW-VEC, secret 12345678, timestamp 2025041401.
	if got := HuaweiPassword("12345678", "2025041401"); got != "c75150e6cb841417396819e4d2ee4358a416344a03a083e3a8567074ddec820a" {
		t.Errorf("HuaweiPassword = %q", got)
	}
}

// Negative: keying the HMAC with the secret (the usual convention) instead of the hour.
func TestHuaweiKeysWithTheHour(t *testing.T) {
	if HuaweiPassword("12345678", "2025041401") == "75e7262705ff85203403e600f652133f9cac4e4d1400b44f3582e778a97f6c36" {
		t.Fatal("the password is keyed with the secret, not with the hour")
	}
}

func TestHuaweiIdentityUsesTheUTCHour(t *testing.T) {
	p, err := New("huawei", Settings{Values: map[string]any{
		"device_id": "5f052ac562369102d42b0fb6", "device_secret": "12345678", "endpoint": "abc123.st1.iotda-device.cn-north-4.myhuaweicloud.com",
		"check_timestamp": false,
	}})
	if err != nil {
		t.Fatal(err)
	}
	// 09:30 in UTC+8 is 01:30 UTC: the hour is 2025041401.
	now := time.Date(2025, 4, 14, 9, 30, 0, 0, time.FixedZone("CST", 8*3600))
	id, err := p.Identity(now)
	if err != nil {
		t.Fatal(err)
	}
	want := Identity{ClientID: "5f052ac562369102d42b0fb6_0_0_2025041401", Username: "5f052ac562369102d42b0fb6",
		Password: "c75150e6cb841417396819e4d2ee4358a416344a03a083e3a8567074ddec820a"}
	if id != want {
		t.Errorf("Identity:\n got %+v %q\nwant %+v %q", id, id.Password, want, want.Password)
	}
}

const onKey = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=" // bytes 0x00..0x1f

func TestOneNETSignsTheReferenceVectors(t *testing.T) {
	const pre = "version=2018-10-31&res=products%2F123123%2Fdevices%2Fmydev&et=1537255523&method="
	for _, tt := range []struct{ m, want string }{
		{"md5", pre + "md5&sign=8CAN1jLikWFnNLJKUt0wGQ%3D%3D"},
		{"sha1", pre + "sha1&sign=tpYxSonGkJ3T%2FUEEkjxPjml9Y%2FI%3D"},
		{"sha256", pre + "sha256&sign=FpBsBBlA0tT4OtnjgrcAjJWkmeyrWd69HcQIEJB7MEM%3D"},
	} {
		got, err := OneNETToken("123123", "mydev", onKey, 1537255523, tt.m)
		if err != nil || got != tt.want {
			t.Errorf("OneNETToken(%s) =\n %q, %v\nwant %q", tt.m, got, err, tt.want)
		}
	}
}

// Negative: a token whose sign and res are not URL-escaped.
func TestOneNETEscapesTheToken(t *testing.T) {
	got, err := OneNETToken("123123", "mydev", onKey, 1537255523, "sha1")
	if err != nil {
		t.Fatal(err)
	}
	for _, raw := range []string{"sign=tpYxSonGkJ3T/UEEkjxPjml9Y/I=", "res=products/123123"} {
		if strings.Contains(got, raw) {
			t.Errorf("token %q holds the unescaped %q", got, raw)
		}
	}
}

func TestOneNETIdentityExpiresAfterItsLifetime(t *testing.T) {
	p, err := New("onenet", Settings{Values: map[string]any{
		"product_id": "123123", "device_name": "mydev", "device_key": onKey, "sign_method": "sha256", "lifetime": 10 * time.Minute,
	}})
	if err != nil {
		t.Fatal(err)
	}
	id, err := p.Identity(time.Unix(1537255523-600, 0))
	if err != nil {
		t.Fatal(err)
	}
	want := Identity{ClientID: "mydev", Username: "123123", Expires: time.Unix(1537255523, 0),
		Password: "version=2018-10-31&res=products%2F123123%2Fdevices%2Fmydev&et=1537255523&method=sha256&sign=FpBsBBlA0tT4OtnjgrcAjJWkmeyrWd69HcQIEJB7MEM%3D"}
	if id != want {
		t.Errorf("Identity:\n got %+v %q\nwant %+v %q", id, id.Password, want, want.Password)
	}
}

const azKey = "cGFzc3dvcmQ=" // base64 of "password"

func TestAzureSignsTheReferenceVectors(t *testing.T) {
	key, _ := base64.StdEncoding.DecodeString(azKey)
	// official: AZ-NODE _authorization_test.js (hmacHash).
	if got := azureSignature(key, "string-to-sign"); got != "o1n1hiIVgzVA2+krq9ty1Z4xsIJKJZP3dYT8MOi65Y4=" {
		t.Errorf("signature = %q", got)
	}
	// official: AZ-NODE _shared_access_signature_test.js.
	if got, err := AzureSAS("uri", azKey, 12345); err != nil || got != "SharedAccessSignature sr=uri&sig=kcWxXAK2OAaAoq2oCkaGzX2NMqDB8nCyNuq2fPYCDhk%3D&se=12345" {
		t.Errorf("AzureSAS(uri) = %q, %v", got, err)
	}
	// computed: the AZ-C names with the AZ-NODE key.
	const want = "SharedAccessSignature sr=myiothub.azure-devices.net%2Fdevices%2Fmy_device&sig=DTUpME%2Fc%2BX9Cvy%2B3r0ZNtHukhBGykBpAx8L30%2BISNuY%3D&se=1578941692"
	if got, err := AzureSAS("myiothub.azure-devices.net/devices/my_device", azKey, 1578941692); err != nil || got != want {
		t.Errorf("AzureSAS =\n %q, %v\nwant %q", got, err, want)
	}
}

// Negative: signing the resource URI as it is, not URL-encoded as it appears in sr.
func TestAzureSignsTheEncodedResource(t *testing.T) {
	key, _ := base64.StdEncoding.DecodeString(azKey)
	wrong := azureEscape(azureSignature(key, "myiothub.azure-devices.net/devices/my_device\n1578941692"))
	got, err := AzureSAS("myiothub.azure-devices.net/devices/my_device", azKey, 1578941692)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(got, "sig="+wrong) || strings.Contains(got, "sr=myiothub.azure-devices.net/") {
		t.Fatalf("token %q signs or sends the unencoded resource", got)
	}
}

func TestAzureIdentityIsTheDocumentedOne(t *testing.T) {
	p, err := New("azure", Settings{Values: map[string]any{"hub": "myiothub", "device_id": "my_device", "device_key": azKey, "lifetime": time.Hour}})
	if err != nil {
		t.Fatal(err)
	}
	id, err := p.Identity(time.Unix(1578941692-3600, 0))
	if err != nil {
		t.Fatal(err)
	}
	want := Identity{ClientID: "my_device", Username: "myiothub.azure-devices.net/my_device/?api-version=2021-04-12",
		Password: "SharedAccessSignature sr=myiothub.azure-devices.net%2Fdevices%2Fmy_device&sig=DTUpME%2Fc%2BX9Cvy%2B3r0ZNtHukhBGykBpAx8L30%2BISNuY%3D&se=1578941692",
		Expires:  time.Unix(1578941692, 0)}
	if id != want {
		t.Errorf("Identity:\n got %+v %q\nwant %+v %q", id, id.Password, want, want.Password)
	}
	if ep := p.Endpoint(); ep != (Endpoint{Host: "myiothub.azure-devices.net", Port: 8883, TLS: true, CAFile: AzureCA}) {
		t.Errorf("Endpoint = %+v; Azure has no plain port", ep)
	}
}

// AWS has no shared-secret signing: the vectors are structural (clouds.md, AWS IoT Core).
func TestAWSConnectsWithTheCertificateOn8883(t *testing.T) {
	p, err := New("aws", Settings{Values: map[string]any{"endpoint": "a1b2c3-ats.iot.eu-west-1.amazonaws.com", "thing_name": "pi-01"}})
	if err != nil {
		t.Fatal(err)
	}
	if ep := p.Endpoint(); ep != (Endpoint{Host: "a1b2c3-ats.iot.eu-west-1.amazonaws.com", Port: 8883, TLS: true, CAFile: AWSCA, ClientCert: true}) {
		t.Errorf("Endpoint = %+v", ep)
	}
	id, _ := p.Identity(time.Now())
	if id != (Identity{ClientID: "pi-01"}) {
		t.Errorf("Identity = %+v; want the thing name and no password", id)
	}
	if got := p.Topics()["property_set"]; got != "$aws/things/pi-01/shadow/update/delta" {
		t.Errorf("property_set = %q", got)
	}
}

// Negative: the legacy (Symantec-rooted) endpoint instead of the ATS one.
func TestAWSRefusesTheLegacyEndpoint(t *testing.T) {
	_, err := New("aws", Settings{Values: map[string]any{"endpoint": "a1b2c3.iot.eu-west-1.amazonaws.com", "thing_name": "pi-01"}})
	if fe := FieldErrors(err); len(fe) != 1 || fe[0].Key != "endpoint" || !strings.Contains(fe[0].Msg, "ATS") {
		t.Fatalf("err = %v, want one about the ATS endpoint", err)
	}
}

func TestThingsBoardSendsTheTokenAsUserName(t *testing.T) {
	p, err := New("thingsboard", Settings{Values: map[string]any{"access_token": "A1_TEST_TOKEN", "client_id": "pi-01"}})
	if err != nil {
		t.Fatal(err)
	}
	id, _ := p.Identity(time.Now())
	// Negative: the token in the password field, or a user name that may be logged.
	if id != (Identity{ClientID: "pi-01", Username: "A1_TEST_TOKEN", SecretUsername: true}) {
		t.Errorf("Identity = %#v", id)
	}
	if s := id.String(); strings.Contains(s, "A1_TEST_TOKEN") {
		t.Errorf("String reveals the token: %s", s)
	}
	if ep := p.Endpoint(); ep != (Endpoint{Host: ThingsBoardCloud, Port: 1883}) {
		t.Errorf("Endpoint = %+v", ep)
	}
}

// The script's HMAC helper, to check the helpers above against an independent computation.
func TestHMACHelpersAgreeWithCrypto(t *testing.T) {
	mac := hmac.New(sha256.New, []byte("2025041401"))
	mac.Write([]byte("12345678"))
	if hex.EncodeToString(mac.Sum(nil)) != HuaweiPassword("12345678", "2025041401") {
		t.Error("HuaweiPassword is not HMAC-SHA256(key hour, message secret)")
	}
	if !bytes.Equal([]byte(onenetEscape("a+b /?%#&=")), []byte("a%2Bb%20%2F%3F%25%23%26%3D")) {
		t.Errorf("onenetEscape = %q", onenetEscape("a+b /?%#&="))
	}
}
