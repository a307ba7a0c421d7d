package local

import (
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/gatewayd/gatewayd/internal/outbox"
)

// BenchmarkDeliver measures downlinks from Deliver to a local paho subscriber, 1 kB payloads,
// alone and with a second subscriber that stopped reading (disconnected after WriteTimeout):
// msgs/s until the subscriber has them all, and what a Deliver call itself takes (mean and
// slowest).
//
//	go test ./internal/local -run '^$' -bench Deliver -benchtime 2000x -count 3
func BenchmarkDeliver(b *testing.B) {
	for _, stuck := range []bool{false, true} {
		b.Run(fmt.Sprintf("stuck=%v", stuck), func(b *testing.B) {
			e, url := start(b, Config{}, newStore(b, outbox.Config{}), nil)
			if stuck {
				stuckSubscriber(b, strings.TrimPrefix(url, "tcp://"), "stuck", "dn/#")
			}
			var got atomic.Int64
			c := paho.NewClient(paho.NewClientOptions().AddBroker(url).SetClientID("bench").SetProtocolVersion(4))
			if tok := c.Connect(); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
				b.Fatal(tok.Error())
			}
			defer c.Disconnect(0)
			if tok := c.Subscribe("dn/#", 1, func(paho.Client, paho.Message) { got.Add(1) }); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
				b.Fatal(tok.Error())
			}
			payload := []byte(strings.Repeat("p", 1000))
			var slowest, total time.Duration
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				start := time.Now()
				for e.Deliver("dn/set", payload) != nil { // queue full: let the goroutine catch up
					time.Sleep(50 * time.Microsecond)
				}
				took := time.Since(start)
				slowest, total = max(slowest, took), total+took
			}
			for got.Load() < int64(b.N) {
				time.Sleep(100 * time.Microsecond)
			}
			b.StopTimer()
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
			b.ReportMetric(float64(total.Nanoseconds())/float64(b.N), "Deliver-ns")
			b.ReportMetric(float64(slowest.Microseconds()), "slowest-Deliver-µs")
		})
	}
}
