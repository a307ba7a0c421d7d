package config

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/gatewayd/gatewayd/qssl"
)

// TLS defaults and limits.
const (
	DefaultTLSPort    = 8883
	DefaultTLSContext = 1
	// MaxCertFile is the largest certificate or key file read: the module's file system is
	// small, so a whole system bundle is refused with advice.
	MaxCertFile = 64 << 10
)

// TLS is [mqtt.tls]: the module's MQTT link runs over TLS with certificates gatewayd keeps in
// the module's file system.
type TLS struct {
	Context  int          // the module's AT+QSSLCFG context, 0-5
	Version  qssl.Version // sslversion
	CAFile   string       // paths as resolved, for messages ("" when insecure_skip_verify)
	CertFile string
	KeyFile  string
	CA       []byte // PEM contents
	Cert     []byte
	Key      Secret // PEM private key
	// InsecureSkipVerify: no CA; the link is encrypted but the broker is not authenticated.
	InsecureSkipVerify bool
	SNI                bool
	// IgnoreModuleClock skips certificate dates on the module (its clock is rarely synced).
	IgnoreModuleClock bool
	NegotiateTimeout  time.Duration // 0: the module's default
	CipherSuite       uint16        // 0: every suite the module has
}

// QSSL is the module-side TLS context t describes.
func (t *TLS) QSSL() qssl.Config {
	return qssl.Config{
		Context:            t.Context,
		Version:            t.Version,
		CipherSuite:        t.CipherSuite,
		CA:                 t.CA,
		ClientCert:         t.Cert,
		ClientKey:          []byte(t.Key.Reveal()),
		InsecureSkipVerify: t.InsecureSkipVerify,
		SNI:                t.SNI,
		IgnoreLocalTime:    t.IgnoreModuleClock,
		NegotiateTimeout:   t.NegotiateTimeout,
	}
}

// tlsVersions maps the version key's values to sslversion.
var tlsVersions = map[string]qssl.Version{"1.2": qssl.TLS12, "1.1": qssl.TLS11, "1.0": qssl.TLS10, "all": qssl.All}

// tlsDefaults are what a platform preset brings to [mqtt.tls].
type tlsDefaults struct {
	ca         string // the bundled root CA's path, used when ca_file is not given
	hint       string // when no CA is bundled: which CA the broker needs and where to get it
	clientCert bool   // the platform authenticates the device by its certificate: cert_file required
	who        string // the platform's name, for messages
}

