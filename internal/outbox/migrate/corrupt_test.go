package migrate

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
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

// The store before issue 16 was one bbolt file; Open migrates it, after checking it as the old
// store did. These tests damage such files: Open must never fail or crash on one, and sets it
// aside when it cannot be read (or drops the damaged records when only they are damaged).

// legacyStore writes what the bbolt outbox wrote (one transaction per Put, NextSequence keys,
// leaves filled to 100 %, an attempts bucket, deletions by Ack) into dir/outbox.FileName: n messages
// of size bytes, every third acknowledged so that holes and a freelist are left behind as in
// a store in use, and the two after each of those sent once.
func legacyStore(t testing.TB, dir string, n, size int) {
	t.Helper()
	db, err := bolt.Open(filepath.Join(dir, outbox.FileName), 0o600, &bolt.Options{Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	update := func(fn func(msgs, att *bolt.Bucket) error) {
		t.Helper()
		if err := db.Update(func(tx *bolt.Tx) error {
			msgs, err := tx.CreateBucketIfNotExists(bucketMsgs)
			if err != nil {
				return err
			}
			att, err := tx.CreateBucketIfNotExists(bucketAttempts)
			if err != nil {
				return err
			}
			return fn(msgs, att)
		}); err != nil {
			t.Fatal(err)
		}
	}
	now := time.Now()
	for i := 0; i < n; i++ {
		update(func(msgs, _ *bolt.Bucket) error {
			msgs.FillPercent = 1.0
			seq, err := msgs.NextSequence()
			if err != nil {
				return err
			}
			k := seqKey(seq)
			p := bytes.Repeat([]byte{byte('a' + i%26)}, size)
			return msgs.Put(k, encodeRecord(k, fmt.Sprintf("site/sensor/%d", i), p, 1, false, now))
		})
	}
	for i := uint64(1); i <= uint64(n); i += 3 {
		update(func(msgs, att *bolt.Bucket) error {
			for _, seq := range []uint64{i + 1, i + 2} {
				if seq <= uint64(n) {
					if err := att.Put(seqKey(seq), binary.BigEndian.AppendUint32(nil, 1)); err != nil {
						return err
					}
				}
			}
			if err := msgs.Delete(seqKey(i)); err != nil {
				return err
			}
			return att.Delete(seqKey(i))
		})
	}
}

// openMigrating opens the store in cfg.Dir as the daemon does: with Bolt to migrate an old store.
func openMigrating(cfg outbox.Config, log zerolog.Logger) (*outbox.Store, error) {
	cfg.Migrate = Bolt{Log: log, LockTimeout: cfg.LockTimeout}
	return outbox.Open(cfg, log)
}

func open(t *testing.T, cfg outbox.Config) (*outbox.Store, *testutil.SyncBuffer) {
	t.Helper()
	lb := &testutil.SyncBuffer{}
	s, err := openMigrating(cfg, zerolog.New(lb))
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s, lb
}

func mustPut(t *testing.T, s *outbox.Store, topic, payload string) uint64 {
	t.Helper()
	seq, err := s.Put(topic, []byte(payload), 1, false)
	if err != nil {
		t.Fatalf("Put(%q): %v", topic, err)
	}
	return seq
}

func seqs(ms []outbox.Message) []uint64 {
	out := make([]uint64, len(ms))
	for i, m := range ms {
		out[i] = m.Seq
	}
	return out
}

func pending(t *testing.T, s *outbox.Store) []outbox.Message {
	t.Helper()
	ms, err := s.Pending(1000)
	if err != nil {
		t.Fatalf("Pending: %v", err)
	}
	return ms
}

// assertFreshAndWorking checks that Open set the damaged file aside and that the new store
// takes and returns messages.
func assertFreshAndWorking(t *testing.T, dir string, damaged []byte) {
	t.Helper()
	lb := &testutil.SyncBuffer{}
	s, err := openMigrating(outbox.Config{Dir: dir}, zerolog.New(lb))
	if err != nil {
		t.Fatalf("Open of a damaged store failed: %v", err)
	}
	defer s.Close()
	st := s.Stats()
	if st.SetAside == "" {
		t.Fatalf("damaged store not set aside; stats %+v", st)
	}
	kept, err := os.ReadFile(st.SetAside)
	if err != nil || !bytes.Equal(kept, damaged) {
		t.Fatalf("set-aside file %s does not hold the damaged bytes (err %v)", st.SetAside, err)
	}
	if !strings.Contains(lb.String(), `"event":"outbox_set_aside"`) {
		t.Fatalf("no set-aside log line:\n%s", lb)
	}
	if st.Messages != 0 {
		t.Fatalf("fresh store holds %d messages", st.Messages)
	}
	seq, err := s.Put("after/repair", []byte("ok"), 1, false)
	if err != nil {
		t.Fatal(err)
	}
	ms, err := s.Pending(10)
	if err != nil || len(ms) != 1 || ms[0].Seq != seq || string(ms[0].Payload) != "ok" {
		t.Fatalf("fresh store Pending = %+v, %v", ms, err)
	}
}

func TestGarbageFileIsSetAside(t *testing.T) {
	for name, data := range map[string][]byte{
		"random 64 KiB": randomBytes(64 << 10),
		"one byte":      {0x42},
		"text":          []byte("this is not a database\n"),
		"zeros 16 KiB":  make([]byte, 16<<10),
		"bbolt magic only": func() []byte {
			b := make([]byte, 8192)
			ne.PutUint32(b[16:], bMagic)
			return b
		}(),
	} {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			if err := os.WriteFile(filepath.Join(dir, outbox.FileName), data, 0o600); err != nil {
				t.Fatal(err)
			}
			assertFreshAndWorking(t, dir, data)
		})
	}
}

