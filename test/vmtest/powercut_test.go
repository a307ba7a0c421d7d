package vmtest

// The power cut: the outbox must keep every message whose local PUBACK was sent across a hard reset
// of the machine — no clean shutdown, no sync, no unmount — on ext4 with its default options, as on
// a Pi's SD card. Two boots of the VM share one disk (scripts/powercut-vm.sh drives them):
//
//   - publish (boot 1): the broker link is refused, so everything stays in the outbox on the disk.
//     A local client publishes sequenced QoS 1 messages, several in flight; after each PUBACK the
//     test prints "POWERCUT-ACK <seq> <crc>" on the serial console. After some hundreds of
//     acknowledgements, while publishing goes on, it resets the VM with sysrq b.
//   - deliver (boot 2): the same outbox directory (ext4 replays its journal on mount), the link up,
//     a cloud-side client subscribed. When the outbox has drained, the test compares what the cloud
//     received with the acknowledgements boot 1 printed: every acknowledged message delivered, in
//     order, payload intact; duplicates and delivered-but-unacknowledged messages are counted.

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/crc32"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"golang.org/x/sys/unix"

	"github.com/gatewayd/gatewayd/internal/logging"
	"github.com/gatewayd/gatewayd/sim"
	"github.com/gatewayd/gatewayd/test/logwatch"
	"github.com/gatewayd/gatewayd/test/testutil"
)

const (
	// powercutPhaseEnv selects the phase: "publish" (boot 1) or "deliver" (boot 2). Unset, both skip.
	powercutPhaseEnv = "GATEWAYD_POWERCUT"
	powercutHint     = "the power-cut test runs in two VM boots sharing a disk: bash scripts/powercut-vm.sh"
	powercutTopic    = "devices/pi-led-01/telemetry/powercut"

	// ackPrefix starts a line of boot 1's console per acknowledged publish: "POWERCUT-ACK <seq> <crc>",
	// crc the CRC-32 (IEEE) of the decimal seq in 8 hex digits, so that a line mangled on the console
	// (cut short by the reset, or mixed with a kernel message) is recognised and not counted.
	ackPrefix = "POWERCUT-ACK "
	// resetMarker is the line the host script (gpio-sim-vm.sh --expect-reset) needs before the reset.
	resetMarker = "GPIOSIM-RESET-REQUESTED"

	// publishWindow is how many local publishes are in flight at once in boot 1.
	publishWindow = 8
	// minAcked is the fewest acknowledgements boot 2 accepts as a test at all.
	minAcked = 100
)

// powercutEnv skips unless this is the VM boot of the given phase, and returns the VM and the
// persistent disk's mount point.
func powercutEnv(t *testing.T, phase string) (vm, string) {
	t.Helper()
	if got := os.Getenv(powercutPhaseEnv); got != phase {
		t.Skipf("%s=%q, not %q: %s", powercutPhaseEnv, got, phase, powercutHint)
	}
	v := vmEnv(t)
	persist := os.Getenv("GPIOSIM_PERSIST")
	if persist == "" {
		t.Fatalf("%s=%s but GPIOSIM_PERSIST is not set: the VM needs a disk (gpio-sim-vm.sh --disk IMAGE); %s",
			powercutPhaseEnv, phase, powercutHint)
	}
	return v, persist
}

// powercutConfig is the daemon's configuration in both boots: the local endpoint on listen, one
// forwarding rule, the outbox in dir. No LED: this test is about the disk.
func powercutConfig(port, listen, dir string) string {
	return fmt.Sprintf(`
[serial]
port = %q

[mqtt]
host = "broker.example.com"
port = 1883
client_id = "gatewayd-powercut"
keepalive = "60s"

[local]
listen = %q

[[local.forward]]
topic = "devices/pi-led-01/telemetry/#"
qos = 1

[outbox]
dir = %q
window = 8

[log]
level = "info"
format = "json"
`, port, listen, dir)
}

// powercutPayload is message seq's payload: the seq and a filler that depends on it, 40 to 199
// bytes, so records differ in size and a damaged or misattributed one is recognised.
func powercutPayload(seq int) string {
	sum := sha256.Sum256([]byte(strconv.Itoa(seq)))
	filler := strings.Repeat(hex.EncodeToString(sum[:]), 4)[:40+seq%160]
	return fmt.Sprintf("pc %06d %s", seq, filler)
}

