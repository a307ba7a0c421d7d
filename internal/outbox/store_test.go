package outbox

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gatewayd/gatewayd/internal/logging"
	"github.com/gatewayd/gatewayd/test/testutil"

	"github.com/rs/zerolog"
)

// wallClock is an injectable Config.Now.
type wallClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *wallClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *wallClock) Set(t time.Time) {
	c.mu.Lock()
	c.t = t
	c.mu.Unlock()
}

var t0 = time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)

func open(t *testing.T, cfg Config) (*Store, *testutil.SyncBuffer) {
	t.Helper()
	if cfg.Dir == "" {
		cfg.Dir = t.TempDir()
	}
	lb := &testutil.SyncBuffer{}
	s, err := Open(cfg, zerolog.New(lb))
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s, lb
}

func mustPut(t *testing.T, s *Store, topic, payload string) uint64 {
	t.Helper()
	seq, err := s.Put(topic, []byte(payload), 1, false)
	if err != nil {
		t.Fatalf("Put(%q): %v", topic, err)
	}
	return seq
}

func seqs(ms []Message) []uint64 {
	out := make([]uint64, len(ms))
	for i, m := range ms {
		out[i] = m.Seq
	}
	return out
}

func pending(t *testing.T, s *Store) []Message {
	t.Helper()
	ms, err := s.Pending(1000)
	if err != nil {
		t.Fatalf("Pending: %v", err)
	}
	return ms
}

func TestPutPendingAckKeepsStoreOrder(t *testing.T) {
	s, _ := open(t, Config{})
	for i := 1; i <= 5; i++ {
		if seq := mustPut(t, s, fmt.Sprintf("t/%d", i), fmt.Sprintf("p%d", i)); seq != uint64(i) {
			t.Fatalf("Put %d returned seq %d", i, seq)
		}
	}
	ms := pending(t, s)
	if got := fmt.Sprint(seqs(ms)); got != "[1 2 3 4 5]" {
		t.Fatalf("Pending = %s", got)
	}
	if ms[2].Topic != "t/3" || string(ms[2].Payload) != "p3" || ms[2].QoS != 1 || ms[2].Retain {
		t.Fatalf("message 3 = %+v", ms[2])
	}
	if err := s.Ack(2, 4); err != nil {
		t.Fatal(err)
	}
	if got := fmt.Sprint(seqs(pending(t, s))); got != "[1 3 5]" {
		t.Fatalf("after Ack(2,4) Pending = %s", got)
	}
	after, err := s.PendingAfter(1, 1)
	if err != nil || fmt.Sprint(seqs(after)) != "[3]" {
		t.Fatalf("PendingAfter(1,1) = %v, %v", seqs(after), err)
	}
	if err := s.Ack(99); err != nil { // unknown: ignored
		t.Fatal(err)
	}
	st := s.Stats()
	if st.Messages != 3 || st.Delivered != 2 || st.Stored != 5 {
		t.Fatalf("Stats = %+v", st)
	}
	if want := 3 * recordSize(3, 2); st.Bytes != want {
		t.Fatalf("Bytes = %d, want %d", st.Bytes, want)
	}
}

func TestMessagesSurviveCloseAndReopen(t *testing.T) {
	dir := t.TempDir()
	s, _ := open(t, Config{Dir: dir})
	mustPut(t, s, "a", "1")
	mustPut(t, s, "b", "2")
	if _, err := s.Put("c", []byte{0, 1, 2, 0xff}, 0, true); err != nil {
		t.Fatal(err)
	}
	if err := s.Sending(2); err != nil {
		t.Fatal(err)
	}
	if err := s.Ack(1); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Put("x", []byte("y"), 1, false); !errors.Is(err, ErrClosed) {
		t.Fatalf("Put after Close: %v", err)
	}

	s2, _ := open(t, Config{Dir: dir})
	ms := pending(t, s2)
	if got := fmt.Sprint(seqs(ms)); got != "[2 3]" {
		t.Fatalf("after reopen Pending = %s", got)
	}
	if ms[0].Attempts != 1 || ms[1].Attempts != 0 {
		t.Fatalf("attempts after reopen = %d, %d", ms[0].Attempts, ms[1].Attempts)
	}
	if !bytes.Equal(ms[1].Payload, []byte{0, 1, 2, 0xff}) || ms[1].QoS != 0 || !ms[1].Retain {
		t.Fatalf("binary message after reopen = %+v", ms[1])
	}
	if st := s2.Stats(); st.Messages != 2 || st.Bytes != recordSize(1, 1)+recordSize(1, 4) {
		t.Fatalf("Stats after reopen = %+v", st)
	}
	if seq := mustPut(t, s2, "d", "4"); seq != 4 {
		t.Fatalf("seq after reopen = %d, want 4 (never reused)", seq)
	}
}

