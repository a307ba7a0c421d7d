package e2e

// End-to-end tests: the real gatewayd binary ↔ the EC600 emulator on a pty ↔ a real MQTT broker
// ↔ a paho client playing the cloud. The daemon is observed from outside, through its JSON log,
// as an operator would with journalctl and jq.

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/gatewayd/gatewayd/sim"
	"github.com/gatewayd/gatewayd/test/logwatch"
)

// e2eParallel is how many parallel end-to-end tests run at once by default.
const e2eParallel = 4

// gatewaydBin is the daemon built once for all tests.
var gatewaydBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "gatewayd-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	gatewaydBin = filepath.Join(dir, "gatewayd")
	out, err := exec.Command("go", "build", "-o", gatewaydBin, "github.com/gatewayd/gatewayd/cmd/gatewayd").CombinedOutput()
	if err != nil {
		fmt.Fprintf(os.Stderr, "building gatewayd: %v\n%s", err, out)
		os.Exit(1)
	}
	// The end-to-end tests wait on back-offs, brokers and emulated modules far more than they
	// compute: run up to e2eParallel of those marked parallel at once, unless -parallel says how
	// many. (The default, GOMAXPROCS, is 2 on the machines CI runs on, and the package would not
	// finish within go test's 10 minutes.)
	flag.Parse()
	set := false
	flag.Visit(func(f *flag.Flag) { set = set || f.Name == "test.parallel" })
	if !set {
		_ = flag.Set("test.parallel", strconv.Itoa(e2eParallel))
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// bench is one test bench: a broker, an emulated module and a cloud-side client.
type bench struct {
	t      *testing.T
	dir    string
	broker string // host:port
	mod    *sim.Module
	cloud  paho.Client
}

// newBench starts an embedded broker (with auth, if given) and an emulated module.
func newBench(t *testing.T, auth func(clientID, user string, pass []byte) byte) *bench {
	t.Helper()
	var opts []sim.BrokerOption
	if auth != nil {
		opts = append(opts, sim.WithAuth(auth))
	}
	b, err := sim.NewBroker("127.0.0.1:0", opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	return newBenchOn(t, b.Addr())
}

// startBroker starts an embedded broker on a free loopback port, closed when the test ends.
func startBroker(t *testing.T) *sim.Broker {
	t.Helper()
	b, err := sim.NewBroker("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	return b
}

// newBenchOn starts an emulated module routed to the broker at addr; variants, if given, set
// firmware variants on its configuration.
func newBenchOn(t *testing.T, addr string, variants ...func(*sim.Config)) *bench {
	t.Helper()
	dir := t.TempDir()
	cfg := sim.Config{Link: filepath.Join(dir, "ec600-at"), Broker: addr}
	for _, v := range variants {
		v(&cfg)
	}
	mod, err := sim.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := mod.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { mod.Close() })
	return &bench{t: t, dir: dir, broker: addr, mod: mod}
}

// cloudClient connects a paho client to the broker, as the cloud side.
func (b *bench) cloudClient() paho.Client {
	b.t.Helper()
	if b.cloud != nil {
		return b.cloud
	}
	o := paho.NewClientOptions().AddBroker("tcp://" + b.broker).SetClientID("cloud-" + b.t.Name()).
		SetUsername("cloud").SetPassword("cloud").SetAutoReconnect(false)
	c := paho.NewClient(o)
	if tok := c.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		b.t.Fatalf("cloud client connect: %v", tok.Error())
	}
	b.t.Cleanup(func() { c.Disconnect(100) })
	b.cloud = c
	return c
}

// subscribe collects what the cloud receives on topic.
func (b *bench) subscribe(topic string) *collector {
	b.t.Helper()
	col := &collector{ch: make(chan struct{}, 1000)}
	tok := b.cloudClient().Subscribe(topic, 1, func(_ paho.Client, m paho.Message) {
		col.mu.Lock()
		col.msgs = append(col.msgs, string(m.Payload()))
		col.mu.Unlock()
		col.ch <- struct{}{}
	})
	if !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		b.t.Fatalf("cloud subscribe: %v", tok.Error())
	}
	return col
}