// parsePayload returns the seq of a payload made by powercutPayload, or false.
func parsePayload(p string) (int, bool) {
	f := strings.Fields(p)
	if len(f) != 3 || f[0] != "pc" {
		return 0, false
	}
	seq, err := strconv.Atoi(f[1])
	if err != nil || seq < 0 || powercutPayload(seq) != p {
		return 0, false
	}
	return seq, true
}

// ackLine is the console line for an acknowledged seq.
func ackLine(seq int) string {
	s := strconv.Itoa(seq)
	return fmt.Sprintf("%s%s %08x", ackPrefix, s, crc32.ChecksumIEEE([]byte(s)))
}

// parseAcks reads ack lines: the seqs of the sound ones, and the lines that are not sound.
func parseAcks(lines []string) (acked []int, garbled []string) {
	for _, l := range lines {
		f := strings.Fields(strings.TrimPrefix(l, ackPrefix))
		if !strings.HasPrefix(l, ackPrefix) || len(f) != 2 {
			garbled = append(garbled, l)
			continue
		}
		seq, err := strconv.Atoi(f[0])
		if err != nil || seq < 0 || ackLine(seq) != l {
			garbled = append(garbled, l)
			continue
		}
		acked = append(acked, seq)
	}
	return acked, garbled
}

// cutResult is what boot 2's cloud received, measured against boot 1's acknowledgements.
type cutResult struct {
	Acked            int      // acknowledged in boot 1 (sound ack lines)
	Received         int      // messages the cloud received, duplicates included
	Distinct         int      // distinct seqs received
	Duplicates       int      // received again after their first time
	UnackedDelivered int      // received, but no ack line: stored before the reset, PUBACK not seen
	Missing          []int    // acknowledged and never received: a lost message
	Gaps             []int    // not received while a later seq was: stored out of order or lost
	OutOfOrder       []string // a first arrival lower than one before it
	Bad              []string // payloads that are not one of ours
}

// checkCut compares the acknowledged seqs with the payloads received, in arrival order.
func checkCut(acked []int, received []string) cutResult {
	r := cutResult{Acked: len(acked), Received: len(received)}
	seen := map[int]bool{}
	highest := -1
	for i, p := range received {
		seq, ok := parsePayload(p)
		if !ok {
			if len(p) > 60 {
				p = p[:60] + "..."
			}
			r.Bad = append(r.Bad, fmt.Sprintf("#%d %q", i, p))
			continue
		}
		if seen[seq] {
			r.Duplicates++
			continue
		}
		seen[seq] = true
		if seq < highest {
			r.OutOfOrder = append(r.OutOfOrder, fmt.Sprintf("#%d seq %d after seq %d", i, seq, highest))
		}
		highest = max(highest, seq)
	}
	r.Distinct = len(seen)
	ack := map[int]bool{}
	for _, s := range acked {
		ack[s] = true
		if !seen[s] {
			r.Missing = append(r.Missing, s)
		}
	}
	sort.Ints(r.Missing)
	for s := range seen {
		if !ack[s] {
			r.UnackedDelivered++
		}
	}
	for s := 0; s < highest; s++ {
		if !seen[s] {
			r.Gaps = append(r.Gaps, s)
		}
	}
	return r
}

// failures says what in r breaks the outbox's promise; none when it was kept.
func (r cutResult) failures() []string {
	var f []string
	if len(r.Missing) > 0 {
		f = append(f, fmt.Sprintf("%d acknowledged messages never delivered: %s", len(r.Missing), firstInts(r.Missing)))
	}
	if len(r.Gaps) > 0 {
		// One client publishing in order: the outbox stores in that order, so a later message
		// surviving an earlier one means the earlier one was lost.
		f = append(f, fmt.Sprintf("%d messages missing below the highest delivered seq: %s", len(r.Gaps), firstInts(r.Gaps)))
	}
	if len(r.OutOfOrder) > 0 {
		f = append(f, fmt.Sprintf("%d messages out of order: %s", len(r.OutOfOrder), strings.Join(first(r.OutOfOrder), "; ")))
	}
	if len(r.Bad) > 0 {
		f = append(f, fmt.Sprintf("%d payloads that were never published: %s", len(r.Bad), strings.Join(first(r.Bad), "; ")))
	}
	return f
}

func (r cutResult) String() string {
	return fmt.Sprintf("acked=%d received=%d distinct=%d duplicates=%d unacked_delivered=%d missing=%d gaps=%d out_of_order=%d bad=%d",
		r.Acked, r.Received, r.Distinct, r.Duplicates, r.UnackedDelivered, len(r.Missing), len(r.Gaps), len(r.OutOfOrder), len(r.Bad))
}

