package at

import (
	"strings"
	"testing"
	"time"

	"github.com/gatewayd/gatewayd/test/testutil"
	"github.com/rs/zerolog"
)

func TestMaskCredentials(t *testing.T) {
	tests := []struct{ in, want string }{
		{`AT+QMTCONN=0,"pi","user","hunter2"` + "\r", `AT+QMTCONN=0,"pi","user","***"` + "\r"},
		{`at+qmtconn=0,"pi","user","hunter2"`, `at+qmtconn=0,"pi","user","***"`},
		{`AT+QMTCONN=0,"pi","user","hun`, `AT+QMTCONN=0,"pi","user","***`},
		{`AT+QMTCONN=0,"pi","user"` + "\r\n" + `"x","y","z"`, `AT+QMTCONN=0,"pi","user"` + "\r\n" + `"x","y","z"`},
		{`AT+QMTCONN=0,"pi"`, `AT+QMTCONN=0,"pi"`},
		{`AT+QMTCFG="aliauth",0,"a1B2c3D4e5F","pi-led-01","DevSecret"` + "\r\r\nOK\r\n",
			`AT+QMTCFG="aliauth",0,"a1B2c3D4e5F","pi-led-01","***"` + "\r\r\nOK\r\n"},
		{`AT+QMTCFG="keepalive",0,60`, `AT+QMTCFG="keepalive",0,60`},
		{"\xffAT+QMTCONN=0,\"\xfe\",\"u\",\"p\"\rAT+QMTCONN=1,\"a\",\"b\",\"c\"",
			"\xffAT+QMTCONN=0,\"\xfe\",\"u\",\"***\"\rAT+QMTCONN=1,\"a\",\"b\",\"***\""},
	}
	for _, tt := range tests {
		if got := maskCredentials(tt.in); got != tt.want {
			t.Errorf("maskCredentials(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

// TestTraceMasksSecrets: with Trace on, every byte in and out is logged,
// but secrets never are: neither Command.Secrets (in the command, its echo
// and a data payload) nor, as a safety net, the QMTCONN password and the
// aliauth device secret.
func TestTraceMasksSecrets(t *testing.T) {
	const (
		pass      = "s3cr3tPass"
		netPass   = "hunter2-net"
		devSecret = "DevSecretXYZ"
		dataTok   = "tok-abc123"
		keyPEM    = "-----BEGIN PRIVATE KEY-----\nMIIkeyMaterial\n-----END PRIVATE KEY-----\n"
	)
	for _, rd := range readers {
		t.Run(rd.name, func(t *testing.T) {
			var logs testutil.SyncBuffer
			log := zerolog.New(&logs).Level(zerolog.TraceLevel)
			c, m := newTestConn(t, rd.wrap, Options{Logger: log, Trace: true})
			conn := `AT+QMTCONN=0,"pi","user","` + pass + `"`
			conn2 := `AT+QMTCONN=0,"pi","user","` + netPass + `"`
			ali := `AT+QMTCFG="aliauth",0,"a1B2c3D4e5F","pi-led-01","` + devSecret + `"`
			pub := `AT+QMTPUBEX=0,0,0,0,"t",16`
			data := "auth=" + dataTok + "!"
			done := m.run(
				step{conn + "\r", conn + "\r\r\nOK\r\n"},
				step{conn2 + "\r", conn2 + "\r\r\nOK\r\n"},
				step{ali + "\r", ali + "\r\r\nOK\r\n"},
				step{pub + "\r", pub + "\r\r\n> "},
				step{data, data + "\r\nOK\r\n"},
				step{`AT+QFUPL="k.pem",69,10` + "\r", "\r\nCONNECT\r\n"},
				step{keyPEM, "\r\n+QFUPL: 69,1234\r\n\r\nOK\r\n"},
			)
			ctx := ctxTimeout(t, 5*time.Second)
			for _, cmd := range []Command{
				{Line: conn, Secrets: []string{pass}},
				{Line: conn2},
				{Line: ali},
				{Line: pub, Data: []byte(data), Secrets: []string{dataTok}},
				{Line: `AT+QFUPL="k.pem",69,10`, Data: []byte(keyPEM), AfterConnect: true, SecretData: true},
			} {
				if _, err := c.Do(ctx, cmd); err != nil {
					t.Fatalf("Do(%s): %v", c.redact(cmd), err)
				}
			}
			waitDone(t, done)
			c.Close()
			<-c.Done()
			out := logs.String()
			for _, s := range []string{pass, netPass, devSecret, dataTok, "MIIkeyMaterial"} {
				if strings.Contains(out, s) {
					t.Errorf("trace holds secret %q:\n%s", s, out)
				}
			}
			for _, s := range []string{`"dir":"out"`, `"dir":"in"`, `AT+QMTCONN=0,`, `auth=***!`, `\\\"***\\\"`, `OK\\r`, `"withheld_bytes":69`} {
				if !strings.Contains(out, s) {
					t.Errorf("trace lacks %s:\n%s", s, out)
				}
			}
		})
	}
}

// TestErrorsMaskSecrets: the error of a failed command names the command
// without its secrets.
func TestErrorsMaskSecrets(t *testing.T) {
	c, m := newTestConn(t, readers[0].wrap, Options{})
	cmd := `AT+QMTCONN=0,"pi","user","hunter2"`
	done := m.run(step{cmd + "\r", "\r\nERROR\r\n"})
	_, err := c.Run(ctxTimeout(t, 5*time.Second), cmd)
	waitDone(t, done)
	if err == nil || strings.Contains(err.Error(), "hunter2") || !strings.Contains(err.Error(), `"***"`) {
		t.Errorf("err = %v", err)
	}
}

func TestTraceOffLogsNothing(t *testing.T) {
	var logs testutil.SyncBuffer
	c, m := newTestConn(t, readers[0].wrap, Options{Logger: zerolog.New(&logs).Level(zerolog.TraceLevel)})
	done := m.run(step{"AT\r", "AT\r\r\nOK\r\n"})
	if _, err := c.Run(ctxTimeout(t, 5*time.Second), "AT"); err != nil {
		t.Fatal(err)
	}
	waitDone(t, done)
	if logs.String() != "" {
		t.Errorf("logged with Trace off:\n%s", logs.String())
	}
}
