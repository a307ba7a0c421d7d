package migrate

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/rs/zerolog"
	bolt "go.etcd.io/bbolt"

	"github.com/gatewayd/gatewayd/internal/outbox"
)

// BenchmarkMigrateFullStore measures the first Open after an upgrade: a bbolt store of the
// earlier outbox holding DefaultMaxBytes of 100-byte messages checked, copied into the log and
// deleted, and the log read.
func BenchmarkMigrateFullStore(b *testing.B) {
	src := b.TempDir()
	n := int(outbox.DefaultMaxBytes / (24 + len("site/sensor/temperature") + 100))
	db, err := bolt.Open(filepath.Join(src, outbox.FileName), 0o600, nil)
	if err != nil {
		b.Fatal(err)
	}
	payload := bytes.Repeat([]byte("x"), 100)
	err = db.Update(func(tx *bolt.Tx) error {
		m, err := tx.CreateBucket(bucketMsgs)
		if err != nil {
			return err
		}
		m.FillPercent = 1.0
		if _, err := tx.CreateBucket(bucketAttempts); err != nil {
			return err
		}
		now := time.Now()
		for i := 1; i <= n; i++ {
			k := seqKey(uint64(i))
			if err := m.Put(k, encodeRecord(k, "site/sensor/temperature", payload, 1, false, now)); err != nil {
				return err
			}
		}
		return m.SetSequence(uint64(n))
	})
	if err != nil {
		b.Fatal(err)
	}
	db.Close()
	old, err := os.ReadFile(filepath.Join(src, outbox.FileName))
	if err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		dir := b.TempDir()
		if err := os.WriteFile(filepath.Join(dir, outbox.FileName), old, 0o600); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		s, err := openMigrating(outbox.Config{Dir: dir}, zerolog.Nop())
		if err != nil {
			b.Fatal(err)
		}
		if st := s.Stats(); st.Messages != n || st.SetAside != "" {
			b.Fatalf("stats %+v", st)
		}
		s.Close()
	}
	b.ReportMetric(float64(n), "messages")
}