func randomBytes(n int) []byte {
	r := rand.New(rand.NewPCG(1, 2))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

func TestTruncatedOldStoreIsSetAside(t *testing.T) {
	src := t.TempDir()
	legacyStore(t, src, 600, 2000) // ~1.2 MB: overflow-free leaves, branch pages, a freelist
	orig, err := os.ReadFile(filepath.Join(src, outbox.FileName))
	if err != nil {
		t.Fatal(err)
	}
	c := &checker{f: bytes.NewReader(orig), size: int64(len(orig))}
	if err := c.pickMeta(); err != nil {
		t.Fatal(err)
	}
	used := int(c.m.pgid) * int(c.pageSize) // bbolt preallocates: the file is longer than its pages
	t.Run("unused tail cut", func(t *testing.T) {
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, outbox.FileName), orig[:used], 0o600); err != nil {
			t.Fatal(err)
		}
		s, _ := open(t, outbox.Config{Dir: dir})
		if st := s.Stats(); st.SetAside != "" || st.Messages != 400 {
			t.Fatalf("a file cut after its last page lost messages in the migration: %+v", st)
		}
	})
	for _, keep := range []int{used / 2, used - 4096, 4096 + 100, 3000} {
		t.Run(fmt.Sprintf("%d of %d bytes", keep, len(orig)), func(t *testing.T) {
			dir := t.TempDir()
			if err := os.WriteFile(filepath.Join(dir, outbox.FileName), orig[:keep], 0o600); err != nil {
				t.Fatal(err)
			}
			assertFreshAndWorking(t, dir, orig[:keep])
		})
	}
}

// TestDamagedOldPagesNeverStopTheStore overwrites each page of an old store in turn (header and
// elements) and checks that Open always succeeds: the file is set aside, or — when the damage
// hit only message bytes — the damaged messages are dropped and counted and the rest migrated.
func TestDamagedOldPagesNeverStopTheStore(t *testing.T) {
	src := t.TempDir()
	legacyStore(t, src, 300, 300)
	orig, err := os.ReadFile(filepath.Join(src, outbox.FileName))
	if err != nil {
		t.Fatal(err)
	}
	const ps = 4096
	r := rand.New(rand.NewPCG(3, 4))
	setAside, dropped := 0, 0
	for page := 0; page*ps < len(orig); page++ {
		for _, off := range []int{0, 8, 16, 40, 200, 1000} {
			data := bytes.Clone(orig)
			at := page*ps + off
			for i := at; i < at+24 && i < len(data); i++ {
				data[i] = byte(r.Uint32())
			}
			dir := t.TempDir()
			if err := os.WriteFile(filepath.Join(dir, outbox.FileName), data, 0o600); err != nil {
				t.Fatal(err)
			}
			s, err := openMigrating(outbox.Config{Dir: dir}, zerolog.Nop())
			if err != nil {
				t.Fatalf("page %d offset %d: Open: %v", page, off, err)
			}
			st := s.Stats()
			switch {
			case st.SetAside != "":
				setAside++
			case st.Damaged > 0:
				dropped++
			}
			if _, err := s.Put("after", []byte("x"), 1, false); err != nil {
				t.Fatalf("page %d offset %d: Put: %v", page, off, err)
			}
			ms, err := s.Pending(1000)
			if err != nil || len(ms) == 0 || ms[len(ms)-1].Topic != "after" {
				t.Fatalf("page %d offset %d: Pending: %d messages, %v", page, off, len(ms), err)
			}
			s.Close()
		}
	}
	t.Logf("%d pages: %d damaged files set aside, %d opened with damaged messages dropped", len(orig)/ps, setAside, dropped)
	if setAside == 0 || dropped == 0 {
		t.Fatalf("the damage never reached one of the paths (set aside %d, dropped %d)", setAside, dropped)
	}
}

