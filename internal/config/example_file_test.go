package config

import (
	"os"
	"path/filepath"

	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/gatewayd/gatewayd/internal/cloud"
	"github.com/gatewayd/gatewayd/qssl"
	"github.com/gatewayd/gatewayd/test/testutil"
)

const exampleFile = "../../deploy/gatewayd.example.toml"

// variant turns the example into one of its documented variants, following the instructions
// written in it: delete the [mqtt] keys that drop matches, and uncomment the settings between
// the "# >>> <name>" and "# <<< end" markers (drop may be nil), with each (from, to) of rename applied to them.
func variant(t *testing.T, src, name string, drop *regexp.Regexp, rename ...string) string {
	t.Helper()
	setting := regexp.MustCompile(`^#(\[|[a-z_]+ = )`)
	var out []string
	inBlock, inMQTT, found := false, false, false
	for _, l := range strings.Split(src, "\n") {
		switch {
		case strings.HasPrefix(l, "# >>> "+name):
			inBlock, found = true, true
		case strings.HasPrefix(l, "# <<< end"):
			inBlock = false
		case strings.HasPrefix(l, "["):
			inMQTT = l == "[mqtt]"
		}
		if inMQTT && drop != nil && drop.MatchString(l) {
			continue
		}
		if inBlock && setting.MatchString(l) {
			l = strings.NewReplacer(rename...).Replace(l[1:])
		}
		out = append(out, l)
	}
	if !found {
		t.Fatalf("the example has no %s block", name)
	}
	return strings.Join(out, "\n")
}

// aliyunVariant is the example's Alibaba Cloud variant: host, client_id and username deleted.
func aliyunVariant(t *testing.T, src string) string {
	return variant(t, src, "Alibaba Cloud", regexp.MustCompile(`^(host|client_id|username) = `))
}

// tlsVariant is the example's TLS variant: mqtt.port deleted, the certificate paths moved from
// /etc/gatewayd/tls to dir.
func tlsVariant(t *testing.T, src, dir string) string {
	return variant(t, src, "TLS variant", regexp.MustCompile(`^port = `), "/etc/gatewayd/tls", dir)
}

// resetVariant is the example's reset-line variant.
func resetVariant(t *testing.T, src string) string {
	return variant(t, src, "Reset line variant", nil)
}

// metricsVariant is the example's metrics variant.
func metricsVariant(t *testing.T, src string) string {
	return variant(t, src, "Metrics variant", nil)
}

// tlsFiles writes a CA and a client certificate in dir, and the key as the systemd credential
// mqtt-tls-key in creds, where the TLS variant of the example looks for them.
func tlsFiles(t *testing.T, dir, creds string) {
	p := testutil.NewPKI(t, "pi-led-01", "broker.example.com")
	writeFile(t, dir, "ca.pem", string(p.CA), 0o644)
	writeFile(t, dir, "client.pem", string(p.ClientCert), 0o644)
	writeFile(t, creds, "mqtt-tls-key", string(p.ClientKey), 0o400)
}

