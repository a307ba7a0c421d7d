package benchd

import (
	"bytes"
	"context"
	"net"

	"strings"
	"testing"
	"time"

	"github.com/gatewayd/gatewayd/internal/logging"
	"github.com/gatewayd/gatewayd/internal/port"
)

// The downlink bytes are the reference's end-to-end example (ec600-at.md, "End-to-end downlink"),
// byte for byte.
func TestDownlinkIsTheModulesBytes(t *testing.T) {
	want := `\r\n+QMTRECV: 0,0,"/sys/a1B2c3D4e5F/pi-led-01/thing/service/property/set",87,"{"method":"thing.service.property.set","id":"123","params":{"LED":0},"version":"1.0.0"}"\r\n`
	want = strings.ReplaceAll(want, `\r\n`, "\r\n")
	got := Downlink(0, Topic, []byte(`{"method":"thing.service.property.set","id":"123","params":{"LED":0},"version":"1.0.0"}`))
	if string(got) != want {
		t.Fatalf("Downlink:\n got %q\nwant %q", got, want)
	}
}

func TestStreamMessagesAreWholeAndDistinct(t *testing.T) {
	s, err := NewStream(benchPayload, 32, 128)
	if err != nil {
		t.Fatal(err)
	}
	if m := s.Message(5); !bytes.Equal(m, Downlink(1005, Topic, benchPayload)) {
		t.Fatalf("message 5 is %q", m)
	}
	if !bytes.Equal(s.Message(RingSize+5), s.Message(5)) {
		t.Fatal("the ring does not wrap")
	}
	if _, err := NewStream(benchPayload, 3, 128); err == nil {
		t.Fatal("a batch that does not divide the ring was accepted")
	}
}

func TestEventSinkCountsAndWakes(t *testing.T) {
	s := NewEventSink()
	woke := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		woke <- s.WaitCount(ctx, "led", 2)
	}()
	s.Write([]byte(`{"level":"info","event":"led","on":true}` + "\n" + `{"level":"info","event":"downlink"}` + "\n"))
	s.Write([]byte(`{"level":"info","message":"no event"}`))
	s.Write([]byte(`{"level":"info","event":"led","on":false}`))
	if err := <-woke; err != nil {
		t.Fatal(err)
	}
	if s.Count("led") != 2 || s.Count("downlink") != 1 || s.Count("module") != 0 {
		t.Fatalf("counts led %d downlink %d module %d, want 2 1 0", s.Count("led"), s.Count("downlink"), s.Count("module"))
	}
	if lines, _ := s.Totals(); lines != 4 {
		t.Fatalf("%d lines, want 4", lines)
	}
	if tail := s.Tail(); !strings.HasPrefix(tail, `{"level":"info","event":"led","on":true}`) || strings.Count(tail, "\n") != 4 {
		t.Fatalf("tail %q", tail)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Millisecond)
	defer cancel()
	if err := s.WaitCount(ctx, "led", 3); err == nil {
		t.Fatal("WaitCount returned without the third led line")
	}
}

func TestMeasuringLEDCountsToggles(t *testing.T) {
	l := NewMeasuringLED()
	if err := l.Set(true); err != nil {
		t.Fatal(err)
	}
	before := time.Now()
	go func() {
		for range 3 {
			_, _ = l.Toggle()
		}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	n, last, err := l.WaitToggles(ctx, 3)
	if err != nil || n != 3 || last.Before(before) {
		t.Fatalf("WaitToggles: %d %v %v, want 3 toggles after %v", n, last, err, before)
	}
	if l.Sets() != 1 {
		t.Fatalf("%d sets, want 1", l.Sets())
	}
	if on, _ := l.Toggle(); !on {
		t.Fatal("off after Set(true) and four toggles")
	}
}

func TestReadProcSelf(t *testing.T) {
	a, err := ReadProc("self")
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 8<<20) // touched, so RSS must cover it
	for i := range buf {
		buf[i] = byte(i)
	}
	b, err := ReadProc("self")
	if err != nil {
		t.Fatal(err)
	}
	if b.CPU <= a.CPU || a.Threads == 0 || b.HWM < 8<<20 || b.RSS > b.HWM {
		t.Fatalf("samples %+v then %+v", a, b)
	}
	// A sleep is a voluntary context switch of this thread, which the sum over tasks must see.
	time.Sleep(10 * time.Millisecond)
	c, err := ReadProc("self")
	if err != nil {
		t.Fatal(err)
	}
	if a.Switches <= 0 || c.Switches <= b.Switches {
		t.Fatalf("context switches %d, %d, then %d after a sleep", a.Switches, b.Switches, c.Switches)
	}
	if _, err := ReadProc("0"); err == nil {
		t.Fatal("ReadProc of pid 0 succeeded")
	}
	h, err := ReadHostCPU()
	if err != nil || h.Busy <= 0 || h.Total <= h.Busy {
		t.Fatalf("host CPU %+v, %v", h, err)
	}
	_ = buf[len(buf)-1]
}

