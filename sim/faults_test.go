package sim

import (
	"bytes"
	"errors"
	"io/fs"
	"os"
	"runtime"
	"strings"
	"testing"
	"time"
)

func TestRoundTripThroughRealBroker(t *testing.T) {
	t.Parallel()
	r := newRig(t, Config{})
	r.connect("device-1")
	h := r.h
	h.cmd(`AT+QMTCFG="recv/mode",0,0,1`, "\r\nOK\r\n")
	h.cmd(`AT+QMTSUB=0,1,"down",1`, "\r\nOK\r\n")
	h.expect("\r\n+QMTSUB: 0,1,0,1\r\n")
	cloud := newPeer(t, r.broker, "cloud")
	cloud.subscribe(t, "up", 1)

	// Uplink: every byte value, CR LF and quotes included, reaches the broker unchanged.
	up := make([]byte, 256)
	for i := range up {
		up[i] = byte(i)
	}
	h.cmd(`AT+QMTPUBEX=0,42,1,0,"up",256`, "\r\n> ")
	h.write(string(up))
	h.expect("\r\nOK\r\n\r\n+QMTPUBEX: 0,42,0\r\n")
	m := cloud.next(t)
	if m.Topic() != "up" || !bytes.Equal(m.Payload(), up) || m.Qos() != 1 {
		t.Fatalf("cloud got topic %q qos %d payload %q", m.Topic(), m.Qos(), m.Payload())
	}

	// Downlink: the host gets exactly the bytes the cloud sent.
	down := []byte("{\"LED\":1}\r\n\"\x00\xff\"\r\n")
	cloud.publish(t, "down", 0, down)
	h.expect("\r\n+QMTRECV: 0,0,\"down\"," + itoa(len(down)) + ",\"" + string(down) + "\"\r\n")
}

func TestDropLink(t *testing.T) {
	t.Parallel()
	r := newRig(t, Config{})
	if err := r.m.DropLink(); !errors.Is(err, ErrNoLink) {
		t.Fatalf("DropLink without a link: %v, want ErrNoLink", err)
	}
	r.connect("drop")
	if err := r.m.DropLink(); err != nil {
		t.Fatal(err)
	}
	h := r.h
	h.expect("\r\n+QMTSTAT: 0,1\r\n")
	h.cmd("AT+QMTCONN?", "\r\nOK\r\n")
	// Recovery works: open and connect again.
	h.cmd(`AT+QMTOPEN=0,"h",1883`, "\r\nOK\r\n")
	h.expect("\r\n+QMTOPEN: 0,0\r\n")
	// A link dropped while open but not yet connected is reported the same way.
	if err := r.m.DropLink(); err != nil {
		t.Fatal(err)
	}
	h.expect("\r\n+QMTSTAT: 0,1\r\n")
	h.cmd("AT+QMTOPEN?", "\r\nOK\r\n")
}

func TestBrokerGoingAwayIsPeerClosed(t *testing.T) {
	t.Parallel()
	r := newRig(t, Config{})
	r.connect("victim")
	r.b.Close()
	r.h.expect("\r\n+QMTSTAT: 0,1\r\n")
	r.h.cmd(`AT+QMTOPEN=0,"h",1883`, "\r\nOK\r\n")
	r.h.expect("\r\n+QMTOPEN: 0,5\r\n") // connection refused
}

func TestPingFail(t *testing.T) {
	t.Parallel()
	r := newRig(t, Config{})
	r.connect("ping")
	if err := r.m.PingFail(); err != nil {
		t.Fatal(err)
	}
	r.h.expect("\r\n+QMTPING: 0,1\r\n\r\n+QMTSTAT: 0,2\r\n")
	if err := r.m.PingFail(); !errors.Is(err, ErrNoLink) {
		t.Fatalf("second PingFail: %v, want ErrNoLink", err)
	}
}

func TestRebootForgetsEverything(t *testing.T) {
	t.Parallel()
	r := newRig(t, Config{})
	r.connect("reboot")
	h := r.h
	h.cmd(`AT+QMTCFG="keepalive",0,60`, "\r\nOK\r\n")
	if err := r.m.Reboot(); err != nil {
		t.Fatal(err)
	}
	h.expect(bootURCs)
	h.cmd("AT", "AT\r\r\nOK\r\n") // echo is back on
	h.cmd("AT+QMTCONN?", "AT+QMTCONN?\r\r\nOK\r\n")
	h.cmd(`AT+QMTCFG="keepalive",0`, "AT+QMTCFG=\"keepalive\",0\r\r\n+QMTCFG: \"keepalive\",120\r\n\r\nOK\r\n")
	waitUntil(t, func() bool { return r.b.Clients() == 0 }, "the broker to see the module's client gone")
}

// TestCFUNResetReboots: AT+CFUN=1,1 prints what a BG96 printed (reference 4.1): OK, POWERED DOWN
// with no CR LF of its own, a stale pdpdeact for the default bearer, silence (input lost), RDY.
func TestCFUNResetReboots(t *testing.T) {
	t.Parallel()
	r := newRig(t, Config{BootDelay: 50 * time.Millisecond, ResetDelay: 300 * time.Millisecond})
	h := r.h
	h.cmd("ATE0", "ATE0\r\r\nOK\r\n")
	h.write("AT+CFUN=1,1\r")
	h.expect("\r\nOK\r\n\r\nPOWERED DOWN\r\n+QIURC: \"pdpdeact\",1\r\n")
	h.write("AT\r") // lost: the module is silent until RDY
	h.expect(bootURCs)
	h.cmd("AT", "AT\r\r\nOK\r\n")
}