// tls reads [mqtt.tls] (an absent table reads as empty: a preset that needs TLS turns it on).
func (b *builder) tls(t *table, d tlsDefaults) *TLS {
	s := &TLS{}
	s.Context = t.integer("context", DefaultTLSContext, 0, 5)
	s.Version = tlsVersions[t.oneOf("version", "1.2", "1.2", "all", "1.1", "1.0")]
	s.InsecureSkipVerify = t.boolean("insecure_skip_verify", false)
	s.SNI = t.boolean("sni", true)
	s.IgnoreModuleClock = t.boolean("ignore_module_clock", true)
	s.NegotiateTimeout = t.duration("negotiate_timeout", 0, 10*time.Second, 300*time.Second, true)
	suite := t.str("cipher_suite", "")
	caFile := t.str("ca_file", "")
	certFile := t.str("cert_file", "")
	keyFile := t.str("key_file", "")
	t.done()

	if suite != "" {
		hexDigits, ok := strings.CutPrefix(strings.ToLower(suite), "0x")
		n, err := strconv.ParseUint(hexDigits, 16, 16)
		if !ok || err != nil || n == 0 || n == 0xFFFF {
			t.fail("cipher_suite", "%q is not one IANA cipher-suite number in hex, such as \"0xC02F\" (leave it out for every suite the module has)", suite)
		}
		s.CipherSuite = uint16(n)
	}
	ok := true
	switch {
	case t.has("ca_file") && s.InsecureSkipVerify:
		t.fail("insecure_skip_verify", "cannot be used with ca_file: either verify the broker with the CA or not at all")
		ok = false
	case t.has("ca_file"):
		s.CAFile, s.CA = b.certFile(t, "ca_file", caFile)
		if s.CA == nil {
			ok = false
		} else if err := qssl.CheckCA(s.CA); err != nil {
			t.fail("ca_file", "%s: %s", s.CAFile, strings.TrimPrefix(err.Error(), qssl.ErrInvalid.Error()+": CA: "))
			ok = false
		}
	case !s.InsecureSkipVerify && d.ca != "":
		var err error
		s.CAFile = d.ca
		if s.CA, err = readCertFile(d.ca); err != nil {
			t.fail("ca_file", "%s's root CA, which gatewayd ships, cannot be read: %v (install the package's %s, "+
				"set %s to the directory that holds it, e.g. deploy/ca in the source, or give ca_file)", d.who, err, filepath.Dir(d.ca), EnvCADir)
			ok = false
		} else if err := qssl.CheckCA(s.CA); err != nil {
			t.fail("ca_file", "bundled %s: %s", s.CAFile, strings.TrimPrefix(err.Error(), qssl.ErrInvalid.Error()+": CA: "))
			ok = false
		}
	case !s.InsecureSkipVerify && d.hint != "":
		t.fail("ca_file", "required: %s", d.hint)
		ok = false
	case !s.InsecureSkipVerify:
		t.fail("ca_file", "required: the CA certificate (PEM) the broker's certificate must lead to; "+
			"insecure_skip_verify = true connects without verifying the broker, which is not recommended")
		ok = false
	}
	if d.clientCert && !t.has("cert_file") && !t.has("key_file") {
		t.fail("cert_file", "required: %s authenticates the device by its client certificate: give cert_file and key_file "+
			"(the certificate and private key created for the device in the console)", d.who)
		ok = false
	}
	switch {
	case t.has("cert_file") != t.has("key_file"):
		missing, given := "key_file", "cert_file"
		if !t.has("cert_file") {
			missing, given = given, missing
		}
		t.fail(missing, "required with %s: a client certificate and its key go together", given)
		ok = false
	case t.has("cert_file"):
		if s.InsecureSkipVerify {
			t.fail("cert_file", "mutual TLS needs ca_file too: the module verifies the broker whenever it shows a client certificate")
			ok = false
		}
		s.CertFile, s.Cert = b.certFile(t, "cert_file", certFile)
		var key []byte
		s.KeyFile, key = b.keyFile(t, keyFile)
		if s.Cert == nil || key == nil {
			ok = false
		} else if err := qssl.CheckClientPair(s.Cert, key); err != nil {
			t.fail("key_file", "%s and %s: %s", s.CertFile, s.KeyFile, strings.TrimPrefix(err.Error(), qssl.ErrInvalid.Error()+": client certificate and key: "))
			ok = false
		} else {
			s.Key = NewSecret(string(key))
		}
	}
	if !ok {
		return nil
	}
	return s
}

// certFile reads a PEM file named at key (relative to the config file's directory).
func (b *builder) certFile(t *table, key, path string) (string, []byte) {
	if path == "" {
		t.fail(key, "is empty; give the path of a PEM file")
		return "", nil
	}
	if !filepath.IsAbs(path) {
		path = filepath.Join(b.dir, path)
	}
	data, err := readCertFile(path)
	if err != nil {
		t.fail(key, "%v", err)
		return path, nil
	}
	return path, data
}

// keyFile reads the client key: a path, or "cred:<name>" for a systemd credential. It warns
// when a plain file is readable by group or others.
func (b *builder) keyFile(t *table, file string) (string, []byte) {
	if file == "" {
		t.fail("key_file", "is empty; give a path or %s<name>", CredPrefix)
		return "", nil
	}
	path, source, ok := b.secretPath(t, "key_file", file)
	if !ok {
		return "", nil
	}
	data, err := readCertFile(path)
	if err != nil {
		t.fail("key_file", "%v", err)
		return path, nil
	}
	if fi, err := os.Stat(path); err == nil && !strings.HasPrefix(file, CredPrefix) && fi.Mode().Perm()&0o077 != 0 {
		b.warn(t.key("key_file"), "%s can be read or written by group or others (mode %04o); chmod 600 it", path, fi.Mode().Perm())
	}
	b.cfg.Sources[t.key("key_file").String()] = source
	return path, data
}

// readCertFile reads a regular file of at most MaxCertFile bytes, exactly as it is. Its errors
// never contain the contents.
func readCertFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("%s is not a regular file", path)
	}
	data, err := io.ReadAll(io.LimitReader(f, MaxCertFile+1))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	if len(data) > MaxCertFile {
		return nil, fmt.Errorf("%s is larger than %d bytes, too big for the module's file system; give only the CA certificates your broker needs", path, MaxCertFile)
	}
	if len(data) == 0 {
		return nil, fmt.Errorf("%s is empty", path)
	}
	return data, nil
}
