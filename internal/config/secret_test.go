package config

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/gatewayd/gatewayd/internal/cloud"
)

const (
	mqttPW    = "mqtt-pw-hunter2"
	apnPW     = "apn-pw-swordfish"
	devSecret = "Zx9yW8vU7tS6rQ5pO4nM3lK2jI1hG0fE"
)

// everyForm prints v in every way a programmer might log or dump it.
func everyForm(t *testing.T, v any) string {
	t.Helper()
	var out strings.Builder
	for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%q", "%x", "%X", "%10.3v", "%T"} {
		fmt.Fprintf(&out, verb+"\n", v)
	}
	fmt.Fprintln(&out, v)
	j, err := json.Marshal(v)
	if err != nil {
		t.Fatalf("json.Marshal: %v", err)
	}
	out.Write(j)
	var zl bytes.Buffer
	log := zerolog.New(&zl)
	log.Info().Interface("cfg", v).Msg("interface")
	log.Info().Any("cfg", v).Msg("any")
	log.Info().Str("cfg", fmt.Sprint(v)).Msg("sprint")
	if s, ok := v.(fmt.Stringer); ok {
		log.Info().Stringer("cfg", s).Msg("stringer")
	}
	out.Write(zl.Bytes())
	var sl bytes.Buffer
	slog.New(slog.NewJSONHandler(&sl, nil)).Info("x", "cfg", v)
	slog.New(slog.NewTextHandler(&sl, nil)).Info("x", "cfg", v)
	out.Write(sl.Bytes())
	return out.String()
}

func assertHidden(t *testing.T, what, out string, secrets ...string) {
	t.Helper()
	for _, s := range secrets {
		if strings.Contains(out, s) {
			t.Errorf("%s reveals %q:\n%s", what, s, out)
		}
	}
	if !strings.Contains(out, masked) {
		t.Errorf("%s shows no %s at all:\n%s", what, masked, out)
	}
}

func TestSecretNeverPrinted(t *testing.T) {
	s := NewSecret(mqttPW)
	assertHidden(t, "Secret", everyForm(t, s), mqttPW)
	assertHidden(t, "*Secret", everyForm(t, &s), mqttPW)
	if s.Reveal() != mqttPW {
		t.Errorf("Reveal() = %q", s.Reveal())
	}
	// fmt cannot call the methods of an unexported field; the pointer inside keeps the text out.
	hidden := struct{ s Secret }{s}
	if out := fmt.Sprintf("%v %+v %#v", hidden, hidden, hidden); strings.Contains(out, mqttPW) {
		t.Errorf("unexported Secret field printed as %s", out)
	}
	var zero Secret
	if !zero.IsZero() || zero.Reveal() != "" || !NewSecret("").IsZero() || s.IsZero() {
		t.Error("IsZero wrong")
	}
}

func TestConfigNeverPrintsSecrets(t *testing.T) {
	lit := mustParse(t, noEnv, minimal+"username = \"u\"\npassword = \""+mqttPW+"\"\n[module]\napn = \"a\"\napn_user = \"u\"\napn_password = \""+apnPW+"\"\n")
	ali := mustParse(t, noEnv, minimalAliyun)
	for _, tt := range []struct {
		name    string
		c       *Config
		secrets []string
	}{
		{"literal", lit, []string{mqttPW, apnPW}},
		{"aliyun", ali, []string{devSecret}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			assertHidden(t, "*Config", everyForm(t, tt.c), tt.secrets...)
			assertHidden(t, "Config", everyForm(t, *tt.c), tt.secrets...)
			assertHidden(t, "MQTT", everyForm(t, tt.c.MQTT), tt.secrets...)

			now := time.UnixMilli(1700000000000)
			cr, err := tt.c.Credentials(now)
			if err != nil {
				t.Fatal(err)
			}
			secrets := append(tt.secrets, cr.Password.Reveal())
			assertHidden(t, "Credentials", everyForm(t, cr), secrets...)

			var d bytes.Buffer
			if err := tt.c.Describe(&d, now); err != nil {
				t.Fatal(err)
			}
			assertHidden(t, "Describe", d.String(), secrets...)
		})
	}
}