// TestAppReadyFollowsRDY: the app-rdy variant prints APP RDY after RDY.
func TestAppReadyFollowsRDY(t *testing.T) {
	t.Parallel()
	r := newRig(t, Config{ResetDelay: -1, AppReady: 100 * time.Millisecond, SIMBusy: -1})
	h := r.h
	h.cmd("ATE0", "ATE0\r\r\nOK\r\n")
	h.write("AT+CFUN=1,1\r")
	h.expect("\r\nOK\r\n\r\nPOWERED DOWN\r\n+QIURC: \"pdpdeact\",1\r\n" + bootURCs + "\r\nAPP RDY\r\n")
}

// TestStrayBytesBeforeATAnswerERROR: the stray-error variant answers a line with bytes before
// AT (the host's ESC) with ERROR; the default finds the AT in it.
func TestStrayBytesBeforeATAnswerERROR(t *testing.T) {
	t.Parallel()
	for _, strict := range []bool{false, true} {
		r := newRig(t, Config{StrayError: strict})
		r.h.cmd("ATE0", "ATE0\r\r\nOK\r\n")
		want := "\r\nOK\r\n"
		if strict {
			want = "\r\nERROR\r\n"
		}
		r.h.cmd("\x1bAT", want)
		r.h.cmd("AT", "\r\nOK\r\n")
	}
}

func TestUnplugAndReplugAsAnotherModule(t *testing.T) {
	t.Parallel()
	r := newRig(t, Config{})
	r.connect("unplug")
	oldTTY := r.m.TTY()
	if err := r.m.Unplug(); err != nil {
		t.Fatal(err)
	}
	// The host's reads fail, the symlink is gone, the broker loses the client.
	r.h.f.SetReadDeadline(time.Now().Add(waitFor))
	var err error
	for err == nil {
		_, err = r.h.f.Read(make([]byte, 64))
	}
	if errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatal("host read did not fail after Unplug")
	}
	if _, err := r.h.f.Write([]byte("AT\r")); err == nil {
		t.Fatal("host write succeeded after Unplug")
	}
	if _, err := os.Lstat(r.link); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("symlink still there after Unplug: %v", err)
	}
	if r.m.TTY() != "" {
		t.Fatalf("TTY() = %q while unplugged", r.m.TTY())
	}
	waitUntil(t, func() bool { return r.b.Clients() == 0 }, "the broker to lose the client")
	if err := r.m.Reboot(); !errors.Is(err, ErrUnplugged) {
		t.Fatalf("Reboot while unplugged: %v", err)
	}
	if err := r.m.Unplug(); !errors.Is(err, ErrUnplugged) {
		t.Fatalf("Unplug twice: %v", err)
	}

	if err := r.m.Replug(Identity{IMEI: "867000000000005", Revision: "EC600NCNLCR03A10M08"}); err != nil {
		t.Fatal(err)
	}
	if err := r.m.Replug(Identity{}); !errors.Is(err, ErrPlugged) {
		t.Fatalf("Replug twice: %v", err)
	}
	target, err := os.Readlink(r.link)
	if err != nil || target != r.m.TTY() {
		t.Fatalf("symlink after replug -> %q (%v), TTY %q (was %q)", target, err, r.m.TTY(), oldTTY)
	}
	h := openHost(t, r.link)
	h.expect(bootURCs)
	h.cmd("AT+GSN", "AT+GSN\r\r\n867000000000005\r\n\r\nOK\r\n")
	h.cmd("ATI", "ATI\r\r\nQuectel\r\nEC600N\r\nRevision: EC600NCNLCR03A10M08\r\n\r\nOK\r\n")
	if got := r.m.Identity().IMEI; got != "867000000000005" {
		t.Fatalf("Identity().IMEI = %s", got)
	}
	if err := r.m.Replug(Identity{IMEI: "12"}); err == nil {
		t.Fatal("Replug accepted a bad IMEI")
	}
}

func TestNoise(t *testing.T) {
	t.Parallel()
	r := newRig(t, Config{})
	noise := []byte("\x00\xfe\r\n+QM\xff")
	if err := r.m.Noise(noise); err != nil {
		t.Fatal(err)
	}
	r.h.expect(string(noise))
	r.h.cmd("AT", "AT\r\r\nOK\r\n")
}

func TestUnresponsive(t *testing.T) {
	t.Parallel()
	r := newRig(t, Config{})
	r.m.SetUnresponsive(true)
	r.h.write("AT\r")
	r.h.quiet(300 * time.Millisecond)
	r.m.SetUnresponsive(false)
	r.h.cmd("AT", "AT\r\r\nOK\r\n")
}

func TestSlowAnswers(t *testing.T) {
	t.Parallel()
	r := newRig(t, Config{})
	const d = 200 * time.Millisecond
	r.m.SetSlow(d)
	start := time.Now()
	r.h.write("AT\r")
	r.h.expect("AT\r") // the echo is not held back
	r.h.expect("\r\nOK\r\n")
	if waited := time.Since(start); waited < d {
		t.Fatalf("reply came after %v, before the %v delay", waited, d)
	}
	r.m.SetSlow(0)
	r.h.cmd("AT", "AT\r\r\nOK\r\n")
}