// publish sends a downlink from the cloud.
func (b *bench) publish(topic string, payload []byte) {
	b.t.Helper()
	tok := b.cloudClient().Publish(topic, 1, false, payload)
	if !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		b.t.Fatalf("cloud publish: %v", tok.Error())
	}
}

type collector struct {
	mu   sync.Mutex
	msgs []string
	ch   chan struct{}
}

func (c *collector) wait(t *testing.T, n int) []string {
	t.Helper()
	deadline := time.After(45 * time.Second)
	for {
		c.mu.Lock()
		if len(c.msgs) >= n {
			m := append([]string(nil), c.msgs...)
			c.mu.Unlock()
			return m
		}
		c.mu.Unlock()
		select {
		case <-c.ch:
		case <-deadline:
			t.Fatalf("cloud received %d messages, want %d", len(c.msgs), n)
		}
	}
}

// proc is a running gatewayd process.
type proc struct {
	cmd  *exec.Cmd
	log  *logwatch.Watcher
	done chan error
}

// start writes cfg to a file and runs gatewayd -config on it.
func (b *bench) start(cfg string) *proc {
	b.t.Helper()
	path := filepath.Join(b.dir, "gatewayd.toml")
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		b.t.Fatal(err)
	}
	return startProc(b.t, exec.Command(gatewaydBin, "-config", path))
}

// startProc starts cmd (a gatewayd) and watches its log on stderr; the test's end kills it and
// shows the log if the test failed.
func startProc(t *testing.T, cmd *exec.Cmd) *proc {
	t.Helper()
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	d := &proc{cmd: cmd, log: logwatch.New(stderr), done: make(chan error, 1)}
	go func() {
		<-d.log.Done() // read all output before Wait closes the pipe
		d.done <- cmd.Wait()
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-d.log.Done()
		if t.Failed() {
			t.Logf("%s log:\n%s", strings.Join(cmd.Args, " "), strings.Join(d.log.Raw(), "\n"))
		}
	})
	return d
}

// wait waits for the next entry with event ev, starting at index from.
func (d *proc) wait(t *testing.T, from int, ev string) (logwatch.Entry, int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	e, i, err := d.log.WaitEvent(ctx, from, ev)
	if err != nil {
		t.Fatalf("waiting for %q: %v", ev, err)
	}
	return e, i
}

// stop sends SIGTERM and returns how long the daemon took to exit, and its exit error.
func (d *proc) stop(t *testing.T) (time.Duration, error) {
	t.Helper()
	start := time.Now()
	if err := d.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-d.done:
		return time.Since(start), err
	case <-time.After(15 * time.Second):
		t.Fatal("gatewayd did not exit within 15 s of SIGTERM")
	}
	return 0, nil
}

const (
	pk        = "a1B2c3D4e5F"
	dn        = "pi-led-01"
	setTopic  = "/sys/" + pk + "/" + dn + "/thing/service/property/set"
	postTopic = "/sys/" + pk + "/" + dn + "/thing/event/property/post"
)

// seedConfig is the original QuecPython script's flow as a gatewayd configuration.
func seedConfig(port, extra string) string {
	return fmt.Sprintf(`
[serial]
port = %q

[mqtt]
host = "%s.iot-as-mqtt.cn-shanghai.aliyuncs.com"
port = 1883
client_id = "pi-led-01|securemode=3,signmethod=hmacsha1|"
username = "%s&%s"
password = "s3cret-Passw0rd"
keepalive = "60s"
%s
[[mqtt.subscribe]]
topic = %q
qos = 1

[[mqtt.subscribe]]
topic = %q
qos = 1

[[mqtt.publish_on_connect]]
topic = %q
payload = "test publish"
qos = 1

[control]
socket = %q

[log]
level = "debug"
`, port, pk, dn, pk, extra, postTopic, setTopic, postTopic, controlSocket(port))
}