func TestPasswordFile(t *testing.T) {
	dir := t.TempDir()
	for _, tt := range []struct {
		name, content string
		mode          os.FileMode
		want          string
		warn          bool
	}{
		{"newline trimmed", "s3cret\n", 0o600, "s3cret", false},
		{"CRLF trimmed", "s3cret\r\n", 0o400, "s3cret", false},
		{"no newline", "s3cret", 0o600, "s3cret", false},
		{"inner and leading spaces kept", " s3 cret\n", 0o600, " s3 cret", false},
		{"group readable warns", "s3cret\n", 0o640, "s3cret", true},
		{"world readable warns", "s3cret\n", 0o604, "s3cret", true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			p := writeFile(t, dir, strings.ReplaceAll(tt.name, " ", "-"), tt.content, tt.mode)
			c := mustParse(t, noEnv, minimal+"username = \"u\"\npassword_file = \""+p+"\"\n")
			if got := c.MQTT.Password.Reveal(); got != tt.want {
				t.Errorf("password %q, want %q", got, tt.want)
			}
			if c.Sources["mqtt.password"] != "file "+p {
				t.Errorf("source %q", c.Sources["mqtt.password"])
			}
			w := strings.Join(c.Warnings, "\n")
			if tt.warn != strings.Contains(w, "gatewayd.toml:5: mqtt.password_file: "+p+" can be read or written by group or others") {
				t.Errorf("warnings %q, want a warning: %v", w, tt.warn)
			}
			if strings.Contains(w, tt.want) {
				t.Errorf("warning reveals the password: %s", w)
			}
		})
	}

	for _, tt := range []struct {
		name, path, want string
	}{
		{"missing", filepath.Join(dir, "nope"), "gatewayd.toml:5: mqtt.password_file: open " + filepath.Join(dir, "nope") + ": no such file or directory"},
		{"empty", writeFile(t, dir, "empty", "\n\n", 0o600), "gatewayd.toml:5: mqtt.password_file: " + filepath.Join(dir, "empty") + " is empty"},
		{"directory", dir, "gatewayd.toml:5: mqtt.password_file: " + dir + " is not a regular file"},
		{"huge", writeFile(t, dir, "huge", strings.Repeat("x", MaxSecretFile+1), 0o600), "is larger than 4096 bytes"},
		{"quote inside", writeFile(t, dir, "quote", "a\"b\n", 0o600), `gatewayd.toml:5: mqtt.password_file: byte '"' at offset 1 cannot be sent inside an AT command string (value not shown)`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := noEnv.Parse([]byte(minimal+"username = \"u\"\npassword_file = \""+tt.path+"\"\n"), name)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %v, want %q", err, tt.want)
			}
			if strings.Contains(err.Error(), "xxxx") || strings.Contains(err.Error(), "a\"b") {
				t.Errorf("error shows the file's contents: %v", err)
			}
		})
	}
}