func first(s []string) []string { return s[:min(len(s), 10)] }

func firstInts(s []int) string {
	var b []string
	for _, v := range s[:min(len(s), 20)] {
		b = append(b, strconv.Itoa(v))
	}
	if len(s) > 20 {
		b = append(b, "...")
	}
	return strings.Join(b, " ")
}

// console writes whole lines to the serial console (the test's stdout), one write per line so
// lines from several goroutines never mix.
type console struct{ mu sync.Mutex }

func (c *console) say(line string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	_, _ = os.Stdout.WriteString(line + "\n")
}

// drain waits until the tty has sent what was written to it before (tcdrain), so a line written
// before a reset is on the host's side of the serial line. Other goroutines go on writing meanwhile.
func (c *console) drain() error {
	return unix.IoctlSetInt(int(os.Stdout.Fd()), unix.TCSBRK, 1)
}

// powercutRig is the broker, the emulated module and the daemon on the outbox in dir.
func powercutRig(t *testing.T, v vm, dir string, linkUp bool) (*sim.Broker, *daemon, string) {
	t.Helper()
	broker, err := sim.NewBroker("127.0.0.1:0")
	if err != nil {
		t.Fatalf("embedded broker on loopback: %v", err)
	}
	t.Cleanup(func() { broker.Close() })
	tmp := t.TempDir()
	mod, err := sim.New(sim.Config{Link: filepath.Join(tmp, "ec600-at"), Broker: broker.Addr()})
	if err != nil {
		t.Fatal(err)
	}
	if !linkUp {
		mod.RefuseOpen(5) // the link to the broker cannot be opened: everything stays in the outbox
	}
	if err := mod.Start(context.Background()); err != nil {
		t.Fatalf("emulator: %v", err)
	}
	t.Cleanup(func() { mod.Close() })
	listen := testutil.FreeAddr(t)
	d := startDaemon(t, v.bin, filepath.Join(tmp, "gatewayd.toml"), powercutConfig(mod.Path(), listen, dir))
	return broker, d, listen
}

// waitMessage waits for a log line with the given message text.
func (d *daemon) waitMessage(t *testing.T, msg string) logwatch.Entry {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	e, _, err := d.log.Wait(ctx, 0, func(e logwatch.Entry) bool { return e.Str("message") == msg })
	if err != nil {
		t.Fatalf("waiting for gatewayd's %q: %v", msg, err)
	}
	return e
}

// TestPowerCutPublish is boot 1: publish under load, print every acknowledgement, hard-reset.
func TestPowerCutPublish(t *testing.T) {
	v, persist := powercutEnv(t, "publish")
	resetAfter := 300 + rand.IntN(400)
	if s := os.Getenv("POWERCUT_RESET_AFTER"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < minAcked {
			t.Fatalf("POWERCUT_RESET_AFTER=%q: want a number of acknowledgements >= %d", s, minAcked)
		}
		resetAfter = n
	}
	dir := filepath.Join(persist, "outbox")
	if _, err := os.Stat(dir); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("%s exists (%v): boot 1 needs a freshly made disk", dir, err)
	}
	_, d, listen := powercutRig(t, v, dir, false)
	d.waitMessage(t, "local MQTT endpoint listening")

	c := paho.NewClient(paho.NewClientOptions().AddBroker("tcp://" + listen).SetClientID("sensor-powercut").
		SetAutoReconnect(false).SetWriteTimeout(10 * time.Second))
	if tok := c.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("local client connect: %v", tok.Error())
	}

	type pending struct {
		seq int
		tok paho.Token
	}
	var (
		out      console
		inflight = make(chan pending, publishWindow-1) // with the one the acker waits on: the window
		failed   = make(chan error, 1)
		resetNow = make(chan int, 1)
	)
	// The acker: PUBACKs come back in order; each one becomes a console line once the client has it.
	go func() {
		n := 0
		for p := range inflight {
			if !p.tok.WaitTimeout(30*time.Second) || p.tok.Error() != nil {
				failed <- fmt.Errorf("publish %d: no PUBACK within 30 s (%v)", p.seq, p.tok.Error())
				return
			}
			out.say(ackLine(p.seq))
			if n++; n == resetAfter {
				resetNow <- p.seq
			}
		}
	}()
	// The reset, while the publishing goes on: the marker, then wait until the console has sent
	// everything written before it (so the marker and the ack lines before it reach the host), then
	// sysrq b — an immediate reset: no sync, no unmount, the page cache lost.
	go func() {
		seq := <-resetNow
		out.say(fmt.Sprintf("%s after %d acknowledged publishes (seq %d), %d in flight", resetMarker, resetAfter, seq, len(inflight)))
		if err := out.drain(); err != nil {
			out.say("powercut: tcdrain on the console: " + err.Error())
		}
		if err := os.WriteFile("/proc/sysrq-trigger", []byte("b"), 0); err != nil {
			failed <- fmt.Errorf("sysrq reset: %w", err)
		}
	}()

	start := time.Now()
	var deadline <-chan time.Time
	for seq := 0; ; seq++ {
		tok := c.Publish(powercutTopic, 1, false, powercutPayload(seq))
		select {
		case inflight <- pending{seq, tok}:
		case err := <-failed:
			t.Fatalf("after %v: %v", time.Since(start), err)
		case <-deadline:
			t.Fatal("the VM is still running 30 s after the reset was asked for")
		}
		if deadline == nil && seq >= resetAfter {
			deadline = time.After(30 * time.Second)
		}
	}
}

