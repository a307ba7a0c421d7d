package control

import (
	"strings"
	"testing"
)

// FuzzCheckAT: whatever a client sends, CheckAT never panics; what it lets through is one AT line
// (no control byte, starts with AT, at most MaxATLine), never a data-mode command, and force only
// ever lets more through.
func FuzzCheckAT(f *testing.F) {
	for _, s := range []string{"AT+CSQ", "AT+QMTDISC=0", "ATE1", "AT+QMTPUBEX=1,1,0,0,\"t\",5", "AT+CSQ;+CFUN=0",
		"at+qicsgp=1,1,\"a;b\",\"\",\"\",1", "AT\x1a", "AT+QMTCFG=\"keepalive\",0,30", "AT+CPIN?"} {
		f.Add(s, 0, false)
		f.Add(s, 1, true)
	}
	f.Fuzz(func(t *testing.T, line string, idx int, force bool) {
		err := CheckAT(line, idx, force)
		if err != nil {
			return
		}
		if CheckAT(line, idx, true) != nil {
			t.Fatalf("%q passes without force but not with it", line)
		}
		if len(line) > MaxATLine || !strings.HasPrefix(strings.ToUpper(strings.TrimSpace(line)), "AT") {
			t.Fatalf("%q let through", line)
		}
		for i := 0; i < len(line); i++ {
			if line[i] < 0x20 || line[i] == 0x7F {
				t.Fatalf("%q with a control byte let through", line)
			}
		}
		up := strings.ToUpper(line)
		for _, d := range []string{"AT+QMTPUBEX=", "AT+QFUPL="} {
			if strings.HasPrefix(strings.TrimSpace(up), d) && !strings.HasSuffix(up, "?") {
				t.Fatalf("data-mode command %q let through", line)
			}
		}
	})
}
