package daemon

import (
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/gatewayd/gatewayd/internal/backoff"
	"github.com/gatewayd/gatewayd/internal/config"
	"github.com/gatewayd/gatewayd/internal/local"
	"github.com/gatewayd/gatewayd/internal/logging"
	"github.com/gatewayd/gatewayd/test/testutil"
)

// waitFor polls cond for up to 10 s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); !cond(); time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

func answers(path string) bool {
	c, err := net.Dial("unix", path)
	if err != nil {
		return false
	}
	c.Close()
	return true
}

// When the supervisor returns a fault no retry mends while the daemon's ctx lives, every other
// task stops and wait returns the fault. (Before the tasks were one group, RunWith waited for
// the control socket, which only the daemon's ctx stopped: a fatal error hung the daemon.)
func TestSupervisorFaultStopsEveryTask(t *testing.T) {
	path := filepath.Join(t.TempDir(), "gatewayd.sock")
	cfg := &config.Config{Control: config.Control{Socket: path}}
	p, ok := controlPart(cfg, controlHandler{}, zerolog.Nop())
	if !ok {
		t.Fatal("no control part for a configured socket")
	}
	tk := newTasks(context.Background())
	tk.background(func(ctx context.Context) { keep(ctx, p, restartPolicy, zerolog.Nop()) })
	waitFor(t, "the control socket", func() bool { return answers(path) })
	fault := errors.New("credentials: no key")
	tk.essential(func(context.Context) error { return fault })
	done := make(chan error, 1)
	go func() { done <- tk.wait() }()
	select {
	case err := <-done:
		if !errors.Is(err, fault) {
			t.Errorf("wait = %v, want the supervisor's %v", err, fault)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the tasks did not end after the supervisor returned its fault")
	}
	if _, err := os.Lstat(path); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the control socket file is still there after the tasks ended: %v", err)
	}
}

// A local endpoint that fails is logged in words and ends nothing: the session goes on.
func TestLocalEndpointFailureLeavesTheSessionRunning(t *testing.T) {
	ep, err := local.New(local.Config{Listen: "127.0.0.1:0"}, noOutbox{errors.New("none")}, nil, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	var lb testutil.SyncBuffer
	log := zerolog.New(&lb)
	tk := newTasks(context.Background())
	session := make(chan struct{})
	tk.essential(func(ctx context.Context) error {
		close(session)
		<-ctx.Done()
		return nil
	})
	<-session
	// Run can be called once: of two tasks running the same endpoint, whichever starts second
	// is refused at once, a real failure of the endpoint's task.
	tk.background(func(ctx context.Context) { runLocal(ctx, ep, log) })
	tk.background(func(ctx context.Context) { runLocal(ctx, ep, log) })
	waitFor(t, "the local endpoint's failure in the log", func() bool {
		return strings.Contains(lb.String(), `"event":"`+logging.EventLocalUnavailable+`"`)
	})
	if err := tk.ctx.Err(); err != nil {
		t.Errorf("the local endpoint's failure ended the group: %v", err)
	}
	if !strings.Contains(lb.String(), "the cellular session goes on") {
		t.Errorf("the log does not say what the failure costs: %s", lb.String())
	}
	tk.cancel()
	if err := tk.wait(); err != nil {
		t.Errorf("wait = %v", err)
	}
}

// A part that fails while serving is logged and opened again after the back-off; one that
// cannot be opened at start is logged once and left out.
func TestPartIsOpenedAgainAfterAFailureButNotAfterAFailedStart(t *testing.T) {
	var lb testutil.SyncBuffer
	log := zerolog.New(&lb)
	fast := backoff.Policy{Initial: 10 * time.Millisecond, Max: 20 * time.Millisecond, Factor: 2}
	var opens atomic.Int32
	lns := make(chan net.Listener, 4)
	p := part{name: "test listener", field: "listen", addr: "127.0.0.1:0", event: "test_unavailable", cannotOpen: "cannot open",
		open: func() (func(context.Context) error, error) {
			opens.Add(1)
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				return nil, err
			}
			lns <- ln
			return func(ctx context.Context) error {
				stop := context.AfterFunc(ctx, func() { ln.Close() })
				defer stop()
				for {
					c, err := ln.Accept()
					if err != nil {
						if ctx.Err() != nil {
							return nil
						}
						return err
					}
					c.Close()
				}
			}, nil
		}}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); keep(ctx, p, fast, log) }()
	first := <-lns
	first.Close() // the listener fails under the part
	second := <-lns
	if c, err := net.Dial("tcp", second.Addr().String()); err != nil {
		t.Errorf("the part opened again does not accept: %v", err)
	} else {
		c.Close()
	}
	if n := opens.Load(); n != 2 {
		t.Errorf("opened %d times, want 2", n)
	}
	line := lb.String()
	if !strings.Contains(line, `"event":"test_unavailable"`) || !strings.Contains(line, "retry_in") ||
		!strings.Contains(line, "the test listener failed: opening it again") {
		t.Errorf("the failure is not logged in words: %s", line)
	}
	cancel()
	<-done

	var tries atomic.Int32
	lb2 := &testutil.SyncBuffer{}
	p.open = func() (func(context.Context) error, error) {
		tries.Add(1)
		return nil, errors.New("address in use")
	}
	keep(context.Background(), p, fast, zerolog.New(lb2)) // returns: left out, not retried
	if n := tries.Load(); n != 1 {
		t.Errorf("a part that cannot be opened at start was tried %d times, want 1", n)
	}
	if !strings.Contains(lb2.String(), "cannot open") || !strings.Contains(lb2.String(), "address in use") {
		t.Errorf("the failed start is not logged: %s", lb2.String())
	}
}

// A closed reload channel ends the reload task (it applied a nil configuration and panicked).
func TestClosedReloadsEndTheReloadTask(t *testing.T) {
	reloads := make(chan Reload)
	close(reloads)
	done := make(chan struct{})
	go func() {
		defer close(done)
		(&reloader{log: zerolog.Nop()}).run(context.Background(), reloads)
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("the reload task did not end when its channel was closed")
	}
}
