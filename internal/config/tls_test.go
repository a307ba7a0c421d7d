package config

import (
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gatewayd/gatewayd/qssl"
	"github.com/gatewayd/gatewayd/test/testutil"
)

// tlsDir writes a CA, a client certificate and key (mode 0600), a second key that does not
// match, and a file that is not PEM into a temporary directory and returns it.
func tlsDir(t *testing.T) string {
	dir := t.TempDir()
	p := testutil.NewPKI(t, "pi", "broker.example.com")
	other := testutil.NewPKI(t, "x", "x")
	writeFile(t, dir, "ca.pem", string(p.CA), 0o644)
	writeFile(t, dir, "client.pem", string(p.ClientCert), 0o644)
	writeFile(t, dir, "client.key", string(p.ClientKey), 0o600)
	writeFile(t, dir, "open.key", string(p.ClientKey), 0o644)
	writeFile(t, dir, "other.key", string(other.ClientKey), 0o600)
	writeFile(t, dir, "junk.pem", "hello\n", 0o644)
	return dir
}

func TestTLSSection(t *testing.T) {
	dir := tlsDir(t)
	f := func(n string) string { return `"` + filepath.Join(dir, n) + `"` }
	c := mustParse(t, noEnv, minimal+"[mqtt.tls]\nca_file = "+f("ca.pem")+"\ncert_file = "+f("client.pem")+"\nkey_file = "+f("client.key")+"\n")
	tc := c.MQTT.TLS
	if tc == nil || c.MQTT.Port != DefaultTLSPort || tc.QSSL().SecLevel() != 2 || tc.Key.IsZero() || len(c.Warnings) != 0 {
		t.Fatalf("port %d, TLS %+v, warnings %v", c.MQTT.Port, tc, c.Warnings)
	}
	if err := tc.QSSL().Validate(); err != nil {
		t.Errorf("the resolved context does not validate: %v", err)
	}
	// An explicit port wins; verification only; relative paths are taken from the config's directory.
	c2, err := noEnv.Parse([]byte(minimal+"port = 443\n[mqtt.tls]\nca_file = \"ca.pem\"\nversion = \"all\"\nsni = false\ncipher_suite = \"0xc02f\"\nnegotiate_timeout = \"60s\"\n"),
		filepath.Join(dir, "gatewayd.toml"))
	if err != nil {
		t.Fatal(err)
	}
	if tc := c2.MQTT.TLS; c2.MQTT.Port != 443 || tc.QSSL().SecLevel() != 1 || tc.Version != qssl.All || tc.SNI || tc.CipherSuite != 0xC02F || tc.NegotiateTimeout.Seconds() != 60 {
		t.Errorf("port %d, TLS %+v", c2.MQTT.Port, tc)
	}
	// A key others can read: accepted, with a warning.
	c3 := mustParse(t, noEnv, minimal+"[mqtt.tls]\nca_file = "+f("ca.pem")+"\ncert_file = "+f("client.pem")+"\nkey_file = "+f("open.key")+"\n")
	if len(c3.Warnings) != 1 || !strings.Contains(c3.Warnings[0], "chmod 600") {
		t.Errorf("warnings %q", c3.Warnings)
	}
	// Alibaba Cloud with TLS: secure mode 2, port 1883.
	a := mustParse(t, noEnv, minimalAliyun+"[mqtt.tls]\nca_file = "+f("ca.pem")+"\n")
	if id, _ := a.MQTT.Platform.Identity(time.UnixMilli(1)); !strings.Contains(id.ClientID, "securemode=2,") || a.MQTT.Port != DefaultMQTTPort {
		t.Errorf("aliyun with TLS: client id %q port %d", id.ClientID, a.MQTT.Port)
	}
	// The key never shows in what check prints.
	var out strings.Builder
	if err := c.Describe(&out, time.Now()); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(out.String(), "PRIVATE KEY") || !strings.Contains(out.String(), "mqtt.tls") {
		t.Errorf("Describe:\n%s", out.String())
	}
}

