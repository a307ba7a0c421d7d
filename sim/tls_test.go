package sim

import (
	"crypto/tls"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/gatewayd/gatewayd/test/testutil"
)

// upload runs AT+QFUPL for data under name and checks the exchange byte for byte.
func (h *host) upload(name string, data []byte) {
	h.t.Helper()
	h.cmd(fmt.Sprintf(`AT+QFUPL="%s",%d,10`, name, len(data)), "\r\nCONNECT\r\n")
	h.write(string(data))
	h.expect(fmt.Sprintf("\r\n+QFUPL: %d,%x\r\n\r\nOK\r\n", len(data), checksum(data)))
}

// TestFileCommands: QFUPL's CONNECT data mode, QFLST, QFDEL and QFLDS, byte for byte, with the
// errors of an existing name, a missing file and data that never comes in time.
func TestFileCommands(t *testing.T) {
	t.Parallel()
	r := newRig(t, Config{})
	h := r.h
	h.cmd("ATE0", "ATE0\r\r\nOK\r\n")
	h.cmd("AT+QFLST", "\r\nOK\r\n")
	h.cmd(`AT+QFLDS="UFS"`, fmt.Sprintf("\r\n+QFLDS: %d,%d\r\n\r\nOK\r\n", ufsTotal, ufsTotal))
	// The reference's checksum example is not reproducible without its file; this one is
	// worked by hand: "ab" ^ "c\x00" = 0x6162 ^ 0x6300 = 0x0262.
	h.upload("a.pem", []byte("abc"))
	if got := checksum([]byte("abc")); got != 0x0262 {
		t.Errorf("checksum(abc) = %#04x, want 0x0262", got)
	}
	// Data mode is raw: CR, LF, "AT" and Ctrl-Z are data, and nothing is echoed even under ATE1.
	h.cmd("ATE1", "\r\nOK\r\n")
	h.write(`AT+QFUPL="UFS:b.pem",8` + "\r")
	h.expect(`AT+QFUPL="UFS:b.pem",8` + "\r\r\nCONNECT\r\n")
	h.write("AT\r\n\x1a\x1bxy")
	h.expect(fmt.Sprintf("\r\n+QFUPL: 8,%x\r\n\r\nOK\r\n", checksum([]byte("AT\r\n\x1a\x1bxy"))))
	h.cmd("ATE0", "ATE0\r\r\nOK\r\n")
	h.cmd(`AT+QFLST="*"`, "\r\n+QFLST: \"a.pem\",3\r\n+QFLST: \"b.pem\",8\r\n\r\nOK\r\n")
	h.cmd(`AT+QFLST="UFS:b*"`, "\r\n+QFLST: \"b.pem\",8\r\n\r\nOK\r\n")
	h.cmd(`AT+QFLDS="UFS"`, fmt.Sprintf("\r\n+QFLDS: %d,%d\r\n\r\nOK\r\n", ufsTotal-11, ufsTotal))
	h.cmd(`AT+QFUPL="a.pem",3,10`, "\r\n+CME ERROR: 407\r\n")
	h.cmd(`AT+QFUPL="a/b",3,10`, "\r\n+CME ERROR: 406\r\n")
	h.cmd(fmt.Sprintf(`AT+QFUPL="big",%d`, ufsTotal+1), "\r\n+CME ERROR: 423\r\n")
	h.cmd(`AT+QFUPL="a.pem"`, "\r\nERROR\r\n")
	h.cmd(`AT+QFDEL="a.pem"`, "\r\nOK\r\n")
	h.cmd(`AT+QFDEL="a.pem"`, "\r\n+CME ERROR: 405\r\n")
	h.cmd(`AT+QFLST="*"`, "\r\n+QFLST: \"b.pem\",8\r\n\r\nOK\r\n")
	h.cmd(`AT+QFDEL="*"`, "\r\nOK\r\n")
	h.cmd(`AT+QFLST="*"`, "\r\nOK\r\n")
	// Data that stops short: after the timeout, an error and no file.
	h.cmd(`AT+QFUPL="slow.pem",10,1`, "\r\nCONNECT\r\n")
	h.write("12345")
	h.expect("\r\n+CME ERROR: 421\r\n")
	h.cmd(`AT+QFLST="*"`, "\r\nOK\r\n")
	h.cmd("AT", "\r\nOK\r\n")
}

// TestFilesSurviveRebootNotSwap: the UFS is flash: a reboot keeps the files, another module
// (a different IMEI) has none.
func TestFilesSurviveRebootNotSwap(t *testing.T) {
	t.Parallel()
	r := newRig(t, Config{ListUFSPrefix: true})
	h := r.h
	h.cmd("ATE0", "ATE0\r\r\nOK\r\n")
	h.upload("ca.pem", []byte("x"))
	if err := r.m.Reboot(); err != nil {
		t.Fatal(err)
	}
	h.expect(bootURCs)
	h.cmd("ATE0", "ATE0\r\r\nOK\r\n")
	h.cmd(`AT+QFLST="*"`, "\r\n+QFLST: \"UFS:ca.pem\",1\r\n\r\nOK\r\n")
	if err := r.m.Swap(Identity{IMEI: "869999999999998"}); err != nil {
		t.Fatal(err)
	}
	h = openHost(t, r.link)
	h.expect(bootURCs)
	h.cmd("ATE0", "ATE0\r\r\nOK\r\n")
	h.cmd(`AT+QFLST="*"`, "\r\nOK\r\n")
}