func TestFullStoreRefusesAndCounts(t *testing.T) {
	one := recordSize(len("t/x"), 10)
	s, lb := open(t, Config{MaxBytes: 3 * one})
	for i := 0; i < 3; i++ {
		mustPut(t, s, "t/x", strings.Repeat("a", 10))
	}
	_, err := s.Put("t/x", []byte(strings.Repeat("b", 10)), 1, false)
	if !errors.Is(err, ErrFull) {
		t.Fatalf("4th Put: %v, want ErrFull", err)
	}
	st := s.Stats()
	if st.Refused != 1 || st.Messages != 3 || st.Bytes != 3*one {
		t.Fatalf("Stats = %+v", st)
	}
	if !strings.Contains(lb.String(), `"event":"outbox_refused"`) {
		t.Fatalf("no refusal log line:\n%s", lb)
	}
	if got := fmt.Sprint(seqs(pending(t, s))); got != "[1 2 3]" {
		t.Fatalf("refusal changed the store: %s", got)
	}
	if err := s.Ack(1); err != nil {
		t.Fatal(err)
	}
	mustPut(t, s, "t/x", strings.Repeat("c", 10))

	if _, err := s.Put("t/x", make([]byte, 4*one), 1, false); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("oversized Put: %v", err)
	}
	if _, err := s.Put("", []byte("x"), 1, false); !errors.Is(err, ErrInvalid) {
		t.Fatalf("empty topic: %v", err)
	}
	if _, err := s.Put("t", []byte("x"), 3, false); !errors.Is(err, ErrInvalid) {
		t.Fatalf("QoS 3: %v", err)
	}
	if st := s.Stats(); st.Refused != 4 {
		t.Fatalf("Refused = %d, want 4", st.Refused)
	}
}

func TestDropOldestMakesRoomAndCounts(t *testing.T) {
	one := recordSize(len("t/x"), 10)
	s, lb := open(t, Config{MaxBytes: 3 * one, Overflow: OverflowDropOldest})
	for i := 0; i < 5; i++ {
		mustPut(t, s, "t/x", strings.Repeat("a", 10))
	}
	if got := fmt.Sprint(seqs(pending(t, s))); got != "[3 4 5]" {
		t.Fatalf("Pending = %s", got)
	}
	st := s.Stats()
	if st.DroppedOldest != 2 || st.Refused != 0 || st.Messages != 3 || st.Bytes != 3*one {
		t.Fatalf("Stats = %+v", st)
	}
	if n := strings.Count(lb.String(), `"event":"outbox_dropped_oldest"`); n != 2 {
		t.Fatalf("%d drop log lines, want 2:\n%s", n, lb)
	}
	// A bigger message drops as many as it needs.
	mustPut(t, s, "t/x", strings.Repeat("b", 10+int(one)))
	if got := fmt.Sprint(seqs(pending(t, s))); got != "[5 6]" {
		t.Fatalf("after a big Put Pending = %s", got)
	}
	if st := s.Stats(); st.DroppedOldest != 4 {
		t.Fatalf("DroppedOldest = %d, want 4", st.DroppedOldest)
	}
}