func TestChunkedOutputIsByteIdentical(t *testing.T) {
	t.Parallel()
	for _, n := range []int{1, 3, 7} {
		t.Run(itoa(n), func(t *testing.T) {
			t.Parallel()
			r := newRig(t, Config{})
			r.connect("chunk" + itoa(n))
			h := r.h
			h.cmd(`AT+QMTCFG="recv/mode",0,0,1`, "\r\nOK\r\n")
			h.cmd(`AT+QMTSUB=0,1,"d",0`, "\r\nOK\r\n")
			h.expect("\r\n+QMTSUB: 0,1,0,0\r\n")
			before := r.m.Stats()
			r.m.SetChunking(n)
			h.cmd("ATI", "\r\nQuectel\r\nEC600N\r\nRevision: EC600NCNLCR03A09M08\r\n\r\nOK\r\n")
			newPeer(t, r.broker, "cloud").publish(t, "d", 0, []byte("x\"\r\ny"))
			h.expect("\r\n+QMTRECV: 0,0,\"d\",5,\"x\"\r\ny\"\r\n")
			after := r.m.Stats()
			bytesOut, writes := after.BytesOut-before.BytesOut, after.Writes-before.Writes
			if want := (bytesOut + int64(n) - 1) / int64(n); writes < want {
				t.Fatalf("%d bytes went out in %d writes; chunks of %d need at least %d", bytesOut, writes, n, want)
			}
		})
	}
}

func TestRefuseConnect(t *testing.T) {
	t.Parallel()
	r := newRig(t, Config{})
	h := r.h
	h.cmd("ATE0", "ATE0\r\r\nOK\r\n")
	for _, code := range []int{5, 2, 4} {
		if err := r.m.RefuseConnect(code); err != nil {
			t.Fatal(err)
		}
		h.cmd(`AT+QMTOPEN=0,"h",1883`, "\r\nOK\r\n")
		h.expect("\r\n+QMTOPEN: 0,0\r\n")
		h.cmd(`AT+QMTCONN=0,"refused"`, "\r\nOK\r\n")
		// The broker closes the link after the refusal, and the module says so.
		h.expect("\r\n+QMTCONN: 0,0," + itoa(code) + "\r\n\r\n+QMTSTAT: 0,1\r\n")
		h.cmd("AT+QMTOPEN?", "\r\nOK\r\n")
	}
	if err := r.m.RefuseConnect(6); err == nil {
		t.Fatal("RefuseConnect(6) accepted")
	}
	r.m.RefuseConnect(0)
	r.connect2(h, "accepted")
}

// connect2 opens and connects client 0 with echo already off.
func (r *rig) connect2(h *host, id string) {
	h.t.Helper()
	h.cmd(`AT+QMTOPEN=0,"h",1883`, "\r\nOK\r\n")
	h.expect("\r\n+QMTOPEN: 0,0\r\n")
	h.cmd(`AT+QMTCONN=0,"`+id+`"`, "\r\nOK\r\n")
	h.expect("\r\n+QMTCONN: 0,0,0\r\n")
}

func TestBrokerRefusesCredentials(t *testing.T) {
	t.Parallel()
	auth := func(id, user string, pass []byte) byte {
		switch {
		case user == "bad":
			return 4
		case id == "banned":
			return 5
		}
		return 0
	}
	r := newRig(t, Config{}, WithAuth(auth))
	h := r.h
	h.cmd("ATE0", "ATE0\r\r\nOK\r\n")
	for _, c := range []struct{ conn, urc string }{
		{`AT+QMTCONN=0,"dev","bad","x"`, "+QMTCONN: 0,0,4"},
		{`AT+QMTCONN=0,"banned"`, "+QMTCONN: 0,0,5"},
		{`AT+QMTCONN=0,"dev","good","x"`, "+QMTCONN: 0,0,0"},
	} {
		h.cmd(`AT+QMTOPEN=0,"h",1883`, "\r\nOK\r\n")
		h.expect("\r\n+QMTOPEN: 0,0\r\n")
		h.cmd(c.conn, "\r\nOK\r\n")
		if c.urc != "+QMTCONN: 0,0,0" {
			c.urc += "\r\n\r\n+QMTSTAT: 0,1"
		}
		h.expect("\r\n" + c.urc + "\r\n")
	}
}

// TestSilentRefusalVariant: the kinder variant reports the refusal alone.
func TestSilentRefusalVariant(t *testing.T) {
	t.Parallel()
	r := newRig(t, Config{SilentRefusal: true})
	h := r.h
	h.cmd("ATE0", "ATE0\r\r\nOK\r\n")
	if err := r.m.RefuseConnect(4); err != nil {
		t.Fatal(err)
	}
	h.cmd(`AT+QMTOPEN=0,"h",1883`, "\r\nOK\r\n")
	h.expect("\r\n+QMTOPEN: 0,0\r\n")
	h.cmd(`AT+QMTCONN=0,"refused"`, "\r\nOK\r\n")
	h.expect("\r\n+QMTCONN: 0,0,4\r\n")
	h.cmd("AT", "\r\nOK\r\n") // and nothing else in between
}

