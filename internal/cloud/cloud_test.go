package cloud

import (
	"strings"
	"testing"
	"time"
)

func aliyunForTest(t *testing.T, extra map[string]any) Platform {
	t.Helper()
	v := map[string]any{"product_key": "pk", "device_name": "device", "device_secret": "secret", "region": "cn-shanghai"}
	for k, x := range extra {
		v[k] = x
	}
	p, err := New("aliyun", Settings{Values: v})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestAliyunHints(t *testing.T) {
	p := aliyunForTest(t, nil)
	tests := []struct {
		name string
		tr   Trouble
		want string
	}{
		{"link closed right after the connect: the kick-out rule", Trouble{Stat: 1, Up: 3 * time.Second}, "forces the older connection offline"},
		{"link closed after a long session: nothing to add", Trouble{Stat: 1, Up: time.Hour}, ""},
		{"bad signature", Trouble{ConnackCode: 4}, "check mqtt.aliyun.device_secret"},
		{"not authorized", Trouble{ConnackCode: 5}, "exists and is enabled"},
	}
	for _, tt := range tests {
		got := p.Hint(tt.tr)
		if tt.want == "" && got != "" || !strings.Contains(got, tt.want) {
			t.Errorf("%s: Hint = %q, want %q", tt.name, got, tt.want)
		}
	}
}

// Alibaba Cloud's other modes: the enterprise-instance endpoint and securemode=2 with the
// bundled CA.
func TestAliyunModes(t *testing.T) {
	p, err := New("aliyun", Settings{Values: map[string]any{
		"product_key": "pk", "device_name": "device", "device_secret": "secret", "instance_id": "iot-06z00abcdefgh1",
	}, TLS: true})
	if err != nil {
		t.Fatal(err)
	}
	if ep := p.Endpoint(); ep != (Endpoint{Host: "iot-06z00abcdefgh1.mqtt.iothub.aliyuncs.com", Port: 1883, TLS: true, CAFile: AliyunCA}) {
		t.Errorf("Endpoint = %+v", ep)
	}
	id, err := p.Identity(time.UnixMilli(789))
	if err != nil || id.ClientID != "device|securemode=2,signmethod=hmacsha256,timestamp=789|" {
		t.Errorf("Identity = %q, %v", id.ClientID, err)
	}
	if _, err := New("aliyun", Settings{Values: map[string]any{
		"product_key": "pk", "device_name": "device", "device_secret": "secret", "region": "cn-shanghai", "secure_mode": int64(2),
	}}); err == nil || !strings.Contains(err.Error(), "secure_mode: 2 means TLS") {
		t.Errorf("securemode 2 without TLS: %v", err)
	}
}

func TestNewNamesEveryProblemByKey(t *testing.T) {
	_, err := New("azure", Settings{Values: map[string]any{"device_key": "%%%", "bogus": "x"}})
	got := map[string]string{}
	for _, fe := range FieldErrors(err) {
		got[fe.Key] = fe.Msg
	}
	for k, want := range map[string]string{
		"hub": "required: the IoT hub name", "device_id": "required", "device_key": "is not base64", "bogus": "is not a key of this platform",
	} {
		if !strings.Contains(got[k], want) {
			t.Errorf("%s: %q, want %q (all: %v)", k, got[k], want, err)
		}
	}
	if strings.Contains(err.Error(), "%%%") {
		t.Errorf("the error shows the secret: %v", err)
	}
	if _, err := New("nosuch", Settings{}); err == nil || !strings.Contains(err.Error(), "known: aliyun, aws, azure, huawei, onenet, tencent, thingsboard") {
		t.Errorf("unknown platform: %v", err)
	}
}

// An override of a field the password signs is refused with the platform's words; one that is
// not signed replaces the derived value.
func TestOverrides(t *testing.T) {
	cid := "my-client"
	p, err := New("onenet", Settings{Values: map[string]any{"product_id": "123123", "device_name": "mydev", "device_key": onKey},
		Override: Overrides{Host: "10.0.0.1", Port: 11883, ClientID: &cid}})
	if err != nil {
		t.Fatal(err)
	}
	id, _ := p.Identity(time.Unix(1700000000, 0))
	if ep := p.Endpoint(); ep.Host != "10.0.0.1" || ep.Port != 11883 || id.ClientID != "my-client" || id.Username != "123123" {
		t.Errorf("endpoint %+v, identity %v", ep, id)
	}
	user := "x"
	_, err = New("tencent", Settings{Values: map[string]any{"product_id": "P", "device_name": "D", "device_secret": tcSecret},
		Override: Overrides{Username: &user}})
	if fe := FieldErrors(err); len(fe) != 1 || fe[0].Key != "mqtt.username" || !strings.Contains(fe[0].Msg, "signed into the Tencent password") {
		t.Errorf("err = %v", err)
	}
}

// Printing a platform in any way never shows its secrets.
func TestPlatformsPrintWithoutSecrets(t *testing.T) {
	p, err := New("azure", Settings{Values: map[string]any{"hub": "h", "device_id": "d", "device_key": azKey}})
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"%v", "%+v", "%#v", "%s", "%q", "%x"} {
		if s := strings.ToLower(sprintf(f, p)); strings.Contains(s, "password") || strings.Contains(s, "70617373") {
			t.Errorf("%s shows the key: %s", f, s)
		}
	}
}
