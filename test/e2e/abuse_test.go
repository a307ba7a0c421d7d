package e2e

// The local endpoint under abuse: any process on the Pi can reach 127.0.0.1:1883, and the
// gateway's memory and liveness must not depend on its manners. Each test runs the real daemon
// with the emulated module and the embedded broker, and plays the rude client over loopback.

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/gatewayd/gatewayd/test/logwatch"
	"github.com/gatewayd/gatewayd/test/testutil"
)

// abuseBench starts a daemon with the local endpoint (extra is added to its [local] table) and
// waits until the endpoint listens and the session is up.
func abuseBench(t *testing.T, extra string) (*bench, *proc, string) {
	t.Helper()
	b := newBench(t, nil)
	listen := testutil.FreeAddr(t)
	cfg := localConfig(b.mod.Path(), listen, filepath.Join(t.TempDir(), "outbox"))
	cfg = strings.Replace(cfg, "[local]\n", "[local]\n"+extra, 1)
	cfg = strings.Replace(cfg, `level = "debug"`, `level = "info"`, 1)
	d := b.start(cfg)
	waitListening(t, d)
	_, i := d.wait(t, 0, "mqtt_connected")
	d.wait(t, i, "published")
	return b, d, listen
}

func waitListening(t *testing.T, d *proc) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if _, _, err := d.log.Wait(ctx, 0, func(e logwatch.Entry) bool { return e.Str("message") == "local MQTT endpoint listening" }); err != nil {
		t.Fatal(err)
	}
}

func rawConnect(t *testing.T, id string) []byte {
	return testutil.EncodeMQTT(t, packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Connect},
		Connect: packets.ConnectParams{ProtocolName: []byte("MQTT"), Clean: true, ClientIdentifier: id}}) // keep-alive 0
}

// isClosed waits up to d for the daemon to close c; false if it is still open then.
func isClosed(c net.Conn, d time.Duration) bool {
	_ = c.SetReadDeadline(time.Now().Add(d))
	buf := make([]byte, 512)
	for {
		_, err := c.Read(buf)
		if err == nil {
			continue
		}
		var ne net.Error
		return !(errors.As(err, &ne) && ne.Timeout())
	}
}

// memory returns the daemon's resident set and its peak so far, in KiB.
func memory(t *testing.T, d *proc) (rss, hwm int) {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", d.cmd.Process.Pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		f := strings.Fields(l)
		if len(f) < 2 {
			continue
		}
		n, _ := strconv.Atoi(f[1])
		switch f[0] {
		case "VmRSS:":
			rss = n
		case "VmHWM:":
			hwm = n
		}
	}
	return rss, hwm
}

// exitStats stops d and returns its local_stats line (or the old daemon's outbox_stats, to fail
// on a missing field rather than on a missing line).
func exitStats(t *testing.T, d *proc) logwatch.Entry {
	t.Helper()
	took, err := d.stop(t)
	if err != nil {
		t.Fatalf("gatewayd exit: %v", err)
	}
	if took > 5*time.Second {
		t.Errorf("gatewayd took %v to stop after SIGTERM, want under 5 s", took)
	}
	for _, e := range d.log.Entries() {
		if e.Event() == "local_stats" {
			return e
		}
	}
	t.Fatal("no local_stats line at exit")
	return nil
}

