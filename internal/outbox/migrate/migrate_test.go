package migrate

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gatewayd/gatewayd/internal/outbox"
	"github.com/gatewayd/gatewayd/test/testutil"
	"github.com/rs/zerolog"
	bolt "go.etcd.io/bbolt"
)

// fixture is a store written by the bbolt outbox before issue 16 (commit fa96789), with its
// own code: Put of messages 1-60 (topic site/sensor/<i>, payload fixturePayload(i), QoS i%2,
// retain when i%5 == 0), Sending(1..10), Ack(2, 4, 6), Sending(1), Close.
const fixture = "testdata/bbolt-before-issue16.db"

func fixturePayload(i int) []byte {
	return append([]byte(fmt.Sprintf("m%04d ", i)), bytes.Repeat([]byte{byte(i)}, i*7)...)
}

// fixtureAttempts is the sends the fixture recorded for each stored message.
func fixtureAttempts(seq uint64) int {
	switch {
	case seq == 1:
		return 2
	case seq <= 10:
		return 1
	}
	return 0
}

// placeFixture copies the fixture into dir as the store an earlier gatewayd left.
func placeFixture(t testing.TB, dir, name string) {
	t.Helper()
	data, err := os.ReadFile(fixture)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, name), data, 0o600); err != nil {
		t.Fatal(err)
	}
}

// checkFixtureMigrated checks that s holds every message of the fixture as it was stored.
func checkFixtureMigrated(t *testing.T, s *outbox.Store) {
	t.Helper()
	ms := pending(t, s)
	var want []uint64
	for i := uint64(1); i <= 60; i++ {
		if i != 2 && i != 4 && i != 6 {
			want = append(want, i)
		}
	}
	if got := fmt.Sprint(seqs(ms)); got != fmt.Sprint(want) {
		t.Fatalf("migrated seqs %s, want %v", got, want)
	}
	var last time.Time
	for _, m := range ms {
		i := int(m.Seq)
		if m.Topic != fmt.Sprintf("site/sensor/%d", i) || !bytes.Equal(m.Payload, fixturePayload(i)) ||
			m.QoS != i%2 || m.Retain != (i%5 == 0) || m.Attempts != fixtureAttempts(m.Seq) {
			t.Fatalf("migrated message %d: %s qos %d retain %v attempts %d, payload %q", i, m.Topic, m.QoS, m.Retain, m.Attempts, m.Payload[:6])
		}
		if m.Stored.Before(plausible2025()) || m.Stored.Before(last) {
			t.Fatalf("message %d stored at %v, after one stored at %v", i, m.Stored, last)
		}
		last = m.Stored
	}
	if st := s.Stats(); st.Messages != len(want) || st.SetAside != "" || st.Damaged != 0 {
		t.Fatalf("stats %+v", st)
	}
}

func plausible2025() time.Time { return time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC) }

// TestMigratesTheStoreOfTheReleaseBefore: a store written by the bbolt outbox is copied into
// the log — messages, order, QoS, retain, stored times and recorded sends — the bbolt file is
// deleted, and sequence numbers go on where they were.
func TestMigratesTheStoreOfTheReleaseBefore(t *testing.T) {
	dir := t.TempDir()
	placeFixture(t, dir, outbox.FileName)
	s, lb := open(t, outbox.Config{Dir: dir})
	checkFixtureMigrated(t, s)
	if !strings.Contains(lb.String(), `"event":"outbox_migrated"`) || !strings.Contains(lb.String(), `"messages":57`) {
		t.Fatalf("no migration line:\n%s", lb)
	}
	if fi, err := os.Stat(filepath.Join(dir, outbox.FileName)); err != nil || !fi.IsDir() {
		t.Fatalf("%s is not the new store: %v", outbox.FileName, err)
	}
	for _, left := range []string{".new", ".migrated"} {
		if _, err := os.Stat(filepath.Join(dir, outbox.FileName+left)); !errors.Is(err, fs.ErrNotExist) {
			t.Fatalf("%s%s left behind: %v", outbox.FileName, left, err)
		}
	}
	if seq := mustPut(t, s, "site/sensor/61", "new"); seq != 61 {
		t.Fatalf("the first new message got seq %d, want 61", seq)
	}
	s.Close()
	again, lb2 := open(t, outbox.Config{Dir: dir})
	if strings.Contains(lb2.String(), "outbox_migrated") || again.Stats().Messages != 58 {
		t.Fatalf("reopened: %+v\n%s", again.Stats(), lb2)
	}
}