func TestMessagesPastMaxAgeExpire(t *testing.T) {
	clk := &wallClock{t: t0}
	s, lb := open(t, Config{MaxAge: 24 * time.Hour, Now: clk.Now})
	mustPut(t, s, "old", "1")
	clk.Set(t0.Add(12 * time.Hour))
	mustPut(t, s, "new", "2")
	clk.Set(t0.Add(25 * time.Hour))
	ms := pending(t, s)
	if len(ms) != 1 || ms[0].Topic != "new" {
		t.Fatalf("Pending after 25 h = %+v", ms)
	}
	st := s.Stats()
	if st.Expired != 1 || st.Messages != 1 || !st.Oldest.Equal(t0.Add(12*time.Hour)) {
		t.Fatalf("Stats = %+v", st)
	}
	if !strings.Contains(lb.String(), `"event":"outbox_expired"`) {
		t.Fatalf("no expiry log line:\n%s", lb)
	}
	// Expire drops the rest when due, and Put expires on the way too.
	clk.Set(t0.Add(40 * time.Hour))
	if n, err := s.Expire(); err != nil || n != 1 {
		t.Fatalf("Expire = %d, %v", n, err)
	}
	if st := s.Stats(); st.Expired != 2 || st.Messages != 0 || st.Bytes != 0 || !st.Oldest.IsZero() {
		t.Fatalf("Stats = %+v", st)
	}
}

func TestExpiryKeepsMessagesStoredBeforeTheClockWasSet(t *testing.T) {
	clk := &wallClock{t: time.Unix(120, 0)} // a Pi without RTC just after boot
	s, _ := open(t, Config{MaxAge: time.Hour, Now: clk.Now})
	mustPut(t, s, "boot", "1")
	clk.Set(t0) // NTP sets the clock
	mustPut(t, s, "synced", "2")
	clk.Set(t0.Add(30 * time.Minute))
	if ms := pending(t, s); len(ms) != 2 {
		t.Fatalf("Pending = %+v, want both", ms)
	}
	clk.Set(t0.Add(2 * time.Hour))
	ms := pending(t, s)
	if len(ms) != 1 || ms[0].Topic != "boot" {
		t.Fatalf("Pending = %+v, want only the message of unknown age", ms)
	}
}

func TestResendAfterRestartCountsAPossibleDuplicate(t *testing.T) {
	dir := t.TempDir()
	s, _ := open(t, Config{Dir: dir})
	a := mustPut(t, s, "a", "1")
	b := mustPut(t, s, "b", "2")
	if err := s.Sending(a, b); err != nil {
		t.Fatal(err)
	}
	if st := s.Stats(); st.DuplicatesPossible != 0 {
		t.Fatalf("first send counted as duplicate: %+v", st)
	}
	if err := s.Ack(b); err != nil {
		t.Fatal(err)
	}
	s.Close() // crash before a's acknowledgement

	s2, lb := open(t, Config{Dir: dir})
	if err := s2.Sending(a); err != nil {
		t.Fatal(err)
	}
	if st := s2.Stats(); st.DuplicatesPossible != 1 {
		t.Fatalf("DuplicatesPossible = %d, want 1", st.DuplicatesPossible)
	}
	if !strings.Contains(lb.String(), `"event":"outbox_resend"`) || !strings.Contains(lb.String(), `"attempt":2`) {
		t.Fatalf("no resend log line:\n%s", lb)
	}
}

func TestRejectDropsWithLogAndCounter(t *testing.T) {
	s, lb := open(t, Config{})
	a := mustPut(t, s, "bad\"topic", "1")
	mustPut(t, s, "good", "2")
	if err := s.Reject(a, errors.New("topic holds a double quote")); err != nil {
		t.Fatal(err)
	}
	if got := fmt.Sprint(seqs(pending(t, s))); got != "[2]" {
		t.Fatalf("Pending = %s", got)
	}
	if st := s.Stats(); st.Rejected != 1 || st.Delivered != 0 {
		t.Fatalf("Stats = %+v", st)
	}
	if !strings.Contains(lb.String(), `"event":"outbox_rejected"`) || !strings.Contains(lb.String(), "double quote") {
		t.Fatalf("no rejection log line:\n%s", lb)
	}
}

func TestLockedStoreFailsClearlyWithinTheTimeout(t *testing.T) {
	dir := t.TempDir()
	open(t, Config{Dir: dir})
	start := time.Now()
	_, err := Open(Config{Dir: dir, LockTimeout: 200 * time.Millisecond}, zerolog.Nop())
	if !errors.Is(err, ErrLocked) {
		t.Fatalf("second Open: %v, want ErrLocked", err)
	}
	if !strings.Contains(err.Error(), "another gatewayd") || !strings.Contains(err.Error(), filepath.Join(dir, FileName)) {
		t.Fatalf("error does not say what and where: %v", err)
	}
	// Not a speed measurement: a generous bound that catches a hang.
	if d := time.Since(start); d > 10*time.Second {
		t.Fatalf("second Open took %s", d)
	}
	if _, err := os.Stat(filepath.Join(dir, FileName)); err != nil {
		t.Fatalf("locked store was moved: %v", err)
	}
}