// TestLocalStuckSubscriberHoldsUpNothing: one local subscriber stops reading while the cloud
// sends 1,000 downlinks of 4,000 bytes (4 MB, more than Linux lets a socket queue). The daemon
// goes on logging every downlink, a healthy subscriber receives all of them in order, and the
// stuck one is disconnected, its losses counted and logged.
func TestLocalStuckSubscriberHoldsUpNothing(t *testing.T) {
	b, d, listen := abuseBench(t, "")
	stuck := testutil.DialSmall(t, listen)
	if _, err := stuck.Write(rawConnect(t, "stuck")); err != nil {
		t.Fatal(err)
	}
	if _, err := stuck.Write(testutil.EncodeMQTT(t, packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Subscribe, Qos: 1},
		PacketID: 1, Filters: packets.Subscriptions{{Filter: setTopic, Qos: 1}}})); err != nil {
		t.Fatal(err)
	}
	ack := make([]byte, 9) // CONNACK and SUBACK; then it never reads again
	_ = stuck.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.ReadFull(stuck, ack); err != nil || ack[4] != 0x90 {
		t.Fatalf("CONNACK, SUBACK: %x %v", ack, err)
	}

	healthy := localClient(t, d, listen, "healthy")
	wait := testutil.Collect(t, healthy, setTopic)
	from := d.log.Len()
	const n, batch = 1000, 50
	fill := strings.Repeat("d", 3995)
	start := time.Now()
	cloud := b.cloudClient()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	// In batches of 200 kB, each logged before the next is sent: the emulator, like a module's
	// UART, drops output past 1 MiB that the host has not read.
	seen := 0
	for sent := 0; sent < n; sent += batch {
		var toks []paho.Token
		for i := sent; i < sent+batch; i++ {
			toks = append(toks, cloud.Publish(setTopic, 1, false, fmt.Sprintf("%05d%s", i, fill)))
		}
		for _, tok := range toks {
			if !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
				t.Fatalf("cloud publish: %v", tok.Error())
			}
		}
		// The daemon logs them all: Deliver never holds the supervisor up.
		for seen < sent+batch {
			_, i, err := d.log.Wait(ctx, from, func(e logwatch.Entry) bool {
				return e.Event() == "downlink" && e.Str("topic") == setTopic
			})
			if err != nil {
				t.Fatalf("the daemon logged %d of %d downlinks: %v", seen, n, err)
			}
			seen, from = seen+1, i+1
		}
	}
	logged := time.Since(start)
	for i, p := range wait(n)[:n] {
		if p[:5] != fmt.Sprintf("%05d", i) {
			t.Fatalf("healthy subscriber: message %d is %s: out of order", i, p[:5])
		}
	}
	slowCtx, cancelSlow := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancelSlow()
	if _, _, err := d.log.Wait(slowCtx, 0, func(e logwatch.Entry) bool { return e.Event() == "local_slow_client" }); err != nil {
		t.Fatalf("no local_slow_client line: %v", err)
	}
	st := exitStats(t, d)
	if st.Int("slow_clients") != 1 || st.Int("lost") == 0 || st.Int("delivered") < n || st.Int("deliver_dropped") != 0 {
		t.Fatalf("local_stats %v", st)
	}
	t.Logf("%d downlinks of 4 kB logged in %v with a stuck subscriber; it lost %d copies", n, logged.Round(time.Millisecond), st.Int("lost"))
}

// TestLocalOversizedCONNECTCostsNoMemory: before any authentication (a user name is required),
// a client sends a CONNECT fixed header claiming 128 MiB and then streams the bytes. The daemon
// closes the connection at the header and its peak memory stays within 16 MiB of what it was.
func TestLocalOversizedCONNECTCostsNoMemory(t *testing.T) {
	_, d, listen := abuseBench(t, "username = \"sensors\"\npassword = \"s3cret\"\n")
	_, before := memory(t, d)
	c := testutil.DialSmall(t, listen)
	const claim = 128 << 20
	hdr := []byte{0x10, 0x80 | claim&0x7f, 0x80 | claim>>7&0x7f, 0x80 | claim>>14&0x7f, claim >> 21}
	if _, err := c.Write(hdr); err != nil {
		t.Fatal(err)
	}
	chunk := make([]byte, 1<<20)
	sent := 0
	_ = c.SetWriteDeadline(time.Now().Add(10 * time.Second))
	for sent < claim {
		n, err := c.Write(chunk)
		sent += n
		if err != nil {
			break
		}
	}
	closed := isClosed(c, 5*time.Second)
	time.Sleep(200 * time.Millisecond)
	_, after := memory(t, d)
	t.Logf("peak RSS %d KiB before, %d KiB after; %d of %d bytes accepted before the daemon closed", before, after, sent, claim)
	if !closed || sent >= claim {
		t.Errorf("the daemon read the whole 128 MiB CONNECT (closed: %v)", closed)
	}
	if after-before > 16<<10 {
		t.Errorf("peak RSS grew by %d KiB for a refused CONNECT", after-before)
	}
	if st := exitStats(t, d); st.Int("too_large") != 1 {
		t.Errorf("local_stats %v", st)
	}
}

// TestLocalConnectionsAreBounded: with max_clients at its default (32), a 33rd client is
// refused with CONNACK "server unavailable"; connections that send nothing may take as many
// slots again, and one more is closed at once.
func TestLocalConnectionsAreBounded(t *testing.T) {
	_, d, listen := abuseBench(t, "")
	for i := range 32 {
		localClient(t, d, listen, fmt.Sprintf("app-%d", i))
	}
	extra := paho.NewClient(paho.NewClientOptions().AddBroker("tcp://" + listen).SetClientID("app-32").SetProtocolVersion(4).SetAutoReconnect(false))
	tok := extra.Connect()
	if !tok.WaitTimeout(10*time.Second) || tok.Error() == nil {
		extra.Disconnect(0)
		t.Fatal("a 33rd client was accepted")
	}
	if !strings.Contains(strings.ToLower(tok.Error().Error()), "unavailable") {
		t.Errorf("the 33rd client saw %v, want CONNACK server unavailable", tok.Error())
	}
	for range 32 {
		testutil.DialSmall(t, listen)
	}
	time.Sleep(200 * time.Millisecond)
	if !isClosed(testutil.DialSmall(t, listen), 2*time.Second) {
		t.Error("a connection past 64 open was not closed at once")
	}
	if st := exitStats(t, d); st.Int("conn_refused") != 2 {
		t.Errorf("local_stats %v", st)
	}
}

