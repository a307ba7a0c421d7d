package migrate_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/gatewayd/gatewayd/internal/drain"
	"github.com/gatewayd/gatewayd/internal/outbox"
	"github.com/gatewayd/gatewayd/internal/outbox/migrate"
	"github.com/gatewayd/gatewayd/qmt"
)

// recorder is a module that delivers every publish and remembers them in order.
type recorder struct {
	mu  sync.Mutex
	got []qmt.Message
}

func (r *recorder) Publish(ctx context.Context, m qmt.Message) error {
	return r.PublishQueued(ctx, m, func() {})
}

func (r *recorder) PublishQueued(_ context.Context, m qmt.Message, queued func()) error {
	r.mu.Lock()
	r.got = append(r.got, m)
	r.mu.Unlock()
	queued()
	return nil
}

// TestAnUpgradedStoreDrainsCompletely: the store an earlier gatewayd left (bbolt, written by
// its own code: testdata/bbolt-before-issue16.db, see migrate_test.go) is migrated at Open and
// the real drainer then delivers every message in it, once each, in order, byte for byte; the
// ones the old store had sent before are reported as possible duplicates; the store ends empty.
func TestAnUpgradedStoreDrainsCompletely(t *testing.T) {
	dir := t.TempDir()
	data, err := os.ReadFile("testdata/bbolt-before-issue16.db")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, outbox.FileName), data, 0o600); err != nil {
		t.Fatal(err)
	}
	s, err := outbox.Open(outbox.Config{Dir: dir, Migrate: migrate.Bolt{Log: zerolog.Nop()}}, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	rec := &recorder{}
	d := drain.New(s, drain.Options{}, zerolog.Nop())
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx, rec) }()
	for deadline := time.Now().Add(20 * time.Second); s.Stats().Messages > 0; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("not drained in 20 s: %+v", s.Stats())
		}
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	rec.mu.Lock()
	defer rec.mu.Unlock()
	var i int
	for seq := 1; seq <= 60; seq++ {
		if seq == 2 || seq == 4 || seq == 6 { // acknowledged before the upgrade
			continue
		}
		if i >= len(rec.got) {
			t.Fatalf("only %d messages delivered; seq %d missing", len(rec.got), seq)
		}
		m := rec.got[i]
		want := append([]byte(fmt.Sprintf("m%04d ", seq)), bytes.Repeat([]byte{byte(seq)}, seq*7)...)
		if m.Topic != fmt.Sprintf("site/sensor/%d", seq) || !bytes.Equal(m.Payload, want) || m.QoS != seq%2 || m.Retain != (seq%5 == 0) {
			t.Fatalf("delivery %d: %s qos %d retain %v, want seq %d", i, m.Topic, m.QoS, m.Retain, seq)
		}
		i++
	}
	if i != len(rec.got) {
		t.Fatalf("%d deliveries, want %d", len(rec.got), i)
	}
	// 1, 3, 5, 7, 8, 9 and 10 were sent by the old gatewayd without an acknowledgement.
	if st := s.Stats(); st.DuplicatesPossible != 7 || st.Delivered != 57 {
		t.Fatalf("stats %+v: want 7 possible duplicates, 57 delivered", st)
	}
}
