package sim

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"

	"github.com/creack/pty"
	"golang.org/x/sys/unix"
)

// port is one plugged-in period of the emulated module: the master side the emulator reads and
// writes, and a slave descriptor the emulator keeps open so the tty (and what is buffered in it)
// outlives the host closing and reopening the port, as a USB serial node does while plugged.
type port struct {
	master *os.File // non-blocking, in the runtime poller: Close wakes a blocked Read or Write
	slave  *os.File
	tty    string // /dev/pts/N
}

// openPort allocates a pty, puts the slave in raw mode (no echo, no CR/LF translation, no
// signals, 8 bits, reads return as soon as a byte is there) so bytes pass exactly.
func openPort() (*port, error) {
	master, slave, err := pty.Open()
	if err != nil {
		return nil, fmt.Errorf("open pty: %w", err)
	}
	// pty.Open leaves the master in blocking mode (it calls Fd()), and a blocking *os.File cannot
	// be woken by Close. Make a non-blocking duplicate that the runtime poller manages.
	fd, err := unix.Dup(int(master.Fd()))
	if err != nil {
		master.Close()
		slave.Close()
		return nil, fmt.Errorf("dup pty master: %w", err)
	}
	master.Close()
	unix.CloseOnExec(fd)
	if err := unix.SetNonblock(fd, true); err != nil {
		unix.Close(fd)
		slave.Close()
		return nil, fmt.Errorf("pty master non-blocking: %w", err)
	}
	p := &port{master: os.NewFile(uintptr(fd), "/dev/ptmx"), slave: slave, tty: slave.Name()}
	if err := makeRaw(slave); err != nil {
		p.close()
		return nil, fmt.Errorf("raw mode on %s: %w", p.tty, err)
	}
	return p, nil
}

// makeRaw applies cfmakeraw(3) to the tty behind f.
func makeRaw(f *os.File) error {
	rc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	var ioErr error
	err = rc.Control(func(fd uintptr) {
		t, err := unix.IoctlGetTermios(int(fd), unix.TCGETS)
		if err != nil {
			ioErr = err
			return
		}
		t.Iflag &^= unix.IGNBRK | unix.BRKINT | unix.PARMRK | unix.ISTRIP | unix.INLCR | unix.IGNCR | unix.ICRNL | unix.IXON
		t.Oflag &^= unix.OPOST
		t.Lflag &^= unix.ECHO | unix.ECHONL | unix.ICANON | unix.ISIG | unix.IEXTEN
		t.Cflag &^= unix.CSIZE | unix.PARENB
		t.Cflag |= unix.CS8
		t.Cc[unix.VMIN] = 1
		t.Cc[unix.VTIME] = 0
		ioErr = unix.IoctlSetTermios(int(fd), unix.TCSETS, t)
	})
	if err != nil {
		return err
	}
	return ioErr
}

// close closes both sides; the host's descriptors see a hang-up (reads return EOF or EIO).
func (p *port) close() {
	p.master.Close()
	p.slave.Close()
}

// publishLink points the symlink at tty, replacing an existing symlink atomically (as udev
// does). Anything at link that is not a symlink is left alone and reported.
func publishLink(link, tty string) error {
	if link == "" {
		return nil
	}
	if fi, err := os.Lstat(link); err == nil && fi.Mode()&fs.ModeSymlink == 0 {
		return fmt.Errorf("link path %s exists and is not a symlink; refusing to replace it", link)
	}
	tmp := filepath.Join(filepath.Dir(link), "."+filepath.Base(link)+".tmp"+strconv.Itoa(os.Getpid()))
	os.Remove(tmp)
	if err := os.Symlink(tty, tmp); err != nil {
		return fmt.Errorf("create symlink %s -> %s: %w", link, tty, err)
	}
	if err := os.Rename(tmp, link); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("create symlink %s -> %s: %w", link, tty, err)
	}
	return nil
}

// removeLink removes link if it still points at tty (and leaves it if someone replaced it).
func removeLink(link, tty string) error {
	if link == "" {
		return nil
	}
	target, err := os.Readlink(link)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("read symlink %s: %w", link, err)
	}
	if target != tty {
		return nil
	}
	if err := os.Remove(link); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("remove symlink %s: %w", link, err)
	}
	return nil
}