func TestQSSLCFG(t *testing.T) {
	t.Parallel()
	h := newRig(t, Config{}).h
	h.cmd("ATE0", "ATE0\r\r\nOK\r\n")
	h.cmd("AT+QSSLCFG=?", "\r\n"+strings.Join(sslTest, "\r\n")+"\r\n\r\nOK\r\n")
	for _, c := range []struct{ cmd, reply string }{
		{`AT+QSSLCFG="seclevel",2`, "\r\n+QSSLCFG: \"seclevel\",2,0\r\n\r\nOK\r\n"},
		{`AT+QSSLCFG="seclevel",2,2`, "\r\nOK\r\n"},
		{`AT+QSSLCFG="seclevel",2`, "\r\n+QSSLCFG: \"seclevel\",2,2\r\n\r\nOK\r\n"},
		{`AT+QSSLCFG="seclevel",2,3`, "\r\nERROR\r\n"},
		{`AT+QSSLCFG="seclevel",6,1`, "\r\nERROR\r\n"},
		{`AT+QSSLCFG="sslversion",1`, "\r\n+QSSLCFG: \"sslversion\",1,4\r\n\r\nOK\r\n"},
		{`AT+QSSLCFG="SSLVersion",1,3`, "\r\nOK\r\n"},
		{`AT+QSSLCFG="ciphersuite",1`, "\r\n+QSSLCFG: \"ciphersuite\",1,0XFFFF\r\n\r\nOK\r\n"},
		{`AT+QSSLCFG="ciphersuite",1,0xC02F`, "\r\nOK\r\n"},
		{`AT+QSSLCFG="ciphersuite",1`, "\r\n+QSSLCFG: \"ciphersuite\",1,0XC02F\r\n\r\nOK\r\n"},
		{`AT+QSSLCFG="ciphersuite",1,"0xC02F"`, "\r\nERROR\r\n"},
		{`AT+QSSLCFG="cacert",1,"UFS:ca.pem"`, "\r\nOK\r\n"},
		{`AT+QSSLCFG="cacert",1`, "\r\n+QSSLCFG: \"cacert\",1,\"UFS:ca.pem\"\r\n\r\nOK\r\n"},
		{`AT+QSSLCFG="clientkey",1,"key.pem"`, "\r\nOK\r\n"},
		{`AT+QSSLCFG="clientkey",1,key.pem`, "\r\nERROR\r\n"},
		{`AT+QSSLCFG="sni",1,1`, "\r\nOK\r\n"},
		{`AT+QSSLCFG="negotiatetime",1`, "\r\n+QSSLCFG: \"negotiatetime\",1,300\r\n\r\nOK\r\n"},
		{`AT+QSSLCFG="negotiatetime",1,5`, "\r\nERROR\r\n"},
		{`AT+QSSLCFG="nosuch",1,1`, "\r\nERROR\r\n"},
	} {
		h.cmd(c.cmd, c.reply)
	}
}

// TestBareCertNamesVariant: the firmware that wants bare names refuses "UFS:".
func TestBareCertNamesVariant(t *testing.T) {
	t.Parallel()
	h := newRig(t, Config{BareCertNames: true}).h
	h.cmd("ATE0", "ATE0\r\r\nOK\r\n")
	h.cmd(`AT+QSSLCFG="cacert",0,"UFS:ca.pem"`, "\r\nERROR\r\n")
	h.cmd(`AT+QSSLCFG="cacert",0,"ca.pem"`, "\r\nOK\r\n")
}

// tlsRig is a module whose TLS clients reach a mochi broker's TLS listener that requires a
// client certificate; seen records the common names of the client certificates it accepted and
// the SNI names it was sent.
type tlsRig struct {
	*rig
	pki  *testutil.PKI
	mu   sync.Mutex
	seen []string
}

