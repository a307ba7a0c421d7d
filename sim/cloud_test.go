package sim

import (
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/hex"
	"strconv"
	"strings"
	"testing"
	"time"
)

// connectCase is one CONNECT put to a platform's check, and the CONNACK code it must get.
type connectCase struct {
	name               string
	clientID, username string
	password           string
	keepalive          uint16 // 0: 60
	tls                bool
	peerCN             string // a verified client certificate with this CN; "" for none
	now                int64  // UNIX seconds
	want               byte
	wantWhy            string // a word the refusal must say
}

func runCases(t *testing.T, platform string, devices map[string]string, cases []connectCase) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := cloudConnect{clientID: tc.clientID, username: tc.username, password: []byte(tc.password),
				keepalive: tc.keepalive, tls: tc.tls, now: time.Unix(tc.now, 0)}
			if c.keepalive == 0 {
				c.keepalive = 60
			}
			if tc.peerCN != "" {
				c.peer = &x509.Certificate{Subject: pkix.Name{CommonName: tc.peerCN}}
			}
			v := verifiers[platform](c, devices)
			if v.code != tc.want {
				t.Fatalf("%s: code %d (%s), want %d", platform, v.code, v.why, tc.want)
			}
			if tc.want != 0 && !strings.Contains(v.why, tc.wantWhy) {
				t.Errorf("%s: refused for %q, want it to say %q", platform, v.why, tc.wantWhy)
			}
		})
	}
}

// TestAliyunVectors: the reference's Aliyun vectors (official ALI-73742, the community article,
// the C SDK v3 triple with its fixed timestamp and upper-case hex) are accepted; the likely
// mistakes are refused.
func TestAliyunVectors(t *testing.T) {
	devs := map[string]string{"pk/device": "secret", "a14Xib5kdYd/light1983432": "oLyaKqVxtRvjH284LdhqVgVUx1UPy6zq",
		"a1X2bEnP82z/example1": "ga7XA6KdlEeiPXQPpRbAjOZXwG8ydgSe"}
	const now = 1700000000
	runCases(t, PlatformAliyun, devs, []connectCase{
		{name: "official sha1 upper", clientID: "12345|securemode=3,signmethod=hmacsha1,timestamp=789|", username: "device&pk",
			password: "FAFD82A3D602B37FB0FA8B7892F24A477F851A14", now: now},
		{name: "official sha1 lower", clientID: "12345|securemode=3,signmethod=hmacsha1,timestamp=789|", username: "device&pk",
			password: "fafd82a3d602b37fb0fa8b7892f24a477f851a14", now: now},
		{name: "sha256", clientID: "12345|securemode=3,signmethod=hmacsha256,timestamp=789|", username: "device&pk",
			password: "6074a46a91b1ebb2cc4ea42790ad0e80202c9843859fc292e57c4eb19fad9e57", now: now},
		{name: "md5", clientID: "12345|securemode=3,signmethod=hmacmd5,timestamp=789|", username: "device&pk",
			password: "14b198324fe55e1d3c88f2e705e201ee", now: now},
		{name: "md5 by default", clientID: "12345|securemode=3,timestamp=789|", username: "device&pk",
			password: "14b198324fe55e1d3c88f2e705e201ee", now: now},
		{name: "sha256 no timestamp", clientID: "12345|securemode=3,signmethod=hmacsha256|", username: "device&pk",
			password: "c8cb3dcb7159682438e5fd9a9c34f398e41bb8edb6f222795e307bafee151090", now: now},
		{name: "community article", clientID: "SN1928339|securemode=3,signmethod=hmacsha1,timestamp=1539421321846|",
			username: "light1983432&a14Xib5kdYd", password: "b2488041f64f425016b467ee1c94959ebd592ad1", now: now},
		{name: "C SDK v3, securemode=2 over TLS", clientID: "a1X2bEnP82z.example1|timestamp=2524608000000,_v=sdk-c-3.0.1,securemode=2,signmethod=hmacsha256,lan=C,gw=0,ext=0|",
			username: "example1&a1X2bEnP82z", password: "B8CE8F1D706DD3C61D13BFD9855DEF7E321B785084CA9C93F0169A2B46785DD2", tls: true, now: now},
		// Negatives.
		{name: "securemode=2 over plain TCP", clientID: "a1X2bEnP82z.example1|timestamp=2524608000000,securemode=2,signmethod=hmacsha256|",
			username: "example1&a1X2bEnP82z", password: "B8CE8F1D706DD3C61D13BFD9855DEF7E321B785084CA9C93F0169A2B46785DD2", now: now, want: 2, wantWhy: "plain TCP"},
		{name: "securemode=3 over TLS", clientID: "12345|securemode=3,signmethod=hmacsha1,timestamp=789|", username: "device&pk",
			password: "FAFD82A3D602B37FB0FA8B7892F24A477F851A14", tls: true, now: now, want: 2, wantWhy: "securemode=3"},
		{name: "timestamp sent but not signed", clientID: "12345|securemode=3,signmethod=hmacsha256,timestamp=789|", username: "device&pk",
			password: "c8cb3dcb7159682438e5fd9a9c34f398e41bb8edb6f222795e307bafee151090", now: now, want: 4, wantWhy: "signature"},
		{name: "signmethod says sha256, password is sha1", clientID: "12345|securemode=3,signmethod=hmacsha256,timestamp=789|", username: "device&pk",
			password: "FAFD82A3D602B37FB0FA8B7892F24A477F851A14", now: now, want: 4, wantWhy: "signature"},
		{name: "user name pk&dn", clientID: "12345|securemode=3,signmethod=hmacsha1,timestamp=789|", username: "pk&device",
			password: "FAFD82A3D602B37FB0FA8B7892F24A477F851A14", now: now, want: 4, wantWhy: "no such device"},
		{name: "no securemode", clientID: "12345|signmethod=hmacsha1,timestamp=789|", username: "device&pk",
			password: "FAFD82A3D602B37FB0FA8B7892F24A477F851A14", now: now, want: 2, wantWhy: "securemode"},
		{name: "bare client id", clientID: "12345", username: "device&pk", password: "FAFD82A3D602B37FB0FA8B7892F24A477F851A14", now: now, want: 2, wantWhy: "client id"},
		{name: "keep-alive 10s", clientID: "12345|securemode=3,signmethod=hmacsha1,timestamp=789|", username: "device&pk",
			password: "FAFD82A3D602B37FB0FA8B7892F24A477F851A14", keepalive: 10, now: now, want: 2, wantWhy: "keep-alive"},
	})
}