// The example differs from the defaults only where it says so: every other key it sets must
// equal what an absent key gives, or the comments ("default") would lie.
func TestExampleFile(t *testing.T) {
	src, err := os.ReadFile(exampleFile)
	if err != nil {
		t.Fatal(err)
	}
	creds := t.TempDir()
	writeFile(t, creds, CredMQTTPassword, "pw-from-credential\n", 0o400)
	writeFile(t, creds, CredAliyunDeviceSecret, devSecret+"\n", 0o400)

	c, err := envWith(creds).Load(exampleFile)
	if err != nil {
		t.Fatalf("the example does not parse:\n%v", err)
	}
	if len(c.Warnings) != 0 {
		t.Errorf("warnings: %v", c.Warnings)
	}
	if c.MQTT.Password.Reveal() != "pw-from-credential" {
		t.Errorf("the example's documented implicit credential was not used: source %q", c.Sources["mqtt.password"])
	}
	def := mustParse(t, noEnv, minimal)
	for _, ck := range []struct {
		key             string
		example, defval any
	}{
		{"serial.port", c.Serial.Port, def.Serial.Port},
		{"serial.baud", c.Serial.Baud, def.Serial.Baud},
		{"module.pdp_context", c.Module.PDPContext, def.Module.PDPContext},
		{"module.sim_timeout", c.Module.SIMTimeout, def.Module.SIMTimeout},
		{"module.register_timeout", c.Module.RegisterTimeout, def.Module.RegisterTimeout},
		{"mqtt.port", c.MQTT.Port, def.MQTT.Port},
		{"mqtt.keepalive", c.MQTT.KeepAlive, def.MQTT.KeepAlive},
		{"mqtt.clean_session", c.MQTT.CleanSession, def.MQTT.CleanSession},
		{"mqtt.client_index", c.MQTT.ClientIndex, def.MQTT.ClientIndex},
		{"mqtt.packet_timeout", c.MQTT.PacketTimeout, def.MQTT.PacketTimeout},
		{"mqtt.retries", c.MQTT.Retries, def.MQTT.Retries},
		{"log.level", c.Log.Level, def.Log.Level},
		{"log.format", c.Log.Format, def.Log.Format},
		{"log.at_trace", c.Log.ATTrace, def.Log.ATTrace},
		{"led.active_low", c.LED.ActiveLow, def.LED.ActiveLow},
		{"local.max_clients", c.Local.MaxClients, DefaultLocalMaxClients},
		{"local.max_topic", c.Local.MaxTopic, DefaultLocalMaxTopic},
		{"local.max_retained", c.Local.MaxRetained, DefaultLocalMaxRetained},
		{"local.max_retained_bytes", c.Local.MaxRetainedBytes, DefaultLocalMaxRetainedBytes},
	} {
		if ck.example != ck.defval {
			t.Errorf("example sets %s = %v, but the default is %v", ck.key, ck.example, ck.defval)
		}
	}

	// The Alibaba Cloud variant, as the file tells the reader to make it.
	v := aliyunVariant(t, string(src))
	a, err := envWith(creds).Parse([]byte(v), "variant.toml")
	if err != nil {
		t.Fatalf("the Alibaba Cloud variant does not parse:\n%v\n--- variant:\n%s", err, v)
	}
	if a.MQTT.Platform == nil || a.MQTT.Platform.Name() != "aliyun" || a.MQTT.Host != "a1B2c3D4e5F.iot-as-mqtt.cn-shanghai.aliyuncs.com" {
		t.Fatalf("variant: platform %v host %q", a.MQTT.Platform, a.MQTT.Host)
	}
	if id, err := a.MQTT.Platform.Identity(time.UnixMilli(1700000000000)); err != nil || !strings.HasSuffix(id.ClientID, "|securemode=3,signmethod="+string(DefaultSignMethod)+",timestamp=1700000000000|") {
		t.Errorf("variant documents non-default values as defaults: client id %q, %v", id.ClientID, err)
	}
	var topics []string
	for _, s := range a.MQTT.Subscribe {
		topics = append(topics, s.Topic)
	}
	if got := strings.Join(topics, " "); !strings.Contains(got, "/sys/a1B2c3D4e5F/pi-led-01/thing/service/property/set") {
		t.Errorf("variant topics %s", got)
	}
	cr, err := a.Credentials(time.UnixMilli(1700000000000))
	if err != nil || cr.Username != "pi-led-01&a1B2c3D4e5F" {
		t.Errorf("variant credentials %q, %v", cr.Username, err)
	}

	// The TLS variant: the documented defaults are the defaults.
	certs := t.TempDir()
	tlsFiles(t, certs, creds)
	tv, err := envWith(creds).Parse([]byte(tlsVariant(t, string(src), certs)), "tls.toml")
	if err != nil {
		t.Fatalf("the TLS variant does not parse:\n%v", err)
	}
	tc := tv.MQTT.TLS
	if tc == nil || tv.MQTT.Port != DefaultTLSPort || tc.Context != DefaultTLSContext || tc.Version != qssl.TLS12 ||
		!tc.SNI || !tc.IgnoreModuleClock || tc.InsecureSkipVerify || tc.NegotiateTimeout != 0 || tc.CipherSuite != 0 {
		t.Errorf("TLS variant documents non-default values as defaults: port %d, %+v", tv.MQTT.Port, tc)
	}
	if tc != nil && (tc.QSSL().SecLevel() != 2 || tv.Sources["mqtt.tls.key_file"] != "systemd credential mqtt-tls-key") {
		t.Errorf("TLS variant: seclevel %d, key from %q", tc.QSSL().SecLevel(), tv.Sources["mqtt.tls.key_file"])
	}

	// The reset-line variant: the documented defaults are the defaults.
	rv, err := envWith(creds).Parse([]byte(resetVariant(t, string(src))), "reset.toml")
	if err != nil {
		t.Fatalf("the reset-line variant does not parse:\n%v", err)
	}
	if r := rv.Reset; r == nil || r.Pulse != DefaultResetPulse || r.Line.ActiveLow || r.Line.Offset < 0 {
		t.Errorf("reset-line variant: %+v", r)
	}

	// The metrics variant: the documented defaults are the defaults.
	mv, err := envWith(creds).Parse([]byte(metricsVariant(t, string(src))), "metrics.toml")
	if err != nil {
		t.Fatalf("the metrics variant does not parse:\n%v", err)
	}
	if m := mv.Metrics; m == nil || *m != (Metrics{Listen: DefaultMetricsListen}) {
		t.Errorf("metrics variant: %+v", m)
	}
	if c.Metrics != nil {
		t.Errorf("the example turns the metrics on: %+v", c.Metrics)
	}
}