func TestTLSRejections(t *testing.T) {
	dir := tlsDir(t)
	f := func(n string) string { return `"` + filepath.Join(dir, n) + `"` }
	for _, tt := range []struct{ name, src, want string }{
		{"no CA", minimal + "[mqtt.tls]\n", "gatewayd.toml:4: mqtt.tls.ca_file: required"},
		{"missing CA", minimal + "[mqtt.tls]\nca_file = " + f("nope.pem") + "\n", "gatewayd.toml:5: mqtt.tls.ca_file: open "},
		{"junk CA", minimal + "[mqtt.tls]\nca_file = " + f("junk.pem") + "\n", "gatewayd.toml:5: mqtt.tls.ca_file: " + filepath.Join(dir, "junk.pem") + ": no PEM certificate in it"},
		{"directory CA", minimal + "[mqtt.tls]\nca_file = \"" + dir + "\"\n", "is not a regular file"},
		{"insecure and CA", minimal + "[mqtt.tls]\nca_file = " + f("ca.pem") + "\ninsecure_skip_verify = true\n", "mqtt.tls.insecure_skip_verify: cannot be used with ca_file"},
		{"cert without key", minimal + "[mqtt.tls]\nca_file = " + f("ca.pem") + "\ncert_file = " + f("client.pem") + "\n", "mqtt.tls.key_file: required with cert_file"},
		{"key without cert", minimal + "[mqtt.tls]\nca_file = " + f("ca.pem") + "\nkey_file = " + f("client.key") + "\n", "mqtt.tls.cert_file: required with key_file"},
		{"mismatched key", minimal + "[mqtt.tls]\nca_file = " + f("ca.pem") + "\ncert_file = " + f("client.pem") + "\nkey_file = " + f("other.key") + "\n", "mqtt.tls.key_file: "},
		{"mutual without CA", minimal + "[mqtt.tls]\ninsecure_skip_verify = true\ncert_file = " + f("client.pem") + "\nkey_file = " + f("client.key") + "\n", "mqtt.tls.cert_file: mutual TLS needs ca_file"},
		{"key credential without systemd", minimal + "[mqtt.tls]\nca_file = " + f("ca.pem") + "\ncert_file = " + f("client.pem") + "\nkey_file = \"cred:k\"\n", "needs $CREDENTIALS_DIRECTORY"},
		{"bad suite", minimal + "[mqtt.tls]\nca_file = " + f("ca.pem") + "\ncipher_suite = \"C02F\"\n", "mqtt.tls.cipher_suite: \"C02F\" is not one IANA cipher-suite number"},
		{"bad version", minimal + "[mqtt.tls]\nca_file = " + f("ca.pem") + "\nversion = \"1.3\"\n", "mqtt.tls.version: \"1.3\" is not one of"},
		{"bad context", minimal + "[mqtt.tls]\nca_file = " + f("ca.pem") + "\ncontext = 6\n", "mqtt.tls.context: 6 is out of range"},
		{"negotiate", minimal + "[mqtt.tls]\nca_file = " + f("ca.pem") + "\nnegotiate_timeout = \"5s\"\n", "mqtt.tls.negotiate_timeout: "},
		{"unknown key", minimal + "[mqtt.tls]\nca_file = " + f("ca.pem") + "\ncafile = \"x\"\n", "unknown key mqtt.tls.cafile (did you mean mqtt.tls.ca_file?)"},
		{"aliyun plain with TLS", minimalAliyun + "secure_mode = 3\n[mqtt.tls]\nca_file = " + f("ca.pem") + "\n", "mqtt.aliyun.secure_mode: 3 means plain TCP, but [mqtt.tls] is configured"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := noEnv.Parse([]byte(tt.src), name)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Parse = %v\nwant an error with %q", err, tt.want)
			}
			if strings.Contains(err.Error(), "PRIVATE KEY") || strings.Contains(err.Error(), "MII") {
				t.Errorf("the error shows key material: %v", err)
			}
		})
	}
}
