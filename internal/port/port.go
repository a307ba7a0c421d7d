// Package port opens the EC600's AT port with go.bug.st/serial, either at a configured path or,
// with "auto", by finding the Quectel EC600 AT interface among the USB serial ports.
package port

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"go.bug.st/serial"
	"go.bug.st/serial/enumerator"
)

// Auto is the port name that asks for the EC600 to be found by its USB identity.
const Auto = "auto"

// QuectelVID is Quectel's USB vendor id.
const QuectelVID = "2C7C"

// atInterface maps the EC600 USB product ids to the interface number of their AT port
// (reference section 6): ASR standard firmware 6002 and QuecPython 6001 on interface 3,
// Unisoc EC600U 0901 on interface 2.
var atInterface = map[string]string{
	"6002": "03",
	"6001": "03",
	"0901": "02",
}

// Candidate is a serial port that belongs to an EC600 AT interface.
type Candidate struct {
	Path      string // /dev/ttyUSB1
	PID       string // USB product id, upper-case hex
	Interface string // USB interface number, two hex digits
	Serial    string // USB serial number, if any
}

// ErrNotFound says no attached USB device looks like an EC600 AT port.
var ErrNotFound = errors.New("no Quectel EC600 AT port found (USB 2c7c:6002/6001 interface 3, 2c7c:0901 interface 2)")

// Find lists the serial ports that are an EC600's AT interface, by USB vendor/product id and the
// interface number read from sysfs.
func Find() ([]Candidate, error) {
	ports, err := enumerator.GetDetailedPortsList()
	if err != nil {
		return nil, fmt.Errorf("list serial ports: %w", err)
	}
	out := candidates(ports, interfaceNumber)
	if len(out) == 0 {
		return nil, ErrNotFound
	}
	return out, nil
}

// candidates picks the EC600 AT ports out of ports; ifaceOf reads a port's USB interface number.
func candidates(ports []*enumerator.PortDetails, ifaceOf func(dev string) string) []Candidate {
	var out []Candidate
	for _, p := range ports {
		if !p.IsUSB || !strings.EqualFold(p.VID, QuectelVID) {
			continue
		}
		pid := strings.ToUpper(p.PID)
		want, ok := atInterface[pid]
		if !ok {
			continue
		}
		iface := ifaceOf(p.Name)
		if iface != "" && iface != want {
			continue
		}
		out = append(out, Candidate{Path: p.Name, PID: pid, Interface: iface, Serial: p.SerialNumber})
	}
	return out
}

// interfaceNumber reads the USB interface number of a tty from sysfs, or "" when unknown.
func interfaceNumber(dev string) string {
	base := filepath.Base(dev)
	b, err := os.ReadFile(filepath.Join("/sys/class/tty", base, "device", "..", "bInterfaceNumber"))
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}

// Open opens path at baud, 8N1, without a read timeout: a blocked Read ends when the port is
// closed or fails, which is what the AT engine relies on.
func Open(ctx context.Context, path string, baud int) (io.ReadWriteCloser, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	p, err := serial.Open(path, &serial.Mode{BaudRate: baud, DataBits: 8, Parity: serial.NoParity, StopBits: serial.OneStopBit})
	if err != nil {
		var pe *serial.PortError
		if errors.As(err, &pe) && pe.Code() == serial.PermissionDenied {
			return nil, fmt.Errorf("open %s: permission denied (is the user in the dialout group?): %w", path, err)
		}
		if errors.As(err, &pe) && pe.Code() == serial.PortBusy {
			return nil, fmt.Errorf("open %s: busy (is ModemManager or another program holding it? see deploy/udev): %w", path, err)
		}
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	return p, nil
}
