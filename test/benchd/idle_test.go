package benchd

import (
	"flag"
	"testing"
	"time"
)

var daemonEnv = flag.String("benchd.env", "", "comma-separated NAME=value pairs added to the child daemon's environment, e.g. GOGC=50,GOMEMLIMIT=8MiB")

var daemonBinary = flag.String("benchd.bin", "", "gatewayd binary the benchmarks of the real binary run (default: built from this tree), e.g. an earlier build to compare with")

// unitTimerSlack is the unit's TimerSlackNSec=.
const unitTimerSlack = 10 * time.Millisecond

// BenchmarkIdle: the real gatewayd binary, connected (emulator and broker in this process, the
// daemon a child), doing nothing for -benchd.idle per op (60s for the figure), with and
// without [metrics] and the local endpoint. wakeups/s: its threads' context switches (voluntary
// and not, summed over /proc/<pid>/task/*/status) per second; %core: its CPU time (schedstat) over
// the window. AT-cmds: what the module was asked meanwhile (the health checks). The unit/ cases
// run the daemon with the unit's timer slack, as systemd starts it.
func BenchmarkIdle(b *testing.B) {
	bin := buildDaemon(b)
	for _, v := range []struct {
		name   string
		o      Options
		client bool // a local client connected (subscribed, idle, keep-alive 0) throughout
	}{
		{"plain", Options{}, false},
		// The unit's WatchdogSec=90s, as systemd tells the daemon (without NOTIFY_SOCKET the pings
		// go nowhere, but every tick and probe happens).
		{"watchdog", Options{Env: []string{"WATCHDOG_USEC=90000000"}}, false},
		{"metrics", Options{Metrics: true}, false},
		{"local+metrics", Options{Local: true, Metrics: true}, false},
		// The same with the unit's TimerSlackNSec=10ms (see deploy/systemd/gatewayd.service).
		{"unit/plain", Options{TimerSlack: unitTimerSlack}, false},
		{"unit/watchdog", Options{TimerSlack: unitTimerSlack, Env: []string{"WATCHDOG_USEC=90000000"}}, false},
		{"unit/metrics", Options{TimerSlack: unitTimerSlack, Metrics: true}, false},
		{"unit/local+metrics", Options{TimerSlack: unitTimerSlack, Local: true, Metrics: true}, false},
		// Once a local client has connected, mochi's housekeeping loop runs.
		{"unit/local+client", Options{TimerSlack: unitTimerSlack, Local: true}, true},
	} {
		b.Run(v.name, func(b *testing.B) {
			o := v.o
			o.Binary = bin
			r := startRig(b, o)
			if v.client {
				c, err := StuckSubscriber(r.LocalAddr, Topic)
				if err != nil {
					b.Fatal(err)
				}
				defer c.Close()
			}
			time.Sleep(2 * time.Second) // let the bring-up's garbage and timers settle
			cmds := r.Module.Stats().Commands
			p0, err := ReadProc(r.Pid)
			if err != nil {
				b.Fatal(err)
			}
			b.ResetTimer()
			for range b.N {
				time.Sleep(*idleWindow)
			}
			b.StopTimer()
			p1, err := ReadProc(r.Pid)
			if err != nil {
				b.Fatal(err)
			}
			secs := p1.At.Sub(p0.At).Seconds()
			b.ReportMetric(float64(p1.Switches-p0.Switches)/secs, "wakeups/s")
			b.ReportMetric(float64(p1.Slices-p0.Slices)/secs, "slices/s")
			b.ReportMetric(100*CPUBetween(p0, p1), "%core")
			b.ReportMetric(float64(r.Module.Stats().Commands-cmds), "AT-cmds")
			b.ReportMetric(float64(p1.Threads), "threads")
		})
	}
}
