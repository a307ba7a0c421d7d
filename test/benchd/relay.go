package benchd

import (
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"time"

	"github.com/gatewayd/gatewayd/internal/rawpty"
)

// Relay is a pseudo-terminal that the daemon opens as its AT port (Path). Bytes the daemon writes
// go to the upstream port; bytes the upstream writes go to the daemon; Inject writes extra module
// bytes to the daemon directly. Writes towards the daemon never interleave: each is one write(2)
// under one lock.
type Relay struct {
	master *os.File // the daemon-facing master, non-blocking and in the runtime poller
	slave  *os.File // held open so the tty and its settings outlive the daemon reopening it
	path   string
	up     io.ReadWriteCloser

	wmu  sync.Mutex // serialises writes to master
	wg   sync.WaitGroup
	once sync.Once
}

// NewRelay allocates a pty in raw mode and starts copying between it and up. Close stops it and
// closes up.
func NewRelay(up io.ReadWriteCloser) (*Relay, error) {
	m, s, err := rawpty.Open()
	if err != nil {
		return nil, fmt.Errorf("relay: %w", err)
	}
	r := &Relay{master: m, slave: s, path: s.Name(), up: up}
	r.wg.Add(2)
	go r.toUpstream()
	go r.toDaemon()
	return r, nil
}

// Path is the pty slave (/dev/pts/N) the daemon opens.
func (r *Relay) Path() string { return r.path }

// Inject writes b to the daemon as module output, in one write(2), and returns the time taken just
// before the write started: an upper bound on when its last byte was written (the write call
// itself, a few microseconds, is included).
func (r *Relay) Inject(b []byte) (time.Time, error) {
	r.wmu.Lock()
	defer r.wmu.Unlock()
	t := time.Now()
	if _, err := r.master.Write(b); err != nil {
		return t, fmt.Errorf("relay: write to the daemon: %w", err)
	}
	return t, nil
}

// Close stops the copying and closes the pty and the upstream port.
func (r *Relay) Close() error {
	var err error
	r.once.Do(func() {
		err = errors.Join(r.master.Close(), r.up.Close(), r.slave.Close())
		r.wg.Wait()
	})
	return err
}

// toUpstream copies the daemon's commands to the upstream port.
func (r *Relay) toUpstream() {
	defer r.wg.Done()
	buf := make([]byte, 4096)
	for {
		n, err := r.master.Read(buf)
		if n > 0 {
			if _, werr := r.up.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			// The relay holds the slave open itself, so the daemon closing its port gives no EIO
			// here; an error means the relay was closed.
			return
		}
	}
}

// toDaemon copies the upstream's output to the daemon.
func (r *Relay) toDaemon() {
	defer r.wg.Done()
	buf := make([]byte, 4096)
	for {
		n, err := r.up.Read(buf)
		if n > 0 {
			r.wmu.Lock()
			_, werr := r.master.Write(buf[:n])
			r.wmu.Unlock()
			if werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}