func TestDamagedOldMessageIsDroppedAndCounted(t *testing.T) {
	dir := t.TempDir()
	db, err := bolt.Open(filepath.Join(dir, outbox.FileName), 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"first-payload", "MARKER-payload", "third-payload"} {
		if err := db.Update(func(tx *bolt.Tx) error {
			msgs, err := tx.CreateBucketIfNotExists(bucketMsgs)
			if err != nil {
				return err
			}
			seq, _ := msgs.NextSequence()
			k := seqKey(seq)
			return msgs.Put(k, encodeRecord(k, "t", []byte(p), 1, false, time.Now()))
		}); err != nil {
			t.Fatal(err)
		}
	}
	db.Close()
	path := filepath.Join(dir, outbox.FileName)
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	// bbolt is copy-on-write: older copies of the leaf may linger in free pages. Flip the marker
	// in every copy; only the live one matters.
	n := 0
	for i := bytes.Index(data, []byte("MARKER")); i >= 0; i = bytes.Index(data, []byte("MARKER")) {
		data[i] = 'm'
		n++
	}
	if n == 0 {
		t.Fatal("marker not found in the file")
	}
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	lb := &testutil.SyncBuffer{}
	s2, err := openMigrating(outbox.Config{Dir: dir}, zerolog.New(lb))
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	st := s2.Stats()
	if st.SetAside != "" || st.Damaged != 1 || st.Messages != 2 {
		t.Fatalf("Stats = %+v", st)
	}
	ms, _ := s2.Pending(10)
	if len(ms) != 2 || string(ms[0].Payload) != "first-payload" || string(ms[1].Payload) != "third-payload" {
		t.Fatalf("Pending = %+v", ms)
	}
	if !strings.Contains(lb.String(), `"event":"outbox_damaged_record"`) || !strings.Contains(lb.String(), "checksum") {
		t.Fatalf("no damaged-record log line:\n%s", lb)
	}
}

// FuzzOpenDamagedStore opens arbitrary bytes, and an old (bbolt) store with fuzzed bytes
// written over it, as the store file to migrate. Open must never crash the process, and the
// store must work afterwards.
func FuzzOpenDamagedStore(f *testing.F) {
	src := f.TempDir()
	legacyStore(f, src, 40, 200)
	orig, err := os.ReadFile(filepath.Join(src, outbox.FileName))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(uint32(0), []byte{})
	f.Add(uint32(4096*2), []byte("\x00\x00\x00\x00\x00\x00\x00\x00\xff\xff"))
	f.Add(uint32(4096*3+16), []byte{1, 2, 3, 4, 5, 6, 7, 8})
	f.Add(uint32(1<<31), []byte("garbage file"))
	f.Fuzz(func(t *testing.T, at uint32, patch []byte) {
		var data []byte
		if at&(1<<31) != 0 {
			data = patch // the bytes are the whole file
		} else {
			data = bytes.Clone(orig)
			off := int(at) % len(data)
			copy(data[off:], patch)
		}
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, outbox.FileName), data, 0o600); err != nil {
			t.Fatal(err)
		}
		s, err := openMigrating(outbox.Config{Dir: dir}, zerolog.Nop())
		if err != nil {
			t.Fatalf("Open: %v", err)
		}
		defer s.Close()
		if _, err := s.Put("after", []byte("x"), 1, false); err != nil {
			t.Fatalf("Put: %v", err)
		}
		if _, err := s.Pending(1 << 20); err != nil {
			t.Fatalf("Pending: %v", err)
		}
	})
}
