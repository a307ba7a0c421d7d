package sim

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// sslContext is one AT+QSSLCFG context (reference section 5.1).
type sslContext struct {
	version         int    // 0 SSL 3.0, 1 TLS 1.0, 2 TLS 1.1, 3 TLS 1.2, 4 all
	cipher          uint16 // IANA number; 0xFFFF = all
	seclevel        int    // 0 no check, 1 verify the server, 2 mutual
	cacert          string // file names as the host gave them ("UFS:ca.pem" or "ca.pem")
	clientcert      string
	clientkey       string
	ignoreLocalTime int
	sni             int
	negotiate       int // handshake timeout, s
}

func newSSLContext() sslContext {
	return sslContext{version: 4, cipher: 0xFFFF, negotiate: 300}
}

// sslTest is the AT+QSSLCFG=? answer.
var sslTest = []string{
	`+QSSLCFG: "sslversion",(0-5),(0-4)`,
	`+QSSLCFG: "ciphersuite",(0-5),(0X0035,0X002F,0X003C,0X003D,0XC02F,0XC030,0XC013,0XC014,0XFFFF)`,
	`+QSSLCFG: "seclevel",(0-5),(0-2)`,
	`+QSSLCFG: "cacert",(0-5),<cacertpath>`,
	`+QSSLCFG: "clientcert",(0-5),<client_cert_path>`,
	`+QSSLCFG: "clientkey",(0-5),<client_key_path>`,
	`+QSSLCFG: "ignorelocaltime",(0-5),(0,1)`,
	`+QSSLCFG: "negotiatetime",(0-5),(10-300)`,
	`+QSSLCFG: "sni",(0-5),(0,1)`,
}

// cmdQSSLCFG: AT+QSSLCFG="<name>",<ctx>[,<value>] sets or (without a value) queries one
// setting: +QSSLCFG: "<name>",<ctx>,<value>. File names are quoted; whether the file exists is
// checked at the handshake, not here. With Config.BareCertNames the firmware variant that
// wants bare names refuses a "UFS:" prefix.
func (e *engine) cmdQSSLCFG(c cmdLine) reply {
	if c.kind == kindTest {
		return ok(sslTest...)
	}
	if c.kind != kindSet {
		return errReply()
	}
	f, err := splitArgs(c.args)
	if err != nil || len(f) < 2 || len(f) > 3 || !f[0].quoted {
		return errReply()
	}
	idx, valid := f[1].num(0, 5)
	if !valid {
		return errReply()
	}
	s := &e.ssl[idx]
	name := strings.ToLower(f[0].text)
	num := func(p *int, lo, hi int) reply {
		if len(f) == 2 {
			return ok(fmt.Sprintf("+QSSLCFG: %q,%d,%d", name, idx, *p))
		}
		n, valid := f[2].num(lo, hi)
		if !valid {
			return errReply()
		}
		*p = n
		return ok()
	}
	file := func(p *string) reply {
		if len(f) == 2 {
			return ok(fmt.Sprintf("+QSSLCFG: %q,%d,%q", name, idx, *p))
		}
		if _, valid := fileName(f[2]); !valid {
			return errReply()
		}
		if e.m.cfg.BareCertNames && strings.Contains(f[2].text, ":") {
			return errReply()
		}
		*p = f[2].text
		return ok()
	}
	switch name {
	case "sslversion":
		return num(&s.version, 0, 4)
	case "seclevel":
		return num(&s.seclevel, 0, 2)
	case "ignorelocaltime":
		return num(&s.ignoreLocalTime, 0, 1)
	case "sni":
		return num(&s.sni, 0, 1)
	case "negotiatetime":
		return num(&s.negotiate, 10, 300)
	case "cacert":
		return file(&s.cacert)
	case "clientcert":
		return file(&s.clientcert)
	case "clientkey":
		return file(&s.clientkey)
	case "ciphersuite":
		if len(f) == 2 {
			return ok(fmt.Sprintf("+QSSLCFG: %q,%d,0X%04X", name, idx, s.cipher))
		}
		v := f[2].text
		if f[2].quoted || len(v) < 3 || !strings.EqualFold(v[:2], "0x") {
			return errReply()
		}
		n, err := strconv.ParseUint(v[2:], 16, 16)
		if err != nil {
			return errReply()
		}
		s.cipher = uint16(n)
		return ok()
	}
	return errReply()
}

