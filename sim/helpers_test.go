package sim

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
	"github.com/rs/zerolog"
)

// bootURCs is what the module prints at power-up with a SIM (reference 4.1).
const bootURCs = "\r\nRDY\r\n\r\n+CFUN: 1\r\n\r\n+CPIN: READY\r\n\r\n+QUSIM: 1\r\n\r\n+QIND: SMS DONE\r\n\r\n+QIND: PB DONE\r\n"

// waitFor is how long a test waits for bytes that should come.
const waitFor = 5 * time.Second

// host is the test's side of the AT port: the symlink opened like a serial device, read and
// written with plain bytes.
type host struct {
	t   testing.TB
	f   *os.File
	buf []byte // read but not yet consumed
}

func openHost(t testing.TB, path string) *host {
	t.Helper()
	f, err := os.OpenFile(path, os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		t.Fatalf("open %s: %v", path, err)
	}
	t.Cleanup(func() { f.Close() })
	return &host{t: t, f: f}
}

func (h *host) write(s string) {
	h.t.Helper()
	if _, err := h.f.Write([]byte(s)); err != nil {
		h.t.Fatalf("write %q: %v", s, err)
	}
}

// fill reads once (until the deadline) and appends to buf; it returns the read error.
func (h *host) fill(deadline time.Time) error {
	if err := h.f.SetReadDeadline(deadline); err != nil {
		h.t.Fatalf("set deadline: %v", err)
	}
	p := make([]byte, 4096)
	n, err := h.f.Read(p)
	h.buf = append(h.buf, p[:n]...)
	return err
}

// expect reads until the next len(want) bytes are there and checks them byte for byte.
func (h *host) expect(want string) {
	h.t.Helper()
	deadline := time.Now().Add(waitFor)
	for len(h.buf) < len(want) {
		if err := h.fill(deadline); err != nil {
			h.t.Fatalf("waiting for %q: have %q: %v", want, h.buf, err)
		}
	}
	if got := string(h.buf[:len(want)]); got != want {
		h.t.Fatalf("wire mismatch\n got: %q\nwant: %q", h.buf, want)
	}
	h.buf = h.buf[len(want):]
}

// cmd writes line+CR and expects exactly reply.
func (h *host) cmd(line, reply string) {
	h.t.Helper()
	h.write(line + "\r")
	h.expect(reply)
}

// until reads until sub has arrived and returns everything up to and including it.
func (h *host) until(sub string) string {
	h.t.Helper()
	deadline := time.Now().Add(waitFor)
	for {
		if i := bytes.Index(h.buf, []byte(sub)); i >= 0 {
			out := string(h.buf[:i+len(sub)])
			h.buf = h.buf[i+len(sub):]
			return out
		}
		if err := h.fill(deadline); err != nil {
			h.t.Fatalf("waiting for %q: have %q: %v", sub, h.buf, err)
		}
	}
}

// quiet checks that nothing arrives for d.
func (h *host) quiet(d time.Duration) {
	h.t.Helper()
	if len(h.buf) > 0 {
		h.t.Fatalf("unexpected bytes %q", h.buf)
	}
	err := h.fill(time.Now().Add(d))
	if len(h.buf) > 0 {
		h.t.Fatalf("unexpected bytes %q", h.buf)
	}
	if !errors.Is(err, os.ErrDeadlineExceeded) {
		h.t.Fatalf("read during quiet period: %v", err)
	}
}

// testLogger logs to the test output when -v is given and SIM_LOG is set.
func testLogger(t testing.TB) zerolog.Logger {
	if os.Getenv("SIM_LOG") == "" {
		return zerolog.Nop()
	}
	return zerolog.New(zerolog.NewTestWriter(t)).Level(zerolog.TraceLevel)
}

// rig is a module on an embedded broker, with the host side opened and the boot URCs read.
type rig struct {
	t      testing.TB
	m      *Module
	b      *Broker
	h      *host
	link   string
	broker string
}

func newRig(t testing.TB, cfg Config, bopts ...BrokerOption) *rig {
	t.Helper()
	r := &rig{t: t}
	if cfg.Broker == "" {
		b, err := NewBroker("127.0.0.1:0", append([]BrokerOption{WithBrokerLogger(testLogger(t))}, bopts...)...)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { b.Close() })
		r.b = b
		cfg.Broker = b.Addr()
	}
	r.broker = cfg.Broker
	if cfg.Link == "" {
		cfg.Link = filepath.Join(t.TempDir(), "ec600-at")
	}
	r.link = cfg.Link
	cfg.Logger = testLogger(t)
	m, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	r.m = m
	r.h = openHost(t, cfg.Link)
	r.h.expect(bootURCs)
	return r
}

// connect turns echo off and brings client 0 to connected, with the given recv/mode.
func (r *rig) connect(clientID string) {
	h := r.h
	h.t.Helper()
	h.cmd("ATE0", "ATE0\r\r\nOK\r\n")
	h.cmd(`AT+QMTCFG="version",0,4`, "\r\nOK\r\n")
	h.cmd(`AT+QMTOPEN=0,"broker.example.com",1883`, "\r\nOK\r\n")
	h.expect("\r\n+QMTOPEN: 0,0\r\n")
	h.cmd(`AT+QMTCONN=0,"`+clientID+`"`, "\r\nOK\r\n")
	h.expect("\r\n+QMTCONN: 0,0,0\r\n")
}

// peer is a paho client on the broker: the cloud side of a round trip.
type peer struct {
	c    mqtt.Client
	msgs chan mqtt.Message
}

func newPeer(t testing.TB, addr, id string) *peer {
	t.Helper()
	p := &peer{msgs: make(chan mqtt.Message, 64)}
	opts := mqtt.NewClientOptions().AddBroker("tcp://" + addr).SetClientID(id).
		SetProtocolVersion(4).SetAutoReconnect(false).SetOrderMatters(true).
		SetDefaultPublishHandler(func(_ mqtt.Client, m mqtt.Message) { p.msgs <- m })
	p.c = mqtt.NewClient(opts)
	if tok := p.c.Connect(); !tok.WaitTimeout(waitFor) || tok.Error() != nil {
		t.Fatalf("peer connect: %v", tok.Error())
	}
	t.Cleanup(func() { p.c.Disconnect(100) })
	return p
}

func (p *peer) subscribe(t testing.TB, topic string, qos byte) {
	t.Helper()
	if tok := p.c.Subscribe(topic, qos, nil); !tok.WaitTimeout(waitFor) || tok.Error() != nil {
		t.Fatalf("peer subscribe: %v", tok.Error())
	}
}

func (p *peer) publish(t testing.TB, topic string, qos byte, payload []byte) {
	t.Helper()
	if tok := p.c.Publish(topic, qos, false, payload); !tok.WaitTimeout(waitFor) || tok.Error() != nil {
		t.Fatalf("peer publish: %v", tok.Error())
	}
}

func (p *peer) next(t testing.TB) mqtt.Message {
	t.Helper()
	select {
	case m := <-p.msgs:
		return m
	case <-time.After(waitFor):
		t.Fatal("peer received nothing")
		return nil
	}
}

func itoa(n int) string { return strconv.Itoa(n) }