// platformExample is one of deploy/examples/<platform>.toml, ready to parse.
type platformExample struct {
	name, platform, src string
	opts                Options
}

// platformExamples reads deploy/examples, with each platform's secret in the credentials
// directory creds, the certificate paths moved to a temporary directory, and the CAs taken
// from deploy/ca.
func platformExamples(t *testing.T, creds string) []platformExample {
	t.Helper()
	for cred, v := range map[string]string{
		CredAliyunDeviceSecret:        devSecret,
		cloud.CredTencentDeviceSecret: "MTIzNDU2Nzg5MGFiY2RlZg==",
		cloud.CredHuaweiDeviceSecret:  "12345678",
		cloud.CredOneNETDeviceKey:     "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=",
		cloud.CredAzureDeviceKey:      "cGFzc3dvcmQ=",
		cloud.CredThingsBoardToken:    "A1_TEST_TOKEN",
	} {
		writeFile(t, creds, cred, v+"\n", 0o400)
	}
	certs := t.TempDir()
	tlsFiles(t, certs, creds)
	files, err := filepath.Glob("../../deploy/examples/*.toml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no platform examples: %v", err)
	}
	var out []platformExample
	for _, f := range files {
		src, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		opts := envWith(creds)
		opts.CADir = "../../deploy/ca"
		out = append(out, platformExample{
			name:     f,
			platform: strings.TrimSuffix(filepath.Base(f), ".toml"),
			src:      strings.ReplaceAll(string(src), "/etc/gatewayd/tls", certs),
			opts:     opts,
		})
	}
	return out
}

