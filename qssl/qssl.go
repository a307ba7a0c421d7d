package qssl

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/gatewayd/gatewayd/at"
	"github.com/gatewayd/gatewayd/ufs"
)

// FilePrefix starts the name of every file Apply manages in the module's file system.
const FilePrefix = "gwd-"

// Version is the AT+QSSLCFG "sslversion" value.
type Version int

// The TLS versions a context can be limited to (SSL 3.0, value 0, is not offered).
const (
	TLS12 Version = 3 // TLS 1.2 only: the default
	TLS10 Version = 1
	TLS11 Version = 2
	All   Version = 4 // whatever both sides support
)

// ErrInvalid marks a Config that cannot be applied.
var ErrInvalid = errors.New("qssl: invalid configuration")

// Config is one TLS context.
type Config struct {
	// Context is the AT+QSSLCFG context, 0-5.
	Context int
	// Version limits the TLS version; 0 means TLS12.
	Version Version
	// CipherSuite is one IANA cipher-suite number to insist on; 0 leaves the module's default
	// (all it supports).
	CipherSuite uint16
	// CA is the PEM certificate (or bundle) the broker's chain must lead to. Empty: the broker is
	// not verified (seclevel 0) — only when InsecureSkipVerify says so on purpose.
	CA []byte
	// ClientCert and ClientKey are the PEM client certificate and its private key for mutual TLS
	// (seclevel 2); both or neither. The key never appears in a log or trace.
	ClientCert []byte
	ClientKey  []byte
	// InsecureSkipVerify must be set to use no CA: the link is then encrypted but the broker is
	// not authenticated.
	InsecureSkipVerify bool
	// SNI sends the broker's host name in the handshake (needed by most cloud brokers).
	SNI bool
	// IgnoreLocalTime skips the certificate validity dates ("ignorelocaltime"): the module's
	// clock is usually not synchronised.
	IgnoreLocalTime bool
	// NegotiateTimeout bounds the handshake, whole seconds 10-300; 0 leaves the module default.
	NegotiateTimeout time.Duration
}

// SecLevel is the AT+QSSLCFG "seclevel" the config needs: 0 no verification, 1 verify the
// broker, 2 mutual authentication.
func (c Config) SecLevel() int {
	switch {
	case len(c.ClientCert) > 0:
		return 2
	case len(c.CA) > 0:
		return 1
	}
	return 0
}

// Validate checks the context number, the ranges, that the CA holds certificates and that the
// client certificate and key belong together. Errors never show key material.
func (c Config) Validate() error {
	if c.Context < 0 || c.Context > 5 {
		return fmt.Errorf("%w: context %d out of range 0-5", ErrInvalid, c.Context)
	}
	switch c.Version {
	case 0, TLS10, TLS11, TLS12, All:
	default:
		return fmt.Errorf("%w: sslversion %d: must be 1 (TLS 1.0), 2 (TLS 1.1), 3 (TLS 1.2) or 4 (all)", ErrInvalid, c.Version)
	}
	if c.NegotiateTimeout != 0 {
		s := c.NegotiateTimeout / time.Second
		if c.NegotiateTimeout%time.Second != 0 || s < 10 || s > 300 {
			return fmt.Errorf("%w: negotiate timeout %s: whole seconds 10-300", ErrInvalid, c.NegotiateTimeout)
		}
	}
	if len(c.CA) == 0 && !c.InsecureSkipVerify {
		return fmt.Errorf("%w: no CA certificate to verify the broker with (set InsecureSkipVerify to connect without verifying)", ErrInvalid)
	}
	if len(c.CA) > 0 {
		if err := CheckCA(c.CA); err != nil {
			return err
		}
	}
	if (len(c.ClientCert) > 0) != (len(c.ClientKey) > 0) {
		return fmt.Errorf("%w: a client certificate needs its key and a key its certificate", ErrInvalid)
	}
	if len(c.ClientCert) > 0 {
		if len(c.CA) == 0 {
			return fmt.Errorf("%w: mutual TLS (a client certificate) needs the CA certificate too: the module's seclevel 2 verifies the broker", ErrInvalid)
		}
		return CheckClientPair(c.ClientCert, c.ClientKey)
	}
	return nil
}

// CheckCA reports whether pemData holds at least one certificate, and no broken one.
func CheckCA(pemData []byte) error {
	if n, err := countCerts(pemData); err != nil || n == 0 {
		return fmt.Errorf("%w: CA: no PEM certificate in it%s", ErrInvalid, errSuffix(err))
	}
	return nil
}

// CheckClientPair reports whether the PEM client certificate and key parse and belong together.
// The error never shows key material.
func CheckClientPair(cert, key []byte) error {
	if _, err := tls.X509KeyPair(cert, key); err != nil {
		return fmt.Errorf("%w: client certificate and key: %v", ErrInvalid, scrub(err))
	}
	return nil
}

// countCerts counts the parsable CERTIFICATE blocks of a PEM bundle.
func countCerts(b []byte) (int, error) {
	n := 0
	for {
		var blk *pem.Block
		blk, b = pem.Decode(b)
		if blk == nil {
			return n, nil
		}
		if blk.Type != "CERTIFICATE" {
			continue
		}
		if _, err := x509.ParseCertificate(blk.Bytes); err != nil {
			return n, err
		}
		n++
	}
}

func errSuffix(err error) string {
	if err == nil {
		return ""
	}
	return " (" + err.Error() + ")"
}