// TestOccupiedIndex: a client index left opening answers +QMTOPEN: <idx>,2 though AT+QMTOPEN?
// lists nothing; AT+QMTCLOSE frees it.
func TestOccupiedIndex(t *testing.T) {
	t.Parallel()
	r := newRig(t, Config{})
	h := r.h
	h.cmd("ATE0", "ATE0\r\r\nOK\r\n")
	if err := r.m.Occupy(0); err != nil {
		t.Fatal(err)
	}
	h.cmd("AT+QMTOPEN?", "\r\nOK\r\n")
	h.cmd(`AT+QMTOPEN=0,"h",1883`, "\r\nOK\r\n")
	h.expect("\r\n+QMTOPEN: 0,2\r\n")
	h.cmd("AT+QMTDISC=0", "\r\nERROR\r\n")
	h.cmd("AT+QMTCLOSE=0", "\r\nOK\r\n")
	h.expect("\r\n+QMTCLOSE: 0,0\r\n")
	r.connect2(h, "after-close")
}

// TestRefuseCommand: a command refused on demand answers ERROR every time until cleared;
// other commands are untouched.
func TestRefuseCommand(t *testing.T) {
	t.Parallel()
	r := newRig(t, Config{})
	h := r.h
	h.cmd("ATE0", "ATE0\r\r\nOK\r\n")
	r.m.Refuse("at+qicsgp")
	for i := 0; i < 3; i++ {
		h.cmd(`AT+QICSGP=1,1,"internet","","",1`, "\r\nERROR\r\n")
	}
	h.cmd("AT+QICSGP=?", "\r\nERROR\r\n")
	h.cmd("AT+CPIN?", "\r\n+CPIN: READY\r\n\r\nOK\r\n")
	r.m.Refuse("")
	h.cmd(`AT+QICSGP=1,1,"internet","","",1`, "\r\nOK\r\n")
}

func TestRefuseOpen(t *testing.T) {
	t.Parallel()
	r := newRig(t, Config{})
	h := r.h
	h.cmd("ATE0", "ATE0\r\r\nOK\r\n")
	for _, code := range []int{3, -1, 4} {
		r.m.RefuseOpen(code)
		h.cmd(`AT+QMTOPEN=0,"h",1883`, "\r\nOK\r\n")
		h.expect("\r\n+QMTOPEN: 0," + itoa(code) + "\r\n")
	}
	r.m.RefuseOpen(0)
	h.cmd(`AT+QMTOPEN=0,"h",1883`, "\r\nOK\r\n")
	h.expect("\r\n+QMTOPEN: 0,0\r\n")
}

// TestSIMBusyAfterRDY: RDY comes before the SIM is ready; until +CPIN: READY the SIM commands
// answer +CME ERROR: 14 (reference 4.1), and the module is not registered.
func TestSIMBusyAfterRDY(t *testing.T) {
	t.Parallel()
	r := newRig(t, Config{SIMBusy: 300 * time.Millisecond})
	h := r.h
	if err := r.m.Reboot(); err != nil {
		t.Fatal(err)
	}
	h.expect("\r\nRDY\r\n\r\n+CFUN: 1\r\n")
	h.cmd("ATE0", "ATE0\r\r\nOK\r\n")
	for _, c := range []string{"AT+CPIN?", "AT+QCCID", "AT+CIMI"} {
		h.cmd(c, "\r\n+CME ERROR: 14\r\n")
	}
	h.cmd("AT+CEREG?", "\r\n+CEREG: 0,0\r\n\r\nOK\r\n")
	h.expect("\r\n+CPIN: READY\r\n\r\n+QUSIM: 1\r\n\r\n+QIND: SMS DONE\r\n\r\n+QIND: PB DONE\r\n")
	h.cmd("AT+CPIN?", "\r\n+CPIN: READY\r\n\r\nOK\r\n")
	h.cmd("AT+QCCID", "\r\n+QCCID: "+DefaultIdentity.ICCID+"\r\n\r\nOK\r\n")
	h.cmd("AT+CEREG?", "\r\n+CEREG: 0,1\r\n\r\nOK\r\n")
}

