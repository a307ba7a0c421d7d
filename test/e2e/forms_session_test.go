package e2e

// End-to-end tests of the session forms real modules printed (issue 20, reference 0, 1, 2.3,
// 2.5, 2.8, 4.2, 5.2): each runs the real gatewayd binary against the emulator set to the
// firmware variant that prints the form, and checks from the daemon's log (and, where it
// matters, the commands the emulator received) that the daemon handles it.

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/gatewayd/gatewayd/sim"
	"github.com/gatewayd/gatewayd/test/logwatch"
)

// simCommands records the command lines the emulator executed, from its debug log.
type simCommands struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (s *simCommands) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.buf.Write(p)
}

// logTo makes the module log its commands to s.
func (s *simCommands) logTo(c *sim.Config) {
	c.Logger = zerolog.New(s).Level(zerolog.DebugLevel)
}

// list gives the command lines in the order the module executed them.
func (s *simCommands) list() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for _, l := range strings.Split(s.buf.String(), "\n") {
		var e struct {
			Msg string `json:"message"`
			Cmd string `json:"cmd"`
		}
		if json.Unmarshal([]byte(l), &e) == nil && e.Msg == "command" {
			out = append(out, e.Cmd)
		}
	}
	return out
}

// entryTime is the time of a log entry.
func entryTime(t *testing.T, e logwatch.Entry) time.Time {
	t.Helper()
	at, err := time.Parse(time.RFC3339Nano, e.Str("time"))
	if err != nil {
		t.Fatalf("log entry without a time: %v", e)
	}
	return at
}

// rawStatus is `gatewayd status -json` as a generic JSON object, so that a field this tree
// adds is read the same way whether or not the binary knows it.
func rawStatus(t *testing.T, sock string) map[string]any {
	t.Helper()
	out, errs, code := cli(t, "status", "-json", "-socket", sock)
	var st map[string]any
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		t.Fatalf("status -json (exit %d): %v\n%s%s", code, err, out, errs)
	}
	return st
}

// refusingBroker starts a broker that refuses the daemon's CONNECTs (client ids starting with
// pi-led-01) with code and counts them.
func refusingBroker(t *testing.T, code byte, connects *connectLog) *sim.Broker {
	t.Helper()
	b, err := sim.NewBroker("127.0.0.1:0", sim.WithAuth(func(clientID, _ string, _ []byte) byte {
		if strings.HasPrefix(clientID, "pi-led-01") {
			connects.add()
			return code
		}
		return 0
	}))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	return b
}

// failures gives the mqtt_connect_failed entries so far.
func failures(d *proc) []logwatch.Entry {
	var out []logwatch.Entry
	for _, e := range d.log.Entries() {
		if e.Event() == "mqtt_connect_failed" {
			out = append(out, e)
		}
	}
	return out
}

