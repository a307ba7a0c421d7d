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
)

// BenchmarkPut measures Put → written and fdatasynced on this machine's disk, reporting the
// median and 99th percentile latency of single Puts one after another (a lone publisher: one
// commit per message).
func BenchmarkPut(b *testing.B) {
	for _, size := range []int{100, 1024} {
		b.Run(fmt.Sprintf("payload=%dB", size), func(b *testing.B) {
			cfg, err := BenchConfig(Config{Dir: b.TempDir(), MaxBytes: 1 << 30})
			if err != nil {
				b.Fatal(err)
			}
			s, err := Open(cfg, zerolog.Nop())
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			payload := bytes.Repeat([]byte("x"), size)
			syncs := s.Stats().Syncs
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
			b.ReportMetric(float64(s.Stats().Syncs-syncs)/float64(b.N), "fdatasyncs/op")
		})
	}
}

// BenchmarkAck measures removing one acknowledged message: a record written, made durable by
// the next commit.
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

// BenchmarkDiskBytesPerMessage stores 5000 messages and reports the store's size on disk (its
// segment files) per message, against the bytes MaxBytes counts.
func BenchmarkDiskBytesPerMessage(b *testing.B) {
	for _, size := range []int{100, 1024} {
		b.Run(fmt.Sprintf("payload=%dB", size), func(b *testing.B) {
			const n = 5000
			var st Stats
			for i := 0; i < b.N; i++ {
				s, err := Open(Config{Dir: b.TempDir(), MaxBytes: 1 << 30, CommitWait: -1}, zerolog.Nop())
				if err != nil {
					b.Fatal(err)
				}
				payload := bytes.Repeat([]byte("x"), size)
				for j := 0; j < n; j++ {
					if _, err := s.Put("site/sensor/temperature", payload, 1, false); err != nil {
						b.Fatal(err)
					}
				}
				st = s.Stats()
				s.Close()
			}
			b.ReportMetric(float64(st.DiskSize)/n, "disk-B/msg")
			b.ReportMetric(float64(st.Bytes)/n, "counted-B/msg")
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

// fullStore writes, as a Put per message would, a store holding DefaultMaxBytes of 100-byte
// messages into dir (with the builder: a million fdatasyncs would take a while).
func fullStore(b *testing.B, dir string) int {
	n := int(DefaultMaxBytes / recordSize(len("site/sensor/temperature"), 100))
	if err := os.Mkdir(filepath.Join(dir, FileName), 0o700); err != nil {
		b.Fatal(err)
	}
	bl := &builder{dir: filepath.Join(dir, FileName), segSize: segmentSize, chunk: segChunk}
	payload := bytes.Repeat([]byte("x"), 100)
	now := time.Now().UnixNano()
	for i := 1; i <= n; i++ {
		if err := bl.put(putBody{seq: uint64(i), stored: now, flags: 1, topic: "site/sensor/temperature", payload: payload}); err != nil {
			b.Fatal(err)
		}
	}
	if err := bl.finish(); err != nil {
		b.Fatal(err)
	}
	return n
}

// BenchmarkOpenFullStore measures Open (reading every segment, checking every record's CRC,
// building the index) of a store holding DefaultMaxBytes of 100-byte messages — the daemon's
// start-up cost, files in the page cache.
func BenchmarkOpenFullStore(b *testing.B) {
	dir := b.TempDir()
	n := fullStore(b, dir)
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