// The relay passes bytes both ways and Inject reaches the daemon's side.
func TestRelayPassesBytesBothWays(t *testing.T) {
	up, mod := net.Pipe()
	r, err := NewRelay(up)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	defer mod.Close()
	p, err := port.Open(context.Background(), r.Path(), 115200)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()

	readN := func(rd interface{ Read([]byte) (int, error) }, n int) string {
		t.Helper()
		var got []byte
		buf := make([]byte, 64)
		for len(got) < n {
			k, err := rd.Read(buf)
			if err != nil {
				t.Fatalf("read after %q: %v", got, err)
			}
			got = append(got, buf[:k]...)
		}
		return string(got)
	}
	if _, err := p.Write([]byte("AT\r")); err != nil {
		t.Fatal(err)
	}
	if got := readN(mod, 3); got != "AT\r" {
		t.Fatalf("module got %q", got)
	}
	go mod.Write([]byte("\r\nOK\r\n"))
	if got := readN(p, 6); got != "\r\nOK\r\n" {
		t.Fatalf("daemon got %q", got)
	}
	if _, err := r.Inject([]byte("\r\nRDY\r\n")); err != nil {
		t.Fatal(err)
	}
	if got := readN(p, 7); got != "\r\nRDY\r\n" {
		t.Fatalf("daemon got %q after Inject", got)
	}
}

// The in-process rig comes up against the emulator, and an injected downlink is logged with its
// topic and payload and toggles the LED.
func TestRigDownlinkIsLoggedAndToggles(t *testing.T) {
	r, err := Start(context.Background(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := r.Close(); err != nil {
			t.Error(err)
		}
	}()
	if r.LED.Sets() != 2 {
		t.Errorf("%d LED sets after bring-up, want 2 (power-up, network ready)", r.LED.Sets())
	}
	if _, err := r.Relay.Inject(Downlink(7, Topic, benchPayload)); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, _, err := r.LED.WaitToggles(ctx, 1); err != nil {
		t.Fatalf("%v; log:\n%s", err, r.Sink.Tail())
	}
	if err := r.Sink.WaitCount(ctx, logging.EventDownlink, 1); err != nil {
		t.Fatal(err)
	}
	tail := r.Sink.Tail()
	want := `"event":"downlink","topic":"` + Topic + `","bytes":100,"msgid":7,"payload":"{\"method\"`
	if !strings.Contains(tail, want) {
		t.Fatalf("no %s in the log:\n%s", want, tail)
	}
}

func TestEventSinkKeepsTheStampedEventsTime(t *testing.T) {
	s := NewEventSink()
	s.Stamp("led")
	s.Write([]byte(`{"level":"info","event":"led","on":true,"time":"2026-11-27T00:45:30.123456Z"}`))
	s.Write([]byte(`{"level":"info","event":"downlink","time":"2026-11-27T00:45:31.000000Z"}`))
	got, bad := s.LastStamp()
	if want := time.Date(2026, 11, 27, 0, 45, 30, 123456000, time.UTC); !got.Equal(want) || bad != 0 {
		t.Fatalf("LastStamp %v (%d bad), want %v", got, bad, want)
	}
	s.Write([]byte(`{"level":"info","event":"led","time":"yesterday"}`))
	if _, bad := s.LastStamp(); bad != 1 {
		t.Fatalf("%d bad time fields, want 1", bad)
	}
}