func TestCredentialsDirectory(t *testing.T) {
	creds := t.TempDir()
	writeFile(t, creds, CredMQTTPassword, "from-cred\n", 0o400)
	writeFile(t, creds, CredAliyunDeviceSecret, devSecret+"\n", 0o400)
	writeFile(t, creds, CredAPNPassword, "apn-cred", 0o400)
	writeFile(t, creds, "other", "other-cred", 0o444) // systemd's modes are its business: no warning
	env := envWith(creds)

	t.Run("explicit cred: name", func(t *testing.T) {
		c := mustParse(t, env, minimal+"username = \"u\"\npassword_file = \"cred:other\"\n")
		if c.MQTT.Password.Reveal() != "other-cred" || c.Sources["mqtt.password"] != "systemd credential other" || len(c.Warnings) != 0 {
			t.Errorf("password %q source %q warnings %v", c.MQTT.Password.Reveal(), c.Sources["mqtt.password"], c.Warnings)
		}
	})
	t.Run("implicit mqtt-password when a user name is set", func(t *testing.T) {
		c := mustParse(t, env, minimal+"username = \"u\"\n")
		if c.MQTT.Password.Reveal() != "from-cred" || c.Sources["mqtt.password"] != "systemd credential mqtt-password" {
			t.Errorf("password %q source %q", c.MQTT.Password.Reveal(), c.Sources["mqtt.password"])
		}
	})
	t.Run("no implicit password without a user name", func(t *testing.T) {
		c := mustParse(t, env, minimal)
		if !c.MQTT.Password.IsZero() {
			t.Errorf("password picked up without a user name")
		}
	})
	t.Run("inline beats the implicit credential", func(t *testing.T) {
		c := mustParse(t, env, minimal+"username = \"u\"\npassword = \"inline\"\n")
		if c.MQTT.Password.Reveal() != "inline" || c.Sources["mqtt.password"] != "inline" {
			t.Errorf("password %q", c.MQTT.Password.Reveal())
		}
	})
	t.Run("implicit aliyun-device-secret", func(t *testing.T) {
		c := mustParse(t, env, strings.Replace(minimalAliyun, "device_secret = \""+devSecret+"\"\n", "", 1))
		want, _ := cloud.AliyunSign(cloud.AliyunParams{ProductKey: "a1B2c3D4e5F", DeviceName: "pi-led-01", DeviceSecret: devSecret, Timestamp: 1700000000000})
		got, err := c.Credentials(time.UnixMilli(1700000000000))
		if err != nil || got.Password.Reveal() != want.Password || c.Sources["mqtt.aliyun.device_secret"] != "systemd credential aliyun-device-secret" {
			t.Errorf("secret from %q", c.Sources["mqtt.aliyun.device_secret"])
		}
		if _, ok := c.Sources["mqtt.password"]; ok {
			t.Error("mqtt-password credential read in Aliyun mode")
		}
	})
	t.Run("implicit apn-password when apn_user is set", func(t *testing.T) {
		c := mustParse(t, env, minimal+"[module]\napn = \"a\"\napn_user = \"u\"\n")
		if c.Module.APNPassword.Reveal() != "apn-cred" {
			t.Errorf("apn password %q", c.Module.APNPassword.Reveal())
		}
	})
	t.Run("no credential directory, no implicit secret", func(t *testing.T) {
		c := mustParse(t, noEnv, minimal+"username = \"u\"\n")
		if !c.MQTT.Password.IsZero() {
			t.Error("password from nowhere")
		}
	})

	for _, tt := range []struct {
		name string
		o    Options
		file string
		want string
	}{
		{"cred: without the variable", noEnv, "cred:mqtt-password",
			`gatewayd.toml:5: mqtt.password_file: "cred:mqtt-password" needs $CREDENTIALS_DIRECTORY, which is not set`},
		{"missing credential", env, "cred:absent", "gatewayd.toml:5: mqtt.password_file: open " + filepath.Join(creds, "absent") + ": no such file"},
		{"path in credential name", env, "cred:../etc/passwd", `gatewayd.toml:5: mqtt.password_file: "cred:../etc/passwd": a credential name is one file name`},
		{"empty credential name", env, "cred:", `a credential name is one file name`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := tt.o.Parse([]byte(minimal+"username = \"u\"\npassword_file = \""+tt.file+"\"\n"), name)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %v, want %q", err, tt.want)
			}
		})
	}

	t.Run("empty implicit credential is an error", func(t *testing.T) {
		d := t.TempDir()
		writeFile(t, d, CredMQTTPassword, "\n", 0o400)
		_, err := envWith(d).Parse([]byte(minimal+"username = \"u\"\n"), name)
		if err == nil || !strings.Contains(err.Error(), "mqtt.password: systemd credential mqtt-password: ") || !strings.Contains(err.Error(), "is empty") {
			t.Fatalf("error %v", err)
		}
	})
}

func TestDescribe(t *testing.T) {
	c := mustParse(t, noEnv, "[mqtt]\nkeepalive = \"300s\"\n"+minimalAliyun+`sign_method = "hmacsha1"
[[mqtt.subscribe]]
topic = "/sys/{product_key}/{device_name}/thing/service/property/set"
qos = 1
`)
	var b bytes.Buffer
	if err := c.Describe(&b, time.UnixMilli(1700000000000)); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	for _, want := range []string{
		"mqtt.broker              a1B2c3D4e5F.iot-as-mqtt.cn-shanghai.aliyuncs.com:1883 (host from mqtt.aliyun.region)",
		"mqtt.client_id           pi-led-01|securemode=3,signmethod=hmacsha1,timestamp=1700000000000|",
		"mqtt.username            pi-led-01&a1B2c3D4e5F",
		"mqtt.password            *** (signed with the secret from mqtt.aliyun.device_secret: inline; 40 bytes)",
		"mqtt.keepalive           300s",
		"mqtt.subscribe           qos 1  /sys/a1B2c3D4e5F/pi-led-01/thing/service/property/set",
		"led                      virtual",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("Describe output lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "69d84ceca71bf26dd9cc21f8d74d3a330495bb83") {
		t.Error("Describe printed the signed password")
	}
}
