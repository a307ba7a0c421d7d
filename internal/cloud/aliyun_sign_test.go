package cloud

import (
	"errors"
	"strings"
	"testing"
)

// The reference's worked example (ec600-at.md section 7.3), verified there with OpenSSL.
const (
	refPK     = "a1B2c3D4e5F"
	refDN     = "pi-led-01"
	refSecret = "Zx9yW8vU7tS6rQ5pO4nM3lK2jI1hG0fE"
	refTS     = 1700000000000
)

func TestSignVectors(t *testing.T) {
	tests := []struct {
		name     string
		p        AliyunParams
		clientID string
		username string
		password string
	}{
		{
			name:     "reference sha1 with timestamp",
			p:        AliyunParams{ProductKey: refPK, DeviceName: refDN, DeviceSecret: refSecret, SignMethod: HMACSHA1, Timestamp: refTS},
			clientID: "pi-led-01|securemode=3,signmethod=hmacsha1,timestamp=1700000000000|",
			username: "pi-led-01&a1B2c3D4e5F",
			password: "69d84ceca71bf26dd9cc21f8d74d3a330495bb83",
		},
		{
			name:     "reference sha256 with timestamp",
			p:        AliyunParams{ProductKey: refPK, DeviceName: refDN, DeviceSecret: refSecret, SignMethod: HMACSHA256, Timestamp: refTS},
			clientID: "pi-led-01|securemode=3,signmethod=hmacsha256,timestamp=1700000000000|",
			username: "pi-led-01&a1B2c3D4e5F",
			password: "5dd9c9eb82fe811b5bb81cbdd81b2407361d1db8f7c6946fdd84f86936032dc7",
		},
		{
			name:     "reference sha1 without timestamp",
			p:        AliyunParams{ProductKey: refPK, DeviceName: refDN, DeviceSecret: refSecret, SignMethod: HMACSHA1},
			clientID: "pi-led-01|securemode=3,signmethod=hmacsha1|",
			username: "pi-led-01&a1B2c3D4e5F",
			password: "bd4062bdb0ce5aefbb59ce1e7677eaecc653d2f3",
		},
		{
			name:     "reference sha256 without timestamp",
			p:        AliyunParams{ProductKey: refPK, DeviceName: refDN, DeviceSecret: refSecret, SignMethod: HMACSHA256},
			clientID: "pi-led-01|securemode=3,signmethod=hmacsha256|",
			username: "pi-led-01&a1B2c3D4e5F",
			password: "d22a85ba7e42ecbeb28d45ab6f2301967a122f85772a35d0a28a0846efefa428",
		},
		{
			name:     "reference md5 without timestamp",
			p:        AliyunParams{ProductKey: refPK, DeviceName: refDN, DeviceSecret: refSecret, SignMethod: HMACMD5},
			clientID: "pi-led-01|securemode=3,signmethod=hmacmd5|",
			username: "pi-led-01&a1B2c3D4e5F",
			password: "87f5a920ce5d4fcc4e2eee07c66febc9",
		},
		{
			name: "aliyun documentation example",
			p: AliyunParams{ProductKey: "a14Xib5kdYd", DeviceName: "light1983432", DeviceSecret: "oLyaKqVxtRvjH284LdhqVgVUx1UPy6zq",
				ClientID: "SN1928339", SignMethod: HMACSHA1, Timestamp: 1539421321846},
			clientID: "SN1928339|securemode=3,signmethod=hmacsha1,timestamp=1539421321846|",
			username: "light1983432&a14Xib5kdYd",
			password: "b2488041f64f425016b467ee1c94959ebd592ad1",
		},
		{
			name:     "secret vector (published in upper case)",
			p:        AliyunParams{ProductKey: "pk", DeviceName: "device", DeviceSecret: "secret", ClientID: "12345", SignMethod: HMACSHA1, Timestamp: 789},
			clientID: "12345|securemode=3,signmethod=hmacsha1,timestamp=789|",
			username: "device&pk",
			password: strings.ToLower("FAFD82A3D602B37FB0FA8B7892F24A477F851A14"),
		},
		{
			name:     "securemode 2 is named but not signed",
			p:        AliyunParams{ProductKey: refPK, DeviceName: refDN, DeviceSecret: refSecret, SignMethod: HMACSHA1, SecureMode: AliyunSecureModeTLS, Timestamp: refTS},
			clientID: "pi-led-01|securemode=2,signmethod=hmacsha1,timestamp=1700000000000|",
			username: "pi-led-01&a1B2c3D4e5F",
			password: "69d84ceca71bf26dd9cc21f8d74d3a330495bb83",
		},
		{
			name:     "empty sign method means hmacsha256",
			p:        AliyunParams{ProductKey: refPK, DeviceName: refDN, DeviceSecret: refSecret, Timestamp: refTS},
			clientID: "pi-led-01|securemode=3,signmethod=hmacsha256,timestamp=1700000000000|",
			username: "pi-led-01&a1B2c3D4e5F",
			password: "5dd9c9eb82fe811b5bb81cbdd81b2407361d1db8f7c6946fdd84f86936032dc7",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := AliyunSign(tt.p)
			if err != nil {
				t.Fatalf("Sign: %v", err)
			}
			want := Identity{ClientID: tt.clientID, Username: tt.username, Password: tt.password}
			if got != want {
				t.Errorf("Sign(%+v)\n got %+v\nwant %+v", tt.p, got, want)
			}
		})
	}
}

