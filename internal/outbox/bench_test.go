package outbox

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"
	bolt "go.etcd.io/bbolt"
)

// BenchmarkPut measures Put → committed and fsynced on this machine's disk, reporting the
// median and 99th percentile latency of single Puts (one message per transaction, as the
// local endpoint stores them).
func BenchmarkPut(b *testing.B) {
	for _, size := range []int{100, 1024} {
		b.Run(fmt.Sprintf("payload=%dB", size), func(b *testing.B) {
			s, err := Open(Config{Dir: b.TempDir(), MaxBytes: 1 << 30}, zerolog.Nop())
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			payload := bytes.Repeat([]byte("x"), size)
			lat := make([]time.Duration, 0, b.N)
			w0 := writeBytes(b)
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				t := time.Now()
				if _, err := s.Put("site/sensor/temperature", payload, 1, false); err != nil {
					b.Fatal(err)
				}
				lat = append(lat, time.Since(t))
			}
			b.StopTimer()
			slices.Sort(lat)
			b.ReportMetric(float64(lat[len(lat)/2].Microseconds()), "p50-µs")
			b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds()), "p99-µs")
			b.ReportMetric(float64(writeBytes(b)-w0)/float64(b.N), "written-B/op")
		})
	}
}

// BenchmarkAck measures removing one acknowledged message (one transaction, fsynced).
func BenchmarkAck(b *testing.B) {
	s, err := Open(Config{Dir: b.TempDir(), MaxBytes: 1 << 30}, zerolog.Nop())
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	seqs := make([]uint64, b.N)
	for i := range seqs {
		if seqs[i], err = s.Put("site/sensor/temperature", bytes.Repeat([]byte("x"), 100), 1, false); err != nil {
			b.Fatal(err)
		}
	}
	b.ResetTimer()
	for _, seq := range seqs {
		if err := s.Ack(seq); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkDiskBytesPerMessage stores 5000 messages and reports the file's used pages (bbolt's
// high-water mark: what the file must hold) per message, against the bytes MaxBytes counts.
func BenchmarkDiskBytesPerMessage(b *testing.B) {
	for _, size := range []int{100, 1024} {
		b.Run(fmt.Sprintf("payload=%dB", size), func(b *testing.B) {
			const n = 5000
			var used, counted int64
			for i := 0; i < b.N; i++ {
				dir := b.TempDir()
				s, err := Open(Config{Dir: dir, MaxBytes: 1 << 30}, zerolog.Nop())
				if err != nil {
					b.Fatal(err)
				}
				payload := bytes.Repeat([]byte("x"), size)
				for j := 0; j < n; j++ {
					if _, err := s.Put("site/sensor/temperature", payload, 1, false); err != nil {
						b.Fatal(err)
					}
				}
				counted = s.Stats().Bytes
				s.Close()
				f, err := os.Open(filepath.Join(dir, FileName))
				if err != nil {
					b.Fatal(err)
				}
				fi, _ := f.Stat()
				c := &checker{f: f, size: fi.Size()}
				if err := c.pickMeta(); err != nil {
					b.Fatal(err)
				}
				used = int64(c.m.pgid) * c.pageSize
				f.Close()
			}
			b.ReportMetric(float64(used)/n, "disk-B/msg")
			b.ReportMetric(float64(counted)/n, "counted-B/msg")
		})
	}
}

// BenchmarkFdatasyncBaseline is the floor any durable store pays on this disk: append 128 bytes
// to a file and fdatasync it — what an append-only segment log would cost per message.
func BenchmarkFdatasyncBaseline(b *testing.B) {
	f, err := os.Create(filepath.Join(b.TempDir(), "log"))
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	rec := bytes.Repeat([]byte("x"), 128)
	lat := make([]time.Duration, 0, b.N)
	w0 := writeBytes(b)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		t := time.Now()
		if _, err := f.Write(rec); err != nil {
			b.Fatal(err)
		}
		if err := fdatasync(f); err != nil {
			b.Fatal(err)
		}
		lat = append(lat, time.Since(t))
	}
	b.StopTimer()
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds()), "p50-µs")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds()), "p99-µs")
	b.ReportMetric(float64(writeBytes(b)-w0)/float64(b.N), "written-B/op")
}

// writeBytes is this process's write_bytes from /proc/self/io: bytes it caused to be written
// to storage (what wears an SD card).
func writeBytes(b *testing.B) int64 {
	data, err := os.ReadFile("/proc/self/io")
	if err != nil {
		b.Skipf("no /proc/self/io: %v", err)
	}
	for _, l := range strings.Split(string(data), "\n") {
		if v, ok := strings.CutPrefix(l, "write_bytes: "); ok {
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil {
				b.Fatal(err)
			}
			return n
		}
	}
	b.Skip("no write_bytes in /proc/self/io")
	return 0
}

// BenchmarkOpenFullStore measures Open (structural check, bbolt open, checking every record's
// CRC) of a store holding DefaultMaxBytes of 100-byte messages — the daemon's start-up cost.
func BenchmarkOpenFullStore(b *testing.B) {
	dir := b.TempDir()
	n := int(DefaultMaxBytes / recordSize(len("site/sensor/temperature"), 100))
	db, err := bolt.Open(filepath.Join(dir, FileName), 0o600, nil)
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
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		s, err := Open(Config{Dir: dir}, zerolog.Nop())
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
