package benchd

// The end-to-end benchmark of the issue: the running daemon over a pty, fed +QMTRECV URCs written
// straight onto its AT port. See docs/benchmarks.md for the method and the figures.
//
//	go test ./test/benchd/ -run '^$' -bench . -benchtime 1s -count 3
//
// BenchmarkDownlink* run the daemon in this process (precise timestamps: the LED is a
// MeasuringLED); BenchmarkProcess runs the real gatewayd binary and reads its CPU time and memory
// from /proc; BenchmarkPty is the pty's own ceiling.

import (
	"context"
	"flag"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gatewayd/gatewayd/internal/logging"
	"github.com/gatewayd/gatewayd/internal/port"
)

// Flags, given after the package on the go test command line. The throughput streams write
// -benchd.batch messages (32: 5.9 KB) per write and keep at most -benchd.window (248) in flight,
// which kept the daemon's queues from dropping before they pushed back (a burst of 20,000 with no
// window then lost about one in seven downlinks); the window is kept so that the figures compare
// with earlier runs. BenchmarkBurst writes -benchd.burst messages with no window at all.
var (
	idleWindow = flag.Duration("benchd.idle", 15*time.Second, "length of one idle window of BenchmarkProcess/idle and BenchmarkIdle (60 s = one health check by default)")
	spacing    = flag.Duration("benchd.spacing", time.Millisecond, "pause between downlinks in BenchmarkDownlink/latency/spaced")
	batch      = flag.Int("benchd.batch", 32, "downlinks per write in the throughput streams (must divide 1024)")
	window     = flag.Int("benchd.window", 248, "most downlinks in flight in the throughput streams (under the daemon's 256-event queue)")
	burstN     = flag.Int("benchd.burst", 100000, "downlinks in one burst of BenchmarkBurst, written with no window at all")
)

// benchPayload is a 100-byte Alibaba Cloud property-set message, quotes and all.
var benchPayload = []byte(`{"method":"thing.service.property.set","id":"44777986","params":{"LED":1,"n":123},"version":"1.0.0"}`)

func startRig(b *testing.B, o Options) *Rig {
	b.Helper()
	if len(benchPayload) != 100 {
		b.Fatalf("payload is %d bytes, want 100", len(benchPayload))
	}
	if *daemonEnv != "" {
		o.Env = append(o.Env, strings.Split(*daemonEnv, ",")...)
	}
	r, err := Start(context.Background(), o)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		if err := r.Close(); err != nil {
			b.Errorf("closing the rig: %v", err)
		}
	})
	return r
}

// hostMeter reports how busy the machine was during a measurement, this process or the daemon's
// apart: "others-cores" is what everything else ran meanwhile (the machine is shared).
type hostMeter struct {
	h0 HostCPU
	p0 ProcSample
}

func startHostMeter(b *testing.B, pid string) hostMeter {
	b.Helper()
	h, p := sampleHost(b, pid)
	return hostMeter{h, p}
}

// sampleHost reads the host's CPU counters and process pid's.
func sampleHost(b *testing.B, pid string) (HostCPU, ProcSample) {
	b.Helper()
	h, err := ReadHostCPU()
	if err != nil {
		b.Fatal(err)
	}
	p, err := ReadProc(pid)
	if err != nil {
		b.Fatal(err)
	}
	return h, p
}

// stop reports the host's load and returns the daemon process's CPU use in cores.
func (m hostMeter) stop(b *testing.B, pid string, others ...ProcSample) (ProcSample, float64) {
	b.Helper()
	h, p := sampleHost(b, pid)
	cores := CPUBetween(m.p0, p)
	extra := 0.0
	if len(others) == 2 { // the benchmark process itself, when the daemon is a child
		extra = CPUBetween(others[0], others[1])
		b.ReportMetric(extra, "bench-cores")
	}
	// /proc/stat counts in 10 ms ticks: over less than a second the figure would be noise.
	if h.At.Sub(m.h0.At) >= time.Second {
		b.ReportMetric(BusyCores(m.h0, h)-cores-extra, "others-cores")
	}
	return p, cores
}