// TestMigrationSurvivesACrash puts the store in each state a crash can leave the migration in:
// every one ends with all the messages in the new store and nothing left over.
func TestMigrationSurvivesACrash(t *testing.T) {
	// A finished copy, as the migration writes it before the swap.
	done := t.TempDir()
	placeFixture(t, done, outbox.FileName)
	s, _ := open(t, outbox.Config{Dir: done})
	s.Close()
	copyDir := func(t *testing.T, from, to string) {
		t.Helper()
		if err := os.Mkdir(to, 0o700); err != nil {
			t.Fatal(err)
		}
		des, _ := os.ReadDir(from)
		for _, de := range des {
			data, _ := os.ReadFile(filepath.Join(from, de.Name()))
			if err := os.WriteFile(filepath.Join(to, de.Name()), data, 0o600); err != nil {
				t.Fatal(err)
			}
		}
	}
	for _, c := range []struct {
		name  string
		setup func(t *testing.T, dir string)
	}{
		{"copy half written", func(t *testing.T, dir string) {
			placeFixture(t, dir, outbox.FileName)
			os.Mkdir(filepath.Join(dir, outbox.FileName+".new"), 0o700)
			os.WriteFile(filepath.Join(dir, outbox.FileName+".new", "0000000000000001.seg"), []byte("GWOBXLOG half"), 0o600)
		}},
		{"old store moved away, copy not yet in place", func(t *testing.T, dir string) {
			placeFixture(t, dir, outbox.FileName+".migrated")
			copyDir(t, filepath.Join(done, outbox.FileName), filepath.Join(dir, outbox.FileName+".new"))
		}},
		{"copy in place, old store not yet deleted", func(t *testing.T, dir string) {
			placeFixture(t, dir, outbox.FileName+".migrated")
			copyDir(t, filepath.Join(done, outbox.FileName), filepath.Join(dir, outbox.FileName))
		}},
		{"old store moved away and no copy", func(t *testing.T, dir string) {
			placeFixture(t, dir, outbox.FileName+".migrated")
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			c.setup(t, dir)
			s, _ := open(t, outbox.Config{Dir: dir})
			checkFixtureMigrated(t, s)
			des, _ := os.ReadDir(dir)
			var names []string
			for _, de := range des {
				names = append(names, de.Name())
			}
			if got := strings.Join(names, " "); got != outbox.FileName+" outbox.lock" {
				t.Fatalf("left in the state directory: %s", got)
			}
		})
	}
}

// TestAStoreHeldByAnOldGatewaydIsLeftAlone: an old gatewayd still running holds its bbolt file
// locked; a new one must not copy (and delete) it from under it.
func TestAStoreHeldByAnOldGatewaydIsLeftAlone(t *testing.T) {
	dir := t.TempDir()
	placeFixture(t, dir, outbox.FileName)
	before, _ := os.ReadFile(filepath.Join(dir, outbox.FileName))
	db, err := bolt.Open(filepath.Join(dir, outbox.FileName), 0o600, &bolt.Options{Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	lb := &testutil.SyncBuffer{}
	_, err = openMigrating(outbox.Config{Dir: dir, LockTimeout: 200 * time.Millisecond}, zerolog.New(lb))
	if !errors.Is(err, outbox.ErrLocked) || !strings.Contains(err.Error(), "another gatewayd") {
		t.Fatalf("Open: %v, want outbox.ErrLocked", err)
	}
	after, _ := os.ReadFile(filepath.Join(dir, outbox.FileName))
	if !bytes.Equal(before, after) {
		t.Fatal("the old store changed")
	}
	if _, err := os.Stat(filepath.Join(dir, outbox.FileName+".new")); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("a copy was left: %v", err)
	}
}