// TestTencentVectors: the reference's computed Tencent vectors (sha256 and sha1) are accepted
// before their expiry; the SDK's appid works too; the reference's negative (keyed by the base64
// text), a missing suffix and an expired signature are refused with 4.
func TestTencentVectors(t *testing.T) {
	devs := map[string]string{"1A17RZR3XX/gate_dev01": "MTIzNDU2Nzg5MGFiY2RlZg=="}
	const cid, user = "1A17RZR3XXgate_dev01", "1A17RZR3XXgate_dev01;12010126;ABCDE;1700000000"
	const before = 1700000000 - 60
	// The SDK's appid signs another user name; computed here with the standard library.
	sdkUser := "1A17RZR3XXgate_dev01;21010406;ABCDE;1700000000"
	sdkPass := hex.EncodeToString(mac(sha256.New, []byte("1234567890abcdef"), sdkUser)) + ";hmacsha256"
	runCases(t, PlatformTencent, devs, []connectCase{
		{name: "sha256", clientID: cid, username: user, password: "156974d7a90905d651edc9a9c602891c877693ea59a6e8143249743be9f40a9e;hmacsha256", now: before},
		{name: "sha1", clientID: cid, username: user, password: "c65f0a83ea8cbc2af0b01843be8698341e64efdb;hmacsha1", now: before},
		{name: "SDK appid", clientID: cid, username: sdkUser, password: sdkPass, now: before},
		{name: "keyed by the base64 text", clientID: cid, username: user,
			password: "1737f8c1cc38ecd2c48eded2d7f94f10300f166b271902ee790b6837a6acc316;hmacsha256", now: before, want: 4, wantWhy: "base64-decoded"},
		{name: "no suffix", clientID: cid, username: user, password: "156974d7a90905d651edc9a9c602891c877693ea59a6e8143249743be9f40a9e", now: before, want: 4, wantWhy: "suffix"},
		{name: "sha256 labelled sha1", clientID: cid, username: user, password: "156974d7a90905d651edc9a9c602891c877693ea59a6e8143249743be9f40a9e;hmacsha1", now: before, want: 4, wantWhy: "signature"},
		{name: "expired", clientID: cid, username: user, password: "156974d7a90905d651edc9a9c602891c877693ea59a6e8143249743be9f40a9e;hmacsha256", now: 1700000000, want: 4, wantWhy: "expired"},
		{name: "expiry changed after signing", clientID: cid, username: "1A17RZR3XXgate_dev01;12010126;ABCDE;1800000000",
			password: "156974d7a90905d651edc9a9c602891c877693ea59a6e8143249743be9f40a9e;hmacsha256", now: before, want: 4, wantWhy: "signature"},
		{name: "client id with a separator", clientID: "1A17RZR3XX/gate_dev01", username: user,
			password: "156974d7a90905d651edc9a9c602891c877693ea59a6e8143249743be9f40a9e;hmacsha256", now: before, want: 2, wantWhy: "client id"},
		{name: "keep-alive 1000s", clientID: cid, username: user, keepalive: 1000,
			password: "156974d7a90905d651edc9a9c602891c877693ea59a6e8143249743be9f40a9e;hmacsha256", now: before, want: 2, wantWhy: "keep-alive"},
	})
}

