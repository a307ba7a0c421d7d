// Package fleet runs a fleet of gateways — the real gatewayd binary, each process with an
// emulated module of its own (sim) and a program publishing through its local endpoint and
// outbox — against one MQTT broker, restarts the broker, and measures how the fleet comes back:
// the time until every gateway is connected again, the CONNECTs the broker saw in each second,
// the CONNACK refusals, the messages lost, and the memory per gateway. The fleet test
// (test/e2e) and the fleet benchmark (cmd/fleetbench) both use it.
package fleet

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/gatewayd/gatewayd/sim"
	"github.com/gatewayd/gatewayd/test/logwatch"
	"github.com/gatewayd/gatewayd/test/testutil"
)

// Config says what fleet to run and how to restart its broker.
type Config struct {
	Bin string // the gatewayd binary
	N   int    // gateways
	Dir string // a directory for the gateways' files (AT links, configurations, outboxes)
	// Mosquitto is the path of Debian's mosquitto to run as the broker; "": the embedded broker.
	Mosquitto string
	// RefuseFor is how long the broker is away after the restart: the embedded broker comes
	// back at once and refuses every CONNECT with CONNACK 3 (server unavailable) for this long;
	// mosquitto stays stopped this long (the CONNECTs it would refuse are not seen then).
	RefuseFor time.Duration
	// ConnectRate, when positive, makes the embedded broker refuse CONNECTs above this many a
	// second with CONNACK 3, as a broker with a rate limit does.
	ConnectRate int
	// StableAfter is the gateways' retry.stable_after: the fleet has been connected this long
	// when the broker restarts, so every session counts as one that lasted.
	StableAfter time.Duration
	// PublishEvery is how often each gateway's local program publishes a QoS 1 message.
	PublishEvery time.Duration
	// Timeout bounds each phase (bring-up, recovery, drain).
	Timeout time.Duration
	// Logf, when not nil, reports progress.
	Logf func(format string, args ...any)
}

// Result is what a run measured.
type Result struct {
	N      int
	Broker string // "mosquitto" or "embedded"
	// Recovery is the time from the broker's restart (its coming back, for mosquitto; the end
	// of the refusals, for the embedded broker) until the last gateway logged mqtt_connected;
	// SinceDrop is from the moment the broker dropped them.
	Recovery, SinceDrop time.Duration
	// Connects is the CONNECTs the broker received in each second after the drop (index 0: the
	// first second); PeakConnects the largest of them, in second PeakSecond.
	Connects                 []int
	PeakConnects, PeakSecond int
	Refused                  int // CONNACKs that refused (all codes) after the drop
	// Attempts is the gateways' own reconnect attempts per second after the drop, from their
	// logs (mqtt_connect_failed and mqtt_connected): it includes the attempts a stopped broker
	// never saw. PeakAttempts is the largest.
	Attempts     []int
	PeakAttempts int
	// Spread is the first reconnect delay each gateway drew after the drop (retry_in of its
	// mqtt_reconnect_spread log line): what the daemon decided, whatever the machine's load
	// did to the arrivals. Empty for a daemon that does not spread its reconnects.
	Spread []time.Duration
	// Published is how many messages the local programs published and the gateways
	// acknowledged (PUBACK: durable in the outbox); Received how many distinct of them reached
	// the broker; Lost is Published − Received; Duplicates how many arrived more than once.
	Published, Received, Lost, Duplicates int
	// DaemonRSS is the sum of the daemons' resident memory; HarnessRSS the resident memory of
	// this process (the emulated modules, the local programs, the embedded broker if used).
	DaemonRSS, HarnessRSS uint64
}

// gateway is one daemon, its module and its local program.
type gateway struct {
	i      int
	dir    string
	mod    *sim.Module
	cmd    *exec.Cmd
	log    *logwatch.Watcher
	listen string // the local endpoint's unix socket
	pub    paho.Client
	acked  []string
	mu     sync.Mutex
}

