package config

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/gatewayd/gatewayd/internal/cloud"
)

// presetEnv is an environment whose systemd credentials hold every preset's secret, with the
// bundled CAs of deploy/ca.
func presetEnv(t *testing.T) Options {
	t.Helper()
	creds := t.TempDir()
	for cred, v := range map[string]string{
		CredAliyunDeviceSecret:        devSecret,
		cloud.CredTencentDeviceSecret: "MTIzNDU2Nzg5MGFiY2RlZg==",
		cloud.CredHuaweiDeviceSecret:  "12345678",
		cloud.CredOneNETDeviceKey:     "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=",
		cloud.CredAzureDeviceKey:      "cGFzc3dvcmQ=",
		cloud.CredThingsBoardToken:    "A1_TEST_TOKEN",
		"not-base64":                  "not base64!",
	} {
		writeFile(t, creds, cred, v+"\n", 0o400)
	}
	o := envWith(creds)
	o.CADir = "../../deploy/ca"
	return o
}

const (
	tencentSection = "[mqtt.tencent]\nproduct_id = \"1A17RZR3XX\"\ndevice_name = \"gate_dev01\"\n"
	huaweiSection  = "[mqtt.huawei]\ndevice_id = \"5f052ac562369102d42b0fb6\"\nendpoint = \"abc.st1.iotda-device.cn-north-4.myhuaweicloud.com\"\n"
	azureSection   = "[mqtt.azure]\nhub = \"myiothub\"\ndevice_id = \"my_device\"\n"
	awsSection     = "[mqtt.aws]\nendpoint = \"a1b2c3-ats.iot.eu-west-1.amazonaws.com\"\nthing_name = \"pi-01\"\n"
	tbSection      = "[mqtt.thingsboard]\n"
	onenetSection  = "[mqtt.onenet]\nproduct_id = \"123123\"\ndevice_name = \"mydev\"\n"
)

