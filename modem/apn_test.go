package modem_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/gatewayd/gatewayd/at"
	"github.com/gatewayd/gatewayd/modem"
	"github.com/gatewayd/gatewayd/sim"
	"github.com/gatewayd/gatewayd/test/simtest"
)

// TestSetAPNUsesWhatTheModuleOffers: the authentication range of AT+QICSGP differs by firmware
// (reference 4.2 VARIANT). With credentials, SetAPN sends PAP or CHAP (3) where the module
// offers it, and on a module offering (0-2) refuses with a clear error before the module
// would answer ERROR; an explicit PAP or CHAP works on both (issue 12.5).
func TestSetAPNUsesWhatTheModuleOffers(t *testing.T) {
	for _, narrow := range []bool{false, true} {
		_, conn := simtest.Start(t, sim.Config{SIMBusy: -1, NoPAPOrCHAP: narrow}, at.Options{})
		mod := modem.New(conn)
		offered, err := mod.APNAuthOffered(ctx(t))
		want := 4 // (0-3)
		if narrow {
			want = 3 // (0-2)
		}
		if err != nil || len(offered) != want {
			t.Fatalf("narrow %v: offered %v, %v", narrow, offered, err)
		}
		err = mod.SetAPN(ctx(t), 1, "internet", "user", "secret")
		switch {
		case !narrow && err != nil:
			t.Fatalf("SetAPN with credentials: %v", err)
		case narrow && (!errors.Is(err, modem.ErrAuthNotOffered) || !strings.Contains(err.Error(), "choose PAP or CHAP") ||
			strings.Contains(err.Error(), "secret")):
			t.Fatalf("SetAPN on a (0-2) module: %v, want ErrAuthNotOffered with a hint and no secret", err)
		}
		for _, a := range []modem.Auth{modem.AuthPAP, modem.AuthCHAP} {
			if err := mod.SetAPNAuth(ctx(t), 1, "internet", "user", "secret", a); err != nil {
				t.Fatalf("narrow %v: SetAPNAuth %s: %v", narrow, a, err)
			}
		}
		if err := mod.SetAPNAuth(ctx(t), 1, "internet", "user", "secret", modem.AuthPAPOrCHAP); narrow != errors.Is(err, modem.ErrAuthNotOffered) {
			t.Fatalf("narrow %v: SetAPNAuth pap_or_chap: %v", narrow, err)
		}
		if err := mod.SetAPN(ctx(t), 1, "internet", "", ""); err != nil {
			t.Fatalf("narrow %v: SetAPN without credentials: %v", narrow, err)
		}
	}
}

// TestSetAPNWhenTheTestFormFails: a module whose AT+QICSGP=? answers ERROR gets the method as
// asked, and its own answer decides.
func TestSetAPNWhenTheTestFormFails(t *testing.T) {
	m, conn := simtest.Start(t, sim.Config{SIMBusy: -1}, at.Options{})
	m.Refuse("AT+QICSGP=?")
	mod := modem.New(conn)
	if err := mod.SetAPN(ctx(t), 1, "internet", "user", "secret"); err != nil {
		t.Fatalf("SetAPN: %v", err)
	}
}

// TestValidateTopicIdentity: identity read from the module is input; what would put a topic
// separator or wildcard (or anything but digits) into {imei} or {iccid} is refused (issue 12.9).
func TestValidateTopicIdentity(t *testing.T) {
	good := modem.Identity{IMEI: "866123456789011", ICCID: "89860025128306012474"}
	tests := []struct {
		name string
		id   modem.Identity
		ok   bool
	}{
		{"good", good, true},
		{"ICCID not read yet", modem.Identity{IMEI: good.IMEI}, true},
		{"ICCID with a final F", modem.Identity{IMEI: good.IMEI, ICCID: "8986002512830601247F"}, true},
		{"ICCID 18 digits", modem.Identity{IMEI: good.IMEI, ICCID: "898600251283060124"}, true},
		{"ICCID 17 digits", modem.Identity{IMEI: good.IMEI, ICCID: "89860025128306012"}, false},
		{"ICCID with +", modem.Identity{IMEI: good.IMEI, ICCID: "8986002512830601+#"}, false},
		{"ICCID with /", modem.Identity{IMEI: good.IMEI, ICCID: "898600251283/06012474"}, false},
		{"ICCID with F inside", modem.Identity{IMEI: good.IMEI, ICCID: "8986002512830F012474"}, false},
		{"IMEI with #", modem.Identity{IMEI: "86612345678901#"}, false},
		{"IMEI with /", modem.Identity{IMEI: "866123456/89011"}, false},
		{"IMEI empty", modem.Identity{}, false},
	}
	for _, tt := range tests {
		err := modem.ValidateTopicIdentity(tt.id)
		if (err == nil) != tt.ok || err != nil && !errors.Is(err, modem.ErrIdentity) {
			t.Errorf("%s: %v", tt.name, err)
		}
	}
}
