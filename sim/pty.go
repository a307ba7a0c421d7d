package sim

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"

	"github.com/gatewayd/gatewayd/internal/rawpty"
)

// port is one plugged-in period of the emulated module: the master side the emulator reads and
// writes, and a slave descriptor the emulator keeps open so the tty (and what is buffered in it)
// outlives the host closing and reopening the port, as a USB serial node does while plugged.
type port struct {
	master *os.File // non-blocking, in the runtime poller: Close wakes a blocked Read or Write
	slave  *os.File
	tty    string // /dev/pts/N
}

// openPort allocates a pty with its slave in raw mode (no echo, no CR/LF translation, no
// signals, 8 bits, reads return as soon as a byte is there) so bytes pass exactly.
func openPort() (*port, error) {
	master, slave, err := rawpty.Open()
	if err != nil {
		return nil, err
	}
	return &port{master: master, slave: slave, tty: slave.Name()}, nil
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
