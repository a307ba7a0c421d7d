package modem_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/gatewayd/gatewayd/at"
	"github.com/gatewayd/gatewayd/modem"
	"github.com/gatewayd/gatewayd/sim"
	"github.com/gatewayd/gatewayd/test/simtest"
)

// newModule starts the EC600 emulator (no broker is needed for module-level commands) and opens
// its pty with go.bug.st/serial, as the daemon does.
func newModule(t *testing.T, id sim.Identity) (*sim.Module, *modem.Module, *at.Conn) {
	t.Helper()
	// The SIM is ready at once here (SIMBusy < 0); TestSIMBusyAfterRDY has the field's delay.
	m, conn := simtest.Start(t, sim.Config{Identity: id, SIMBusy: -1}, at.Options{})
	return m, modem.New(conn), conn
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return c
}

func TestIdentify(t *testing.T) {
	id := sim.Identity{IMEI: "866123456789029", Model: "EC600S", Revision: "EC600SCNAAR01A07M08", ICCID: "8986002512830601247F"}
	_, mod, _ := newModule(t, id)
	got, err := mod.Identify(ctx(t))
	if err != nil {
		t.Fatal(err)
	}
	want := modem.Identity{Manufacturer: "Quectel", Model: id.Model, Revision: id.Revision, IMEI: id.IMEI}
	if got != want {
		t.Fatalf("Identify = %+v, want %+v", got, want)
	}
	iccid, err := mod.ICCID(ctx(t))
	if err != nil || iccid != id.ICCID {
		t.Fatalf("ICCID = %q, %v; want %q", iccid, err, id.ICCID)
	}
}