func newTLSRig(t *testing.T) *tlsRig {
	tr := &tlsRig{pki: testutil.NewPKI(t, "pi-led-01", "broker.test")}
	srv := tr.pki.ServerTLS(t, true)
	srv.VerifyConnection = func(cs tls.ConnectionState) error {
		tr.mu.Lock()
		defer tr.mu.Unlock()
		cn := ""
		if len(cs.PeerCertificates) > 0 {
			cn = cs.PeerCertificates[0].Subject.CommonName
		}
		tr.seen = append(tr.seen, "cn="+cn+" sni="+cs.ServerName)
		return nil
	}
	b, err := NewBroker("127.0.0.1:0", WithBrokerLogger(testLogger(t)), WithTLS(srv))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	plain, err := NewBroker("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { plain.Close() })
	tr.rig = newRig(t, Config{Broker: plain.Addr(), TLSBroker: b.Addr()})
	tr.b = b
	h := tr.h
	h.cmd("ATE0", "ATE0\r\r\nOK\r\n")
	h.upload("ca.pem", tr.pki.CA)
	h.upload("cert.pem", tr.pki.ClientCert)
	h.upload("key.pem", tr.pki.ClientKey)
	return tr
}

func (tr *tlsRig) handshakes() []string {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	return append([]string(nil), tr.seen...)
}

// TestTLSLink: with seclevel 2 the module verifies the broker against the uploaded CA under the
// name AT+QMTOPEN gave, shows its client certificate, sends SNI when asked, and MQTT runs over
// the TLS link end to end.
func TestTLSLink(t *testing.T) {
	t.Parallel()
	tr := newTLSRig(t)
	h := tr.h
	for _, c := range []string{
		`AT+QSSLCFG="sslversion",2,3`, `AT+QSSLCFG="seclevel",2,2`, `AT+QSSLCFG="cacert",2,"UFS:ca.pem"`,
		`AT+QSSLCFG="clientcert",2,"UFS:cert.pem"`, `AT+QSSLCFG="clientkey",2,"key.pem"`,
		`AT+QSSLCFG="sni",2,1`, `AT+QMTCFG="ssl",0,1,2`, `AT+QMTCFG="recv/mode",0,0,1`,
	} {
		h.cmd(c, "\r\nOK\r\n")
	}
	h.cmd(`AT+QMTOPEN=0,"broker.test",8883`, "\r\nOK\r\n")
	h.expect("\r\n+QMTOPEN: 0,0\r\n")
	h.cmd(`AT+QMTCONN=0,"pi-led-01"`, "\r\nOK\r\n")
	h.expect("\r\n+QMTCONN: 0,0,0\r\n")
	h.cmd(`AT+QMTSUB=0,1,"down",1`, "\r\nOK\r\n")
	h.expect("\r\n+QMTSUB: 0,1,0,1\r\n")
	if err := tr.b.Publish("down", []byte("over tls"), false, 0); err != nil {
		t.Fatal(err)
	}
	h.expect("\r\n+QMTRECV: 0,0,\"down\",8,\"over tls\"\r\n")
	if got := tr.handshakes(); len(got) != 1 || got[0] != "cn=pi-led-01 sni=broker.test" {
		t.Errorf("broker saw handshakes %q, want one from pi-led-01 with SNI broker.test", got)
	}
}

// TestTLSLinkFailures: what the module cannot verify or present ends AT+QMTOPEN with -1: a
// broker name the certificate does not carry, a missing client key file, a CA that did not
// sign the broker, and TLS against a plain listener (ssl on, seclevel 0).
func TestTLSLinkFailures(t *testing.T) {
	t.Parallel()
	tr := newTLSRig(t)
	h := tr.h
	other := testutil.NewPKI(t, "x", "broker.test")
	h.upload("other-ca.pem", other.CA)
	setup := func(lines ...string) {
		t.Helper()
		for _, c := range lines {
			h.cmd(c, "\r\nOK\r\n")
		}
	}
	open := func(host string, want string) {
		t.Helper()
		h.cmd(`AT+QMTOPEN=0,"`+host+`",8883`, "\r\nOK\r\n")
		h.expect("\r\n+QMTOPEN: 0," + want + "\r\n")
	}
	setup(`AT+QSSLCFG="seclevel",1,2`, `AT+QSSLCFG="cacert",1,"ca.pem"`, `AT+QSSLCFG="clientcert",1,"cert.pem"`,
		`AT+QSSLCFG="clientkey",1,"missing.pem"`, `AT+QMTCFG="ssl",0,1,1`)
	open("broker.test", "-1") // the key file is missing
	setup(`AT+QSSLCFG="clientkey",1,"key.pem"`)
	open("other.test", "-1") // the certificate is for broker.test
	setup(`AT+QSSLCFG="cacert",1,"other-ca.pem"`)
	open("broker.test", "-1") // signed by another CA
	setup(`AT+QSSLCFG="cacert",1,"ca.pem"`)
	open("broker.test", "0") // all put right
	h.cmd("AT+QMTCLOSE=0", "\r\nOK\r\n")
	h.expect("\r\n+QMTCLOSE: 0,0\r\n")
	// TLS towards the plain broker: a module whose TLS broker is the plain one.
	r := newRig(t, Config{})
	r.h.cmd("ATE0", "ATE0\r\r\nOK\r\n")
	r.h.cmd(`AT+QMTCFG="ssl",0,1,0`, "\r\nOK\r\n")
	r.h.cmd(`AT+QMTOPEN=0,"broker.test",8883`, "\r\nOK\r\n")
	r.h.expect("\r\n+QMTOPEN: 0,-1\r\n")
}