// TestHuaweiVectors: the reference's official Huawei vector (secret 12345678, hour 2025041401)
// is accepted with sigType 0 at any time and with sigType 1 within the hour; keyed the wrong way
// round (the reference's negative) it is refused, as is sigType 1 a day later.
func TestHuaweiVectors(t *testing.T) {
	devs := map[string]string{"5f052ac562369102d42b0fb6": "12345678"}
	const id, pass = "5f052ac562369102d42b0fb6", "c75150e6cb841417396819e4d2ee4358a416344a03a083e3a8567074ddec820a"
	inHour := time.Date(2025, 4, 14, 1, 30, 0, 0, time.UTC).Unix()
	runCases(t, PlatformHuawei, devs, []connectCase{
		{name: "official sigType 0", clientID: id + "_0_0_2025041401", username: id, password: pass, now: 1700000000},
		{name: "official sigType 1 in the hour", clientID: id + "_0_1_2025041401", username: id, password: pass, now: inHour},
		{name: "sigType 1 a day later", clientID: id + "_0_1_2025041401", username: id, password: pass, now: inHour + 86400, want: 4, wantWhy: "too far"},
		{name: "keyed by the secret", clientID: id + "_0_0_2025041401", username: id,
			password: "75e7262705ff85203403e600f652133f9cac4e4d1400b44f3582e778a97f6c36", now: inHour, want: 4, wantWhy: "keyed by the hour"},
		{name: "another hour in the client id", clientID: id + "_0_0_2025041402", username: id, password: pass, now: inHour, want: 4, wantWhy: "2025041402"},
		{name: "local time hour", clientID: id + "_0_0_2025041409", username: id, password: pass, now: inHour, want: 4, wantWhy: "does not match"},
		{name: "no hour", clientID: id, username: id, password: pass, now: inHour, want: 2, wantWhy: "client id"},
		{name: "user name not the device id", clientID: id + "_0_0_2025041401", username: id + "_0_0_2025041401", password: pass, now: inHour, want: 4, wantWhy: "user name"},
		{name: "keep-alive 20s", clientID: id + "_0_0_2025041401", username: id, password: pass, keepalive: 20, now: inHour, want: 2, wantWhy: "keep-alive"},
	})
}