// controlSocket is the control socket of the daemon whose AT port is port: next to it, in the
// test's directory.
func controlSocket(port string) string { return filepath.Join(filepath.Dir(port), "control.sock") }

var timeField = regexp.MustCompile(`^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}(Z|[+-]\d\d:\d\d)$`)

// TestSeedFlow runs the original script's behaviour: LED on at power-up, off when the network is
// ready, subscribe, publish "test publish", toggle the LED on every downlink; then SIGTERM.
func TestSeedFlow(t *testing.T) {
	b := newBench(t, nil)
	seedFlow(t, b)
}

func seedFlow(t *testing.T, b *bench) {
	posts := b.subscribe(postTopic)
	d := b.start(seedConfig(b.mod.Path(), ""))

	e, _ := d.wait(t, 0, "module")
	if e.Str("imei") != sim.DefaultIdentity.IMEI || e.Str("model") != "EC600N" {
		t.Errorf("module event %v, want the emulator's identity", e)
	}
	if e, _ := d.wait(t, 0, "sim_ready"); e.Str("iccid") != sim.DefaultIdentity.ICCID {
		t.Errorf("sim_ready event %v, want the emulator's ICCID", e)
	}
	_, i := d.wait(t, 0, "network_ready")
	_, i = d.wait(t, i, "mqtt_connected")
	d.wait(t, i, "published")
	if n := d.log.Count("subscribed"); n != 2 {
		t.Errorf("%d subscribed events, want 2", n)
	}
	if got := posts.wait(t, 1); got[0] != "test publish" {
		t.Fatalf("cloud received %q on the post topic, want %q", got[0], "test publish")
	}

	// Like the original, the daemon subscribes to the topic it posts to, so its own "test publish"
	// comes back as a downlink and toggles the LED.
	own, _ := d.wait(t, i, "downlink")
	if own.Str("topic") != postTopic || own.Str("payload") != "test publish" {
		t.Fatalf("first downlink %v, want our own post", own)
	}
	d.wait(t, i, "led")
	// LED: on at power-up, off once the network is ready, on again after our own post.
	var led []bool
	for _, e := range d.log.Entries() {
		if e.Event() == "led" {
			led = append(led, e.Bool("on"))
		}
	}
	if len(led) != 3 || !led[0] || led[1] || !led[2] {
		t.Fatalf("LED before the cloud's downlinks: %v, want [true false true]", led)
	}

	payloads := []string{
		`{"method":"thing.service.property.set","id":"44777986","params":{"LED":1},"version":"1.0.0"}`,
		"quotes \" and CRLF \r\n and OK\r\n inside",
		strings.Repeat("0123456789abcdef", 64), // 1 KiB
	}
	from := d.log.Len()
	for k, p := range payloads {
		b.publish(setTopic, []byte(p))
		e, j := d.wait(t, from, "downlink")
		from = j + 1
		if e.Str("topic") != setTopic || e.Int("bytes") != len(p) {
			t.Errorf("downlink %d: topic %q bytes %d, want %q %d", k, e.Str("topic"), e.Int("bytes"), setTopic, len(p))
		}
		if len(p) <= 256 && e.Str("payload") != p {
			t.Errorf("downlink %d payload %q, want %q", k, e.Str("payload"), p)
		}
		l, j := d.wait(t, from, "led")
		from = j + 1
		if want := k%2 == 1; l.Bool("on") != want {
			t.Errorf("LED after downlink %d: on=%v, want %v", k, l.Bool("on"), want)
		}
	}

	took, err := d.stop(t)
	if err != nil {
		t.Fatalf("gatewayd exited with %v after SIGTERM, want 0", err)
	}
	if took > 5*time.Second {
		t.Errorf("gatewayd took %v to stop, want under 5 s", took)
	}
	dis, _ := d.wait(t, from, "mqtt_disconnected")
	if dis.Str("reason") != "shutting down" {
		t.Errorf("mqtt_disconnected reason %q, want a clean shutdown", dis.Str("reason"))
	}

	// Every line is JSON with a microsecond time; the password never appears.
	if bad := d.log.Bad(); len(bad) > 0 {
		t.Errorf("log lines that are not JSON: %q", bad)
	}
	for _, e := range d.log.Entries() {
		if !timeField.MatchString(e.Str("time")) {
			t.Errorf("time %q lacks microseconds: %v", e.Str("time"), e)
			break
		}
	}
	for _, l := range d.log.Raw() {
		if strings.Contains(l, "s3cret-Passw0rd") {
			t.Fatalf("the password reached the log: %s", l)
		}
	}
}