// What a preset cannot take is refused at start, naming the file, the line and the key, with
// the platform's rule in words.
func TestPresetsRefuseWhatThePlatformRefuses(t *testing.T) {
	env := presetEnv(t)
	tests := []struct {
		name, src string
		want      []string
	}{
		{"keep-alive above Tencent's 900s", "[mqtt]\nkeepalive = \"901s\"\n" + tencentSection,
			[]string{"gatewayd.toml:2: mqtt.keepalive: 901s is out of range for Tencent Cloud IoT Explorer (0s–900s)"}},
		{"keep-alive off on Huawei", "[mqtt]\nkeepalive = \"0s\"\n" + huaweiSection,
			[]string{"gatewayd.toml:2: mqtt.keepalive: 0s (no keep-alive) is not accepted by Huawei Cloud IoTDA (30s–1200s)"}},
		{"QoS 2 subscription on Azure", azureSection + "[[mqtt.subscribe]]\ntopic = \"{c2d}\"\nqos = 2\n",
			[]string{"gatewayd.toml:6: mqtt.subscribe[0].qos: 2: Azure IoT Hub closes the connection on a QoS 2 publish"}},
		{"QoS 2 will on Huawei", huaweiSection + "[mqtt.will]\ntopic = \"{event_post}\"\nqos = 2\n",
			[]string{"gatewayd.toml:6: mqtt.will.qos: 2: Huawei IoTDA has no QoS 2"}},
		{"retain on Tencent", tencentSection + "[[mqtt.publish_on_connect]]\ntopic = \"{property_post}\"\nretain = true\n",
			[]string{"gatewayd.toml:6: mqtt.publish_on_connect[0].retain: Tencent IoT does not support retained messages"}},
		{"derived client id longer than the module takes", "[mqtt.tencent]\nproduct_id = \"1A17RZR3XX\"\ndevice_name = \"" + strings.Repeat("d", 119) + "\"\n",
			[]string{`gatewayd.toml:1: mqtt.tencent: derived client id "1A17RZR3XX` + strings.Repeat("d", 119) + `" is 129 bytes: the module takes at most 128 bytes (AT+QMTCONN, ec600-at.md 2.3)`}},
		{"derived Azure password longer than the module takes", "[mqtt.azure]\nhub = \"myiothub\"\ndevice_id = \"" + strings.Repeat("d", 128) + "\"\n",
			[]string{"gatewayd.toml:1: mqtt.azure: derived password (value not shown) is 259 bytes: the module takes at most 256 bytes"}},
		{"a secret written inline", tencentSection + "device_secret = \"MTIzNDU2Nzg5MGFiY2RlZg==\"\n",
			[]string{"gatewayd.toml:4: mqtt.tencent.device_secret: a secret is not written in the configuration: put it in a file (chmod 600) named by mqtt.tencent.device_secret_file, or in the systemd credential tencent-device-secret"}},
		{"a Tencent secret that is not base64", tencentSection + "device_secret_file = \"cred:not-base64\"\n",
			[]string{"gatewayd.toml:4: mqtt.tencent.device_secret_file: is not base64 (value not shown)"}},
		{"an OneNET device without its key (and no credential)", "[mqtt]\n" + onenetSection,
			[]string{"gatewayd.toml:2: mqtt.onenet.device_key: required: the device key, base64"}},
		{"ThingsBoard over TLS without the server's CA", tbSection + "[mqtt.tls]\nsni = true\n",
			[]string{"gatewayd.toml:2: mqtt.tls.ca_file: required: ThingsBoard's broker certificate is your server's"}},
		{"AWS without a client certificate", awsSection,
			[]string{"mqtt.tls.cert_file: required: AWS IoT Core authenticates the device by its client certificate"}},
		{"the legacy AWS endpoint", strings.Replace(awsSection, "-ats.iot", ".iot", 1) + "[mqtt.tls]\ncert_file = \"x\"\nkey_file = \"y\"\n",
			[]string{"gatewayd.toml:2: mqtt.aws.endpoint: \"a1b2c3.iot.eu-west-1.amazonaws.com\" is not an ATS endpoint"}},
		{"two platform sections", tencentSection + huaweiSection,
			[]string{"gatewayd.toml:1: mqtt.tencent: only one platform section can be configured; [mqtt.huawei] is one already"}},
		{"a Huawei device without its endpoint", "[mqtt.huawei]\ndevice_id = \"x\"\n",
			[]string{"gatewayd.toml:1: mqtt.huawei.endpoint: required: the MQTT access address from the console"}},
		{"a misspelt template", tencentSection + "[[mqtt.subscribe]]\ntopic = \"{propery_set}\"\n",
			[]string{"gatewayd.toml:5: mqtt.subscribe[0].topic: unknown placeholder {propery_set} (known with [mqtt.tencent]: {action}, {action_reply}, {device_name}"}},
		{"publishing to a filter template", huaweiSection + "[[mqtt.publish_on_connect]]\ntopic = \"{property_set}\"\n",
			[]string{`mqtt.publish_on_connect[0].topic: "$oc/devices/5f052ac562369102d42b0fb6/sys/properties/set/#": a publish topic cannot contain the wildcards + or #`}},
		{"overriding a signed user name", "[mqtt]\nusername = \"u\"\n" + tencentSection,
			[]string{"gatewayd.toml:2: mqtt.username: is signed into the Tencent password"}},
		{"a token lifetime too short to renew", tencentSection + "lifetime = \"5s\"\n",
			[]string{"gatewayd.toml:4: mqtt.tencent.lifetime: 5s is out of range 10s–31536000s"}},
		{"a secret file that does not exist, reported once", tencentSection + "device_secret_file = \"/nonexistent/secret\"\n",
			[]string{"gatewayd.toml:4: mqtt.tencent.device_secret_file: open /nonexistent/secret: no such file or directory"}},
		{"an unknown key in a preset", tencentSection + "device_key_file = \"x\"\n",
			[]string{"gatewayd.toml:4: unknown key mqtt.tencent.device_key_file"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := env
			if strings.Contains(tt.name, "no credential") {
				e = Options{Getenv: noEnv.Getenv, CADir: env.CADir}
			}
			c, err := e.Parse([]byte(tt.src), name)
			if err == nil {
				t.Fatalf("accepted:\n%s\nplatform %v", tt.src, c.MQTT.Platform)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error\n%v\nlacks %q", err, w)
				}
			}
			if n := strings.Count(err.Error(), "\n") + 1; strings.Contains(tt.name, "reported once") && n != 1 {
				t.Errorf("%d problems, want 1:\n%v", n, err)
			}
			for _, secret := range []string{"MTIzNDU2Nzg5MGFiY2RlZg==", "not base64!", "A1_TEST_TOKEN"} {
				if strings.Contains(err.Error(), secret) {
					t.Errorf("the error shows a secret: %v", err)
				}
			}
		})
	}
}