// TestLocalSilentConnectionIsClosed: a connection that sends nothing, and one that sends half a
// CONNECT, are closed once the 10 s CONNECT deadline has passed.
func TestLocalSilentConnectionIsClosed(t *testing.T) {
	t.Parallel()
	_, d, listen := abuseBench(t, "")
	opened := time.Now()
	idle := testutil.DialSmall(t, listen)
	half := testutil.DialSmall(t, listen)
	if _, err := half.Write(rawConnect(t, "half")[:7]); err != nil {
		t.Fatal(err)
	}
	for _, c := range []net.Conn{idle, half} {
		if !isClosed(c, 15*time.Second-time.Since(opened)) {
			t.Fatalf("a connection without a whole CONNECT was still open after %v", time.Since(opened).Round(time.Second))
		}
	}
	took := time.Since(opened)
	if took < 9*time.Second {
		t.Errorf("closed after %v, before the 10 s deadline", took)
	}
	t.Logf("both closed %v after they were opened", took.Round(time.Millisecond))
	if st := exitStats(t, d); st.Int("conn_timed_out") != 2 {
		t.Errorf("local_stats %v", st)
	}
}

// TestLocalSIGTERMWhateverClientsDo: SIGTERM with an idle TCP connection, a half-sent CONNECT
// and a connected client open: the daemon exits within 5 s, cleanly.
func TestLocalSIGTERMWhateverClientsDo(t *testing.T) {
	_, d, listen := abuseBench(t, "")
	testutil.DialSmall(t, listen)
	half := testutil.DialSmall(t, listen)
	if _, err := half.Write(rawConnect(t, "half")[:7]); err != nil {
		t.Fatal(err)
	}
	localClient(t, d, listen, "app")
	time.Sleep(200 * time.Millisecond)
	took, err := d.stop(t)
	if err != nil {
		t.Fatalf("exit: %v", err)
	}
	if took > 5*time.Second {
		t.Fatalf("gatewayd took %v to exit after SIGTERM, want under 5 s", took)
	}
	t.Logf("exited %v after SIGTERM", took.Round(time.Millisecond))
}

// TestLocalRetainedFloodIsBounded: a client publishes 80 MB of retained messages (20,000
// topics of 4,000 bytes) and leaves. The daemon keeps at most max_retained of them; its resident
// set stays within 32 MiB of what it was, and the refusals are counted and logged, not one by
// one.
func TestLocalRetainedFloodIsBounded(t *testing.T) {
	_, d, listen := abuseBench(t, "")
	rss0, _ := memory(t, d)
	c := localClient(t, d, listen, "flooder")
	payload := bytes.Repeat([]byte("r"), 4000)
	const n = 20000
	for i := range n {
		c.Publish(fmt.Sprintf("flood/%05d", i), 0, true, payload)
	}
	if tok := c.Publish("flood/done", 1, false, "x"); !tok.WaitTimeout(60*time.Second) || tok.Error() != nil {
		t.Fatalf("publish: %v", tok.Error())
	}
	c.Disconnect(100)
	time.Sleep(500 * time.Millisecond)
	rss, hwm := memory(t, d)
	t.Logf("RSS %d KiB before, %d KiB after the flood (peak %d KiB)", rss0, rss, hwm)
	if rss-rss0 > 32<<10 {
		t.Errorf("RSS grew by %d KiB and stays there", rss-rss0)
	}
	lines := 0
	for _, e := range d.log.Entries() {
		if e.Event() == "local_retain_refused" {
			lines++
		}
	}
	st := exitStats(t, d)
	if refused := st.Int("retain_refused"); refused < n-1000 || st.Int("retained") > 1000 {
		t.Errorf("local_stats %v", st)
	}
	if lines == 0 || lines > 20 {
		t.Errorf("%d local_retain_refused lines for about %d refusals", lines, n-1000)
	}
}