// Each platform example parses, configures its platform and no warnings, and its templates
// expand.
func TestPlatformExamples(t *testing.T) {
	exs := platformExamples(t, t.TempDir())
	seen := map[string]bool{}
	for _, pe := range exs {
		t.Run(pe.platform, func(t *testing.T) {
			c, err := pe.opts.Parse([]byte(pe.src), pe.name)
			if err != nil {
				t.Fatalf("does not parse:\n%v", err)
			}
			if len(c.Warnings) != 0 {
				t.Errorf("warnings: %v", c.Warnings)
			}
			p := c.MQTT.Platform
			if p == nil || p.Name() != pe.platform {
				t.Fatalf("platform %v, want %s", p, pe.platform)
			}
			seen[p.Name()] = true
			for _, s := range c.MQTT.Subscribe {
				if strings.Contains(s.Topic, "{") {
					t.Errorf("topic %q not expanded", s.Topic)
				}
			}
			if _, err := c.Credentials(time.Now()); err != nil {
				t.Errorf("Credentials: %v", err)
			}
			var b strings.Builder
			if err := c.Describe(&b, time.Now()); err != nil {
				t.Fatal(err)
			}
			for _, secret := range []string{"MTIzNDU2Nzg5MGFiY2RlZg==", "12345678", "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=", "cGFzc3dvcmQ=", "A1_TEST_TOKEN", devSecret} {
				if strings.Contains(b.String(), secret) {
					t.Errorf("check prints the secret %q:\n%s", secret, b.String())
				}
			}
		})
	}
	for _, n := range cloud.Names() {
		if !seen[n] {
			t.Errorf("no deploy/examples/%s.toml", n)
		}
	}
}

// Every key the parser knows appears in the example, in its table (commented out or not).
func TestExampleDocumentsEveryKey(t *testing.T) {
	src, err := os.ReadFile(exampleFile)
	if err != nil {
		t.Fatal(err)
	}
	creds := t.TempDir()
	writeFile(t, creds, CredAliyunDeviceSecret, devSecret, 0o400)

	// Ask the parser which keys it reads, from both variants of the example.
	known := map[string]bool{}
	if _, err := envWith(creds).parse(src, "example", known); err != nil {
		t.Fatal(err)
	}
	if _, err := envWith(creds).parse([]byte(aliyunVariant(t, string(src))), "variant", known); err != nil {
		t.Fatal(err)
	}
	certs := t.TempDir()
	tlsFiles(t, certs, creds)
	if _, err := envWith(creds).parse([]byte(tlsVariant(t, string(src), certs)), "tls variant", known); err != nil {
		t.Fatal(err)
	}
	if _, err := envWith(creds).parse([]byte(resetVariant(t, string(src))), "reset variant", known); err != nil {
		t.Fatal(err)
	}
	if _, err := envWith(creds).parse([]byte(metricsVariant(t, string(src))), "metrics variant", known); err != nil {
		t.Fatal(err)
	}

	// Where the example mentions keys: every "key =" line, commented out or not, in its table;
	// the platform sections are documented by deploy/examples/<platform>.toml.
	documented := map[string]bool{}
	document := func(src string) {
		uncommented := regexp.MustCompile(`(?m)^#\s*(\[|[a-z_]+ = )`).ReplaceAllString(src, "$1")
		for _, e := range newLocator(uncommented).entries {
			documented[e.path.schemaString()] = true
		}
	}
	document(string(src))
	for _, pe := range platformExamples(t, creds) {
		if _, err := pe.opts.parse([]byte(pe.src), pe.name, known); err != nil {
			t.Fatal(err)
		}
		document(pe.src)
	}

	var missing []string
	for k := range known {
		if !documented[k] {
			missing = append(missing, k)
		}
	}
	sort.Strings(missing)
	if len(missing) > 0 {
		t.Errorf("keys the parser reads but the example does not document: %v", missing)
	}
	for _, k := range []string{"mqtt.password", "mqtt.aliyun.device_secret_file", "module.apn_password_file", "led.line", "mqtt.tls.cipher_suite"} {
		if !known[k] {
			t.Errorf("key %s not reported by the parser: the check above would be vacuous", k)
		}
	}
	for k := range documented {
		if !known[k] {
			t.Errorf("the example documents %s, which the parser does not read", k)
		}
	}
}