// A preset derives broker, TLS, identity and templates from the console's values, and check
// shows them with the secrets masked.
func TestPresetsDerive(t *testing.T) {
	env := presetEnv(t)
	now := time.Unix(1700000000-24*3600, 0)
	tests := []struct {
		name, src string
		broker    string
		tlsCA     string // base name of the CA file, "" for no TLS
		describe  []string
	}{
		{"Tencent on plain 1883, with an expiring signature", tencentSection + "[[mqtt.subscribe]]\ntopic = \"{property_set}\"\n",
			"1A17RZR3XX.iotcloud.tencentdevices.com:1883", "", []string{
				"mqtt.platform            Tencent Cloud IoT Explorer ([mqtt.tencent]",
				"mqtt.client_id           1A17RZR3XXgate_dev01",
				"mqtt.username            1A17RZR3XXgate_dev01;12010126;",
				";1700000000",
				"mqtt.password            *** (signed with the secret from mqtt.tencent.device_secret: systemd credential tencent-device-secret; 75 bytes)",
				"expires 2023-11-14T22:13:20Z (after 86400s); the session renews it before then",
				"mqtt.subscribe           qos 0  $thing/down/property/1A17RZR3XX/gate_dev01",
				"mqtt.templates           {property_set}  $thing/down/property/1A17RZR3XX/gate_dev01",
			}},
		{"Tencent over TLS with its bundled CA", tencentSection + "[mqtt.tls]\n", "1A17RZR3XX.iotcloud.tencentdevices.com:8883", cloud.TencentCA, nil},
		{"Azure turns TLS on by itself", azureSection, "myiothub.azure-devices.net:8883 (host from mqtt.azure.hub)", cloud.AzureCA, []string{
			"mqtt.username            myiothub.azure-devices.net/my_device/?api-version=2021-04-12",
			"mqtt.tls                 the broker is verified",
		}},
		{"Huawei with the hour in the client id", huaweiSection, "abc.st1.iotda-device.cn-north-4.myhuaweicloud.com:1883", "", []string{
			"mqtt.client_id           5f052ac562369102d42b0fb6_0_1_2023111322",
			"signed afresh at every connect",
		}},
		{"OneNET on its fixed host", onenetSection, "mqtts.heclouds.com:1883 (host from mqtt.onenet)", "", []string{"mqtt.username            123123"}},
		{"ThingsBoard with the token masked", tbSection, "mqtt.thingsboard.cloud:1883", "", []string{
			"mqtt.username            *** (the access token from mqtt.thingsboard.access_token: systemd credential thingsboard-access-token)",
			"mqtt.password            (none: the access token is the user name)",
		}},
		{"a preset's host and port overridden key by key", "[mqtt]\nhost = \"iot.example.com\"\nport = 11883\n" + onenetSection,
			"iot.example.com:11883 (host from mqtt.host)", "", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := env.Parse([]byte(tt.src), name)
			if err != nil {
				t.Fatal(err)
			}
			var b bytes.Buffer
			if err := c.Describe(&b, now); err != nil {
				t.Fatal(err)
			}
			out := b.String()
			if !strings.Contains(out, "mqtt.broker              "+tt.broker) {
				t.Errorf("broker: want %s in\n%s", tt.broker, out)
			}
			switch {
			case tt.tlsCA == "" && c.MQTT.TLS != nil:
				t.Errorf("TLS on: %+v", c.MQTT.TLS)
			case tt.tlsCA != "" && (c.MQTT.TLS == nil || !strings.HasSuffix(c.MQTT.TLS.CAFile, "/"+tt.tlsCA) || len(c.MQTT.TLS.CA) == 0):
				t.Errorf("TLS %+v, want the bundled %s", c.MQTT.TLS, tt.tlsCA)
			}
			for _, w := range tt.describe {
				if !strings.Contains(out, w) {
					t.Errorf("check output lacks %q:\n%s", w, out)
				}
			}
			for _, secret := range []string{"MTIzNDU2Nzg5MGFiY2RlZg==", "12345678", "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=", "cGFzc3dvcmQ=", "A1_TEST_TOKEN"} {
				if strings.Contains(out, secret) {
					t.Errorf("check shows the secret %q:\n%s", secret, out)
				}
			}
			id, err := c.MQTT.Platform.Identity(now)
			if err != nil {
				t.Fatal(err)
			}
			if id.Password != "" && strings.Contains(out, id.Password) {
				t.Errorf("check shows the signed password:\n%s", out)
			}
		})
	}
}
