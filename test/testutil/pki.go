package testutil

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"testing"
	"time"
)

// PKI is a throwaway certificate authority with one server and one client certificate, for
// tests of TLS links: all PEM encoded, ECDSA P-256, valid from an hour ago for a day.
type PKI struct {
	CA         []byte // the CA certificate
	ServerCert []byte // for the names NewPKI was given
	ServerKey  []byte
	ClientCert []byte // CN = the client name NewPKI was given
	ClientKey  []byte

	caCert *x509.Certificate
}

// NewPKI makes a CA, a server certificate for serverNames (DNS names or IP addresses) and a
// client certificate with common name client. It fails the test on error.
func NewPKI(t testing.TB, client string, serverNames ...string) *PKI {
	t.Helper()
	caKey, caTmpl := newKey(t), template(t, "gatewayd test CA")
	caTmpl.IsCA, caTmpl.BasicConstraintsValid = true, true
	caTmpl.KeyUsage = x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatalf("test CA: %v", err)
	}
	caCert, err := x509.ParseCertificate(caDER)
	if err != nil {
		t.Fatalf("test CA: %v", err)
	}
	p := &PKI{CA: pemBlock("CERTIFICATE", caDER), caCert: caCert}

	issue := func(cn string, usage x509.ExtKeyUsage, names []string) (certPEM, keyPEM []byte) {
		key, tmpl := newKey(t), template(t, cn)
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{usage}
		tmpl.KeyUsage = x509.KeyUsageDigitalSignature
		for _, n := range names {
			if ip := net.ParseIP(n); ip != nil {
				tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
			} else {
				tmpl.DNSNames = append(tmpl.DNSNames, n)
			}
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, caCert, &key.PublicKey, caKey)
		if err != nil {
			t.Fatalf("test certificate %s: %v", cn, err)
		}
		kder, err := x509.MarshalPKCS8PrivateKey(key)
		if err != nil {
			t.Fatalf("test key %s: %v", cn, err)
		}
		return pemBlock("CERTIFICATE", der), pemBlock("PRIVATE KEY", kder)
	}
	p.ServerCert, p.ServerKey = issue("gatewayd test broker", x509.ExtKeyUsageServerAuth, serverNames)
	p.ClientCert, p.ClientKey = issue(client, x509.ExtKeyUsageClientAuth, nil)
	return p
}

// ServerTLS is a broker-side TLS configuration with the server certificate that asks for a
// client certificate signed by the CA when requireClient is set.
func (p *PKI) ServerTLS(t testing.TB, requireClient bool) *tls.Config {
	t.Helper()
	pair, err := tls.X509KeyPair(p.ServerCert, p.ServerKey)
	if err != nil {
		t.Fatalf("server key pair: %v", err)
	}
	cfg := &tls.Config{Certificates: []tls.Certificate{pair}, MinVersion: tls.VersionTLS12}
	if requireClient {
		pool := x509.NewCertPool()
		pool.AddCert(p.caCert)
		cfg.ClientCAs, cfg.ClientAuth = pool, tls.RequireAndVerifyClientCert
	}
	return cfg
}

// ClientTLS is a client-side configuration that trusts the CA, for a cloud-side test client.
func (p *PKI) ClientTLS(t testing.TB, serverName string) *tls.Config {
	t.Helper()
	pool := x509.NewCertPool()
	pool.AddCert(p.caCert)
	pair, err := tls.X509KeyPair(p.ClientCert, p.ClientKey)
	if err != nil {
		t.Fatalf("client key pair: %v", err)
	}
	return &tls.Config{RootCAs: pool, ServerName: serverName, Certificates: []tls.Certificate{pair}, MinVersion: tls.VersionTLS12}
}

func newKey(t testing.TB) *ecdsa.PrivateKey {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatalf("test key: %v", err)
	}
	return k
}

func template(t testing.TB, cn string) *x509.Certificate {
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 62))
	if err != nil {
		t.Fatalf("serial: %v", err)
	}
	now := time.Now()
	return &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: cn},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(24 * time.Hour),
	}
}

func pemBlock(typ string, der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der})
}