// tlsSetup is what a link needs for TLS: built on the engine goroutine at AT+QMTOPEN from the
// context and the files as they are then.
type tlsSetup struct {
	cfg     *tls.Config
	timeout time.Duration
}

// tlsFor builds the client TLS configuration context idx gives for a link to host (the name
// AT+QMTOPEN gave: it is what the certificate is checked against and, with sni 1, what SNI
// sends). An error is a setting the handshake cannot go ahead with.
func (e *engine) tlsFor(idx int, host string) (tlsSetup, error) {
	s := e.ssl[idx]
	cfg := &tls.Config{
		InsecureSkipVerify: true, // verification, when asked, is done below by VerifyConnection
		MaxVersion:         tls.VersionTLS12,
	}
	switch s.version {
	case 0:
		return tlsSetup{}, errors.New("sslversion 0 (SSL 3.0) is not emulated")
	case 1:
		cfg.MinVersion, cfg.MaxVersion = tls.VersionTLS10, tls.VersionTLS10
	case 2:
		cfg.MinVersion, cfg.MaxVersion = tls.VersionTLS11, tls.VersionTLS11
	case 3:
		cfg.MinVersion = tls.VersionTLS12
	default:
		cfg.MinVersion = tls.VersionTLS10
	}
	if s.cipher != 0xFFFF {
		cfg.CipherSuites = []uint16{s.cipher}
	}
	if s.sni == 1 {
		cfg.ServerName = host
	}
	load := func(what, name string) ([]byte, error) {
		if name == "" {
			return nil, fmt.Errorf("seclevel %d needs %s, which is not set", s.seclevel, what)
		}
		n, _ := fileName(field{text: name, quoted: true})
		b := e.files[n]
		if b == nil {
			return nil, fmt.Errorf("%s %q is not in the module's file system", what, name)
		}
		return b, nil
	}
	if s.seclevel >= 1 {
		ca, err := load("cacert", s.cacert)
		if err != nil {
			return tlsSetup{}, err
		}
		roots := x509.NewCertPool()
		if !roots.AppendCertsFromPEM(ca) {
			return tlsSetup{}, fmt.Errorf("cacert %q holds no PEM certificate", s.cacert)
		}
		ignoreTime := s.ignoreLocalTime == 1
		cfg.VerifyConnection = func(cs tls.ConnectionState) error {
			return verifyServer(cs, roots, host, ignoreTime)
		}
	}
	if s.seclevel == 2 {
		cert, err := load("clientcert", s.clientcert)
		if err != nil {
			return tlsSetup{}, err
		}
		key, err := load("clientkey", s.clientkey)
		if err != nil {
			return tlsSetup{}, err
		}
		pair, err := tls.X509KeyPair(cert, key)
		if err != nil {
			return tlsSetup{}, fmt.Errorf("clientcert %q and clientkey %q: %w", s.clientcert, s.clientkey, err)
		}
		cfg.Certificates = []tls.Certificate{pair}
	}
	return tlsSetup{cfg: cfg, timeout: time.Duration(s.negotiate) * time.Second}, nil
}

// verifyServer checks the broker's chain against roots and its name against host; with
// ignoreTime the validity dates are not checked against the clock (ignorelocaltime 1).
func verifyServer(cs tls.ConnectionState, roots *x509.CertPool, host string, ignoreTime bool) error {
	if len(cs.PeerCertificates) == 0 {
		return errors.New("the broker sent no certificate")
	}
	leaf := cs.PeerCertificates[0]
	opts := x509.VerifyOptions{Roots: roots, DNSName: host, Intermediates: x509.NewCertPool()}
	for _, c := range cs.PeerCertificates[1:] {
		opts.Intermediates.AddCert(c)
	}
	if ignoreTime {
		opts.CurrentTime = leaf.NotBefore.Add(time.Second)
	}
	_, err := leaf.Verify(opts)
	return err
}
