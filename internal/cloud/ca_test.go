package cloud

import (
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// The bundled root CAs (deploy/ca) are the ones docs/clouds.md lists: a file swapped or
// corrupted fails here. Fingerprints are SHA-256 of the DER certificate.
var bundledCAs = map[string]struct {
	first    string // fingerprint of the file's first certificate
	certs    int
	notAfter string // of the first certificate, UTC date
}{
	AliyunCA:  {"ebd41040e4bb3ec742c9e381d31ef2a41a48b6685c96e7cef3c1df6cd4331c99", 1, "2028-01-28"},
	AWSCA:     {"8ecde6884f3d87b1125ba31ac3fcb13d7016de7f57cc904fe1cb97c6ae98196e", 1, "2038-01-17"},
	AzureCA:   {"cb3ccbb76031e5e0138f8dd39a23f9de47ffc35e43c1144cea27d46a5ab1cb5f", 1, "2038-01-15"},
	TencentCA: {"3b1fa1e1149e3f3bd3722730dbef9eb72ec4b9fd95553063a9c60ba62778e740", 1, "2032-11-23"},
	OneNETCA:  {"7de9bc4c1aed01344667645678d449741210b17049489838bf637953b3e90117", 1, "2049-05-21"},
	HuaweiCA:  {"b676ffa3179e8812093a1b5eafee876ae7a6aaf231078dad1bfb21cd2893764a", 5, "2028-11-21"},
}

func TestBundledCAsAreTheDocumentedOnes(t *testing.T) {
	for name, want := range bundledCAs {
		data, err := os.ReadFile(filepath.Join("../../deploy/ca", name))
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		var certs []*x509.Certificate
		for {
			var b *pem.Block
			b, data = pem.Decode(data)
			if b == nil {
				break
			}
			c, err := x509.ParseCertificate(b.Bytes)
			if err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			certs = append(certs, c)
		}
		if len(certs) != want.certs {
			t.Errorf("%s holds %d certificates, want %d", name, len(certs), want.certs)
			continue
		}
		sum := sha256.Sum256(certs[0].Raw)
		if got := hex.EncodeToString(sum[:]); got != want.first {
			t.Errorf("%s: SHA-256 %s, want %s", name, got, want.first)
		}
		if got := certs[0].NotAfter.UTC().Format(time.DateOnly); got != want.notAfter {
			t.Errorf("%s: expires %s, want %s", name, got, want.notAfter)
		}
	}
}

// Every CA a platform names is bundled.
func TestPlatformsNameBundledCAs(t *testing.T) {
	for _, ca := range []string{AliyunCA, AWSCA, AzureCA, TencentCA, OneNETCA, HuaweiCA} {
		if _, ok := bundledCAs[ca]; !ok {
			t.Errorf("%s is named by a platform but not checked", ca)
		}
	}
}
