package sim

import (
	"strings"
	"testing"
	"time"
)

// BenchmarkPublish measures QoS 1 publishes through the pty and a real broker, one at a time
// (waiting for each +QMTPUBEX) and pipelined (sending the next as soon as the OK is in), with and
// without a broker round-trip delay (SetBrokerDelay).
func BenchmarkPublish(b *testing.B) {
	for _, c := range []struct {
		name      string
		delay     time.Duration
		pipelined bool
	}{
		{"serial/delay=0", 0, false},
		{"pipelined/delay=0", 0, true},
		{"serial/delay=2ms", 2 * time.Millisecond, false},
		{"pipelined/delay=2ms", 2 * time.Millisecond, true},
	} {
		b.Run(c.name, func(b *testing.B) {
			r := newRig(b, Config{})
			r.connect("bench")
			r.m.SetBrokerDelay(c.delay)
			h := r.h
			payload := strings.Repeat("x", 64)
			results := 0
			read := func(sub string) {
				results += strings.Count(h.until(sub), "+QMTPUBEX: 0,")
			}
			b.ResetTimer()
			for i := range b.N {
				h.write(`AT+QMTPUBEX=0,` + itoa(i%65535+1) + `,1,0,"bench",64` + "\r")
				read("\r\n> ")
				h.write(payload)
				read("\r\nOK\r\n")
				if !c.pipelined {
					for results <= i {
						read("\r\n")
					}
				}
			}
			for results < b.N {
				read("\r\n")
			}
			b.StopTimer()
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "publishes/s")
		})
	}
}