// TestLocalLongTopicIsNotStored: a publish on a forwarded topic of 2,000 bytes is acknowledged,
// logged and counted, and never stored: the module is never asked to send it, and the messages
// after it reach the cloud.
func TestLocalLongTopicIsNotStored(t *testing.T) {
	b, d, listen := abuseBench(t, "")
	cloud := b.subscribe(telemetry + "/#")
	c := localClient(t, d, listen, "sensor")
	long := telemetry + "/" + strings.Repeat("t", 2000-len(telemetry)-1)
	if tok := c.Publish(long, 1, false, "too long"); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("long topic publish: %v", tok.Error())
	}
	publishRange(t, c, 0, 3)
	if dups := cloud.distinctInOrder(t, 3); dups != 0 {
		t.Errorf("%d duplicates", dups)
	}
	st := d.stats(t) // the outbox's counters, at exit
	if st.Int("stored") != 3 || st.Int("rejected") != 0 {
		t.Errorf("outbox_stats %v: the long topic was stored (and sent to the module)", st)
	}
	var nf, ls logwatch.Entry
	for _, e := range d.log.Entries() {
		switch e.Event() {
		case "local_not_forwarded":
			nf = e
		case "local_stats":
			ls = e
		}
	}
	if nf == nil || nf.Int("topic_bytes") != 2000 || !strings.Contains(nf.Str("reason"), "max_topic") {
		t.Errorf("local_not_forwarded line %v", nf)
	}
	if ls == nil || ls.Int("not_forwarded") != 1 || ls.Int("forwarded") != 3 {
		t.Errorf("local_stats %v", ls)
	}
}

// TestLocalLimitsAreValidated: a bad limit stops the daemon at start, naming file, line and key.
func TestLocalLimitsAreValidated(t *testing.T) {
	for _, tc := range []struct{ set, want string }{
		{"max_clients = 0", "local.max_clients: 0 is out of range 1–1024"},
		{"max_topic = 5000", "local.max_topic: 5000 is out of range 1–4000"},
		{"max_retained_bytes = 10", "local.max_retained_bytes: 10 is out of range 1024–67108864"},
	} {
		path := filepath.Join(t.TempDir(), "gatewayd.toml")
		cfg := strings.Replace(localConfig("/dev/null", "127.0.0.1:1883", "/tmp/x"), "[local]\n", "[local]\n"+tc.set+"\n", 1)
		if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
			t.Fatal(err)
		}
		_, errs, code := cli(t, "check", "-config", path)
		if code == 0 || !strings.Contains(errs, path+":") || !strings.Contains(errs, tc.want) {
			t.Errorf("%s: code %d, stderr %q; want it to name %s and say %q", tc.set, code, errs, path, tc.want)
		}
	}
}

// TestLocalSubscriberThroughABurst: 20,000 downlinks written back to back into the pty (the
// emulator's Burst) with a local subscriber. Deliver never waits, so the daemon logs every one
// as fast as without the subscriber; the subscriber receives them in order, and every copy it
// did not receive is counted — it can only fall behind by mochi's 8,192 unacknowledged copies
// before copies to it are dropped. (Not one of the failures of e583dd0, whose Deliver made the
// daemon wait for the subscriber instead: a guard that the endpoint never loses a copy without
// counting it. It needs sim's Burst, which came after e583dd0.)
func TestLocalSubscriberThroughABurst(t *testing.T) {
	b, d, listen := abuseBench(t, "")
	c := localClient(t, d, listen, "app")
	var mu sync.Mutex
	var got []string
	if tok := c.Subscribe(setTopic, 1, func(_ paho.Client, m paho.Message) {
		mu.Lock()
		got = append(got, string(m.Payload()))
		mu.Unlock()
	}); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatal(tok.Error())
	}
	_, from := d.wait(t, 0, "session_up")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	const n = 20000
	start := time.Now()
	if err := b.mod.Burst(ctx, setTopic, n, nil); err != nil {
		t.Fatal(err)
	}
	waitDownlinks(ctx, t, d, setTopic, from, n)
	logged := time.Since(start)
	count := func() int { mu.Lock(); defer mu.Unlock(); return len(got) }
	for last, still := -1, 0; count() < n && still < 20; time.Sleep(100 * time.Millisecond) {
		if k := count(); k == last {
			still++
		} else {
			last, still = k, 0
		}
	}
	received := time.Since(start)
	st := exitStats(t, d)
	mu.Lock()
	defer mu.Unlock()
	prev := -1
	for _, p := range got {
		k, err := strconv.Atoi(strings.TrimPrefix(p, "burst-"))
		if err != nil || k <= prev {
			t.Fatalf("the subscriber got %q after burst-%d: out of order", p, prev)
		}
		prev = k
	}
	if len(got)+st.Int("lost")+st.Int("deliver_dropped") != n || st.Int("slow_clients") != 0 {
		t.Errorf("the subscriber got %d of %d and the daemon counted %d lost, %d dropped: %v", len(got), n, st.Int("lost"), st.Int("deliver_dropped"), st)
	}
	t.Logf("%d downlinks logged in %v; the local subscriber got %d (%v), lost %d (unacknowledged store full: %d)",
		n, logged.Round(time.Millisecond), len(got), received.Round(time.Millisecond), st.Int("lost"), st.Int("lost_unacknowledged_full"))
}