// TestRefusedConnectThenQMTSTAT4 (BG95-M3): +QMTCONN: 0,0,2 then +QMTSTAT: 0,4. The daemon
// reports the CONNACK code in words (the identifier, not the network), takes the +QMTSTAT as part
// of the same failure (one failure, one back-off step per CONNECT, no session loss), sends no
// AT+QMTDISC, and goes back through AT+QMTCLOSE (answered ERROR: the index is already closed) to
// AT+QMTOPEN.
func TestRefusedConnectThenQMTSTAT4(t *testing.T) {
	t.Parallel()
	var connects connectLog
	broker := refusingBroker(t, 2, &connects)
	var cmds simCommands
	b := newBenchOn(t, broker.Addr(), cmds.logTo, func(c *sim.Config) { c.RefusalStat = 4 })
	d := b.start(seedConfig(b.mod.Path(), ""))
	_, i := d.wait(t, 0, "mqtt_connect_failed")
	_, i = d.wait(t, i+1, "mqtt_connect_failed")
	d.wait(t, i+1, "mqtt_connect_failed")
	// Let the last +QMTSTAT: 0,4 come in, then count.
	time.Sleep(300 * time.Millisecond)
	fails := failures(d)
	n := len(connects.snapshot())
	if len(fails) != n && len(fails) != n-1 { // the last CONNECT's failure may still be on its way
		t.Errorf("%d failures logged for %d CONNECTs: the +QMTSTAT counted as a failure of its own?", len(fails), n)
	}
	for k, e := range fails {
		if e.Int("code") != 2 || !strings.Contains(e.Str("error"), "identifier rejected") {
			t.Errorf("failure %d: %v; want the CONNACK code 2 in words (identifier rejected)", k+1, e)
		}
		if e.Int("attempt") != k+1 {
			t.Errorf("failure %d logged attempt %d: a failure counted twice", k+1, e.Int("attempt"))
		}
		if strings.Contains(e.Str("error"), "+QMTSTAT") {
			t.Errorf("failure %d blames the +QMTSTAT, not the refusal: %v", k+1, e)
		}
	}
	if n := d.log.Count("mqtt_disconnected"); n != 0 {
		t.Errorf("%d mqtt_disconnected for a session that never came up", n)
	}
	list := cmds.list()
	refused := 0 // QMTCONNs sent so far
	for k, c := range list {
		switch {
		case strings.HasPrefix(c, "AT+QMTDISC"):
			t.Errorf("AT+QMTDISC sent after a refused CONNECT (command %d)", k)
		case strings.HasPrefix(c, "AT+QMTCONN="):
			refused++
		case strings.HasPrefix(c, "AT+QMTOPEN=") && refused > 0:
			// The way back to QMTOPEN after a refusal goes through QMTCLOSE.
			closed := false
			for j := k - 1; j >= 0 && !strings.HasPrefix(list[j], "AT+QMTCONN="); j-- {
				if strings.HasPrefix(list[j], "AT+QMTCLOSE=") {
					closed = true
				}
			}
			if !closed {
				t.Errorf("AT+QMTOPEN after refused CONNECT %d without AT+QMTCLOSE before it: %q", refused, list)
				return
			}
		}
	}
}

// TestConnectAnsweredOnlyByQMTSTAT (M95): the CONNECT is answered by +QMTSTAT: 0,1 and no
// +QMTCONN at all. The wait for the result ends on the +QMTSTAT, not after the CONNECT timeout
// (5 s packet timeout × 4 tries + 2 s here).
func TestConnectAnsweredOnlyByQMTSTAT(t *testing.T) {
	t.Parallel()
	var connects connectLog
	broker := refusingBroker(t, 2, &connects)
	b := newBenchOn(t, broker.Addr(), func(c *sim.Config) { c.RefusalStatOnly = true })
	d := b.start(seedConfig(b.mod.Path(), ""))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	open, i, err := d.log.Wait(ctx, 0, func(e logwatch.Entry) bool { return e.Str("step") == "open" })
	if err != nil {
		t.Fatalf("the daemon never opened the link: %v", err)
	}
	fail, _ := d.wait(t, i, "mqtt_connect_failed")
	took := entryTime(t, fail).Sub(entryTime(t, open))
	t.Logf("from AT+QMTOPEN to the failure: %s (CONNECT timeout 22 s)", took)
	if took > 3*time.Second {
		t.Errorf("the failure came %s after the open: the wait ran into the timeout instead of ending on +QMTSTAT", took)
	}
	if !strings.Contains(fail.Str("error"), "+QMTSTAT") || fail.Str("step") != "connect" {
		t.Errorf("failure %v: want the connect step ended by +QMTSTAT", fail)
	}
	if !strings.Contains(fail.Str("hint"), "client id or credentials") {
		t.Errorf("failure %v: want a hint that this may be a refusal", fail)
	}
	if n := len(connects.snapshot()); n != 1 {
		t.Errorf("%d CONNECTs reached the broker before the first failure, want 1", n)
	}
}

// TestQMTSTAT8IsLinkLost (EC200 family): +QMTSTAT: 0,8 is handled as a lost link — said in words,
// counted as link_closed, and the session comes back.
func TestQMTSTAT8IsLinkLost(t *testing.T) {
	t.Parallel()
	b := newBench(t, nil)
	d := b.start(seedConfig(b.mod.Path(), ""))
	_, i := d.wait(t, 0, "session_up")
	must(t, b.mod.LoseLink(8))
	e, i := d.wait(t, i, "mqtt_disconnected")
	why := e.Str("reason")
	if !strings.HasPrefix(why, "+QMTSTAT 8") || strings.Contains(why, "reserved") || !strings.Contains(why, "closed the link") {
		t.Errorf("reason %q: want +QMTSTAT 8 in words (the module closed the link), not a reserved code", why)
	}
	d.wait(t, i, "session_up")
	st := rawStatus(t, controlSocket(b.mod.Path()))
	mqtt, _ := st["mqtt"].(map[string]any)
	rec, _ := mqtt["reconnects"].(map[string]any)
	if rec["link_closed"] != float64(1) {
		t.Errorf("reconnects %v, want link_closed 1", rec)
	}
}

