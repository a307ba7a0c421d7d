// Package port opens the EC600's AT port, either at a configured path or, with "auto", by
// finding the Quectel EC600 AT interface among the USB serial ports (go.bug.st/serial's
// enumerator). The port is a non-blocking *os.File set up as a raw tty with x/sys/unix, so that a
// read waits in the Go runtime's poller (epoll) rather than in a thread blocked in select(2):
// an idle daemon then lets the runtime sleep (docs/benchmarks.md, idle wakeups).
package port

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"go.bug.st/serial/enumerator"
	"golang.org/x/sys/unix"
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

// Open opens path at baud, 8N1, raw, without a read timeout: a blocked Read ends when the port
// is closed or fails, which is what the AT engine relies on. No other process may open the port
// while it is open (TIOCEXCL), as with go.bug.st/serial, which gatewayd used before.
func Open(ctx context.Context, path string, baud int) (io.ReadWriteCloser, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	fd, err := unix.Open(path, unix.O_RDWR|unix.O_NOCTTY|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	switch {
	case errors.Is(err, unix.EACCES):
		return nil, fmt.Errorf("open %s: permission denied (is the user in the dialout group?): %w", path, err)
	case errors.Is(err, unix.EBUSY):
		return nil, fmt.Errorf("open %s: busy (is ModemManager or another program holding it? see deploy/udev): %w", path, err)
	case err != nil:
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	if err := setRaw(fd, baud); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("open %s: not a serial port: %w", path, err)
	}
	if err := unix.IoctlSetInt(fd, unix.TIOCEXCL, 0); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	// A non-blocking descriptor: os.NewFile makes it a File whose reads wait in the poller.
	return os.NewFile(uintptr(fd), path), nil
}

// speeds are the termios speeds of the line rates serial.baud allows.
var speeds = map[int]uint32{
	4800: unix.B4800, 9600: unix.B9600, 19200: unix.B19200, 38400: unix.B38400, 57600: unix.B57600,
	115200: unix.B115200, 230400: unix.B230400, 460800: unix.B460800, 921600: unix.B921600,
}

// setRaw makes fd a raw 8N1 tty at baud (what cfmakeraw does, as go.bug.st/serial did): no echo,
// no line editing or signals, no translation of bytes in or out, no flow control; a read returns
// as soon as one byte is there.
func setRaw(fd, baud int) error {
	speed, ok := speeds[baud]
	if !ok {
		return fmt.Errorf("line rate %d not supported", baud)
	}
	t, err := unix.IoctlGetTermios(fd, unix.TCGETS)
	if err != nil {
		return err
	}
	t.Iflag &^= unix.IGNBRK | unix.BRKINT | unix.PARMRK | unix.ISTRIP | unix.INLCR | unix.IGNCR | unix.ICRNL |
		unix.IXON | unix.IXOFF | unix.IXANY | unix.INPCK | unix.IGNPAR | unix.IUCLC
	t.Oflag &^= unix.OPOST
	t.Lflag &^= unix.ECHO | unix.ECHONL | unix.ECHOE | unix.ECHOK | unix.ECHOCTL | unix.ECHOPRT | unix.ECHOKE |
		unix.ICANON | unix.ISIG | unix.IEXTEN
	t.Cflag &^= unix.CSIZE | unix.PARENB | unix.CSTOPB | unix.CRTSCTS | unix.CBAUD
	t.Cflag |= unix.CS8 | unix.CREAD | unix.CLOCAL | speed
	t.Ispeed, t.Ospeed = speed, speed
	t.Cc[unix.VMIN], t.Cc[unix.VTIME] = 1, 0
	return unix.IoctlSetTermios(fd, unix.TCSETS, t)
}
