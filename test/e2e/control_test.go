package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/gatewayd/gatewayd/internal/control"
	"github.com/gatewayd/gatewayd/internal/logging"
	"github.com/gatewayd/gatewayd/sim"
	"github.com/gatewayd/gatewayd/test/logwatch"
)

// Exit codes of status and at, as gatewayd(8) documents them under EXIT STATUS (the constants of
// the same names in cmd/gatewayd/status.go).
const (
	exitNotConnected = 1 // status: the daemon runs but MQTT is not connected; at: the module said no
	exitUnreachable  = 3 // the daemon could not be asked (not running, no permission, old protocol)
)

// cli runs the gatewayd binary with args and returns its output and exit code.
func cli(t *testing.T, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	var out, errb bytes.Buffer
	cmd := exec.Command(gatewaydBin, args...)
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	if ee, ok := err.(*exec.ExitError); ok {
		return out.String(), errb.String(), ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return out.String(), errb.String(), 0
}

// statusJSON asks the daemon whose socket is sock for its status.
func statusJSON(t *testing.T, sock string) (control.Status, int) {
	t.Helper()
	out, errs, code := cli(t, "status", "-json", "-socket", sock)
	var st control.Status
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		t.Fatalf("status -json (exit %d): %v\n%s%s", code, err, out, errs)
	}
	return st, code
}

// TestStatusAndAT: `gatewayd status` and `gatewayd at` against the running binary over its real
// control socket: the identity, network and session in one answer, the exit code following the
// MQTT state (so that `status -q` works in a shell test), and AT commands through the daemon,
// the session-breaking ones refused unless forced, every use logged.
func TestStatusAndAT(t *testing.T) {
	b := newBench(t, nil)
	sock := controlSocket(b.mod.Path())
	d := b.start(seedConfig(b.mod.Path(), ""))
	d.wait(t, 0, logging.EventSessionUp)
	b.publish(setTopic, []byte("on"))
	d.wait(t, 0, logging.EventDownlink)

	st, code := statusJSON(t, sock)
	id := sim.DefaultIdentity
	switch {
	case code != 0:
		t.Errorf("status exit %d while connected", code)
	case !st.MQTT.Connected || st.Stage != "connected" || !st.PortOpen:
		t.Errorf("status %+v: want connected", st)
	case st.Module.IMEI != id.IMEI || st.Module.ICCID != id.ICCID || st.Module.Model != id.Model || st.SIM != "READY":
		t.Errorf("module %+v, SIM %q: want the emulator's identity", st.Module, st.SIM)
	case !st.Net.Registered || st.Net.PDPAddress == "" || st.Net.RSSIdBm == nil || st.Net.Operator != sim.DefaultOperator:
		t.Errorf("network %+v", st.Net)
	case len(st.MQTT.Subscriptions) != 2 || st.MQTT.Downlinks == 0 || st.MQTT.ClientID == "":
		t.Errorf("mqtt %+v", st.MQTT)
	case st.LED == nil:
		t.Error("LED state not known")
	case st.Device != "pi-led-01|securemode=3,signmethod=hmacsha1|" || len(st.ConfigRevision) != 12 || st.Version == "":
		t.Errorf("device %q, config revision %q, version %q: want the client id, 12 hex digits and the version",
			st.Device, st.ConfigRevision, st.Version)
	}
	if out, _, code := cli(t, "status", "-socket", sock); code != 0 || !strings.Contains(out, id.IMEI) || !strings.Contains(out, "connected to") {
		t.Errorf("status (exit %d):\n%s", code, out)
	}

	out, errs, code := cli(t, "at", "-socket", sock, "AT+CSQ")
	if code != 0 || !strings.HasPrefix(out, "+CSQ: ") || !strings.HasSuffix(out, "OK\n") {
		t.Errorf("at AT+CSQ (exit %d): %q %q", code, out, errs)
	}
	if out, _, code := cli(t, "at", "-socket", sock, "AT+CPIN?"); code != 0 || out != "+CPIN: READY\nOK\n" {
		t.Errorf("at AT+CPIN? (a reply with a URC's name) exit %d: %q", code, out)
	}
	if out, _, code := cli(t, "at", "-socket", sock, "AT+QNOSUCH"); code != 1 || !strings.Contains(out, "ERROR") {
		t.Errorf("a command the module refuses: exit %d, %q", code, out)
	}
	if _, errs, code := cli(t, "at", "-socket", sock, "AT+QMTDISC=0"); code != exitUnreachable || !strings.Contains(errs, "--force") {
		t.Errorf("the daemon's own client: exit %d, %q", code, errs)
	}
	if _, _, err := d.log.Wait(ctxFor(t, 10*time.Second), 0, func(e logwatch.Entry) bool {
		return e.Event() == "operator_at_refused" && e.Str("command") == "AT+QMTDISC=0"
	}); err != nil {
		t.Error(err)
	}
	if d.log.Count("operator_at") < 2 {
		t.Errorf("%d operator_at log lines for 2 commands sent", d.log.Count("operator_at"))
	}

	// The session goes: the exit code says so, and the status says what the daemon waits for.
	b.mod.RefuseOpen(5)
	if err := b.mod.DropLink(); err != nil {
		t.Fatal(err)
	}
	d.wait(t, 0, logging.EventMQTTConnectFailed)
	st, code = statusJSON(t, sock)
	if code != exitNotConnected || st.MQTT.Connected || st.MQTT.LastError == "" || st.MQTT.Reconnects["link_closed"] != 1 {
		t.Errorf("after the link dropped: exit %d, mqtt %+v", code, st.MQTT)
	}
	if _, _, code := cli(t, "status", "-q", "-socket", sock); code != exitNotConnected {
		t.Errorf("status -q exit %d, want %d", code, exitNotConnected)
	}
	if _, err := d.stop(t); err != nil {
		t.Fatal(err)
	}
	if _, errs, code := cli(t, "status", "-socket", sock); code != exitUnreachable || !strings.Contains(errs, "cannot reach gatewayd") {
		t.Errorf("no daemon: exit %d, %q", code, errs)
	}
}

// ctxFor is a context that ends after d or with the test.
func ctxFor(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}