// checkLogged fails b unless exactly n downlink log lines follow the first logged ones. Lines that
// went through a pipe may arrive a little after the LED toggled.
func checkLogged(b *testing.B, r *Rig, logged uint64, n int) {
	b.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := r.Sink.WaitCount(ctx, logging.EventDownlink, logged+uint64(n)); err != nil {
		b.Fatal(err)
	}
	if got := r.Sink.Count(logging.EventDownlink) - logged; got != uint64(n) {
		b.Fatalf("%d downlink log lines for %d downlinks", got, n)
	}
}

func quantile(sorted []time.Duration, q float64) time.Duration {
	i := int(q*float64(len(sorted))+0.5) - 1
	return sorted[max(0, min(i, len(sorted)-1))]
}

// BenchmarkDownlink: the daemon in this process. latency: one downlink at a time, from just before
// the write of the URC to the LED toggle (after the downlink log line), back to back and spaced.
// throughput: a stream of 100-byte downlinks as fast as the daemon completes them.
func BenchmarkDownlink(b *testing.B) {
	r := startRig(b, Options{})
	benchDownlink(b, r)
}

// BenchmarkDownlinkLogPipe is BenchmarkDownlink with the daemon's log written to a pipe and read
// back by another goroutine, as the binary's log goes to the journal: the cost of one write(2) per
// log line, with the in-process daemon's precise timestamps (and a CPU profile that shows it).
func BenchmarkDownlinkLogPipe(b *testing.B) {
	r := startRig(b, Options{LogPipe: true})
	benchDownlink(b, r)
}

// BenchmarkDownlinkPollerPort is BenchmarkDownlink with an experimental AT port: the pty opened
// non-blocking, so the reader waits in the Go runtime's poller instead of blocking a thread in
// select(2) (see Options.PollerPort). It measures a proposed change, not the daemon as shipped.
func BenchmarkDownlinkPollerPort(b *testing.B) {
	r := startRig(b, Options{PollerPort: true})
	benchDownlink(b, r)
}

func benchDownlink(b *testing.B, r *Rig) {
	ctx := context.Background()
	one, err := NewStream(benchPayload, 1, 1)
	if err != nil {
		b.Fatal(err)
	}

	latency := func(b *testing.B, gap time.Duration) {
		lat := make([]time.Duration, 0, b.N)
		ptyPart := make([]time.Duration, 0, b.N) // write to the daemon's read returning
		logged := r.Sink.Count(logging.EventDownlink)
		base := r.Completed()
		meter := startHostMeter(b, "self")
		b.ResetTimer()
		for i := range b.N {
			if gap > 0 {
				time.Sleep(gap)
			}
			t0, err := r.Relay.Inject(one.Message(i))
			if err != nil {
				b.Fatal(err)
			}
			wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			_, t1, err := r.LED.WaitToggles(wctx, base+uint64(i)+1)
			cancel()
			if err != nil {
				b.Fatalf("downlink %d: %v; log:\n%s", i, err, r.Sink.Tail())
			}
			lat = append(lat, t1.Sub(t0))
			ptyPart = append(ptyPart, r.LastRead().Sub(t0))
		}
		b.StopTimer()
		meter.stop(b, "self")
		checkLogged(b, r, logged, b.N)
		slices.Sort(lat)
		b.ReportMetric(float64(quantile(lat, 0.50))/1e3, "p50-µs")
		b.ReportMetric(float64(quantile(lat, 0.99))/1e3, "p99-µs")
		b.ReportMetric(float64(lat[len(lat)-1])/1e3, "max-µs")
		slices.Sort(ptyPart)
		b.ReportMetric(float64(quantile(ptyPart, 0.50))/1e3, "pty-p50-µs")
		b.ReportMetric(float64(quantile(ptyPart, 0.99))/1e3, "pty-p99-µs")
	}
	b.Run("latency/back-to-back", func(b *testing.B) { latency(b, 0) })
	b.Run("latency/spaced", func(b *testing.B) { latency(b, *spacing) })

	b.Run("throughput", func(b *testing.B) {
		s, err := NewStream(benchPayload, *batch, *window)
		if err != nil {
			b.Fatal(err)
		}
		logged := r.Sink.Count(logging.EventDownlink)
		meter := startHostMeter(b, "self")
		b.SetBytes(int64(len(benchPayload)))
		b.ResetTimer()
		wctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
		defer cancel()
		if err := s.Run(wctx, r, b.N); err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		_, cores := meter.stop(b, "self")
		checkLogged(b, r, logged, b.N)
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
		b.ReportMetric(float64(b.N*s.MessageLen())/b.Elapsed().Seconds()/1e6, "wire-MB/s")
		b.ReportMetric(cores, "proc-cores")
	})
}