func TestSIMMissing(t *testing.T) {
	t.Parallel()
	r := newRig(t, Config{})
	r.connect("sim")
	h := r.h
	h.cmd("AT+CEREG=1", "\r\nOK\r\n")
	if err := r.m.SetSIM(false); err != nil {
		t.Fatal(err)
	}
	h.expect("\r\n+CPIN: NOT READY\r\n\r\n+CEREG: 0\r\n\r\n+QIURC: \"pdpdeact\",1\r\n\r\n+QMTSTAT: 0,1\r\n")
	h.cmd("AT+CPIN?", "\r\n+CME ERROR: 10\r\n")
	h.cmd("AT+CIMI", "\r\n+CME ERROR: 10\r\n")
	h.cmd("AT+QCCID", "\r\n+CME ERROR: 10\r\n")
	h.cmd("AT+CEREG?", "\r\n+CEREG: 1,0\r\n\r\nOK\r\n")
	h.cmd(`AT+QMTOPEN=0,"h",1883`, "\r\nOK\r\n")
	h.expect("\r\n+QMTOPEN: 0,3\r\n") // no PDP context
	if err := r.m.SetSIM(true); err != nil {
		t.Fatal(err)
	}
	h.cmd("AT+CPIN?", "\r\n+CME ERROR: 14\r\n") // busy: the SIM is being read
	h.expect("\r\n+CPIN: READY\r\n\r\n+CEREG: 1\r\n\r\n+QUSIM: 1\r\n\r\n+QIND: SMS DONE\r\n\r\n+QIND: PB DONE\r\n")
	h.cmd("AT+CPIN?", "\r\n+CPIN: READY\r\n\r\nOK\r\n")

	// Booting without a SIM.
	if err := r.m.SetSIM(false); err != nil {
		t.Fatal(err)
	}
	h.expect("\r\n+CPIN: NOT READY\r\n\r\n+CEREG: 0\r\n\r\n+QIURC: \"pdpdeact\",1\r\n")
	if err := r.m.Reboot(); err != nil {
		t.Fatal(err)
	}
	h.expect("\r\nRDY\r\n\r\n+CFUN: 1\r\n\r\n+CPIN: NOT READY\r\n")
	h.cmd("AT+CPIN?", "AT+CPIN?\r\r\n+CME ERROR: 10\r\n")
}

func TestNotRegistered(t *testing.T) {
	t.Parallel()
	r := newRig(t, Config{})
	r.connect("reg")
	h := r.h
	h.cmd("AT+CEREG=2", "\r\nOK\r\n")
	h.cmd("AT+CREG=1", "\r\nOK\r\n")
	if err := r.m.SetRegistered(false); err != nil {
		t.Fatal(err)
	}
	h.expect("\r\n+CREG: 2\r\n\r\n+CEREG: 2\r\n\r\n+QIURC: \"pdpdeact\",1\r\n\r\n+QMTSTAT: 0,1\r\n")
	h.cmd("AT+CEREG?", "\r\n+CEREG: 2,2\r\n\r\nOK\r\n")
	h.cmd("AT+CGREG?", "\r\n+CGREG: 0,2\r\n\r\nOK\r\n")
	h.cmd("AT+CGATT?", "\r\n+CGATT: 0\r\n\r\nOK\r\n")
	h.cmd("AT+QIACT=1", "\r\n+CME ERROR: 30\r\n")
	if err := r.m.SetRegistered(true); err != nil {
		t.Fatal(err)
	}
	h.expect("\r\n+CREG: 1\r\n\r\n+CEREG: 1,\"1A2B\",\"0C3D4E5F\",7\r\n")
	h.cmd("AT+CEREG?", "\r\n+CEREG: 2,1,\"1A2B\",\"0C3D4E5F\",7\r\n\r\nOK\r\n")
}

func TestDeactivatePDP(t *testing.T) {
	t.Parallel()
	r := newRig(t, Config{})
	r.connect("pdp")
	if err := r.m.DeactivatePDP(); err != nil {
		t.Fatal(err)
	}
	h := r.h
	h.expect("\r\n+QIURC: \"pdpdeact\",1\r\n\r\n+QMTSTAT: 0,1\r\n")
	h.cmd("AT+QIACT?", "\r\nOK\r\n")
	h.cmd(`AT+QMTOPEN=0,"h",1883`, "\r\nOK\r\n")
	h.expect("\r\n+QMTOPEN: 0,3\r\n")
	h.cmd("AT+QIACT=1", "\r\nOK\r\n")
	r.connect2(h, "pdp-again")
	if err := r.m.DeactivatePDP(); err != nil {
		t.Fatal(err)
	}
	h.expect("\r\n+QIURC: \"pdpdeact\",1\r\n\r\n+QMTSTAT: 0,1\r\n")
	if err := r.m.DeactivatePDP(); err == nil {
		t.Fatal("DeactivatePDP with no active context succeeded")
	}
}

func TestBrokerDelayHoldsPublishResult(t *testing.T) {
	t.Parallel()
	r := newRig(t, Config{})
	r.connect("delay")
	const d = 250 * time.Millisecond
	r.m.SetBrokerDelay(d)
	h := r.h
	h.cmd(`AT+QMTPUBEX=0,1,1,0,"t",1`, "\r\n> ")
	h.write("x")
	h.expect("\r\nOK\r\n")
	start := time.Now()
	h.expect("\r\n+QMTPUBEX: 0,1,0\r\n")
	if waited := time.Since(start); waited < d-10*time.Millisecond {
		t.Fatalf("result after %v, before the %v broker delay", waited, d)
	}
}

func TestURCPortElsewhereSilencesURCs(t *testing.T) {
	t.Parallel()
	r := newRig(t, Config{})
	h := r.h
	h.cmd("ATE0", "ATE0\r\r\nOK\r\n")
	h.cmd(`AT+QURCCFG="urcport","uart1"`, "\r\nOK\r\n")
	h.cmd(`AT+QMTOPEN=0,"h",1883`, "\r\nOK\r\n")
	h.quiet(300 * time.Millisecond) // +QMTOPEN goes to the UART
	h.cmd("AT+QMTOPEN?", "\r\n+QMTOPEN: 0,\"h\",1883\r\n\r\nOK\r\n")
	h.cmd(`AT+QURCCFG="urcport","usbat"`, "\r\nOK\r\n")
	h.cmd(`AT+QMTCLOSE=0`, "\r\nOK\r\n")
	h.expect("\r\n+QMTCLOSE: 0,0\r\n")
}

