package drain

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/gatewayd/gatewayd/internal/outbox"
)

// BenchmarkDrain measures how fast a batch of stored messages reaches a test fake of the module
// whose every publish takes 50 ms from command to PUBACK (a broker round trip over LTE), with
// the real outbox on this machine's disk: a window of 8 against stop-and-wait.
func BenchmarkDrain(b *testing.B) {
	const batch = 32
	for _, w := range []int{1, 8} {
		b.Run(fmt.Sprintf("window=%d", w), func(b *testing.B) {
			s, err := outbox.Open(outbox.Config{Dir: b.TempDir()}, zerolog.Nop())
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			f := &fakePublisher{delay: 50 * time.Millisecond, done: make(chan string, batch)}
			d := New(s, Options{Window: w}, zerolog.Nop())
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			go d.Run(ctx, f)
			var busy time.Duration
			for i := 0; i < b.N; i++ {
				b.StopTimer()
				for j := 0; j < batch; j++ {
					if _, err := s.Put(fmt.Sprintf("site/sensor/%d", j), []byte("21.5"), 1, false); err != nil {
						b.Fatal(err)
					}
				}
				start := time.Now()
				b.StartTimer()
				d.Notify()
				for j := 0; j < batch; j++ {
					<-f.done
				}
				for s.Stats().Messages > 0 { // the last Ack commits after the last PUBACK
					time.Sleep(100 * time.Microsecond)
				}
				busy += time.Since(start)
			}
			b.ReportMetric(float64(batch*b.N)/busy.Seconds(), "msgs/s")
		})
	}
}