// buildDaemon builds cmd/gatewayd as scripts/build-pi.sh does (static, trimmed, stripped), or
// returns -benchd.bin when it is given (an earlier build, or a wrapper that runs one under
// qemu-user).
func buildDaemon(b *testing.B) string {
	b.Helper()
	if *daemonBinary != "" {
		return *daemonBinary
	}
	bin := filepath.Join(b.TempDir(), "gatewayd")
	cmd := exec.Command("go", "build", "-trimpath", "-ldflags", "-s -w", "-o", bin, "github.com/gatewayd/gatewayd/cmd/gatewayd")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		b.Fatalf("building gatewayd: %v\n%s", err, out)
	}
	return bin
}

// BenchmarkProcess: the real gatewayd binary, its JSON log on a pipe. idle: connected and idle,
// CPU from /proc/<pid>/task/*/schedstat over each -benchd.idle window. latency/spaced: from just
// before the write of a URC to the time field (µs) of the daemon's "led" log line, written right
// after the toggle. stream: a stream of 100-byte downlinks as fast as the daemon logs them; peak
// RSS is VmHWM afterwards.
func BenchmarkProcess(b *testing.B) {
	r := startRig(b, Options{Binary: buildDaemon(b)})
	ctx := context.Background()
	time.Sleep(time.Second) // let the bring-up's garbage and timers settle

	b.Run("idle", func(b *testing.B) { benchIdle(b, r) })
	b.Run("latency/spaced", func(b *testing.B) {
		one, err := NewStream(benchPayload, 1, 1)
		if err != nil {
			b.Fatal(err)
		}
		lat := make([]time.Duration, 0, b.N)
		base := r.Completed()
		_, bad0 := r.Sink.LastStamp()
		b.ResetTimer()
		for i := range b.N {
			time.Sleep(*spacing)
			t0, err := r.Relay.Inject(one.Message(i))
			if err != nil {
				b.Fatal(err)
			}
			wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			err = r.WaitCompleted(wctx, base+uint64(i)+1)
			cancel()
			if err != nil {
				b.Fatalf("downlink %d: %v", i, err)
			}
			t1, bad := r.Sink.LastStamp()
			if bad != bad0 {
				b.Fatalf("%d led log lines without a readable time field", bad-bad0)
			}
			// The log's time has microseconds: add half of one for the truncation.
			lat = append(lat, t1.Sub(t0)+500*time.Nanosecond)
		}
		b.StopTimer()
		slices.Sort(lat)
		b.ReportMetric(float64(quantile(lat, 0.50))/1e3, "p50-µs")
		b.ReportMetric(float64(quantile(lat, 0.99))/1e3, "p99-µs")
		b.ReportMetric(float64(lat[len(lat)-1])/1e3, "max-µs")
		if lat[0] < 0 {
			b.Fatalf("a led log line is stamped %v before its downlink was written", -lat[0])
		}
	})
	b.Run("stream", func(b *testing.B) {
		s, err := NewStream(benchPayload, *batch, *window)
		if err != nil {
			b.Fatal(err)
		}
		logged := r.Sink.Count(logging.EventDownlink)
		self0, err := ReadProc("self")
		if err != nil {
			b.Fatal(err)
		}
		meter := startHostMeter(b, r.Pid)
		b.SetBytes(int64(len(benchPayload)))
		b.ResetTimer()
		wctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
		defer cancel()
		if err := s.Run(wctx, r, b.N); err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		self1, err := ReadProc("self")
		if err != nil {
			b.Fatal(err)
		}
		p, cores := meter.stop(b, r.Pid, self0, self1)
		checkLogged(b, r, logged, b.N)
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
		b.ReportMetric(float64(b.N*s.MessageLen())/b.Elapsed().Seconds()/1e6, "wire-MB/s")
		b.ReportMetric(cores, "proc-cores")
		b.ReportMetric(float64(p.CPU-meter.p0.CPU)/float64(b.N)/1e3, "cpu-µs/msg")
		b.ReportMetric(float64(p.HWM)/(1<<20), "peak-RSS-MiB")
	})

	b.Run("idle-after-stream", func(b *testing.B) { benchIdle(b, r) })
}