func TestPoweredDown(t *testing.T) {
	t.Parallel()
	r := newRig(t, Config{})
	h := r.h
	h.cmd("AT+QPOWD", "AT+QPOWD\r\r\nOK\r\n\r\nPOWERED DOWN\r\n")
	h.write("AT\r")
	h.quiet(200 * time.Millisecond)
	if err := r.m.Reboot(); err != nil {
		t.Fatal(err)
	}
	h.expect(bootURCs)
}

func TestEditTimeout(t *testing.T) {
	t.Parallel()
	r := newRig(t, Config{})
	r.connect("edit")
	h := r.h
	h.cmd(`AT+QMTCFG="edit/timeout",0,1,1`, "\r\nOK\r\n")
	h.cmd(`AT+QMTPUBEX=0,0,0,0,"t",10`, "\r\n> ")
	h.write("short")
	h.expect("\r\nERROR\r\n")
	h.cmd("AT", "\r\nOK\r\n")
}

func TestURCsWaitWhileTypingData(t *testing.T) {
	t.Parallel()
	r := newRig(t, Config{})
	r.connect("hold")
	h := r.h
	h.cmd(`AT+QMTSUB=0,1,"d",0`, "\r\nOK\r\n")
	h.expect("\r\n+QMTSUB: 0,1,0,0\r\n")
	h.cmd(`AT+QMTPUBEX=0,0,0,0,"t",4`, "\r\n> ")
	h.write("ab")
	newPeer(t, r.broker, "cloud").publish(t, "d", 0, []byte("m"))
	h.quiet(200 * time.Millisecond)
	h.write("cd")
	got := h.until("+QMTPUBEX: 0,0,0\r\n")
	if !strings.HasPrefix(got, "\r\nOK\r\n\r\n+QMTRECV: 0,0,\"d\",\"m\"\r\n") {
		t.Fatalf("after the data: %q", got)
	}
}

func TestNewRejectsBadConfig(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		cfg  Config
		want string
	}{
		{Config{}, "Broker is empty"},
		{Config{Broker: "ssl://h:1"}, "scheme"},
		{Config{Broker: "nohostport"}, "host:port"},
		{Config{Broker: "h:1", Identity: Identity{IMEI: "123"}}, "IMEI"},
		{Config{Broker: "h:1", Identity: Identity{Model: "a\r\nb"}}, "model"},
		{Config{Broker: "h:1", MaxPayload: -1}, "MaxPayload"},
	} {
		if _, err := New(c.cfg); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("New(%+v) = %v, want an error mentioning %q", c.cfg, err, c.want)
		}
	}
	m, err := New(Config{Broker: "h:1"})
	if err != nil {
		t.Fatal(err)
	}
	if err := m.DropLink(); !errors.Is(err, ErrNotRunning) {
		t.Fatalf("fault before Start: %v", err)
	}
}

func TestLinkPathThatIsNotASymlinkIsLeftAlone(t *testing.T) {
	t.Parallel()
	path := t.TempDir() + "/file"
	if err := os.WriteFile(path, []byte("keep"), 0o600); err != nil {
		t.Fatal(err)
	}
	m, err := New(Config{Broker: "127.0.0.1:1", Link: path})
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Start(t.Context()); err == nil || !strings.Contains(err.Error(), "not a symlink") {
		m.Close()
		t.Fatalf("Start over a regular file: %v", err)
	}
	if b, _ := os.ReadFile(path); string(b) != "keep" {
		t.Fatal("the file was touched")
	}
}