// TestSeedFlowMosquitto runs the seed flow against Debian's mosquitto.
func TestSeedFlowMosquitto(t *testing.T) {
	bin := mosquittoBin()
	if bin == "" {
		t.Skip("mosquitto is not installed (apt-get install mosquitto); skipping the run against it")
	}
	addr := startMosquittoConf(t, bin, func(port int) string {
		return fmt.Sprintf("listener %d 127.0.0.1\nallow_anonymous true\npersistence false\n", port)
	}, func(addr string) paho.Client {
		return paho.NewClient(paho.NewClientOptions().AddBroker("tcp://" + addr).SetClientID("probe").SetConnectTimeout(time.Second))
	})
	seedFlow(t, newBenchOn(t, addr))
}

// startMosquittoConf runs mosquitto with the configuration conf gives for a port, on a free
// loopback port, until a client made by probe connects; it returns host:port.
func startMosquittoConf(t *testing.T, bin string, conf func(port int) string, probe func(addr string) paho.Client) string {
	t.Helper()
	for attempt := 0; attempt < 5; attempt++ {
		port := 20000 + int(time.Now().UnixNano()%20000)
		path := filepath.Join(t.TempDir(), "mosquitto.conf")
		if err := os.WriteFile(path, []byte(conf(port)), 0o644); err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command(bin, "-c", path)
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		addr := fmt.Sprintf("127.0.0.1:%d", port)
		ok := false
		for i := 0; i < 50; i++ {
			c := probe(addr)
			if tok := c.Connect(); tok.WaitTimeout(2*time.Second) && tok.Error() == nil {
				c.Disconnect(0)
				ok = true
				break
			}
			time.Sleep(100 * time.Millisecond)
		}
		if ok {
			t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
			return addr
		}
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	}
	t.Fatal("could not start mosquitto on a free loopback port")
	return ""
}

// TestRefusedCredentials: a wrong password is explained in words and retried with back-off, and
// the password never reaches the log.
func TestRefusedCredentials(t *testing.T) {
	b := newBench(t, func(_, _ string, pass []byte) byte {
		if string(pass) == "s3cret-Passw0rd" {
			return 4 // refuse: bad user name or password
		}
		return 0
	})
	d := b.start(seedConfig(b.mod.Path(), ""))
	e1, i := d.wait(t, 0, "mqtt_connect_failed")
	if !strings.Contains(e1.Str("error"), "bad user name or password") || e1.Int("code") != 4 {
		t.Fatalf("first refusal: %v, want the words and code 4", e1)
	}
	e2, _ := d.wait(t, i+1, "mqtt_connect_failed")
	t1, _ := time.Parse(time.RFC3339Nano, e1.Str("time"))
	t2, _ := time.Parse(time.RFC3339Nano, e2.Str("time"))
	if gap := t2.Sub(t1); gap < 400*time.Millisecond {
		t.Errorf("second attempt %v after the first: a retry without back-off", gap)
	}
	if e2.Int("attempt") <= e1.Int("attempt") {
		t.Errorf("attempt counter did not grow: %d then %d", e1.Int("attempt"), e2.Int("attempt"))
	}
	if n := d.log.Count("mqtt_connected"); n != 0 {
		t.Fatalf("%d mqtt_connected events with a refused password", n)
	}
	for _, l := range d.log.Raw() {
		if strings.Contains(l, "s3cret-Passw0rd") {
			t.Fatalf("the password reached the log: %s", l)
		}
	}
	if _, err := d.stop(t); err != nil {
		t.Fatalf("exit after SIGTERM: %v", err)
	}
}