// The reference gives the byte lengths of the worked example's CONNECT strings.
func TestSignReferenceLengths(t *testing.T) {
	c, err := AliyunSign(AliyunParams{ProductKey: refPK, DeviceName: refDN, DeviceSecret: refSecret, SignMethod: HMACSHA1, Timestamp: refTS})
	if err != nil {
		t.Fatal(err)
	}
	if len(c.ClientID) != 67 || len(c.Username) != 21 {
		t.Errorf("client id %d bytes, user name %d bytes; reference says 67 and 21", len(c.ClientID), len(c.Username))
	}
}

func TestSignRejects(t *testing.T) {
	good := AliyunParams{ProductKey: refPK, DeviceName: refDN, DeviceSecret: refSecret}
	tests := []struct {
		name string
		edit func(p *AliyunParams)
		want string
	}{
		{"bad sign method", func(p *AliyunParams) { p.SignMethod = "hmacsha512" }, `unknown sign method "hmacsha512"`},
		{"upper-case sign method", func(p *AliyunParams) { p.SignMethod = "HMACSHA1" }, `unknown sign method "HMACSHA1"`},
		{"bad secure mode", func(p *AliyunParams) { p.SecureMode = 1 }, "securemode 1"},
		{"negative timestamp", func(p *AliyunParams) { p.Timestamp = -1 }, "negative"},
		{"empty product key", func(p *AliyunParams) { p.ProductKey = "" }, "product key is empty"},
		{"empty device name", func(p *AliyunParams) { p.DeviceName = ""; p.ClientID = "x" }, "device name is empty"},
		{"empty secret", func(p *AliyunParams) { p.DeviceSecret = "" }, "device secret is empty"},
		{"ampersand in device name", func(p *AliyunParams) { p.DeviceName = "a&b" }, `device name "a&b" holds byte '&'`},
		{"bar in client id", func(p *AliyunParams) { p.ClientID = "a|b" }, `client id "a|b" holds byte '|'`},
		{"quote in product key", func(p *AliyunParams) { p.ProductKey = `a"b` }, `holds byte '"'`},
		{"newline in client id", func(p *AliyunParams) { p.ClientID = "a\nb" }, `holds byte '\n'`},
		{"long client id", func(p *AliyunParams) { p.ClientID = strings.Repeat("c", 65) }, "65 bytes, longer than 64"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := good
			tt.edit(&p)
			_, err := AliyunSign(p)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Sign error = %v, want one containing %q", err, tt.want)
			}
			if strings.Contains(err.Error(), refSecret) {
				t.Errorf("error reveals the device secret: %v", err)
			}
		})
	}
}

func TestParseSignMethod(t *testing.T) {
	for _, s := range []string{"hmacsha1", "hmacsha256", "hmacmd5"} {
		if m, err := ParseSignMethod(s); err != nil || string(m) != s {
			t.Errorf("ParseSignMethod(%q) = %q, %v", s, m, err)
		}
	}
	for _, s := range []string{"", "sha1", "hmacsha384"} {
		if _, err := ParseSignMethod(s); !errors.Is(err, ErrBadSignMethod) {
			t.Errorf("ParseSignMethod(%q) error = %v, want ErrBadSignMethod", s, err)
		}
	}
}

func TestEndpoint(t *testing.T) {
	tests := []struct {
		pk, region, instance string
		want, err            string
	}{
		{pk: refPK, region: "cn-shanghai", want: "a1B2c3D4e5F.iot-as-mqtt.cn-shanghai.aliyuncs.com"},
		{pk: refPK, instance: "iot-06z00abcdefgh1", want: "iot-06z00abcdefgh1.mqtt.iothub.aliyuncs.com"},
		{pk: refPK, err: "need an instance id or a region"},
		{pk: refPK, region: "cn-shanghai", instance: "iot-1", err: "not both"},
		{pk: refPK, region: "cn shanghai", err: `region "cn shanghai": byte ' '`},
		{pk: refPK, region: "cn.shanghai", err: `byte '.'`},
		{pk: refPK, instance: "-iot", err: `byte '-' at offset 0`},
		{pk: "", region: "cn-shanghai", err: "product key is empty"},
		{pk: refPK, region: strings.Repeat("r", 64), err: "longer than a DNS label"},
	}
	for _, tt := range tests {
		got, err := AliyunEndpoint(tt.pk, tt.region, tt.instance)
		if tt.err != "" {
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Errorf("Endpoint(%q, %q, %q) error = %v, want %q", tt.pk, tt.region, tt.instance, err, tt.err)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("Endpoint(%q, %q, %q) = %q, %v; want %q", tt.pk, tt.region, tt.instance, got, err, tt.want)
		}
	}
}
