package port

import (
	"context"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/creack/pty"
	"go.bug.st/serial/enumerator"
)

func TestCandidatesPickTheATInterface(t *testing.T) {
	ports := []*enumerator.PortDetails{
		{Name: "/dev/ttyUSB0", IsUSB: true, VID: "2c7c", PID: "6002"}, // DIAG, interface 02
		{Name: "/dev/ttyUSB1", IsUSB: true, VID: "2c7c", PID: "6002"}, // AT, interface 03
		{Name: "/dev/ttyUSB2", IsUSB: true, VID: "2c7c", PID: "6002"}, // modem, interface 04
		{Name: "/dev/ttyUSB3", IsUSB: true, VID: "2C7C", PID: "0901"}, // EC600U AT, interface 02
		{Name: "/dev/ttyUSB4", IsUSB: true, VID: "2c7c", PID: "0125"}, // an EC25: not an EC600
		{Name: "/dev/ttyACM0", IsUSB: true, VID: "2341", PID: "0043"}, // an Arduino
		{Name: "/dev/ttyAMA0"}, // the Pi's UART
	}
	iface := map[string]string{"/dev/ttyUSB0": "02", "/dev/ttyUSB1": "03", "/dev/ttyUSB2": "04", "/dev/ttyUSB3": "02", "/dev/ttyUSB4": "02"}
	got := candidates(ports, func(dev string) string { return iface[dev] })
	want := []Candidate{
		{Path: "/dev/ttyUSB1", PID: "6002", Interface: "03"},
		{Path: "/dev/ttyUSB3", PID: "0901", Interface: "02"},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("candidates = %+v, want %+v", got, want)
	}
}

func TestCandidatesWithoutSysfsKeepEveryEC600Port(t *testing.T) {
	ports := []*enumerator.PortDetails{{Name: "/dev/ttyUSB0", IsUSB: true, VID: "2c7c", PID: "6002"}}
	if got := candidates(ports, func(string) string { return "" }); len(got) != 1 {
		t.Fatalf("with the interface unknown, the port must stay a candidate (the AT probe decides): %+v", got)
	}
}

func TestOpenMissingPortSaysWhich(t *testing.T) {
	path := filepath.Join(t.TempDir(), "ec600-at")
	_, err := Open(context.Background(), path, 115200)
	if err == nil {
		t.Fatal("opened a port that does not exist")
	}
	if !strings.Contains(err.Error(), path) {
		t.Fatalf("error %q does not name %s", err, path)
	}
}

// A pty stands in for the module's tty: bytes go through unchanged both ways (raw: no echo, no
// CR/LF translation), and Close ends a Read that is waiting.
func TestOpenIsRawAndCloseEndsARead(t *testing.T) {
	ptmx, tty, err := pty.Open()
	if err != nil {
		t.Skipf("no pty: %v", err)
	}
	defer ptmx.Close()
	name := tty.Name()
	tty.Close()
	p, err := Open(context.Background(), name, 115200)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ptmx.Write([]byte("\r\nOK\r\n")); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 64)
	n, err := p.Read(buf)
	if err != nil || string(buf[:n]) != "\r\nOK\r\n" {
		t.Fatalf("read %q, %v; want the bytes as sent", buf[:n], err)
	}
	if _, err := p.Write([]byte("AT\r")); err != nil {
		t.Fatal(err)
	}
	n, err = ptmx.Read(buf)
	if err != nil || string(buf[:n]) != "AT\r" {
		t.Fatalf("the module side read %q, %v; want AT\\r", buf[:n], err)
	}
	done := make(chan error, 1)
	go func() {
		_, err := p.Read(buf)
		done <- err
	}()
	time.Sleep(50 * time.Millisecond) // let the Read wait
	p.Close()
	select {
	case err := <-done:
		if err == nil {
			t.Fatal("a Read ended by Close returned no error")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Close did not end the waiting Read")
	}
}

// A line rate the module cannot use is refused, naming the port.
func TestOpenRefusesAnUnknownLineRate(t *testing.T) {
	ptmx, tty, err := pty.Open()
	if err != nil {
		t.Skipf("no pty: %v", err)
	}
	defer ptmx.Close()
	defer tty.Close()
	if _, err := Open(context.Background(), tty.Name(), 12345); err == nil || !strings.Contains(err.Error(), tty.Name()) {
		t.Fatalf("Open at 12345 baud: %v", err)
	}
}
