package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/gatewayd/gatewayd/test/logwatch"
	"github.com/gatewayd/gatewayd/test/testutil"
)

const telemetry = "devices/pi-led-01/telemetry"

// localConfig is seedConfig with the local endpoint and the outbox.
func localConfig(port, listen, dir string) string {
	extra := fmt.Sprintf(`
[local]
listen = %q
[[local.forward]]
topic = "%s/#"
qos = 1

[outbox]
dir = %q
window = 8
`, listen, telemetry, dir)
	return strings.Replace(seedConfig(port, ""), "[log]", extra+"\n[log]", 1)
}

// localClient connects a program on the Pi to the daemon's local endpoint.
func localClient(t *testing.T, d *proc, addr, id string) paho.Client {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if _, _, err := d.log.Wait(ctx, 0, func(e logwatch.Entry) bool { return e.Str("message") == "local MQTT endpoint listening" }); err != nil {
		t.Fatal(err)
	}
	c := paho.NewClient(paho.NewClientOptions().AddBroker("tcp://" + addr).SetClientID(id).SetAutoReconnect(false))
	if tok := c.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("local client connect: %v", tok.Error())
	}
	t.Cleanup(func() { c.Disconnect(0) })
	return c
}

// publishRange publishes m<from>..m<to-1> at QoS 1, each acknowledged before the next.
func publishRange(t *testing.T, c paho.Client, from, to int) {
	t.Helper()
	for i := from; i < to; i++ {
		tok := c.Publish(telemetry+"/temp", 1, false, fmt.Sprintf("m%04d", i))
		if !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
			t.Fatalf("local publish %d: %v", i, tok.Error())
		}
	}
}

// TestOutboxSurvivesOutageAndSIGKILL: the broker link is down; a program on the Pi publishes
// 1,000 QoS 1 messages through the local endpoint; the daemon is killed with SIGKILL halfway and
// started again; the link comes back; the cloud receives all 1,000, in order, and the duplicates
// it saw are no more than the daemon reported.
func TestOutboxSurvivesOutageAndSIGKILL(t *testing.T) {
	b := newBench(t, nil)
	cloud := b.subscribe(telemetry + "/#")
	b.mod.RefuseOpen(5) // the link to the broker cannot be opened: an outage
	listen, dir := testutil.FreeAddr(t), filepath.Join(t.TempDir(), "outbox")
	cfg := localConfig(b.mod.Path(), listen, dir)

	d1 := b.start(cfg)
	publishRange(t, localClient(t, d1, listen, "sensor-1"), 0, 500)
	if err := d1.cmd.Process.Kill(); err != nil { // SIGKILL: no clean shutdown
		t.Fatal(err)
	}
	<-d1.done

	d2 := b.start(cfg)
	publishRange(t, localClient(t, d2, listen, "sensor-2"), 500, 1000)
	b.mod.RefuseOpen(0) // the link comes back
	dups := cloud.distinctInOrder(t, 1000)
	reported := d1.log.Count("outbox_resend") + d2.log.Count("outbox_resend")
	if dups > reported {
		t.Fatalf("the cloud saw %d duplicates, the daemon reported %d possible", dups, reported)
	}
	t.Logf("1000 messages delivered in order across an outage and a SIGKILL; %d duplicates at the cloud, %d reported possible", dups, reported)
}

// TestDownlinksReachLocalClients: every downlink is also published on the local endpoint, with
// the exact bytes, and still toggles the LED.
func TestDownlinksReachLocalClients(t *testing.T) {
	b := newBench(t, nil)
	listen := testutil.FreeAddr(t)
	d := b.start(localConfig(b.mod.Path(), listen, filepath.Join(t.TempDir(), "outbox")))
	c := localClient(t, d, listen, "app")
	got := make(chan []byte, 1)
	if tok := c.Subscribe(setTopic, 1, func(_ paho.Client, m paho.Message) { got <- m.Payload() }); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatal(tok.Error())
	}
	_, i := d.wait(t, 0, "mqtt_connected")
	d.wait(t, i, "published")
	payload := "quotes \" and CRLF \r\n and OK\r\n"
	b.publish(setTopic, []byte(payload))
	select {
	case p := <-got:
		if string(p) != payload {
			t.Fatalf("local client got %q, want %q", p, payload)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("the downlink did not reach the local client")
	}
	d.wait(t, i, "downlink")
}

// distinctInOrder waits until the cloud has received n distinct messages m0000..m<n-1>, checks
// that each first arrived in that order, and returns how many duplicates it saw.
func (c *collector) distinctInOrder(t *testing.T, n int) (dups int) {
	t.Helper()
	seen := map[string]bool{}
	var order []string
	for got := 0; len(order) < n; {
		msgs := c.wait(t, got+1)
		for _, m := range msgs[got:] {
			if seen[m] {
				dups++
				continue
			}
			seen[m] = true
			order = append(order, m)
		}
		got = len(msgs)
	}
	for i, m := range order {
		if want := fmt.Sprintf("m%04d", i); m != want {
			t.Fatalf("message %d to arrive first was %q, want %q: out of order", i, m, want)
		}
	}
	return dups
}