// TestAliyunSigning: the broker checks the Alibaba Cloud signature the host computed, with an
// HMAC computed here independently of the daemon's code.
func TestAliyunSigning(t *testing.T) {
	const secret = "Zx9yW8vU7tS6rQ5pO4nM3lK2jI1hG0fE"
	clientRE := regexp.MustCompile(`^([^|]+)\|securemode=3,signmethod=hmacsha256,timestamp=(\d+)\|$`)
	var mu sync.Mutex
	var seen []string
	b := newBench(t, func(clientID, user string, pass []byte) byte {
		mu.Lock()
		seen = append(seen, clientID)
		mu.Unlock()
		if user == "cloud" {
			return 0
		}
		m := clientRE.FindStringSubmatch(clientID)
		if m == nil || user != dn+"&"+pk {
			return 2
		}
		mac := hmac.New(sha256.New, []byte(secret))
		mac.Write([]byte("clientId" + m[1] + "deviceName" + dn + "productKey" + pk + "timestamp" + m[2]))
		if hex.EncodeToString(mac.Sum(nil)) != string(pass) {
			return 4
		}
		return 0
	})
	cfg := fmt.Sprintf(`
[serial]
port = %q
[mqtt]
keepalive = "300s"
[mqtt.aliyun]
product_key = %q
device_name = %q
device_secret = %q
sign_method = "hmacsha256"
region = "cn-shanghai"
[[mqtt.subscribe]]
topic = "/sys/{product_key}/{device_name}/thing/service/property/set"
qos = 1
`, b.mod.Path(), pk, dn, secret)
	d := b.start(cfg)
	e, _ := d.wait(t, 0, "mqtt_connected")
	if e.Str("username") != dn+"&"+pk {
		t.Errorf("username %q", e.Str("username"))
	}
	if !clientRE.MatchString(e.Str("client_id")) {
		t.Errorf("client id %q is not the Aliyun form", e.Str("client_id"))
	}
	if n := d.log.Count("mqtt_connect_failed"); n != 0 {
		t.Errorf("%d refused connects before success: %v", n, seen)
	}
	s, _ := d.wait(t, 0, "subscribed")
	if s.Str("topic") != setTopic {
		t.Errorf("subscribed to %q, want %q", s.Str("topic"), setTopic)
	}
	for _, l := range d.log.Raw() {
		if strings.Contains(l, secret) {
			t.Fatalf("the device secret reached the log: %s", l)
		}
	}
}

// TestWillOnLinkLoss: with [mqtt.will] the broker announces the gateway's death when the link
// dies without a DISCONNECT, and the daemon reconnects.
func TestWillOnLinkLoss(t *testing.T) {
	b := newBench(t, nil)
	const statusTopic = "devices/pi-led-01/status"
	status := b.subscribe(statusTopic)
	will := fmt.Sprintf("[mqtt.will]\ntopic = %q\nmessage = \"offline\"\nqos = 1\n", statusTopic)
	cfg := strings.Replace(seedConfig(b.mod.Path(), ""), "[log]", will+"\n[log]", 1)
	d := b.start(cfg)
	_, i := d.wait(t, 0, "mqtt_connected")
	d.wait(t, i, "published")
	if err := b.mod.DropLink(); err != nil {
		t.Fatal(err)
	}
	if got := status.wait(t, 1); got[0] != "offline" {
		t.Fatalf("status topic got %q, want the will %q", got[0], "offline")
	}
	_, i = d.wait(t, i+1, "mqtt_disconnected")
	d.wait(t, i, "mqtt_connected")
}
