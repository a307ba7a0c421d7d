package rawpty

import (
	"bytes"
	"io"
	"testing"
	"time"
)

// Every byte value written to the slave reaches the master unchanged and back: no echo, no
// CR/LF translation, no signal characters, all 8 bits.
func TestBytesPassExactly(t *testing.T) {
	m, s, err := Open()
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	defer s.Close()
	all := make([]byte, 256)
	for i := range all {
		all[i] = byte(i)
	}
	for _, dir := range []struct {
		name string
		w    io.Writer
		r    io.Reader
	}{{"slave to master", s, m}, {"master to slave", m, s}} {
		if _, err := dir.w.Write(all); err != nil {
			t.Fatalf("%s: write: %v", dir.name, err)
		}
		got := make([]byte, len(all))
		if _, err := io.ReadFull(dir.r, got); err != nil {
			t.Fatalf("%s: read: %v", dir.name, err)
		}
		if !bytes.Equal(got, all) {
			t.Errorf("%s: got % X", dir.name, got)
		}
	}
}

// Closing the master wakes a Read blocked on it.
func TestCloseWakesARead(t *testing.T) {
	m, s, err := Open()
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	done := make(chan error, 1)
	go func() {
		_, err := m.Read(make([]byte, 1))
		done <- err
	}()
	time.Sleep(20 * time.Millisecond)
	m.Close()
	select {
	case err := <-done:
		if err == nil {
			t.Error("Read returned no error after Close")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Close did not wake the Read")
	}
}
