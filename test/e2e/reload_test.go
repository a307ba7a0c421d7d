package e2e

import (
	"context"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/gatewayd/gatewayd/internal/config"
	"github.com/gatewayd/gatewayd/internal/daemon"
	"github.com/gatewayd/gatewayd/internal/logging"
	"github.com/gatewayd/gatewayd/test/logwatch"
	"github.com/gatewayd/gatewayd/test/testutil"
)

// reloadable writes cfg to the bench's config file and starts gatewayd on it, with NOTIFY_SOCKET
// set to a datagram socket of the test's whose messages come out of the returned channel.
func (b *bench) reloadable(cfg string) (*proc, string, <-chan string) {
	b.t.Helper()
	path := filepath.Join(b.dir, "gatewayd.toml")
	writeConfig(b.t, path, cfg)
	sock := filepath.Join(b.dir, "notify.sock")
	pc, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: sock, Net: "unixgram"})
	if err != nil {
		b.t.Fatal(err)
	}
	b.t.Cleanup(func() { pc.Close() })
	msgs := make(chan string, 256)
	go func() {
		buf := make([]byte, 4096)
		for {
			n, err := pc.Read(buf)
			if err != nil {
				return
			}
			msgs <- string(buf[:n])
		}
	}()
	cmd := exec.Command(gatewaydBin, "-config", path)
	cmd.Env = append(os.Environ(), "NOTIFY_SOCKET="+sock)
	return startProc(b.t, cmd), path, msgs
}

func writeConfig(t *testing.T, path, cfg string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
}

// hup sends SIGHUP, as `systemctl reload gatewayd` does (ExecReload=/bin/kill -HUP $MAINPID).
func (d *proc) hup(t *testing.T) {
	t.Helper()
	if err := d.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
}

// waitFor waits for the next entry from index from that match accepts.
func (d *proc) waitFor(t *testing.T, from int, what string, match func(logwatch.Entry) bool) (logwatch.Entry, int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	e, i, err := d.log.Wait(ctx, from, match)
	if err != nil {
		t.Fatalf("waiting for %s: %v", what, err)
	}
	return e, i
}

// notified waits for an sd_notify message that starts with prefix.
func notified(t *testing.T, msgs <-chan string, prefix string) string {
	t.Helper()
	deadline := time.After(30 * time.Second)
	for {
		select {
		case m := <-msgs:
			if strings.HasPrefix(m, prefix) {
				return m
			}
		case <-deadline:
			t.Fatalf("no %s from the daemon", prefix)
		}
	}
}

// strs returns the list field k of e.
func strs(e logwatch.Entry, k string) []string {
	var out []string
	l, _ := e[k].([]any)
	for _, v := range l {
		s, _ := v.(string)
		out = append(out, s)
	}
	return out
}

