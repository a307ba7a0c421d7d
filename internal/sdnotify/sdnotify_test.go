package sdnotify

import (
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"
)

// TestMessagesReachTheSocket listens on a real unix datagram socket, as systemd does, and checks
// that every message arrives and that NOTIFY_SOCKET survives (later pings still arrive).
func TestMessagesReachTheSocket(t *testing.T) {
	path := filepath.Join(t.TempDir(), "notify.sock")
	l, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	t.Setenv("NOTIFY_SOCKET", path)
	n := New(zerolog.Nop())
	n.Ready()
	n.Status("connected")
	n.Watchdog()
	n.Watchdog()
	n.Stopping()
	want := []string{"READY=1", "STATUS=connected", "WATCHDOG=1", "WATCHDOG=1", "STOPPING=1"}
	buf := make([]byte, 256)
	for _, w := range want {
		_ = l.SetReadDeadline(time.Now().Add(5 * time.Second))
		k, err := l.Read(buf)
		if err != nil {
			t.Fatalf("waiting for %q: %v", w, err)
		}
		if got := strings.TrimSpace(string(buf[:k])); got != w {
			t.Fatalf("got %q, want %q", got, w)
		}
	}
}

func TestWatchdogInterval(t *testing.T) {
	t.Setenv("WATCHDOG_USEC", "60000000")
	t.Setenv("WATCHDOG_PID", "")
	if d := New(zerolog.Nop()).WatchdogInterval(); d != time.Minute {
		t.Fatalf("got %v, want 1m", d)
	}
	t.Setenv("WATCHDOG_USEC", "")
	if d := New(zerolog.Nop()).WatchdogInterval(); d != 0 {
		t.Fatalf("without WATCHDOG_USEC: got %v, want 0", d)
	}
}