// TestPowerCutDeliver is boot 2: drain the outbox left by boot 1's reset and check every
// acknowledged message arrives, in order.
func TestPowerCutDeliver(t *testing.T) {
	v, persist := powercutEnv(t, "deliver")
	acksPath := os.Getenv("POWERCUT_ACKS")
	if acksPath == "" {
		acksPath = "/extra/powercut-acks"
	}
	lines := readLines(t, acksPath)
	if want, err := strconv.Atoi(os.Getenv("POWERCUT_ACK_LINES")); err != nil || want != len(lines) {
		t.Fatalf("%s holds %d lines; the host extracted POWERCUT_ACK_LINES=%q from boot 1's console",
			acksPath, len(lines), os.Getenv("POWERCUT_ACK_LINES"))
	}
	acked, garbled := parseAcks(lines)
	for _, g := range garbled {
		t.Logf("ack line not counted (mangled on the console): %q", g)
	}
	if len(acked) < minAcked {
		t.Fatalf("only %d acknowledgements from boot 1 (want >= %d): nothing to prove", len(acked), minAcked)
	}
	dir := filepath.Join(persist, "outbox")
	fi, err := os.Stat(filepath.Join(dir, "outbox.db"))
	if err != nil {
		t.Fatalf("boot 1's outbox: %v", err)
	}
	t.Logf("boot 1 acknowledged %d messages (seq %d..%d); outbox.db is %d bytes", len(acked), acked[0], acked[len(acked)-1], fi.Size())

	var (
		mu       sync.Mutex
		received []string
	)
	broker, d, _ := powercutRig(t, v, dir, true)
	cloud := cloudClient(t, broker.Addr())
	if tok := cloud.Subscribe(powercutTopic, 1, func(_ paho.Client, m paho.Message) {
		mu.Lock()
		received = append(received, string(m.Payload()))
		mu.Unlock()
	}); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("cloud subscribe: %v", tok.Error())
	}
	stored := d.waitMessage(t, "outbox open").Int("messages")
	t.Logf("the outbox opened after the reset with %d messages", stored)

	// Drained: the cloud has as many as were stored, and nothing more came for 2 s (a duplicate
	// would); or nothing at all came for 30 s.
	count := func() int { mu.Lock(); defer mu.Unlock(); return len(received) }
	last, lastChange, start := 0, time.Now(), time.Now()
	for {
		time.Sleep(100 * time.Millisecond)
		if n := count(); n != last {
			last, lastChange = n, time.Now()
		}
		quiet := time.Since(lastChange)
		if (last >= stored && quiet > 2*time.Second) || quiet > 30*time.Second {
			break
		}
	}
	t.Logf("the cloud received %d messages in %v", last, time.Since(start).Round(time.Millisecond))
	if err := d.stop(t); err != nil {
		t.Errorf("gatewayd exit after SIGTERM: %v", err)
	}
	var st logwatch.Entry
	for _, e := range d.log.Entries() {
		if e.Event() == logging.EventOutboxStats {
			st = e
		}
	}
	if st == nil {
		t.Fatal("no outbox_stats line at exit")
	}

	mu.Lock()
	got := append([]string(nil), received...)
	mu.Unlock()
	r := checkCut(acked, got)
	var out console
	for _, p := range got {
		if seq, ok := parsePayload(p); ok {
			out.say(fmt.Sprintf("POWERCUT-RECV %d", seq))
		}
	}
	setAside := d.log.Count(logging.EventOutboxSetAside)
	out.say(fmt.Sprintf("POWERCUT-SUMMARY %s garbled_ack_lines=%d stored_after_reset=%d left_in_outbox=%d damaged=%d set_aside=%d duplicates_possible=%d",
		r, len(garbled), stored, st.Int("messages"), st.Int("damaged"), setAside, st.Int("duplicates_possible")))
	for _, f := range r.failures() {
		t.Errorf("POWER CUT LOST DATA: %s", f)
	}
	if n := st.Int("messages"); n != 0 {
		t.Errorf("the outbox still holds %d messages after draining", n)
	}
	if setAside > 0 {
		t.Errorf("the outbox store was set aside as damaged after the reset (%d times): its messages are gone", setAside)
	}
	if r.Duplicates > st.Int("duplicates_possible") {
		t.Errorf("the cloud saw %d duplicates, the daemon reported %d possible", r.Duplicates, st.Int("duplicates_possible"))
	}
}