// TestOutboxSIGKILLWhileDraining: the daemon is killed while publishes are in flight to the
// broker; after the restart every message arrives, in order, and every duplicate the cloud sees
// was reported.
func TestOutboxSIGKILLWhileDraining(t *testing.T) {
	b := newBench(t, nil)
	cloud := b.subscribe(telemetry + "/#")
	b.mod.RefuseOpen(5)
	listen, dir := testutil.FreeAddr(t), filepath.Join(t.TempDir(), "outbox")
	cfg := localConfig(b.mod.Path(), listen, dir)
	d1 := b.start(cfg)
	publishRange(t, localClient(t, d1, listen, "sensor"), 0, 300)
	b.mod.SetBrokerDelay(30 * time.Millisecond) // about 8 publishes in flight at any time
	b.mod.RefuseOpen(0)
	cloud.wait(t, 50)
	if err := d1.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	<-d1.done
	d2 := b.start(cfg)
	dups := cloud.distinctInOrder(t, 300)
	reported := d2.log.Count("outbox_resend")
	if dups > reported {
		t.Fatalf("the cloud saw %d duplicates, the daemon reported %d possible", dups, reported)
	}
	if reported == 0 {
		t.Fatal("no resend reported after a SIGKILL with publishes in flight")
	}
	t.Logf("killed mid-drain: %d duplicates at the cloud, %d reported possible", dups, reported)
}

// TestCorruptOutboxIsSetAside: a store damaged by a power cut is renamed, the daemon starts with
// a fresh one, and new messages flow.
func TestCorruptOutboxIsSetAside(t *testing.T) {
	b := newBench(t, nil)
	cloud := b.subscribe(telemetry + "/#")
	listen, dir := testutil.FreeAddr(t), t.TempDir()
	garbage := []byte(strings.Repeat("\x00\xffnot a bbolt file\n", 4096))
	if err := os.WriteFile(filepath.Join(dir, "outbox.db"), garbage, 0o600); err != nil {
		t.Fatal(err)
	}
	d := b.start(localConfig(b.mod.Path(), listen, dir))
	publishRange(t, localClient(t, d, listen, "sensor"), 0, 20)
	if dups := cloud.distinctInOrder(t, 20); dups != 0 {
		t.Errorf("%d duplicates from a fresh store", dups)
	}
	aside, err := filepath.Glob(filepath.Join(dir, "outbox.db.damaged-*"))
	if err != nil || len(aside) != 1 {
		t.Fatalf("damaged store not set aside: %v %v", aside, err)
	}
	if kept, err := os.ReadFile(aside[0]); err != nil || string(kept) != string(garbage) {
		t.Fatalf("the set-aside file does not hold the damaged bytes (%v)", err)
	}
	found := false
	for _, l := range d.log.Raw() {
		if strings.Contains(l, aside[0]) {
			found = true
		}
	}
	if !found {
		t.Errorf("no log line names %s", aside[0])
	}
}

// TestHalfSentPublishIsNeverCompleted: a gatewayd killed between AT+QMTPUBEX and its payload
// leaves the module waiting for bytes. The next gatewayd must not feed it its own commands
// (they would be published): it stays quiet until the module's edit timeout has ended the
// data mode. The dying daemon is played here by writing the command to the port by hand.
func TestHalfSentPublishIsNeverCompleted(t *testing.T) {
	b := newBench(t, nil)
	half := b.subscribe("halfsent")
	cfg := seedConfig(b.mod.Path(), "")
	d1 := b.start(cfg)
	_, i := d1.wait(t, 0, "mqtt_connected")
	d1.wait(t, i, "published")
	if err := d1.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	<-d1.done

	f, err := os.OpenFile(b.mod.Path(), os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteString("AT+QMTPUBEX=0,0,0,0,\"halfsent\",5\r"); err != nil {
		t.Fatal(err)
	}
	var seen []byte
	buf := make([]byte, 256)
	for !strings.Contains(string(seen), "> ") {
		_ = f.SetReadDeadline(time.Now().Add(5 * time.Second))
		n, err := f.Read(buf)
		if err != nil {
			t.Fatalf("waiting for the prompt: have %q: %v", seen, err)
		}
		seen = append(seen, buf[:n]...)
	}
	f.Close() // the "daemon" dies here, the payload never written

	d2 := b.start(cfg)
	_, i = d2.wait(t, 0, "mqtt_connected")
	d2.wait(t, i, "published")
	time.Sleep(500 * time.Millisecond)
	half.mu.Lock()
	got := append([]string(nil), half.msgs...)
	half.mu.Unlock()
	if len(got) != 0 {
		t.Fatalf("the half-sent publish was completed with %q", got)
	}
}