// scrub turns a crypto/tls key-pair error into a message (they quote no key bytes, but keep it
// that way whatever a future Go prints).
func scrub(err error) string {
	msg := err.Error()
	if strings.Contains(msg, "PRIVATE KEY") || len(msg) > 200 {
		return "the key does not parse or does not match the certificate"
	}
	return msg
}

// file is one certificate file the context needs.
type file struct {
	setting string // the AT+QSSLCFG name pointing at it
	name    string // in the UFS
	data    []byte
	secret  bool
}

// files names the files of c by content: gwd-<kind>-<8 hex of SHA-256>.pem.
func (c Config) files() []file {
	var out []file
	add := func(setting, kind string, data []byte, secret bool) {
		if len(data) == 0 {
			return
		}
		sum := sha256.Sum256(data)
		out = append(out, file{setting: setting, name: FilePrefix + kind + "-" + hex.EncodeToString(sum[:4]) + ".pem", data: data, secret: secret})
	}
	add("cacert", "ca", c.CA, false)
	add("clientcert", "crt", c.ClientCert, false)
	add("clientkey", "key", c.ClientKey, true)
	return out
}

// Result says what Apply did with the module's files.
type Result struct {
	Uploaded []string // files put in the UFS
	Kept     []string // files already there with the right size
	Deleted  []string // gatewayd's files that no longer match (and wrong-size copies)
	// BareNames is true when the module refused "UFS:<name>" in AT+QSSLCFG and took the bare
	// name (a firmware variant).
	BareNames bool
}

// Apply makes the module's context c.Context what c says: files uploaded as needed (see the
// package comment), then AT+QSSLCFG sslversion, ciphersuite (when set), seclevel, cacert,
// clientcert, clientkey, ignorelocaltime, sni and negotiatetime (when set). File names are
// given as "UFS:<name>"; a module that answers ERROR gets the bare name instead.
func Apply(ctx context.Context, conn *at.Conn, c Config) (Result, error) {
	var res Result
	if err := c.Validate(); err != nil {
		return res, err
	}
	fs := ufs.New(conn)
	want := c.files()
	if err := syncFiles(ctx, fs, want, &res); err != nil {
		return res, err
	}

	version := c.Version
	if version == 0 {
		version = TLS12
	}
	set := func(name, value string) error {
		line := fmt.Sprintf(`AT+QSSLCFG="%s",%d,%s`, name, c.Context, value)
		cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		if _, err := conn.Run(cctx, line); err != nil {
			return fmt.Errorf("qssl: %s: %w", name, err)
		}
		return nil
	}
	settings := [][2]string{{"sslversion", fmt.Sprint(int(version))}}
	if c.CipherSuite != 0 {
		settings = append(settings, [2]string{"ciphersuite", fmt.Sprintf("0x%04X", c.CipherSuite)})
	}
	settings = append(settings, [2]string{"seclevel", fmt.Sprint(c.SecLevel())})
	for _, s := range settings {
		if err := set(s[0], s[1]); err != nil {
			return res, err
		}
	}
	for _, f := range want {
		err := set(f.setting, `"UFS:`+f.name+`"`)
		if errors.Is(err, at.ErrError) {
			if err2 := set(f.setting, `"`+f.name+`"`); err2 == nil {
				res.BareNames = true
				continue
			}
		}
		if err != nil {
			return res, err
		}
	}
	settings = [][2]string{{"ignorelocaltime", boolInt(c.IgnoreLocalTime)}, {"sni", boolInt(c.SNI)}}
	if c.NegotiateTimeout != 0 {
		settings = append(settings, [2]string{"negotiatetime", fmt.Sprint(int(c.NegotiateTimeout / time.Second))})
	}
	for _, s := range settings {
		if err := set(s[0], s[1]); err != nil {
			return res, err
		}
	}
	return res, nil
}

// syncFiles makes gatewayd's files in the UFS exactly want.
func syncFiles(ctx context.Context, fs *ufs.FS, want []file, res *Result) error {
	have, err := fs.List(ctx)
	if err != nil {
		return fmt.Errorf("qssl: %w", err)
	}
	sizes := make(map[string]int, len(have))
	for _, f := range have {
		sizes[f.Name] = f.Size
	}
	wanted := make(map[string]bool, len(want))
	for _, f := range want {
		wanted[f.name] = true
		size, there := sizes[f.name]
		if there && size == len(f.data) {
			res.Kept = append(res.Kept, f.name)
			continue
		}
		if there { // a broken copy (an upload cut short): replace it
			if err := fs.Delete(ctx, f.name); err != nil {
				return fmt.Errorf("qssl: %w", err)
			}
			res.Deleted = append(res.Deleted, f.name)
		}
		if err := fs.Upload(ctx, f.name, f.data, f.secret); err != nil {
			return fmt.Errorf("qssl: %s: %w", f.setting, err)
		}
		res.Uploaded = append(res.Uploaded, f.name)
	}
	for _, f := range have {
		if strings.HasPrefix(f.Name, FilePrefix) && !wanted[f.Name] {
			if err := fs.Delete(ctx, f.Name); err != nil {
				return fmt.Errorf("qssl: removing a stale file: %w", err)
			}
			res.Deleted = append(res.Deleted, f.Name)
		}
	}
	return nil
}

func boolInt(b bool) string {
	if b {
		return "1"
	}
	return "0"
}