// readLines reads a file's non-empty lines.
func readLines(t *testing.T, path string) []string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatalf("%v (%s)", err, powercutHint)
	}
	defer f.Close()
	var lines []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if l := strings.TrimSpace(sc.Text()); l != "" {
			lines = append(lines, l)
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return lines
}

// TestPowerCutCheck: the check of boot 2 fails on each way of losing or mangling a message, and
// passes a clean run; acknowledgement lines mangled on the console are not counted.
func TestPowerCutCheck(t *testing.T) {
	pay := func(seqs ...int) []string {
		var p []string
		for _, s := range seqs {
			p = append(p, powercutPayload(s))
		}
		return p
	}
	seq := func(from, to int) []int {
		var s []int
		for i := from; i < to; i++ {
			s = append(s, i)
		}
		return s
	}
	for _, c := range []struct {
		name     string
		acked    []int
		received []string
		fail     string // a substring of the failures; "" for none
		check    func(cutResult) bool
	}{
		{"clean, two stored but unacknowledged", seq(0, 5), pay(0, 1, 2, 3, 4, 5, 6), "",
			func(r cutResult) bool { return r.UnackedDelivered == 2 && r.Distinct == 7 }},
		{"a resend is a duplicate, not a failure", seq(0, 4), pay(0, 1, 2, 1, 2, 3), "",
			func(r cutResult) bool { return r.Duplicates == 2 && r.Received == 6 }},
		{"the last acknowledged one lost", seq(0, 5), pay(0, 1, 2, 3), "acknowledged messages never delivered: 4", nil},
		{"everything lost", seq(0, 5), nil, "5 acknowledged messages never delivered", nil},
		{"a hole", seq(0, 3), pay(0, 2, 3, 4), "missing below the highest", nil},
		{"a hole above the acknowledged", seq(0, 3), pay(0, 1, 2, 4), "missing below the highest delivered seq: 3", nil},
		{"out of order", seq(0, 4), pay(0, 2, 1, 3), "out of order", nil},
		{"a payload cut short", seq(0, 2), append(pay(0, 1), powercutPayload(2)[:20]), "never published", nil},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := checkCut(c.acked, c.received)
			f := strings.Join(r.failures(), "\n")
			if c.fail == "" && f != "" || c.fail != "" && !strings.Contains(f, c.fail) {
				t.Fatalf("failures %q, want %q (%v)", f, c.fail, r)
			}
			if c.check != nil && !c.check(r) {
				t.Fatalf("counts %v", r)
			}
		})
	}

	lines := []string{ackLine(0), ackLine(1), ackLine(12)[:len(ackLine(12))-3], "POWERCUT-ACK 3 " + ackLine(2)[len(ackPrefix)+2:],
		ackLine(130), "[ 4.1] sysrq: ResetPOWERCUT-ACK 4", ackLine(5) + " x"}
	acked, garbled := parseAcks(lines)
	if fmt.Sprint(acked) != "[0 1 130]" || len(garbled) != 4 {
		t.Fatalf("parseAcks: acked %v, garbled %q", acked, garbled)
	}
	if p := powercutPayload(7); !strings.HasPrefix(p, "pc 000007 ") || len(p) != 10+47 {
		t.Fatalf("payload %q", p)
	}
}