// TestCloseLeavesNoGoroutine runs a full session with every kind of goroutine the module starts,
// closes it, and checks the goroutine count returns to where it was.
func TestCloseLeavesNoGoroutine(t *testing.T) {
	// Not parallel: it counts goroutines of the whole process.
	before := runtime.NumGoroutine()
	func() {
		b, err := NewBroker("127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer b.Close()
		m, err := New(Config{Broker: b.Addr(), Link: t.TempDir() + "/at"})
		if err != nil {
			t.Fatal(err)
		}
		if err := m.Start(t.Context()); err != nil {
			t.Fatal(err)
		}
		h := &host{t: t}
		h.f, err = os.OpenFile(m.Path(), os.O_RDWR, 0)
		if err != nil {
			t.Fatal(err)
		}
		defer h.f.Close()
		h.expect(bootURCs)
		r := &rig{t: t, m: m, b: b, h: h}
		r.connect("leak")
		h.cmd(`AT+QMTSUB=0,1,"x",1`, "\r\nOK\r\n")
		h.expect("\r\n+QMTSUB: 0,1,0,1\r\n")
		h.cmd(`AT+QMTOPEN=1,"h",1883`, "\r\nOK\r\n") // a second client left open, not connected
		h.expect("\r\n+QMTOPEN: 1,0\r\n")
		h.cmd(`AT+QMTPUBEX=0,5,1,0,"x",2`, "\r\n> ")
		h.write("hi")
		h.until("+QMTPUBEX: 0,5,0\r\n")
		if err := m.Close(); err != nil {
			t.Fatal(err)
		}
		if err := m.Close(); err != nil {
			t.Fatal(err)
		}
	}()
	waitUntil(t, func() bool { return runtime.NumGoroutine() <= before }, "goroutines to end")
}

func waitUntil(t testing.TB, cond func() bool, what string) {
	t.Helper()
	deadline := time.Now().Add(waitFor)
	for !cond() {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			t.Fatalf("timed out waiting for %s\n%s", what, buf[:runtime.Stack(buf, true)])
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestWillIsPublishedWhenTheLinkDrops(t *testing.T) {
	t.Parallel()
	r := newRig(t, Config{})
	cloud := newPeer(t, r.broker, "cloud")
	cloud.subscribe(t, "dev/status", 1)
	h := r.h
	h.cmd("ATE0", "ATE0\r\r\nOK\r\n")
	h.cmd(`AT+QMTCFG="will",0,1,1,0,"dev/status","offline"`, "\r\nOK\r\n")
	r.connect2(h, "will")
	if err := r.m.DropLink(); err != nil {
		t.Fatal(err)
	}
	h.expect("\r\n+QMTSTAT: 0,1\r\n")
	if m := cloud.next(t); m.Topic() != "dev/status" || string(m.Payload()) != "offline" {
		t.Fatalf("cloud got %q %q", m.Topic(), m.Payload())
	}
	// willex: binary message from data mode.
	h.cmd(`AT+QMTCFG="will",0,0`, "\r\nOK\r\n")
	h.cmd(`AT+QMTCFG="willex",0,1,1,0,"dev/status",3`, "\r\n> ")
	h.write("\x00\"\n")
	h.expect("\r\nOK\r\n")
	r.connect2(h, "willex")
	if err := r.m.DropLink(); err != nil {
		t.Fatal(err)
	}
	h.expect("\r\n+QMTSTAT: 0,1\r\n")
	if m := cloud.next(t); string(m.Payload()) != "\x00\"\n" {
		t.Fatalf("cloud got willex %q", m.Payload())
	}
}

func TestPersistentSession(t *testing.T) {
	t.Parallel()
	r := newRig(t, Config{})
	h := r.h
	h.cmd("ATE0", "ATE0\r\r\nOK\r\n")
	h.cmd(`AT+QMTCFG="session",0,0`, "\r\nOK\r\n")
	r.connect2(h, "keeper")
	h.cmd(`AT+QMTSUB=0,1,"cmd",1`, "\r\nOK\r\n")
	h.expect("\r\n+QMTSUB: 0,1,0,1\r\n")
	if err := r.m.DropLink(); err != nil {
		t.Fatal(err)
	}
	h.expect("\r\n+QMTSTAT: 0,1\r\n")
	// Publish only once the broker has seen the link go, so the message is queued in the session.
	waitUntil(t, func() bool { return r.b.Clients() == 0 }, "the broker to notice the dropped link")
	newPeer(t, r.broker, "cloud").publish(t, "cmd", 1, []byte("while away"))
	r.connect2(h, "keeper") // the broker kept the session: the queued message comes without SUB
	got := h.until("\"while away\"\r\n")
	if !strings.HasPrefix(got, "\r\n+QMTRECV: 0,") {
		t.Fatalf("queued message: %q", got)
	}
}

func TestAliauthSignsLikeTheReference(t *testing.T) {
	t.Parallel()
	// Reference 7.3, signed without timestamp with hmacsha1.
	type creds struct{ id, user, pass string }
	seen := make(chan creds, 1)
	auth := func(id, user string, pass []byte) byte {
		seen <- creds{id, user, string(pass)}
		return 0
	}
	r := newRig(t, Config{}, WithAuth(auth))
	h := r.h
	h.cmd("ATE0", "ATE0\r\r\nOK\r\n")
	h.cmd(`AT+QMTCFG="aliauth",0,"a1B2c3D4e5F","pi-led-01","Zx9yW8vU7tS6rQ5pO4nM3lK2jI1hG0fE"`, "\r\nOK\r\n")
	r.connect2(h, "pi-led-01")
	want := creds{"pi-led-01|securemode=3,signmethod=hmacsha1|", "pi-led-01&a1B2c3D4e5F", "bd4062bdb0ce5aefbb59ce1e7677eaecc653d2f3"}
	if got := <-seen; got != want {
		t.Fatalf("broker saw %+v, want %+v", got, want)
	}
}

func TestCloseLinkWhileConnected(t *testing.T) {
	t.Parallel()
	r := newRig(t, Config{})
	r.connect("closer")
	waitUntil(t, func() bool { return r.b.Clients() == 1 }, "the client on the broker")
	r.h.cmd("AT+QMTCLOSE=0", "\r\nOK\r\n")
	r.h.expect("\r\n+QMTCLOSE: 0,0\r\n")
	waitUntil(t, func() bool { return r.b.Clients() == 0 }, "the broker to lose the client")
	r.h.cmd("AT+QMTCONN?", "\r\nOK\r\n")
}

func TestHostReopensThePort(t *testing.T) {
	t.Parallel()
	r := newRig(t, Config{})
	r.h.cmd("ATE0", "ATE0\r\r\nOK\r\n")
	r.h.f.Close()
	h := openHost(t, r.link)
	h.cmd("AT", "\r\nOK\r\n") // the module kept its state (echo off) while the port was closed
}

// TestResultDelayHoldsSubscribeAndPublishResults: SetResultDelay holds every SUB, UNS and
// publish result, as a module retransmitting would (reference 3.1: up to packet timeout ×
// (retries+1) after the command).
func TestResultDelayHoldsSubscribeAndPublishResults(t *testing.T) {
	t.Parallel()
	r := newRig(t, Config{})
	r.connect("late")
	const d = 300 * time.Millisecond
	r.m.SetResultDelay(d)
	h := r.h
	start := time.Now()
	h.cmd(`AT+QMTSUB=0,1,"t",1`, "\r\nOK\r\n")
	h.expect("\r\n+QMTSUB: 0,1,0,1\r\n")
	h.cmd(`AT+QMTUNS=0,2,"t"`, "\r\nOK\r\n")
	h.expect("\r\n+QMTUNS: 0,2,0\r\n")
	h.cmd(`AT+QMTPUBEX=0,0,0,0,"t",1`, "\r\n> ")
	h.write("x")
	h.expect("\r\nOK\r\n\r\n+QMTPUBEX: 0,0,0\r\n")
	if waited := time.Since(start); waited < 3*d-30*time.Millisecond {
		t.Fatalf("three results in %v, want each held %v", waited, d)
	}
	r.m.SetResultDelay(0)
	h.cmd(`AT+QMTSUB=0,3,"t",0`, "\r\nOK\r\n")
	h.expect("\r\n+QMTSUB: 0,3,0,0\r\n")
}

// TestLosePUBACK: a QoS 1 publish whose PUBACK is lost is reported as retransmitted every packet
// timeout and then failed, while the link stays up and other results keep coming (reference 2.6).
func TestLosePUBACK(t *testing.T) {
	t.Parallel()
	r := newRig(t, Config{})
	h := r.h
	h.cmd("ATE0", "ATE0\r\r\nOK\r\n")
	h.cmd(`AT+QMTCFG="timeout",0,1,2`, "\r\nOK\r\n")
	h.cmd(`AT+QMTOPEN=0,"h",1883`, "\r\nOK\r\n")
	h.expect("\r\n+QMTOPEN: 0,0\r\n")
	h.cmd(`AT+QMTCONN=0,"lost"`, "\r\nOK\r\n")
	h.expect("\r\n+QMTCONN: 0,0,0\r\n")
	p := newPeer(t, r.broker, "cloud")
	p.subscribe(t, "up", 1)
	r.m.LosePUBACK(1)
	start := time.Now()
	h.cmd(`AT+QMTPUBEX=0,7,1,0,"up",1`, "\r\n> ")
	h.write("a")
	h.expect("\r\nOK\r\n")
	h.cmd(`AT+QMTPUBEX=0,8,1,0,"up",1`, "\r\n> ")
	h.write("b")
	h.expect("\r\nOK\r\n\r\n+QMTPUBEX: 0,8,0\r\n") // not held behind the lost one
	h.expect("\r\n+QMTPUBEX: 0,7,1,1\r\n\r\n+QMTPUBEX: 0,7,1,2\r\n\r\n+QMTPUBEX: 0,7,2\r\n")
	if d := time.Since(start); d < 3*time.Second-100*time.Millisecond {
		t.Fatalf("gave up after %v, want 1 s × (2 retries + 1)", d)
	}
	if got := string(p.next(t).Payload()); got != "a" { // the broker has it: a resend is a duplicate
		t.Fatalf("broker got %q first", got)
	}
	h.cmd("AT+QMTCONN?", "\r\n+QMTCONN: 0,3\r\n\r\nOK\r\n") // still connected
	h.cmd(`AT+QMTPUBEX=0,9,1,0,"up",1`, "\r\n> ")
	h.write("c")
	h.expect("\r\nOK\r\n\r\n+QMTPUBEX: 0,9,0\r\n")
}

// TestSameClientIDKicksTheOther: two emulated modules with one client id on one real broker —
// MQTT 3.1.1 (3.1.4-2) has the broker drop the older connection when the newer one connects, so
// the first module sees its link closed by the peer and says so, +QMTSTAT: 0,1 (reference
// 2.8); and the other way round when the first connects again.
func TestSameClientIDKicksTheOther(t *testing.T) {
	t.Parallel()
	a := newRig(t, Config{})
	b := newRig(t, Config{Broker: a.broker})
	a.connect("twin")
	b.connect("twin")
	a.h.expect("\r\n+QMTSTAT: 0,1\r\n")
	a.h.cmd("AT+QMTCONN?", "\r\nOK\r\n") // the index is closed
	b.h.cmd("AT+QMTCONN?", "\r\n+QMTCONN: 0,3\r\n\r\nOK\r\n")
	a.h.cmd(`AT+QMTOPEN=0,"h",1883`, "\r\nOK\r\n")
	a.h.expect("\r\n+QMTOPEN: 0,0\r\n")
	a.h.cmd(`AT+QMTCONN=0,"twin"`, "\r\nOK\r\n")
	a.h.expect("\r\n+QMTCONN: 0,0,0\r\n")
	b.h.expect("\r\n+QMTSTAT: 0,1\r\n")
}
