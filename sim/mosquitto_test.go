package sim

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/gatewayd/gatewayd/test/testutil"
)

const mosquittoBin = "/usr/sbin/mosquitto"

// startMosquitto runs a private mosquitto with two loopback listeners on free ports: open (anonymous
// clients allowed) and closed (anonymous clients refused by the broker itself).
func startMosquitto(t *testing.T) (open, closed string) {
	t.Helper()
	if _, err := os.Stat(mosquittoBin); err != nil {
		t.Skipf("%s not found: install Debian's mosquitto (apt-get install mosquitto) to run the tests against it", mosquittoBin)
	}
	open, closed = testutil.FreeAddr(t), testutil.FreeAddr(t)
	dir := t.TempDir()
	conf := filepath.Join(dir, "mosquitto.conf")
	_, openPort, _ := net.SplitHostPort(open)
	_, closedPort, _ := net.SplitHostPort(closed)
	text := fmt.Sprintf("per_listener_settings true\npersistence false\nlog_dest stderr\n"+
		"listener %s 127.0.0.1\nallow_anonymous true\n"+
		"listener %s 127.0.0.1\nallow_anonymous false\n", openPort, closedPort)
	if err := os.WriteFile(conf, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	var log bytes.Buffer
	cmd := exec.Command(mosquittoBin, "-c", conf)
	cmd.Stdout, cmd.Stderr = &log, &log
	if err := cmd.Start(); err != nil {
		t.Fatalf("start mosquitto: %v", err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-done
		if t.Failed() {
			t.Logf("mosquitto log:\n%s", log.String())
		}
	})
	deadline := time.Now().Add(waitFor)
	for _, a := range []string{open, closed} {
		for {
			c, err := net.Dial("tcp", a)
			if err == nil {
				c.Close()
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("mosquitto does not listen on %s: %v\n%s", a, err, log.String())
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	return open, closed
}

func TestAgainstMosquitto(t *testing.T) {
	open, closed := startMosquitto(t)

	t.Run("round trip", func(t *testing.T) {
		r := newRig(t, Config{Broker: open})
		r.connect("emu-mosq")
		h := r.h
		h.cmd(`AT+QMTCFG="recv/mode",0,0,1`, "\r\nOK\r\n")
		h.cmd(`AT+QMTSUB=0,1,"down/#",2`, "\r\nOK\r\n")
		h.expect("\r\n+QMTSUB: 0,1,0,2\r\n")
		cloud := newPeer(t, open, "cloud-mosq")
		cloud.subscribe(t, "up", 2)
		up := []byte("bin\x00\r\n\"q\"\xff")
		h.cmd(`AT+QMTPUBEX=0,9,2,0,"up",`+itoa(len(up)), "\r\n> ")
		h.write(string(up))
		h.expect("\r\nOK\r\n\r\n+QMTPUBEX: 0,9,0\r\n")
		if m := cloud.next(t); !bytes.Equal(m.Payload(), up) {
			t.Fatalf("cloud got %q", m.Payload())
		}
		down := []byte("{\"LED\":0}\r\n")
		cloud.publish(t, "down/led", 0, down)
		h.expect("\r\n+QMTRECV: 0,0,\"down/led\"," + itoa(len(down)) + ",\"" + string(down) + "\"\r\n")
		if err := r.m.DropLink(); err != nil {
			t.Fatal(err)
		}
		h.expect("\r\n+QMTSTAT: 0,1\r\n")
	})

	t.Run("broker refuses anonymous", func(t *testing.T) {
		r := newRig(t, Config{Broker: closed})
		h := r.h
		h.cmd("ATE0", "ATE0\r\r\nOK\r\n")
		h.cmd(`AT+QMTOPEN=0,"h",1883`, "\r\nOK\r\n")
		h.expect("\r\n+QMTOPEN: 0,0\r\n")
		h.cmd(`AT+QMTCONN=0,"anon"`, "\r\nOK\r\n")
		h.expect("\r\n+QMTCONN: 0,0,5\r\n")
	})

	t.Run("refuse connect fault", func(t *testing.T) {
		r := newRig(t, Config{Broker: open})
		if err := r.m.RefuseConnect(4); err != nil {
			t.Fatal(err)
		}
		h := r.h
		h.cmd("ATE0", "ATE0\r\r\nOK\r\n")
		h.cmd(`AT+QMTOPEN=0,"h",1883`, "\r\nOK\r\n")
		h.expect("\r\n+QMTOPEN: 0,0\r\n")
		h.cmd(`AT+QMTCONN=0,"x"`, "\r\nOK\r\n")
		h.expect("\r\n+QMTCONN: 0,0,4\r\n")
	})
}