// Run runs the fleet once: brings it up, restarts the broker, waits for every gateway to be
// connected again and for every acknowledged message to reach the broker, and measures.
func Run(ctx context.Context, cfg Config) (res Result, err error) {
	if cfg.N <= 0 || cfg.Bin == "" || cfg.Dir == "" {
		return res, errors.New("fleet: N, Bin and Dir must be set")
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = 2 * time.Minute
	}
	if cfg.StableAfter == 0 {
		cfg.StableAfter = 3 * time.Second
	}
	if cfg.PublishEvery == 0 {
		cfg.PublishEvery = time.Second
	}
	logf := cfg.Logf
	if logf == nil {
		logf = func(string, ...any) {}
	}
	res.N = cfg.N

	b := &broker{cfg: cfg, seen: map[string]int{}}
	if err := b.start(); err != nil {
		return res, err
	}
	defer b.stop()
	res.Broker = b.kind()

	gws := make([]*gateway, cfg.N)
	defer func() {
		for _, g := range gws {
			if g != nil {
				g.close()
			}
		}
	}()
	for i := range gws {
		g, err := startGateway(cfg, i, b.addr)
		if err != nil {
			return res, err
		}
		gws[i] = g
	}
	logf("%d gateways started; waiting for them to connect", cfg.N)
	if err := waitAll(ctx, gws, cfg.Timeout, "session_up"); err != nil {
		return res, fmt.Errorf("bring-up: %w", err)
	}
	for _, g := range gws {
		if err := g.startPublisher(); err != nil {
			return res, err
		}
	}
	pubCtx, stopPub := context.WithCancel(ctx)
	var pubs sync.WaitGroup
	for _, g := range gws {
		pubs.Add(1)
		go func() { defer pubs.Done(); g.publish(pubCtx, cfg.PublishEvery) }()
	}
	defer func() { stopPub(); pubs.Wait() }()
	time.Sleep(cfg.StableAfter + time.Second) // every session has lasted

	marks := make([]int, len(gws))
	for i, g := range gws {
		marks[i] = g.log.Len()
	}
	logf("all connected; restarting the broker (away for %s)", cfg.RefuseFor)
	drop := time.Now()
	back, err := b.restart()
	if err != nil {
		return res, err
	}
	if err := waitAll(ctx, gws, cfg.Timeout, "mqtt_connected", marks...); err != nil {
		return res, fmt.Errorf("recovery: %w", err)
	}
	last := drop
	for i, g := range gws {
		for _, e := range g.log.Entries()[marks[i]:] {
			if e.Event() == "mqtt_connected" {
				if t := entryTime(e); t.After(last) {
					last = t
				}
				break
			}
		}
	}
	res.Recovery, res.SinceDrop = last.Sub(back), last.Sub(drop)
	logf("all connected again %s after the broker came back", res.Recovery.Round(time.Millisecond))

	time.Sleep(2 * cfg.PublishEvery)
	stopPub()
	pubs.Wait()
	res.DaemonRSS, res.HarnessRSS = daemonRSS(gws), rss(os.Getpid())

	want := map[string]bool{}
	for _, g := range gws {
		g.mu.Lock()
		for _, m := range g.acked {
			want[m] = true
		}
		g.mu.Unlock()
	}
	res.Published = len(want)
	deadline := time.Now().Add(cfg.Timeout)
	for {
		got, dups := b.received(want)
		res.Received, res.Duplicates = got, dups
		if got == len(want) || time.Now().After(deadline) || ctx.Err() != nil {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	res.Lost = res.Published - res.Received

	res.Connects, res.Refused = b.perSecond(drop)
	res.PeakConnects, res.PeakSecond = peak(res.Connects)
	var attempts []time.Time
	for i, g := range gws {
		spread := false
		for _, e := range g.log.Entries()[marks[i]:] {
			switch e.Event() {
			case "mqtt_connect_failed", "mqtt_connected":
				attempts = append(attempts, entryTime(e))
			case "mqtt_reconnect_spread":
				if d, err := time.ParseDuration(e.Str("retry_in")); err == nil && !spread {
					res.Spread, spread = append(res.Spread, d), true
				}
			}
		}
	}
	res.Attempts = bucket(attempts, drop)
	res.PeakAttempts, _ = peak(res.Attempts)
	return res, nil
}

// String reports a result in a few lines.
func (r Result) String() string {
	return fmt.Sprintf("%d gateways, %s broker: all connected %s after the broker came back (%s after the drop)\n"+
		"CONNECTs at the broker per second after the drop: %v (peak %d in second %d), %d refused\n"+
		"reconnect attempts per second (gateway logs): %v (peak %d)\n"+
		"first reconnect delays drawn (mqtt_reconnect_spread): %d gateways, %s\n"+
		"messages: %d acknowledged by the gateways, %d reached the broker, %d lost, %d duplicates\n"+
		"memory: daemons %.1f MiB RSS in all (%.1f MiB each), this process %.1f MiB (%.2f MiB per gateway)",
		r.N, r.Broker, r.Recovery.Round(time.Millisecond), r.SinceDrop.Round(time.Millisecond),
		r.Connects, r.PeakConnects, r.PeakSecond, r.Refused, r.Attempts, r.PeakAttempts, len(r.Spread), spreadRange(r.Spread),
		r.Published, r.Received, r.Lost, r.Duplicates,
		mib(r.DaemonRSS), mib(r.DaemonRSS)/float64(r.N), mib(r.HarnessRSS), mib(r.HarnessRSS)/float64(r.N))
}

// spreadRange is "min–max" of the delays, or "none".
func spreadRange(ds []time.Duration) string {
	if len(ds) == 0 {
		return "none"
	}
	return fmt.Sprintf("%s–%s", slices.Min(ds).Round(time.Millisecond), slices.Max(ds).Round(time.Millisecond))
}

func mib(b uint64) float64 { return float64(b) / (1 << 20) }

func peak(xs []int) (p, at int) {
	for i, x := range xs {
		if x > p {
			p, at = x, i
		}
	}
	return p, at
}

// bucket counts times per whole second after t0.
func bucket(ts []time.Time, t0 time.Time) []int {
	var out []int
	for _, t := range ts {
		s := int(t.Sub(t0) / time.Second)
		if s < 0 {
			continue
		}
		for len(out) <= s {
			out = append(out, 0)
		}
		out[s]++
	}
	return out
}

func entryTime(e logwatch.Entry) time.Time {
	t, _ := time.Parse(time.RFC3339Nano, e.Str("time"))
	return t
}

// waitAll waits until every gateway has logged ev after its mark (0 when marks are not given).
func waitAll(ctx context.Context, gws []*gateway, timeout time.Duration, ev string, marks ...int) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	for i, g := range gws {
		from := 0
		if len(marks) > i {
			from = marks[i]
		}
		if _, _, err := g.log.WaitEvent(ctx, from, ev); err != nil {
			return fmt.Errorf("gateway %d did not log %s: %w\n%s", i, ev, err, tail(g.log.Raw(), 15))
		}
	}
	return nil
}

func tail(lines []string, n int) string {
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

func startGateway(cfg Config, i int, brokerAddr string) (*gateway, error) {
	dir := filepath.Join(cfg.Dir, fmt.Sprintf("gw%04d", i))
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	g := &gateway{i: i, dir: dir}
	mod, err := sim.New(sim.Config{Link: filepath.Join(dir, "ec600-at"), Broker: brokerAddr,
		Identity: sim.Identity{IMEI: imei(i)}})
	if err != nil {
		return nil, fmt.Errorf("gateway %d: emulator: %w", i, err)
	}
	if err := mod.Start(context.Background()); err != nil {
		return nil, fmt.Errorf("gateway %d: emulator: %w", i, err)
	}
	g.mod = mod
	// A unix socket: a TCP port picked free now could be taken by any connection before the
	// daemon listens on it, and a fleet makes a thousand connections.
	g.listen = filepath.Join(dir, "local.sock")
	path := filepath.Join(dir, "gatewayd.toml")
	if err := os.WriteFile(path, []byte(gatewayConfig(dir, i, g.listen, cfg.StableAfter)), 0o600); err != nil {
		return nil, err
	}
	g.cmd = exec.Command(cfg.Bin, "-config", path)
	stderr, err := g.cmd.StderrPipe()
	if err != nil {
		return nil, err
	}
	if err := g.cmd.Start(); err != nil {
		return nil, fmt.Errorf("gateway %d: %w", i, err)
	}
	g.log = logwatch.New(stderr)
	return g, nil
}

// gatewayConfig is one gateway's configuration: its own client id, a local endpoint forwarding
// fleet/# at QoS 1 through an outbox.
func gatewayConfig(dir string, i int, listen string, stable time.Duration) string {
	return fmt.Sprintf(`
[serial]
port = %q

[mqtt]
host = "broker.example"
port = 1883
client_id = "gw%04d"
username = "gw%04d"
password = "fleet"
keepalive = "60s"

[retry]
stable_after = %q

[local]
listen = ""
socket = %q
[[local.forward]]
topic = "fleet/#"
qos = 1

[outbox]
dir = %q

[control]
socket = %q

[log]
level = "info"
`, filepath.Join(dir, "ec600-at"), i, i, stable.String(), listen, filepath.Join(dir, "outbox"), filepath.Join(dir, "control.sock"))
}

func (g *gateway) startPublisher() error {
	c := paho.NewClient(paho.NewClientOptions().AddBroker("unix://" + g.listen).
		SetClientID(fmt.Sprintf("app%04d", g.i)).SetProtocolVersion(4).SetAutoReconnect(false).
		SetConnectTimeout(10 * time.Second))
	if tok := c.Connect(); !tok.WaitTimeout(20*time.Second) || tok.Error() != nil {
		return fmt.Errorf("gateway %d: local client: %v", g.i, tok.Error())
	}
	g.pub = c
	return nil
}

// publish sends one QoS 1 message every period until ctx ends; a message counts as published
// when the gateway acknowledged it.
func (g *gateway) publish(ctx context.Context, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for n := 0; ; n++ {
		msg := fmt.Sprintf("gw%04d-%06d", g.i, n)
		tok := g.pub.Publish(fmt.Sprintf("fleet/gw%04d/data", g.i), 1, false, msg)
		if tok.WaitTimeout(30*time.Second) && tok.Error() == nil {
			g.mu.Lock()
			g.acked = append(g.acked, msg)
			g.mu.Unlock()
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (g *gateway) close() {
	if g.pub != nil {
		g.pub.Disconnect(0)
	}
	if g.cmd != nil && g.cmd.Process != nil {
		_ = g.cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { <-g.log.Done(); _ = g.cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = g.cmd.Process.Kill()
			<-done
		}
	}
	if g.mod != nil {
		g.mod.Close()
	}
}

func daemonRSS(gws []*gateway) uint64 {
	var sum uint64
	for _, g := range gws {
		sum += rss(g.cmd.Process.Pid)
	}
	return sum
}

// rss is a process's resident set size from /proc, 0 if unknown.
func rss(pid int) uint64 {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			kb, _ := strconv.ParseUint(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return kb << 10
		}
	}
	return 0
}

// broker is the fleet's broker: embedded (mochi) or Debian's mosquitto, with what it saw.
type broker struct {
	cfg  Config
	addr string

	emb  *sim.Broker
	mosq *exec.Cmd
	conf string

	mu       sync.Mutex
	connects []time.Time
	refusals []time.Time
	seen     map[string]int // payloads received, by count
	refuse   time.Time      // the embedded broker refuses every CONNECT until then
	cloud    paho.Client    // mosquitto: the persistent subscriber that receives the fleet's messages
}

func (b *broker) kind() string {
	if b.cfg.Mosquitto != "" {
		return "mosquitto"
	}
	return "embedded"
}

func (b *broker) start() error {
	if b.cfg.Mosquitto != "" {
		return b.startMosquitto()
	}
	return b.startEmbedded("127.0.0.1:0")
}

func (b *broker) startEmbedded(addr string) error {
	opts := []sim.BrokerOption{
		sim.WithEvents(func(e sim.BrokerEvent) {
			if e.Kind != "connect" && e.Kind != "refused" {
				return
			}
			b.mu.Lock()
			b.connects = append(b.connects, e.At)
			if e.Kind == "refused" {
				b.refusals = append(b.refusals, e.At)
			}
			b.mu.Unlock()
		}),
		sim.WithPublishObserver(func(_, _ string, payload []byte) {
			b.mu.Lock()
			b.seen[string(payload)]++
			b.mu.Unlock()
		}),
		sim.WithAuth(func(string, string, []byte) byte {
			b.mu.Lock()
			defer b.mu.Unlock()
			if time.Now().Before(b.refuse) {
				return 3
			}
			return 0
		}),
	}
	if b.cfg.ConnectRate > 0 {
		opts = append(opts, sim.WithConnectRate(b.cfg.ConnectRate))
	}
	var err error
	for i := 0; i < 50; i++ { // the port of the broker just closed may take a moment to free
		if b.emb, err = sim.NewBroker(addr, opts...); err == nil {
			b.addr = b.emb.Addr()
			return nil
		}
		time.Sleep(100 * time.Millisecond)
	}
	return fmt.Errorf("embedded broker on %s: %w", addr, err)
}

// restart drops every client and brings the broker back; it returns when the broker accepts
// CONNECTs again.
func (b *broker) restart() (back time.Time, err error) {
	if b.cfg.Mosquitto != "" {
		b.stopMosquitto()
		time.Sleep(b.cfg.RefuseFor)
		if err := b.runMosquitto(); err != nil {
			return back, err
		}
		return time.Now(), nil
	}
	b.mu.Lock()
	b.refuse = time.Now().Add(b.cfg.RefuseFor)
	b.mu.Unlock()
	b.emb.Close()
	if err := b.startEmbedded(b.addr); err != nil {
		return back, err
	}
	b.mu.Lock()
	back = b.refuse
	b.mu.Unlock()
	return back, nil
}

func (b *broker) stop() {
	if b.emb != nil {
		b.emb.Close()
	}
	if b.cloud != nil {
		b.cloud.Disconnect(0)
	}
	b.stopMosquitto()
}

// received counts how many of want reached the broker, and the duplicates among them.
func (b *broker) received(want map[string]bool) (got, dups int) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for m := range want {
		if n := b.seen[m]; n > 0 {
			got++
			dups += n - 1
		}
	}
	return got, dups
}

// perSecond buckets the CONNECTs received after t0 by second, and counts the refusals after t0.
func (b *broker) perSecond(t0 time.Time) ([]int, int) {
	b.mu.Lock()
	defer b.mu.Unlock()
	refused := 0
	for _, r := range bucket(b.refusals, t0) {
		refused += r
	}
	return bucket(b.connects, t0), refused
}

// Mosquitto: a configuration with persistence, so that the cloud-side subscriber's session and
// the messages queued for it survive the restart; the log (debug) shows every CONNECT and CONNACK.
func (b *broker) startMosquitto() error {
	addr, err := testutil.FreeLoopback()
	if err != nil {
		return err
	}
	b.addr = addr
	_, port, _ := net.SplitHostPort(addr)
	dir := filepath.Join(b.cfg.Dir, "mosquitto")
	if err := os.MkdirAll(dir, 0o777); err != nil {
		return err
	}
	b.conf = filepath.Join(dir, "mosquitto.conf")
	conf := fmt.Sprintf("listener %s 127.0.0.1\nallow_anonymous true\npersistence true\npersistence_location %s/\n"+
		"autosave_interval 0\nmax_queued_messages 0\nmax_inflight_messages 0\nlog_dest stderr\nlog_type all\nuser root\n", port, dir)
	if err := os.WriteFile(b.conf, []byte(conf), 0o644); err != nil {
		return err
	}
	if err := b.runMosquitto(); err != nil {
		return err
	}
	c := paho.NewClient(paho.NewClientOptions().AddBroker("tcp://" + addr).SetClientID("fleet-cloud").
		SetProtocolVersion(4).SetCleanSession(false).SetAutoReconnect(true).SetConnectRetry(true).
		SetConnectRetryInterval(100 * time.Millisecond).SetMaxReconnectInterval(200 * time.Millisecond).
		SetOrderMatters(false).SetResumeSubs(true))
	if tok := c.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		return fmt.Errorf("cloud client: %v", tok.Error())
	}
	tok := c.Subscribe("fleet/#", 1, func(_ paho.Client, m paho.Message) {
		b.mu.Lock()
		b.seen[string(m.Payload())]++
		b.mu.Unlock()
	})
	if !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		return fmt.Errorf("cloud subscribe: %v", tok.Error())
	}
	b.cloud = c
	return nil
}

func (b *broker) runMosquitto() error {
	cmd := exec.Command(b.cfg.Mosquitto, "-c", b.conf)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return err
	}
	if err := cmd.Start(); err != nil {
		return err
	}
	b.mosq = cmd
	ready := make(chan struct{})
	go b.readMosquittoLog(stderr, ready)
	select {
	case <-ready:
	case <-time.After(10 * time.Second):
		return errors.New("mosquitto did not open its listener in 10 s")
	}
	for i := 0; i < 100; i++ { // the listener is open when a TCP connect succeeds
		if c, err := net.DialTimeout("tcp", b.addr, time.Second); err == nil {
			c.Close()
			return nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("mosquitto does not listen on %s", b.addr)
}

// readMosquittoLog counts CONNECTs by the CONNACKs mosquitto logs ("Sending CONNACK to <id>
// (<session present>, <return code>)"), refused when the code is not 0, each stamped when its
// line arrives.
func (b *broker) readMosquittoLog(r io.Reader, ready chan struct{}) {
	sc := bufio.NewScanner(r)
	once := sync.Once{}
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.Contains(line, "Opening ipv4 listen socket"):
			once.Do(func() { close(ready) })
		case strings.Contains(line, "Sending CONNACK to") && !strings.Contains(line, "fleet-cloud"):
			now := time.Now()
			b.mu.Lock()
			b.connects = append(b.connects, now)
			if !strings.HasSuffix(line, ", 0)") {
				b.refusals = append(b.refusals, now)
			}
			b.mu.Unlock()
		}
	}
	once.Do(func() { close(ready) })
}

func (b *broker) stopMosquitto() {
	if b.mosq == nil || b.mosq.Process == nil {
		return
	}
	_ = b.mosq.Process.Signal(syscall.SIGTERM) // mosquitto saves its persistence file on exit
	done := make(chan struct{})
	go func() { _ = b.mosq.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		_ = b.mosq.Process.Kill()
		<-done
	}
	b.mosq = nil
}

// imei is gateway i's IMEI: 14 digits and the Luhn check digit.
func imei(i int) string {
	body := fmt.Sprintf("86612%09d", i)
	sum := 0
	for k := 0; k < len(body); k++ {
		d := int(body[k] - '0')
		if k%2 == 1 {
			if d *= 2; d > 9 {
				d -= 9
			}
		}
		sum += d
	}
	return body + strconv.Itoa((10-sum%10)%10)
}