// TestTwoFieldConnAck (older firmware): +QMTCONN: 0,0 without a ret_code is a success while the
// CONNECT is pending, and a +QMTSTAT after it is still honoured.
func TestTwoFieldConnAck(t *testing.T) {
	t.Parallel()
	b := newBenchOn(t, startBroker(t).Addr(), func(c *sim.Config) { c.ConnAckTwoFields = true })
	d := b.start(seedConfig(b.mod.Path(), ""))
	_, i := d.wait(t, 0, "mqtt_connected")
	_, i = d.wait(t, i, "session_up")
	must(t, b.mod.DropLink())
	e, i := d.wait(t, i, "mqtt_disconnected")
	if !strings.HasPrefix(e.Str("reason"), "+QMTSTAT 1") {
		t.Errorf("session lost for %q, want the +QMTSTAT", e.Str("reason"))
	}
	d.wait(t, i, "session_up")
	if n := d.log.Count("mqtt_connect_failed"); n != 0 {
		t.Errorf("%d failed connects with two-field successes", n)
	}
}

// TestFirstATAnsweredError (EC2x class): the first AT after the port opens is answered ERROR. The
// module is alive: the daemon probes again and comes up with no failed step, no back-off and
// no reset.
func TestFirstATAnsweredError(t *testing.T) {
	t.Parallel()
	var cmds simCommands
	b := newBenchOn(t, startBroker(t).Addr(), cmds.logTo, func(c *sim.Config) { c.FirstATError = true })
	d := b.start(seedConfig(b.mod.Path(), ""))
	d.wait(t, 0, "session_up")
	for _, ev := range []string{"bringup_failed", "module_reset", "module_lost", "mqtt_connect_failed"} {
		if n := d.log.Count(ev); n != 0 {
			t.Errorf("%d %s events: the ERROR to the first AT was taken as a failure", n, ev)
		}
	}
	if l := cmds.list(); len(l) < 2 || l[0] != "AT" || l[1] != "AT" {
		t.Errorf("first commands %q: want AT (answered ERROR), then AT again", l[:min(len(l), 3)])
	}
}

// TestDualStackAddresses: AT+QIACT? with an IPv4 and an IPv6 address, under type 1 (EC600S) and
// under type 3 (EC200U). The status shows both addresses, the IPv4 one first.
func TestDualStackAddresses(t *testing.T) {
	t.Parallel()
	broker := startBroker(t)
	for _, typ := range []int{1, 3} {
		b := newBenchOn(t, broker.Addr(), func(c *sim.Config) { c.DualStack = typ })
		d := b.start(seedConfig(b.mod.Path(), ""))
		d.wait(t, 0, "session_up")
		st := rawStatus(t, controlSocket(b.mod.Path()))
		net, _ := st["network"].(map[string]any)
		v4, v6 := "10.2.198.114", "240E:404:8A1:D3C6::1"
		if net["pdp_address"] != v4 {
			t.Errorf("type %d: pdp_address %v, want %s", typ, net["pdp_address"], v4)
		}
		addrs, _ := net["pdp_addresses"].([]any)
		if len(addrs) != 2 || addrs[0] != v4 || addrs[1] != v6 {
			t.Errorf("type %d: pdp_addresses %v, want [%s %s]", typ, net["pdp_addresses"], v4, v6)
		}
		text, _, _ := cli(t, "status", "-socket", controlSocket(b.mod.Path()))
		if !strings.Contains(text, v4) || !strings.Contains(text, v6) {
			t.Errorf("type %d: gatewayd status does not show both addresses:\n%s", typ, text)
		}
		if _, err := d.stop(t); err != nil {
			t.Fatalf("exit after SIGTERM: %v", err)
		}
	}
}