// benchIdle measures the connected daemon doing nothing, over -benchd.idle per op.
func benchIdle(b *testing.B, r *Rig) {
	cmds := r.Module.Stats().Commands
	self0, err := ReadProc("self")
	if err != nil {
		b.Fatal(err)
	}
	meter := startHostMeter(b, r.Pid)
	b.ResetTimer()
	for range b.N {
		time.Sleep(*idleWindow)
	}
	b.StopTimer()
	self1, err := ReadProc("self")
	if err != nil {
		b.Fatal(err)
	}
	p, cores := meter.stop(b, r.Pid, self0, self1)
	secs := p.At.Sub(meter.p0.At).Seconds()
	b.ReportMetric(100*cores, "idle-%core")
	b.ReportMetric(100*TicksBetween(meter.p0, p), "idle-%core-ticks")
	b.ReportMetric(float64(p.Slices-meter.p0.Slices)/secs, "wakeups/s")
	b.ReportMetric(float64(r.Module.Stats().Commands-cmds), "AT-cmds")
	b.ReportMetric(float64(p.RSS)/(1<<20), "RSS-MiB")
}

// BenchmarkPty is the ceiling the pty itself sets: the same stream of downlink bytes, written the
// same way, read by a goroutine that only counts them (4 KiB reads through go.bug.st/serial, as
// the daemon's port is opened). MB/s counts the 100-byte payloads, as in the other benchmarks.
func BenchmarkPty(b *testing.B) {
	up, other := net.Pipe()
	defer other.Close()
	r, err := NewRelay(up)
	if err != nil {
		b.Fatal(err)
	}
	defer r.Close()
	p, err := port.Open(context.Background(), r.Path(), 115200)
	if err != nil {
		b.Fatal(err)
	}
	defer p.Close()
	s, err := NewStream(benchPayload, *batch, *window)
	if err != nil {
		b.Fatal(err)
	}
	total := int64(b.N) * int64(s.MessageLen())
	done := make(chan error, 1)
	go func() {
		buf := make([]byte, 4096)
		var got int64
		for got < total {
			n, err := p.Read(buf)
			got += int64(n)
			if err != nil {
				done <- err
				return
			}
		}
		done <- nil
	}()
	b.SetBytes(int64(len(benchPayload)))
	b.ResetTimer()
	for sent, pos := 0, 0; sent < b.N; {
		k := min(s.Batch, b.N-sent)
		if _, err := r.Inject(s.block[pos*s.msgLen : (pos+k)*s.msgLen]); err != nil {
			b.Fatal(err)
		}
		sent += k
		pos = (pos + k) % RingSize
	}
	if err := <-done; err != nil {
		b.Fatal(err)
	}
	b.StopTimer()
	b.ReportMetric(float64(total)/b.Elapsed().Seconds()/1e6, "wire-MB/s")
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
}

