package benchd

import (
	"io"
	"net/http"
	"testing"
	"time"
)

// BenchmarkIdleMetrics is BenchmarkProcess/idle for the real binary without [metrics], with it,
// and with it scraped every 15 s (one scrape per default -benchd.idle window) as a Prometheus
// server would. Each runs a rig of its own; run with -count to interleave them and compare
// medians (the machine is shared).
func BenchmarkIdleMetrics(b *testing.B) {
	bin := buildDaemon(b)
	for _, tt := range []struct {
		name           string
		metrics        bool
		scrapeInterval time.Duration
	}{
		{"off", false, 0},
		{"on", true, 0},
		{"on/scraped-15s", true, 15 * time.Second},
	} {
		b.Run(tt.name, func(b *testing.B) {
			r := startRig(b, Options{Binary: bin, Metrics: tt.metrics})
			time.Sleep(time.Second) // let the bring-up's garbage and timers settle
			if tt.metrics {
				scrapeOnce(b, r.MetricsAddr) // the listener is up
			}
			stop := make(chan struct{})
			scraped := make(chan int, 1)
			go func() {
				n := 0
				defer func() { scraped <- n }()
				if tt.scrapeInterval == 0 {
					<-stop
					return
				}
				t := time.NewTicker(tt.scrapeInterval)
				defer t.Stop()
				for {
					scrapeOnce(b, r.MetricsAddr)
					n++
					select {
					case <-stop:
						return
					case <-t.C:
					}
				}
			}()
			benchIdle(b, r)
			close(stop)
			b.ReportMetric(float64(<-scraped), "scrapes")
		})
	}
}

// scrapeOnce fetches /metrics as a Prometheus server would, reading the whole answer.
func scrapeOnce(b *testing.B, addr string) {
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		b.Error(err)
		return
	}
	defer resp.Body.Close()
	if _, err := io.Copy(io.Discard, resp.Body); err != nil || resp.StatusCode != http.StatusOK {
		b.Errorf("scrape: %d %v", resp.StatusCode, err)
	}
}