// TestOneNETVectors: the reference's computed OneNET tokens (md5, sha1, sha256) are accepted
// before `et`; expired, keyed by the base64 text, or with the sign not URL-escaped, refused.
func TestOneNETVectors(t *testing.T) {
	const key = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="
	devs := map[string]string{"123123/mydev": key}
	const before, et = 1537255000, 1537255523
	tok := func(method, sign string) string {
		return "version=2018-10-31&res=products%2F123123%2Fdevices%2Fmydev&et=1537255523&method=" + method + "&sign=" + sign
	}
	// Keyed by the base64 text instead of the decoded bytes; and a token whose sign has a '+'
	// sent unescaped (found by trying expiries; computed with the standard library).
	wrongKey := base64.StdEncoding.EncodeToString(mac(sha256.New, []byte(key), "1537255523\nsha256\nproducts/123123/devices/mydev\n2018-10-31"))
	plusEt, plusSign := int64(0), ""
	raw, _ := base64.StdEncoding.DecodeString(key)
	for e := int64(et); plusSign == ""; e++ {
		s := base64.StdEncoding.EncodeToString(mac(sha256.New, raw, strconv.FormatInt(e, 10)+"\nsha256\nproducts/123123/devices/mydev\n2018-10-31"))
		if strings.Contains(s, "+") {
			plusEt, plusSign = e, s
		}
	}
	plusTok := func(sign string) string {
		return "version=2018-10-31&res=products%2F123123%2Fdevices%2Fmydev&et=" + strconv.FormatInt(plusEt, 10) + "&method=sha256&sign=" + sign
	}
	escaped := strings.NewReplacer("+", "%2B", "/", "%2F", "=", "%3D").Replace(plusSign)
	runCases(t, PlatformOneNET, devs, []connectCase{
		{name: "md5", clientID: "mydev", username: "123123", password: tok("md5", "8CAN1jLikWFnNLJKUt0wGQ%3D%3D"), now: before},
		{name: "sha1", clientID: "mydev", username: "123123", password: tok("sha1", "tpYxSonGkJ3T%2FUEEkjxPjml9Y%2FI%3D"), now: before},
		{name: "sha256", clientID: "mydev", username: "123123", password: tok("sha256", "FpBsBBlA0tT4OtnjgrcAjJWkmeyrWd69HcQIEJB7MEM%3D"), now: before},
		{name: "sign with + escaped", clientID: "mydev", username: "123123", password: plusTok(escaped), now: before},
		{name: "sign with + not escaped", clientID: "mydev", username: "123123", password: plusTok(plusSign), now: before, want: 4, wantWhy: "sign"},
		{name: "expired", clientID: "mydev", username: "123123", password: tok("sha256", "FpBsBBlA0tT4OtnjgrcAjJWkmeyrWd69HcQIEJB7MEM%3D"), now: et, want: 4, wantWhy: "expired"},
		{name: "keyed by the base64 text", clientID: "mydev", username: "123123",
			password: tok("sha256", strings.NewReplacer("+", "%2B", "/", "%2F", "=", "%3D").Replace(wrongKey)), now: before, want: 4, wantWhy: "base64-decoded"},
		{name: "method changed after signing", clientID: "mydev", username: "123123", password: tok("sha1", "FpBsBBlA0tT4OtnjgrcAjJWkmeyrWd69HcQIEJB7MEM%3D"), now: before, want: 4, wantWhy: "does not match"},
		{name: "product-level res", clientID: "mydev", username: "123123",
			password: "version=2018-10-31&res=products%2F123123&et=1537255523&method=md5&sign=8CAN1jLikWFnNLJKUt0wGQ%3D%3D", now: before, want: 4, wantWhy: "res"},
		{name: "client id and user name swapped", clientID: "123123", username: "mydev", password: tok("md5", "8CAN1jLikWFnNLJKUt0wGQ%3D%3D"), now: before, want: 4, wantWhy: "no device"},
	})
}

