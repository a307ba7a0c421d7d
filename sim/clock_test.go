package sim

import (
	"regexp"
	"testing"
	"time"
)

// TestClockCommands: AT+CCLK and AT+QLTS in their 27.007 / Quectel forms, byte for byte where
// the time allows: the network's time in the zone it gave, a clock set by AT+CCLK=, and the
// module without network time (the 1980 default; QLTS "").
func TestClockCommands(t *testing.T) {
	t.Parallel()
	r := newRig(t, Config{})
	h := r.h
	h.cmd("ATE0", "ATE0\r\r\nOK\r\n")
	h.cmd("AT+CCLK=?", "\r\nOK\r\n")
	h.cmd("AT+QLTS=?", "\r\n+QLTS: (0-2)\r\n\r\nOK\r\n")
	// Set a time in UTC-5 (-20 quarter hours); the query gives it back in that zone.
	set := time.Now().Add(-3 * time.Hour).In(time.FixedZone("", -5*3600)).Truncate(time.Second)
	h.cmd(`AT+CCLK="`+set.Format("06/01/02,15:04:05")+`-20"`, "\r\nOK\r\n")
	h.write("AT+CCLK?\r")
	got := h.until("OK\r\n")
	m := regexp.MustCompile(`^\r\n\+CCLK: "(\d\d/\d\d/\d\d,\d\d:\d\d:\d\d)-20"\r\n\r\nOK\r\n$`).FindStringSubmatch(got)
	if m == nil {
		t.Fatalf("AT+CCLK? answered %q", got)
	}
	back, _ := time.ParseInLocation("06/01/02,15:04:05", m[1], time.FixedZone("", -5*3600))
	if d := back.Sub(set); d < 0 || d > 3*time.Second {
		t.Errorf("AT+CCLK? %s is %s from the time set", m[1], d)
	}
	h.write("AT+QLTS=1\r")
	got = h.until("OK\r\n")
	if !regexp.MustCompile(`^\r\n\+QLTS: "\d{4}/\d\d/\d\d,\d\d:\d\d:\d\d-20,0"\r\n\r\nOK\r\n$`).MatchString(got) {
		t.Errorf("AT+QLTS=1 answered %q", got)
	}
	h.cmd(`AT+CCLK="26/13/01,00:00:00+00"`, "\r\nERROR\r\n")
	h.cmd("AT+QLTS=3", "\r\nERROR\r\n")
	// No network time: the module's own default and an empty QLTS.
	if err := r.m.SetNetworkClock(0, 32, false); err != nil {
		t.Fatal(err)
	}
	h.write("AT+CCLK?\r")
	if got := h.until("OK\r\n"); !regexp.MustCompile(`^\r\n\+CCLK: "80/01/06,00:0\d:\d\d\+00"\r\n\r\nOK\r\n$`).MatchString(got) {
		t.Errorf("AT+CCLK? without network time answered %q", got)
	}
	h.cmd("AT+QLTS", "\r\n+QLTS: \"\"\r\n\r\nOK\r\n")
	if err := r.m.SetNetworkClock(0, 99, true); err == nil {
		t.Error("a zone of 99 quarter hours was taken")
	}
}