func TestBadConfigIsRefused(t *testing.T) {
	for _, c := range []Config{
		{MaxBytes: -1},
		{Overflow: "newest"},
		{LockTimeout: -time.Second},
	} {
		c.Dir = t.TempDir()
		if _, err := Open(c, zerolog.Nop()); err == nil {
			t.Errorf("Open(%+v) succeeded", c)
		}
	}
}

func TestStateDir(t *testing.T) {
	env := map[string]string{}
	getenv := func(k string) string { return env[k] }
	if d := StateDir(getenv); d != DefaultStateDir {
		t.Fatalf("StateDir() = %q", d)
	}
	env["STATE_DIRECTORY"] = "/var/lib/gatewayd-a:/var/lib/other"
	if d := StateDir(getenv); d != "/var/lib/gatewayd-a" {
		t.Fatalf("StateDir() = %q", d)
	}
}

// TestEmptyFileIsANewStore: an empty file where the store belongs is what a crash leaves while
// an old gatewayd created its bbolt file: nothing was ever stored in it.
func TestEmptyFileIsANewStore(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, FileName), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	s, _ := open(t, Config{Dir: dir})
	if st := s.Stats(); st.SetAside != "" {
		t.Fatalf("an empty file (crash during creation) was set aside: %+v", st)
	}
	mustPut(t, s, "t", "x")
}

// TestAnOldStoreWithoutAMigratorIsSetAside: a file where the store belongs (the store of an
// earlier gatewayd) with no Config.Migrate — once the migration is removed — is set aside,
// whole, and an empty store started.
func TestAnOldStoreWithoutAMigratorIsSetAside(t *testing.T) {
	dir := t.TempDir()
	old := []byte("the bbolt file of an earlier gatewayd")
	if err := os.WriteFile(filepath.Join(dir, FileName), old, 0o600); err != nil {
		t.Fatal(err)
	}
	s, lb := open(t, Config{Dir: dir})
	st := s.Stats()
	kept, err := os.ReadFile(st.SetAside)
	if err != nil || !bytes.Equal(kept, old) || st.Messages != 0 {
		t.Fatalf("stats %+v, set aside %q (%v)", st, kept, err)
	}
	if !strings.Contains(lb.String(), `"event":"outbox_set_aside"`) {
		t.Fatalf("no set-aside line:\n%s", lb)
	}
	mustPut(t, s, "t", "x")
}

func TestAMessageDamagedUnderAnOpenStoreIsDroppedByPending(t *testing.T) {
	dir := t.TempDir()
	s, lb := open(t, Config{Dir: dir})
	for _, p := range []string{"one", "two-damaged-here", "three"} {
		mustPut(t, s, "t", p)
	}
	// The card changes under the daemon: one byte of the second message's payload.
	seg := segments(t, dir)[0]
	data, err := os.ReadFile(seg)
	if err != nil {
		t.Fatal(err)
	}
	i := bytes.Index(data, []byte("two-damaged-here"))
	if i < 0 {
		t.Fatal("the second payload is not in the segment")
	}
	f, err := os.OpenFile(seg, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt([]byte{data[i] ^ 0xff}, int64(i)); err != nil {
		t.Fatal(err)
	}
	f.Close()
	if got := payloads(pending(t, s)); !slices.Equal(got, []string{"one", "three"}) {
		t.Fatalf("Pending = %q, want one and three", got)
	}
	if st := s.Stats(); st.Damaged != 1 || st.Messages != 2 {
		t.Fatalf("Stats: %d damaged, %d messages; want 1 and 2", st.Damaged, st.Messages)
	}
	if got := payloads(pending(t, s)); !slices.Equal(got, []string{"one", "three"}) {
		t.Fatalf("Pending again = %q, want one and three", got)
	}
	if !strings.Contains(lb.String(), logging.EventOutboxDamaged) {
		t.Fatalf("no %s in the log:\n%s", logging.EventOutboxDamaged, lb.String())
	}
}
