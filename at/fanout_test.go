package at

import (
	"context"
	"testing"
	"time"
)

// The fan-out is tested alone here: lines in, queues out, no port.

// delivering runs deliver(l) on its own goroutine; the channel closes when it returns.
func delivering(f *fanout, l Line) <-chan struct{} {
	done := make(chan struct{})
	go func() {
		defer close(done)
		f.deliver(l)
	}()
	return done
}

func returns(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	case <-time.After(5 * time.Second):
		return false
	}
}

func blocked(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return false
	case <-time.After(50 * time.Millisecond):
		return true
	}
}

// TestFanoutHoldsBack: a full queue makes deliver wait, in order, counting the wait, and
// heldSince and waitIdle see it.
func TestFanoutHoldsBack(t *testing.T) {
	n := new(counters)
	f := newFanout(1, make(chan struct{}), n)
	fast, slow := f.subscribe(), f.subscribe()
	f.deliver(Line{Text: "a"})
	if f.heldSince(0) {
		t.Fatal("held with room in every queue")
	}
	<-fast.C()
	d := delivering(f, Line{Text: "b"})
	if !blocked(d) {
		t.Fatal("deliver did not wait for room")
	}
	if !f.heldSince(0) || n.holds.Load() != 1 {
		t.Fatalf("heldSince %v, holds %d", f.heldSince(0), n.holds.Load())
	}
	idle := make(chan struct{})
	go func() { f.waitIdle(context.Background()); close(idle) }()
	if !blocked(idle) {
		t.Fatal("waitIdle returned while deliver waits")
	}
	if l := <-slow.C(); l.Text != "a" {
		t.Fatalf("slow got %q first", l.Text)
	}
	if !returns(d) || !returns(idle) {
		t.Fatal("deliver or waitIdle still waiting after room was made")
	}
	if l := <-slow.C(); l.Text != "b" {
		t.Errorf("slow got %q second", l.Text)
	}
	if l := <-fast.C(); l.Text != "b" {
		t.Errorf("fast got %q second", l.Text)
	}
	if n.urcs.Load() != 2 || n.heldNanos.Load() <= 0 || !f.heldSince(0) || f.heldSince(1) {
		t.Errorf("urcs %d, held for %d ns, heldSince(0) %v, heldSince(1) %v",
			n.urcs.Load(), n.heldNanos.Load(), f.heldSince(0), f.heldSince(1))
	}
}

// TestFanoutCloseReleases: closing the subscription deliver waits on releases it, and the
// other subscribers keep receiving.
func TestFanoutCloseReleases(t *testing.T) {
	f := newFanout(1, make(chan struct{}), new(counters))
	full, other := f.subscribe(), f.subscribe()
	f.deliver(Line{Text: "a"})
	<-other.C()
	d := delivering(f, Line{Text: "b"})
	if !blocked(d) {
		t.Fatal("deliver did not wait for room")
	}
	full.Close()
	if !returns(d) {
		t.Fatal("Close did not release deliver")
	}
	if l := <-other.C(); l.Text != "b" {
		t.Errorf("other got %q", l.Text)
	}
	if l, ok := <-full.C(); !ok || l.Text != "a" {
		t.Errorf("closed queue: %q %v, want the line queued before Close", l.Text, ok)
	}
	if _, ok := <-full.C(); ok {
		t.Error("closed queue still open")
	}
	full.Close() // twice is fine
}

// TestFanoutEnd: the end of the engine releases a waiting deliver, closes every queue and
// refuses new subscribers with a closed one.
func TestFanoutEnd(t *testing.T) {
	done := make(chan struct{})
	f := newFanout(1, done, new(counters))
	s := f.subscribe()
	f.deliver(Line{Text: "a"})
	d := delivering(f, Line{Text: "b"})
	if !blocked(d) {
		t.Fatal("deliver did not wait for room")
	}
	close(done)
	if !returns(d) {
		t.Fatal("the end did not release deliver")
	}
	f.end()
	<-s.C()
	if _, ok := <-s.C(); ok {
		t.Error("queue open after the end")
	}
	if _, ok := <-f.subscribe().C(); ok {
		t.Error("a subscription after the end is open")
	}
	s.Close()
}