// TestAzureVectors: the official azure-iot-sdk-node HMAC and SAS vectors reproduce; the
// reference's computed full device token is accepted over TLS before `se`; the azure-sdk-for-c
// assembly vector (its signature is a fixed string, not an HMAC) is refused, as are plain TCP, an
// expired token, a signature not URL-encoded, and signatures over the unencoded resource or with
// the key not decoded.
func TestAzureVectors(t *testing.T) {
	key, _ := base64.StdEncoding.DecodeString("cGFzc3dvcmQ=")
	if got := base64.StdEncoding.EncodeToString(mac(sha256.New, key, "string-to-sign")); got != "o1n1hiIVgzVA2+krq9ty1Z4xsIJKJZP3dYT8MOi65Y4=" {
		t.Errorf("AZ-NODE hmacHash: %s", got)
	}
	if got := base64.StdEncoding.EncodeToString(azureSign(key, "uri", "12345")); got != "kcWxXAK2OAaAoq2oCkaGzX2NMqDB8nCyNuq2fPYCDhk=" {
		t.Errorf("AZ-NODE SAS sig: %s", got)
	}
	devs := map[string]string{"myiothub.azure-devices.net/my_device": "cGFzc3dvcmQ="}
	const user = "myiothub.azure-devices.net/my_device/?api-version=2021-04-12"
	const sr = "sr=myiothub.azure-devices.net%2Fdevices%2Fmy_device"
	const good = "SharedAccessSignature " + sr + "&sig=DTUpME%2Fc%2BX9Cvy%2B3r0ZNtHukhBGykBpAx8L30%2BISNuY%3D&se=1578941692"
	const before = 1578941692 - 3600
	sign := func(msg string, k []byte) string {
		return strings.NewReplacer("+", "%2B", "/", "%2F", "=", "%3D").Replace(base64.StdEncoding.EncodeToString(mac(sha256.New, k, msg)))
	}
	runCases(t, PlatformAzure, devs, []connectCase{
		{name: "computed full token", clientID: "my_device", username: user, password: good, tls: true, now: before},
		{name: "SDK user name", clientID: "my_device", username: "myiothub.azure-devices.net/my_device/?api-version=2020-09-30&DeviceClientType=c%2F1.0.0", password: good, tls: true, now: before},
		{name: "AZ-C assembly vector (fixed sig)", clientID: "my_device", username: user, tls: true, now: before, want: 5, wantWhy: "sig",
			password: "SharedAccessSignature " + sr + "&sig=cS1eHM%2FlDjsRsrZV9508wOFrgmZk4g8FNg8NwHVSiSQ&se=1578941692"},
		{name: "plain TCP", clientID: "my_device", username: user, password: good, now: before, want: 3, wantWhy: "TLS"},
		{name: "expired", clientID: "my_device", username: user, password: good, tls: true, now: 1578941692, want: 5, wantWhy: "expired"},
		{name: "sig not URL-encoded", clientID: "my_device", username: user, tls: true, now: before, want: 5, wantWhy: "sig",
			password: "SharedAccessSignature " + sr + "&sig=DTUpME/c+X9Cvy+3r0ZNtHukhBGykBpAx8L30+ISNuY=&se=1578941692"},
		{name: "signed over the unencoded resource", clientID: "my_device", username: user, tls: true, now: before, want: 5, wantWhy: "does not match",
			password: "SharedAccessSignature " + sr + "&sig=" + sign("myiothub.azure-devices.net/devices/my_device\n1578941692", key) + "&se=1578941692"},
		{name: "key not decoded", clientID: "my_device", username: user, tls: true, now: before, want: 5, wantWhy: "does not match",
			password: "SharedAccessSignature " + sr + "&sig=" + sign("myiothub.azure-devices.net%2Fdevices%2Fmy_device\n1578941692", []byte("cGFzc3dvcmQ=")) + "&se=1578941692"},
		{name: "se moved after signing", clientID: "my_device", username: user, tls: true, now: before, want: 5, wantWhy: "does not match",
			password: "SharedAccessSignature " + sr + "&sig=DTUpME%2Fc%2BX9Cvy%2B3r0ZNtHukhBGykBpAx8L30%2BISNuY%3D&se=1578949999"},
		{name: "no prefix", clientID: "my_device", username: user, tls: true, now: before, want: 5, wantWhy: "SharedAccessSignature",
			password: strings.TrimPrefix(good, "SharedAccessSignature ")},
		{name: "another hub in the user name", clientID: "my_device", username: "other.azure-devices.net/my_device/?api-version=2021-04-12", password: good, tls: true, now: before, want: 5, wantWhy: "user name"},
		{name: "unknown device", clientID: "dev2", username: user, password: good, tls: true, now: before, want: 2, wantWhy: "no device"},
	})
}

// TestAWSChecks: X.509 over TLS is the login; plain TCP, no certificate, a password, a client id
// that is no thing and a certificate of another thing are refused (5; AWS's 7 cannot be reported by the module).
func TestAWSChecks(t *testing.T) {
	devs := map[string]string{"pi-led-01": "pi-led-01", "any-cert": ""}
	runCases(t, PlatformAWS, devs, []connectCase{
		{name: "thing with its certificate", clientID: "pi-led-01", tls: true, peerCN: "pi-led-01"},
		{name: "thing with any certificate", clientID: "any-cert", tls: true, peerCN: "x"},
		{name: "user name with SDK metrics", clientID: "pi-led-01", username: "?SDK=Go", tls: true, peerCN: "pi-led-01"},
		{name: "plain TCP", clientID: "pi-led-01", want: 3, wantWhy: "TLS"},
		{name: "no certificate", clientID: "pi-led-01", tls: true, want: 5, wantWhy: "certificate"},
		{name: "password", clientID: "pi-led-01", password: "x", tls: true, peerCN: "pi-led-01", want: 4, wantWhy: "443"},
		{name: "not a thing", clientID: "other", tls: true, peerCN: "pi-led-01", want: 5, wantWhy: "policy"},
		{name: "another thing's certificate", clientID: "pi-led-01", tls: true, peerCN: "other", want: 5, wantWhy: "not attached"},
	})
}

// TestThingsBoardChecks: the access token is the user name; empty is 4, unknown 5 (the
// reference's codes).
func TestThingsBoardChecks(t *testing.T) {
	devs := map[string]string{"A1_TEST_TOKEN": ""}
	runCases(t, PlatformThingsBoard, devs, []connectCase{
		{name: "token", clientID: "anything", username: "A1_TEST_TOKEN"},
		{name: "token, empty client id", username: "A1_TEST_TOKEN"},
		{name: "empty user name", clientID: "x", password: "A1_TEST_TOKEN", want: 4, wantWhy: "empty"},
		{name: "wrong token", clientID: "x", username: "A1_TEST_TOKEn", want: 5, wantWhy: "no device"},
	})
}