// TestSIMBusyAfterRDY: right after RDY the module answers but its SIM does not; the ICCID is
// read once AT+CPIN? says READY, never accepted empty.
func TestSIMBusyAfterRDY(t *testing.T) {
	// 2 s: long enough that a loaded machine still asks within it (500 ms failed at load 8).
	m, conn := simtest.Start(t, sim.Config{SIMBusy: 2 * time.Second}, at.Options{})
	mod := modem.New(conn)
	if err := m.Reboot(); err != nil {
		t.Fatal(err)
	}
	if err := mod.Sync(ctx(t), 100*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	if _, err := mod.ICCID(ctx(t)); !modem.SIMNotReady(err) {
		t.Fatalf("ICCID right after RDY: %v, want a SIM-not-ready +CME ERROR", err)
	}
	if _, err := mod.SIMState(ctx(t)); !modem.SIMNotReady(err) {
		t.Fatalf("SIMState right after RDY: %v, want a SIM-not-ready +CME ERROR", err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		state, err := mod.SIMState(ctx(t))
		if err == nil && state == "READY" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("SIM not ready 5 s after RDY: %q %v", state, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if iccid, err := mod.ICCID(ctx(t)); err != nil || iccid != sim.DefaultIdentity.ICCID {
		t.Fatalf("ICCID after READY = %q, %v", iccid, err)
	}
}

func TestValidICCID(t *testing.T) {
	for _, c := range []struct {
		iccid string
		ok    bool
	}{
		{"89860025128306012474", true},
		{"8986002512830601247F", true},
		{"898600251283060124", true},
		{"8986002512830601247412", true},
		{"89860025128306012", false},       // 17
		{"89860025128306012474123", false}, // 23
		{"", false},
		{"8986002512830601/+#4", false},
		{"8986002512830F012474", false},
		{"89860025128306012474 ", false},
	} {
		if err := modem.ValidICCID(c.iccid); (err == nil) != c.ok {
			t.Errorf("ValidICCID(%q) = %v, want ok %t", c.iccid, err, c.ok)
		}
	}
}

func TestSIMState(t *testing.T) {
	m, mod, _ := newModule(t, sim.Identity{})
	state, err := mod.SIMState(ctx(t))
	if err != nil || state != "READY" {
		t.Fatalf("SIMState = %q, %v; want READY", state, err)
	}
	if err := m.SetSIM(false); err != nil {
		t.Fatal(err)
	}
	_, err = mod.SIMState(ctx(t))
	var cme *at.CMEError
	if !errors.As(err, &cme) || cme.Code != 10 {
		t.Fatalf("SIMState without a SIM: %v, want +CME ERROR: 10", err)
	}
	// Identify still works; the ICCID cannot be read.
	id, err := mod.Identify(ctx(t))
	if err != nil || id.IMEI == "" {
		t.Fatalf("Identify without a SIM = %+v, %v", id, err)
	}
	if iccid, err := mod.ICCID(ctx(t)); !modem.SIMNotReady(err) || iccid != "" {
		t.Fatalf("ICCID without a SIM = %q, %v; want +CME ERROR: 10", iccid, err)
	}
}

func TestRegistrationAndPDP(t *testing.T) {
	m, mod, _ := newModule(t, sim.Identity{})
	reg, err := mod.Registration(ctx(t))
	if err != nil || !reg.Registered() {
		t.Fatalf("Registration = %v, %v; want registered", reg, err)
	}
	active, addr, err := mod.PDPActive(ctx(t), 1)
	if err != nil || !active || addr == "" {
		t.Fatalf("PDPActive = %v %q %v", active, addr, err)
	}
	if dbm, ok, err := mod.SignalDBm(ctx(t)); err != nil || !ok || dbm > -51 || dbm < -113 {
		t.Fatalf("SignalDBm = %d %v %v", dbm, ok, err)
	}
	if err := m.SetRegistered(false); err != nil {
		t.Fatal(err)
	}
	reg, err = mod.Registration(ctx(t))
	if err != nil || reg.Registered() || reg.Stat != 2 {
		t.Fatalf("Registration when searching = %v, %v; want stat 2", reg, err)
	}
	if err := m.SetRegistered(true); err != nil {
		t.Fatal(err)
	}
	if err := mod.SetAPN(ctx(t), 1, "cmnet", "", ""); err != nil {
		t.Fatalf("SetAPN: %v", err)
	}
	if err := mod.SetAPN(ctx(t), 1, "bad\"apn", "", ""); err == nil {
		t.Fatal("SetAPN accepted a quote in the APN")
	}
}

func TestRegistrationString(t *testing.T) {
	r := modem.Registration{Command: "CEREG", Stat: 3}
	if got := r.String(); got != "registration denied (+CEREG stat 3)" {
		t.Fatalf("String = %q", got)
	}
}

// TestURCPort: a module whose NV sends URCs to the UART is found out and set back.
func TestURCPort(t *testing.T) {
	m, conn := simtest.Start(t, sim.Config{SavedURCPort: "uart1", SIMBusy: -1}, at.Options{})
	mod := modem.New(conn)
	got, err := mod.URCPort(ctx(t))
	if err != nil || got != "uart1" {
		t.Fatalf("URCPort = %q, %v; want uart1", got, err)
	}
	if err := mod.SetURCPort(ctx(t), "usbat"); err != nil {
		t.Fatal(err)
	}
	if err := m.Reboot(); err != nil {
		t.Fatal(err)
	}
	if err := mod.Sync(ctx(t), 100*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	if got, err := mod.URCPort(ctx(t)); err != nil || got != "usbat" {
		t.Fatalf("after a reboot URCPort = %q, %v; want usbat (kept in NV)", got, err)
	}
	if err := mod.SetURCPort(ctx(t), `x"y`); err == nil {
		t.Fatal("a quote in the port name was sent")
	}
}

// TestOperator: the network's name while registered (long alphanumeric or, as a module set to
// the numeric format prints it, digits), and "" with no error while not registered.
func TestOperator(t *testing.T) {
	for _, tc := range []struct{ cfg, want string }{{"", sim.DefaultOperator}, {"46000", "46000"}, {"T-Mobile, DE", "T-Mobile, DE"}} {
		m, conn := simtest.Start(t, sim.Config{SIMBusy: -1, Operator: tc.cfg}, at.Options{})
		mod := modem.New(conn)
		if op, err := mod.Operator(ctx(t)); err != nil || op != tc.want {
			t.Errorf("Operator = %q, %v; want %q", op, err, tc.want)
		}
		if err := m.SetRegistered(false); err != nil {
			t.Fatal(err)
		}
		if op, err := mod.Operator(ctx(t)); err != nil || op != "" {
			t.Errorf("Operator while searching = %q, %v; want none", op, err)
		}
	}
}

// TestResolveHost: the module's DNS through the active context 1 (the LTE default bearer), its
// failure, and a context that is not active.
func TestResolveHost(t *testing.T) {
	m, mod, _ := newModule(t, sim.DefaultIdentity)
	if _, err := mod.ResolveHost(ctx(t), 2, "broker.example.com"); err == nil {
		t.Error("resolved through context 2, which is not active")
	}
	addrs, err := mod.ResolveHost(ctx(t), 1, "broker.example.com")
	if err != nil || len(addrs) != 1 || addrs[0] == "" {
		t.Fatalf("ResolveHost = %q, %v", addrs, err)
	}
	m.SetDNS(false)
	if _, err := mod.ResolveHost(ctx(t), 1, "broker.example.com"); !errors.Is(err, modem.ErrDNS) || !strings.Contains(err.Error(), "565") {
		t.Fatalf("with DNS down: %v", err)
	}
	if _, err := mod.ResolveHost(ctx(t), 1, `bad"name`); err == nil {
		t.Error(`a name with '"' was sent`)
	}
}

// TestDualStackAddresses: AT+QIACT? with two addresses whose type field does not say so (type 1
// on an EC600S, type 3 on an EC200U) gives both, the IPv4 one first, as the module lists them.
func TestDualStackAddresses(t *testing.T) {
	for _, typ := range []int{1, 3} {
		_, conn := simtest.Start(t, sim.Config{SIMBusy: -1, DualStack: typ}, at.Options{})
		mod := modem.New(conn)
		active, addrs, err := mod.PDPAddresses(ctx(t), 1)
		if err != nil || !active || len(addrs) != 2 || addrs[0] != "10.2.198.114" || addrs[1] != "240E:404:8A1:D3C6::1" {
			t.Errorf("type %d: PDPAddresses = %v %q %v; want both addresses", typ, active, addrs, err)
		}
		if _, addr, _ := mod.PDPActive(ctx(t), 1); addr != "10.2.198.114" {
			t.Errorf("type %d: PDPActive address %q, want the IPv4 one", typ, addr)
		}
	}
}

// TestActivateActiveContext: AT+QIACT=1 on a context that is already active answers ERROR
// (reference 4.2); ActivatePDP asks AT+QIACT? and takes the active context as done. A context
// that stays inactive after an ERROR is still an error.
func TestActivateActiveContext(t *testing.T) {
	m, mod, _ := newModule(t, sim.Identity{})
	if err := mod.ActivatePDP(ctx(t), 1); err != nil {
		t.Fatalf("ActivatePDP on the active default bearer: %v", err)
	}
	m.Refuse("AT+QIACT=")
	if err := mod.ActivatePDP(ctx(t), 2); !errors.Is(err, at.ErrError) {
		t.Fatalf("ActivatePDP refused on an inactive context = %v, want ERROR", err)
	}
}

// TestSyncProbesAgainAfterERROR: a module that answers the first AT with ERROR (EC2x class) is
// alive but not ready: Sync probes again after the interval, not at once, and then succeeds.
func TestSyncProbesAgainAfterERROR(t *testing.T) {
	m, conn := simtest.Start(t, sim.Config{SIMBusy: -1, FirstATError: true}, at.Options{})
	mod := modem.New(conn)
	if err := m.Reboot(); err != nil { // a fresh power-on: its first command is answered ERROR
		t.Fatal(err)
	}
	time.Sleep(100 * time.Millisecond) // RDY and the boot URCs
	before := m.Stats().Commands
	start := time.Now()
	if err := mod.Sync(ctx(t), 300*time.Millisecond); err != nil {
		t.Fatalf("Sync after an ERROR: %v", err)
	}
	if took, n := time.Since(start), m.Stats().Commands-before; n != 2 || took < 300*time.Millisecond {
		t.Errorf("Sync took %s and %d probes; want 2, the second one interval after the ERROR", took, n)
	}
}