// BenchmarkBurst: the real gatewayd binary, its log on a pipe, fed -benchd.burst downlinks
// (100,000) back to back with no window: the writer of the pty is held back only by the pty and
// by the daemon's backpressure, as a module's backlog would be. Each op is one burst; every
// downlink must be logged and toggle the LED. plain: the daemon alone. stuck-local-subscriber: the
// local endpoint on, with one local client subscribed to the downlink topic that never reads.
func BenchmarkBurst(b *testing.B) {
	bin := buildDaemon(b)
	b.Run("plain", func(b *testing.B) { benchBurst(b, startRig(b, Options{Binary: bin})) })
	// With the unit's timer slack (TimerSlackNSec=10ms), as systemd runs it.
	b.Run("unit", func(b *testing.B) { benchBurst(b, startRig(b, Options{Binary: bin, TimerSlack: unitTimerSlack})) })
	b.Run("stuck-local-subscriber", func(b *testing.B) {
		r := startRig(b, Options{Binary: bin, Local: true})
		c, err := StuckSubscriber(r.LocalAddr, Topic)
		if err != nil {
			b.Fatal(err)
		}
		defer c.Close()
		benchBurst(b, r)
	})
}

func benchBurst(b *testing.B, r *Rig) {
	n := *burstN
	s, err := NewStream(benchPayload, *batch, n)
	if err != nil {
		b.Fatal(err)
	}
	time.Sleep(time.Second) // let the bring-up settle
	logged := r.Sink.Count(logging.EventDownlink)
	self0, err := ReadProc("self")
	if err != nil {
		b.Fatal(err)
	}
	meter := startHostMeter(b, r.Pid)
	peak := watchMemory(r.Pid)
	b.ResetTimer()
	for range b.N {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		err := s.Run(ctx, r, n)
		cancel()
		if err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	anon, file := peak()
	self1, err := ReadProc("self")
	if err != nil {
		b.Fatal(err)
	}
	p, cores := meter.stop(b, r.Pid, self0, self1)
	checkLogged(b, r, logged, b.N*n)
	total := float64(b.N * n)
	b.ReportMetric(total/b.Elapsed().Seconds(), "msgs/s")
	b.ReportMetric(float64(p.CPU-meter.p0.CPU)/total/1e3, "cpu-µs/msg")
	b.ReportMetric(cores, "proc-cores")
	b.ReportMetric(float64(p.HWM)/(1<<20), "peak-RSS-MiB")
	b.ReportMetric(float64(anon)/(1<<20), "peak-anon-MiB")
	b.ReportMetric(float64(file)/(1<<20), "peak-file-MiB")
	b.ReportMetric(float64(r.Sink.Count(logging.EventHeldBack)), "held-back-reports")
}

// watchMemory samples process pid's RssAnon and RssFile every 20 ms until the returned function
// is called, which returns the highest of each seen (the kernel keeps only the peak of their sum,
// VmHWM).
func watchMemory(pid string) (peak func() (anon, file int64)) {
	stop, done := make(chan struct{}), make(chan struct{})
	var anon, file int64
	sample := func() {
		if p, err := ReadProc(pid); err == nil {
			anon, file = max(anon, p.Anon), max(file, p.File)
		}
	}
	go func() {
		defer close(done)
		t := time.NewTicker(20 * time.Millisecond)
		defer t.Stop()
		for {
			sample()
			select {
			case <-stop:
				return
			case <-t.C:
			}
		}
	}()
	return func() (int64, int64) {
		close(stop)
		<-done
		sample()
		return anon, file
	}
}

// BenchmarkBurstLoss: how many of a burst the real binary loses, by burst size (1,000, 10,000 and
// 100,000 downlinks written back to back, no window). Each op is one burst; "lost" is what had
// not completed (LED toggled) when nothing more completed for Stream's Stall (5 s), summed over
// the ops. It never fails on a loss: it reports it, so that daemons can be compared.
func BenchmarkBurstLoss(b *testing.B) {
	r := startRig(b, Options{Binary: buildDaemon(b)})
	time.Sleep(time.Second)
	for _, n := range []int{1000, 10000, 100000} {
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			s, err := NewStream(benchPayload, *batch, n)
			if err != nil {
				b.Fatal(err)
			}
			lost := uint64(0)
			for range b.N {
				base := r.Completed()
				if err := s.Run(context.Background(), r, n); err != nil {
					lost += base + uint64(n) - r.Completed()
				}
			}
			b.ReportMetric(float64(lost), "lost")
			b.ReportMetric(float64(lost)/float64(b.N*n)*100, "lost-%")
		})
	}
}