// qfuplChecksum is the checksum the reference gives for AT+QFUPL: the XOR of the file taken as
// big-endian 16-bit words (computed here independently of the emulator).
func qfuplChecksum(b []byte) uint16 {
	var x uint16
	for i := 0; i+1 < len(b); i += 2 {
		x ^= uint16(b[i])<<8 | uint16(b[i+1])
	}
	if len(b)%2 == 1 {
		x ^= uint16(b[len(b)-1]) << 8
	}
	return x
}

// padChecksum appends a comment line of printable bytes to the PEM data (even-sized) so that its
// QFUPL checksum becomes want (which, like every checksum of ASCII text, has bit 7 clear in both
// bytes): "#x", two words that make the difference, and "\n\n", each word-aligned.
func padChecksum(data []byte, want uint16) ([]byte, error) {
	head, tail := []byte("#x"), []byte("\n\n")
	r := qfuplChecksum(data) ^ qfuplChecksum(head) ^ qfuplChecksum(tail) ^ want
	var w1, w2 [2]byte
	for i, rb := range []byte{byte(r >> 8), byte(r)} {
		found := false
		for a := byte('A'); a <= 'z' && !found; a++ {
			if b := a ^ rb; b >= '0' && b <= 'z' {
				w1[i], w2[i], found = a, b, true
			}
		}
		if !found {
			return nil, fmt.Errorf("no printable pair XORs to %#x", rb)
		}
	}
	out := append(append([]byte{}, data...), head...)
	out = append(append(append(out, w1[:]...), w2[:]...), tail...)
	if got := qfuplChecksum(out); got != want {
		return nil, fmt.Errorf("padded checksum %x, want %x", got, want)
	}
	return out, nil
}

// TestShortQFUPLChecksum: the module prints the +QFUPL checksum without zero padding (BG96:
// "f5f", "372"). A CA file whose checksum has fewer than four hex digits (a comment line after
// the PEM block picks it) is uploaded, the daemon takes the answer, and the TLS session comes up.
func TestShortQFUPLChecksum(t *testing.T) {
	t.Parallel()
	tb := newTLSBench(t)
	ca := append([]byte{}, tb.pki.CA...)
	if len(ca)%2 == 1 {
		ca = append(ca, '\n')
	}
	padded, err := padChecksum(ca, 0x0f5f) // three digits, as a BG96 printed for its CA
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(tb.dir, "ca.pem"), padded, 0o600); err != nil {
		t.Fatal(err)
	}
	want := fmt.Sprintf("+QFUPL: %d,%x", len(padded), qfuplChecksum(padded))
	t.Logf("CA file %d bytes, checksum %x", len(padded), qfuplChecksum(padded))
	d := tb.start2(t)
	e, _ := d.wait(t, 0, "tls_ready")
	d.wait(t, 0, "subscribed")
	if files, _ := uploaded(e); len(files) != 3 {
		t.Errorf("tls_ready uploaded %q, want the 3 files at the first attempt", files)
	}
	if n := d.log.Count("mqtt_connect_failed"); n != 0 {
		t.Errorf("%d failed MQTT bring-ups: the upload's answer was not taken", n)
	}
	if !strings.Contains(strings.Join(d.log.Raw(), "\n"), want) {
		t.Errorf("the AT trace does not show the module's %q", want)
	}
}

// TestQMTCFGRefusedWhileIndexOpen (EC600K-CN): AT+QMTCFG on an index that is open answers ERROR
// (here on a connected one too: qmtcfg-strict).
// The bring-up closes the index first, so the daemon connects when a host restart left the
// index opening (not listed by AT+QMTOPEN?), and when it left it connected.
func TestQMTCFGRefusedWhileIndexOpen(t *testing.T) {
	t.Parallel()
	b := newBenchOn(t, startBroker(t).Addr(), func(c *sim.Config) { c.StrictQMTCFG = true })
	must(t, b.mod.Occupy(0))
	d := b.start(seedConfig(b.mod.Path(), ""))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, _, err := d.log.WaitEvent(ctx, 0, "session_up"); err != nil {
		t.Fatalf("no session within 10 s of a start on an index left opening: %v", err)
	}
	if n := d.log.Count("mqtt_connect_failed"); n != 0 {
		t.Errorf("%d failed MQTT bring-ups: the index was not closed before AT+QMTCFG", n)
	}
	// The daemon dies (no DISCONNECT) while connected; the next one finds the index connected.
	if err := d.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-d.done
	d2 := b.start(seedConfig(b.mod.Path(), ""))
	ctx2, cancel2 := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel2()
	if _, _, err := d2.log.WaitEvent(ctx2, 0, "session_up"); err != nil {
		t.Fatalf("no session within 10 s of a restart on a connected index: %v", err)
	}
	if n := d2.log.Count("mqtt_connect_failed"); n != 0 {
		t.Errorf("%d failed MQTT bring-ups after a restart on a connected index", n)
	}
}

