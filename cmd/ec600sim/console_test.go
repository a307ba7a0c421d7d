package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/gatewayd/gatewayd/test/testutil"
)

// TestConsoleCommands: with -thing, "set LEDSwitch 1" sends the Aliyun set the configuration's
// [thing] describes, and the reply the device sends back is checked against the request: its id
// answers the set, a reply with an id no request had is flagged. The device here is a paho
// client standing in for gatewayd (a fake, named as one); the real daemon meets this console in
// test/e2e's TestSimThingDemo.
func TestConsoleCommands(t *testing.T) {
	dir := t.TempDir()
	link := filepath.Join(dir, "ec600-at")
	cfg := fmt.Sprintf(`
[serial]
port = %q
[mqtt.aliyun]
product_key = "a1B2c3D4e5F"
device_name = "pi-led-01"
device_secret = "s"
region = "cn-shanghai"
[thing]
led_property = "LEDSwitch"
`, link)
	cfgFile := filepath.Join(dir, "gatewayd.toml")
	if err := os.WriteFile(cfgFile, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	addr := testutil.FreeAddr(t)
	stdinR, stdinW := io.Pipe()
	stdoutR, stdoutW := io.Pipe()
	var stderr testutil.SyncBuffer
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan int, 1)
	go func() {
		done <- run(ctx, []string{"-link", link, "-listen", addr, "-thing", cfgFile}, stdinR, stdoutW, &stderr)
		stdoutW.Close()
	}()
	lines := make(chan string, 100)
	go func() {
		sc := bufio.NewScanner(stdoutR)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	expect := func(prefix string) string {
		t.Helper()
		deadline := time.After(10 * time.Second)
		for {
			select {
			case l, ok := <-lines:
				if !ok {
					t.Fatalf("stdout ended before %q; stderr:\n%s", prefix, stderr.String())
				}
				if strings.HasPrefix(l, prefix) {
					return l
				}
			case <-deadline:
				t.Fatalf("no line %q", prefix)
			}
		}
	}
	expect("ready")

	const dev = "/sys/a1B2c3D4e5F/pi-led-01/thing/service/property/"
	device := paho.NewClient(paho.NewClientOptions().AddBroker("tcp://" + addr).SetClientID("fake-device"))
	if tok := device.Connect(); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatal(tok.Error())
	}
	defer device.Disconnect(100)
	sets := make(chan string, 10)
	if tok := device.Subscribe(dev+"set", 1, func(_ paho.Client, m paho.Message) { sets <- string(m.Payload()) }); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatal(tok.Error())
	}

	fmt.Fprintln(stdinW, "set LEDSwitch 1")
	sent := expect("console: sent set LEDSwitch 1 as request ")
	var set string
	select {
	case set = <-sets:
	case <-time.After(5 * time.Second):
		t.Fatal("the set never reached the device")
	}
	if set != `{"id":"1","version":"1.0","params":{"LEDSwitch":1},"method":"thing.service.property.set"}` || !strings.Contains(sent, "request 1 ") {
		t.Fatalf("set %s (%s)", set, sent)
	}
	device.Publish(dev+"set_reply", 1, false, `{"id":"1","code":200,"data":{}}`).Wait()
	if l := expect("console: reply to 1"); l != "console: reply to 1: ok, code 200 {} — answers set LEDSwitch 1" {
		t.Errorf("%q", l)
	}
	device.Publish(dev+"set_reply", 1, false, `{"id":"9","code":460,"data":{}}`).Wait()
	if l := expect("console: reply to 9"); !strings.Contains(l, "REFUSED, code 460") || !strings.Contains(l, "no request of this console has that id") {
		t.Errorf("%q", l)
	}
	fmt.Fprintln(stdinW, "call nothing-here")
	expect("console: sent call nothing-here")
	fmt.Fprintln(stdinW, "quit")
	if c := <-done; c != 0 {
		t.Fatalf("exit %d", c)
	}
}
