// Package unixsock opens the daemon's unix-socket listeners — the control socket and the local
// MQTT endpoint's socket — in one way: a stale socket file that a process which died left
// behind is replaced, while a live socket (another gatewayd answering on it) or a file of any
// other kind is never touched.
package unixsock

import (
	"errors"
	"fmt"
	"net"
	"os"
	"time"
)

// dialTimeout bounds the probe of an existing socket file: a live socket answers at once, and
// one whose backlog is full must not hold up the daemon's start.
const dialTimeout = time.Second

// ErrInUse is returned by Listen when a process answers on the socket at the path.
var ErrInUse = errors.New("in use by another process (another gatewayd?)")

// ErrNotSocket is returned by Listen when a file that is not a socket is at the path.
var ErrNotSocket = errors.New("a file that is not a socket is in the way")

// Listen listens on a unix socket at path whose file has mode perm (os.Chmod: not subject to
// the umask). A socket file already at path that nobody answers on is removed first; a live
// socket there fails with ErrInUse and any other kind of file with ErrNotSocket. The directory
// must exist. The errors name path.
func Listen(path string, perm os.FileMode) (net.Listener, error) {
	if err := clearStale(path); err != nil {
		return nil, err
	}
	l, err := net.Listen("unix", path)
	if err != nil {
		return nil, err
	}
	if err := os.Chmod(path, perm); err != nil {
		l.Close()
		return nil, err
	}
	return l, nil
}

// clearStale removes a socket file at path that no process answers on.
func clearStale(path string) error {
	fi, err := os.Lstat(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	if fi.Mode()&os.ModeSocket == 0 {
		return fmt.Errorf("socket %s: %w", path, ErrNotSocket)
	}
	if c, err := net.DialTimeout("unix", path, dialTimeout); err == nil {
		c.Close()
		return fmt.Errorf("socket %s is %w", path, ErrInUse)
	}
	if err := os.Remove(path); err != nil {
		return fmt.Errorf("removing the stale socket %s: %w", path, err)
	}
	return nil
}
