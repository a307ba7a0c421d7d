package unixsock

import (
	"errors"
	"net"
	"os"
	"path/filepath"
	"testing"
)

// A stale socket file (its listener gone, the file left) is replaced, and the new socket gets
// the mode asked for.
func TestListenReplacesAStaleSocket(t *testing.T) {
	path := filepath.Join(t.TempDir(), "s.sock")
	old, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	old.(*net.UnixListener).SetUnlinkOnClose(false)
	old.Close()
	if _, err := os.Lstat(path); err != nil {
		t.Fatalf("the stale file is not there to replace: %v", err)
	}
	l, err := Listen(path, 0o660)
	if err != nil {
		t.Fatalf("Listen over a stale socket: %v", err)
	}
	defer l.Close()
	fi, err := os.Lstat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode()&os.ModeSocket == 0 || fi.Mode().Perm() != 0o660 {
		t.Errorf("mode %v, want a socket with 0660", fi.Mode())
	}
	c, err := net.Dial("unix", path)
	if err != nil {
		t.Fatalf("the new socket does not answer: %v", err)
	}
	c.Close()
}

// A live socket and a file of another kind are left alone, and the error says which.
func TestListenLeavesWhatIsNotStale(t *testing.T) {
	dir := t.TempDir()
	live := filepath.Join(dir, "live.sock")
	l, err := Listen(live, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if _, err := Listen(live, 0o600); !errors.Is(err, ErrInUse) {
		t.Errorf("Listen on a live socket: %v, want ErrInUse", err)
	}
	if c, err := net.Dial("unix", live); err != nil {
		t.Errorf("the live socket was taken away: %v", err)
	} else {
		c.Close()
	}
	file := filepath.Join(dir, "file")
	if err := os.WriteFile(file, []byte("keep"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Listen(file, 0o600); !errors.Is(err, ErrNotSocket) {
		t.Errorf("Listen on a regular file: %v, want ErrNotSocket", err)
	}
	if b, err := os.ReadFile(file); err != nil || string(b) != "keep" {
		t.Errorf("the regular file was changed: %q, %v", b, err)
	}
}