// TestGrantedQoSLower: the broker grants QoS 1 for a subscription asked at 2 (Aliyun,
// ThingsBoard). The daemon says so in a warning, in words, and the status shows the granted QoS
// per subscription.
func TestGrantedQoSLower(t *testing.T) {
	t.Parallel()
	broker, err := sim.NewBroker("127.0.0.1:0", sim.WithMaxQoS(1))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { broker.Close() })
	b := newBenchOn(t, broker.Addr())
	cfg := strings.Replace(seedConfig(b.mod.Path(), ""), "qos = 1", "qos = 2", 1) // the first subscription
	d := b.start(cfg)
	d.wait(t, 0, "session_up")
	var low, fine logwatch.Entry
	for _, e := range d.log.Entries() {
		if e.Event() == "subscribed" {
			switch e.Str("topic") {
			case postTopic:
				low = e
			case setTopic:
				fine = e
			}
		}
	}
	if low == nil || low.Int("qos") != 2 || low.Int("granted_qos") != 1 || low.Str("level") != "warn" ||
		!strings.Contains(low.Str("message"), "granted") {
		t.Errorf("subscription at QoS 2 granted 1: %v; want a warning saying so, with qos 2 and granted_qos 1", low)
	}
	if fine == nil || fine.Str("level") != "info" {
		t.Errorf("subscription granted as asked: %v; want it at info", fine)
	}
	st := rawStatus(t, controlSocket(b.mod.Path()))
	mqtt, _ := st["mqtt"].(map[string]any)
	subs, _ := mqtt["subscribed"].([]any)
	got := map[string][2]float64{}
	for _, s := range subs {
		m, _ := s.(map[string]any)
		topic, _ := m["topic"].(string)
		q, _ := m["qos"].(float64)
		g, _ := m["granted_qos"].(float64)
		got[topic] = [2]float64{q, g}
	}
	if got[postTopic] != [2]float64{2, 1} || got[setTopic] != [2]float64{1, 1} {
		t.Errorf("status mqtt.subscribed %v; want %s asked 2 granted 1, %s asked 1 granted 1", mqtt["subscribed"], postTopic, setTopic)
	}
	text, _, _ := cli(t, "status", "-socket", controlSocket(b.mod.Path()))
	if !strings.Contains(text, postTopic+" (QoS 2, granted 1)") {
		t.Errorf("gatewayd status does not show the granted QoS:\n%s", text)
	}
}

// TestQIACTErrorOnActiveContext: after the network deactivated the PDP context, the daemon's
// AT+QIACT? sees it down, the default bearer comes back by itself just after (bearer-race), and
// AT+QIACT=1 is answered ERROR because the context is active (EC600S, BG770A-GL). The daemon asks
// AT+QIACT? again and carries on: no failed step, no back-off.
func TestQIACTErrorOnActiveContext(t *testing.T) {
	t.Parallel()
	var cmds simCommands
	b := newBenchOn(t, startBroker(t).Addr(), cmds.logTo)
	d := b.start(seedConfig(b.mod.Path(), ""))
	_, i := d.wait(t, 0, "session_up")
	must(t, b.mod.BearerRace())
	must(t, b.mod.DeactivatePDP())
	_, i = d.wait(t, i, "mqtt_disconnected")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, _, err := d.log.WaitEvent(ctx, i, "session_up"); err != nil {
		t.Fatalf("no session within 10 s: %v", err)
	}
	if n := d.log.Count("bringup_failed"); n != 0 {
		t.Errorf("%d failed bring-ups: the ERROR to AT+QIACT=1 on an active context was taken as a failure", n)
	}
	list := cmds.list()
	k := slices.Index(list, "AT+QIACT=1")
	if k < 0 || k+1 >= len(list) || list[k+1] != "AT+QIACT?" {
		t.Errorf("commands %q: want AT+QIACT=1 (answered ERROR) followed by AT+QIACT?", list)
	}
}