// A reload that changes only the log level applies it at once, without touching the session:
// with at_trace on, trace lines (the AT bytes of the health checks) appear only after a reload
// to level trace, and stop after a reload back to info; systemd hears RELOADING=1, then READY=1.
func TestReloadLogLevelAtOnce(t *testing.T) {
	t.Parallel()
	b := newBench(t, nil)
	cfg := strings.Replace(seedConfig(b.mod.Path(), ""), `level = "debug"`, "level = \"info\"\nat_trace = true", 1)
	cfg = strings.Replace(cfg, "[mqtt]\n", "[module]\nhealth_interval = \"1s\"\n\n[mqtt]\n", 1)
	d, path, msgs := b.reloadable(cfg)
	_, i := d.wait(t, 0, logging.EventSessionUp)
	notified(t, msgs, "READY=1")

	writeConfig(t, path, strings.Replace(cfg, `level = "info"`, `level = "trace"`, 1))
	d.hup(t)
	if m := notified(t, msgs, "RELOADING=1"); !strings.Contains(m, "MONOTONIC_USEC=") {
		t.Errorf("RELOADING=1 without MONOTONIC_USEC: %q", m)
	}
	e, r := d.wait(t, i, daemon.EventConfigReloaded)
	notified(t, msgs, "READY=1")
	if got := strings.Join(strs(e, "applied"), ","); got != "log.level" || e.Bool("reconnect") {
		t.Fatalf("config_reloaded %v: want applied [log.level], no reconnect", e)
	}
	for _, x := range d.log.Entries()[:r] {
		if x.Str("level") == "trace" {
			t.Fatalf("a trace line before the reload to trace: %v", x)
		}
	}
	_, tr := d.waitFor(t, r, "a trace line after the reload", func(e logwatch.Entry) bool { return e.Str("level") == "trace" })

	writeConfig(t, path, cfg)
	d.hup(t)
	d.wait(t, tr, daemon.EventConfigReloaded)
	// A line whose event was begun just before the reload may still be written after it; from
	// the next health check on (1 s apart: the module executes their AT), no trace line.
	healthChecks := func(n int64) {
		cmds := b.mod.Stats().Commands
		for deadline := time.Now().Add(30 * time.Second); b.mod.Stats().Commands < cmds+n; {
			if time.Now().After(deadline) {
				t.Fatal("no health checks after the reload to info")
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	healthChecks(1)
	h := d.log.Len()
	healthChecks(2)
	for _, x := range d.log.Entries()[h:] {
		if x.Str("level") == "trace" {
			t.Fatalf("a trace line after the reload back to info: %v", x)
		}
	}
	if n := d.log.Count(logging.EventMQTTConnected); n != 1 || d.log.Count(logging.EventMQTTDisconnected) != 0 {
		t.Errorf("the session was touched: %d mqtt_connected, %d mqtt_disconnected", n, d.log.Count(logging.EventMQTTDisconnected))
	}
}

// A reload that changes the broker and the credentials reconnects the session cleanly with them,
// and a QoS 1 message that was in the outbox, unacknowledged, when it happened is delivered in
// the new session. The emulator sends every AT+QMTOPEN to its one broker, so the new broker shows
// as the host the daemon opened, and the new credentials as the CONNECT the broker accepted.
func TestReloadBrokerReconnectsKeepingTheOutbox(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	var users []string
	b := newBench(t, func(clientID, user string, _ []byte) byte {
		mu.Lock()
		users = append(users, clientID+" "+user)
		mu.Unlock()
		return 0
	})
	listen, dir := testutil.FreeAddr(t), filepath.Join(t.TempDir(), "outbox")
	cfg := localConfig(b.mod.Path(), listen, dir)
	cloud := b.subscribe(telemetry + "/#")
	d, path, msgs := b.reloadable(cfg)
	_, i := d.wait(t, 0, logging.EventSessionUp)
	c := localClient(t, d, listen, "sensor")

	// m0000 goes out at once; its PUBACK is held 4 s, so it is in the outbox, unacknowledged,
	// when the reload comes.
	b.mod.SetBrokerDelay(4 * time.Second)
	publishRange(t, c, 0, 1)
	time.Sleep(500 * time.Millisecond) // let the drainer hand it to the module
	b.mod.SetBrokerDelay(0)

	newHost := "broker-b.example.net"
	cfgB := strings.Replace(cfg, `host = "`+pk+`.iot-as-mqtt.cn-shanghai.aliyuncs.com"`, `host = "`+newHost+`"`, 1)
	cfgB = strings.Replace(cfgB, `username = "`+dn+`&`+pk+`"`, `username = "reloaded-user"`, 1)
	if cfgB == cfg || !strings.Contains(cfgB, "reloaded-user") || !strings.Contains(cfgB, newHost) {
		t.Fatal("the test's config edit did not apply")
	}
	writeConfig(t, path, cfgB)
	d.hup(t)
	e, r := d.wait(t, i, daemon.EventConfigReloaded)
	notified(t, msgs, "RELOADING=1")
	if !e.Bool("reconnect") || !strings.Contains(strings.Join(strs(e, "applied"), ","), "mqtt.host") ||
		!strings.Contains(strings.Join(strs(e, "applied"), ","), "mqtt.username") {
		t.Fatalf("config_reloaded %v: want mqtt.host and mqtt.username applied by a reconnect", e)
	}
	for _, x := range d.log.Entries()[:r] {
		if x.Event() == logging.EventPublished && x.Str("from") == "outbox" {
			t.Fatalf("m0000 was acknowledged before the reload (%v): the test did not test a queued message", x)
		}
	}
	dis, _ := d.wait(t, i, logging.EventMQTTDisconnected)
	if !strings.Contains(dis.Str("reason"), "configuration reloaded") || dis.Str("level") != "info" {
		t.Errorf("mqtt_disconnected %v: want a clean disconnect for the reload", dis)
	}
	up, u := d.wait(t, r, logging.EventMQTTConnected)
	if up.Str("host") != newHost {
		t.Errorf("reconnected to %q, want %q", up.Str("host"), newHost)
	}
	d.waitFor(t, u, "m0000 published from the outbox in the new session", func(e logwatch.Entry) bool {
		return e.Event() == logging.EventPublished && e.Str("from") == "outbox" && e.Str("topic") == telemetry+"/temp"
	})
	if got := cloud.wait(t, 1); got[0] != "m0000" {
		t.Errorf("the cloud received %q, want m0000", got)
	}
	mu.Lock()
	last := users[len(users)-1]
	mu.Unlock()
	if !strings.HasSuffix(last, " reloaded-user") {
		t.Errorf("the broker's last CONNECT was %q, want the new user name", last)
	}
	st := d.stats(t)
	wantCounts(t, st, map[string]int{"messages": 0, "stored": 1})
	if st.Int("delivered") < 1 {
		t.Errorf("outbox_stats %v: m0000 not delivered", st)
	}
}

// An invalid configuration is refused with the error `gatewayd` gives at start, and the running
// one is kept: the session stays up, downlinks go on, and the next valid reload is compared with
// the configuration that ran all along.
func TestReloadRefusesAnInvalidConfig(t *testing.T) {
	t.Parallel()
	b := newBench(t, nil)
	cfg := seedConfig(b.mod.Path(), "")
	d, path, msgs := b.reloadable(cfg)
	_, i := d.wait(t, 0, logging.EventSessionUp)
	notified(t, msgs, "READY=1")

	bad := strings.Replace(cfg, `keepalive = "60s"`, `keepalive = "61x"`, 1)
	writeConfig(t, path, bad)
	_, want := config.Load(path)
	if want == nil {
		t.Fatal("the bad config loads")
	}
	d.hup(t)
	e, r := d.wait(t, i, "config_reload_refused") // cmd/gatewayd's EventConfigReloadRefused
	if e.Str("error") != want.Error() || e.Str("level") != "error" {
		t.Errorf("refused with %q (level %s), want the start-up error %q", e.Str("error"), e.Str("level"), want.Error())
	}
	notified(t, msgs, "RELOADING=1")
	notified(t, msgs, "READY=1")
	if n := d.log.Count(daemon.EventConfigReloaded); n != 0 {
		t.Errorf("%d config_reloaded lines for an invalid config", n)
	}
	// Still running on the old configuration: a downlink is handled.
	b.publish(setTopic, []byte(`{"led":1}`))
	d.waitFor(t, r, "a downlink after the refused reload", func(e logwatch.Entry) bool { return e.Event() == logging.EventDownlink && e.Str("topic") == setTopic })

	// The next valid reload sees only its own change against the configuration that ran.
	writeConfig(t, path, strings.Replace(cfg, `level = "debug"`, `level = "info"`, 1))
	d.hup(t)
	e, _ = d.wait(t, r, daemon.EventConfigReloaded)
	if got := strings.Join(strs(e, "changed"), ","); got != "log.level" {
		t.Errorf("changed %q, want log.level only: the running configuration was not the old one", got)
	}
	if n := d.log.Count(logging.EventMQTTDisconnected); n != 0 {
		t.Errorf("the session was touched: %d mqtt_disconnected", n)
	}
}

// A reload that changes only [[local.forward]] applies it at once: the session and the local
// clients' connections untouched, what a client publishes next goes by the new rule.
func TestReloadLocalForwardRulesAtOnce(t *testing.T) {
	t.Parallel()
	b := newBench(t, nil)
	listen, dir := testutil.FreeAddr(t), filepath.Join(t.TempDir(), "outbox")
	cfg := localConfig(b.mod.Path(), listen, dir)
	cloud := b.subscribe("devices/pi-led-01/#")
	d, path, _ := b.reloadable(cfg)
	_, i := d.wait(t, 0, logging.EventSessionUp)
	c := localClient(t, d, listen, "sensor")

	other := "devices/pi-led-01/other"
	cfgB := strings.Replace(cfg, `topic = "`+telemetry+`/#"`, `topic = "`+other+`/#"`, 1)
	if cfgB == cfg {
		t.Fatal("the test's config edit did not apply")
	}
	writeConfig(t, path, cfgB)
	d.hup(t)
	e, r := d.wait(t, i, daemon.EventConfigReloaded)
	if got := strings.Join(strs(e, "applied"), ","); got != "local.forward" || e.Bool("reconnect") {
		t.Fatalf("config_reloaded %v: want local.forward applied, no reconnect", e)
	}
	publishTo(t, c, telemetry+"/temp", "not-forwarded")
	publishTo(t, c, other+"/x", "forwarded")
	d.waitFor(t, r, "the publish on the new rule's topic sent from the outbox", func(e logwatch.Entry) bool {
		return e.Event() == logging.EventPublished && e.Str("from") == "outbox" && e.Str("topic") == other+"/x"
	})
	if got := cloud.wait(t, 1); got[len(got)-1] != "forwarded" {
		t.Errorf("the cloud received %q", got)
	}
	if d.log.Count(logging.EventMQTTDisconnected) != 0 || d.log.Count(logging.EventMQTTConnected) != 1 {
		t.Error("the session was touched")
	}
	st := d.stats(t)
	wantCounts(t, st, map[string]int{"stored": 1, "local_forwarded": 1})
}
