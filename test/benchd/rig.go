package benchd

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/gatewayd/gatewayd/internal/config"
	"github.com/gatewayd/gatewayd/internal/daemon"
	"github.com/gatewayd/gatewayd/internal/logging"
	"github.com/gatewayd/gatewayd/internal/port"
	"github.com/gatewayd/gatewayd/internal/supervisor"
	"github.com/gatewayd/gatewayd/sim"
	"github.com/gatewayd/gatewayd/test/testutil"
)

// Topic is the topic the rig's daemon subscribes to and its downlinks arrive on: the Alibaba Cloud
// property-set topic of the project's seed device.
const Topic = "/sys/a1B2c3D4e5F/pi-led-01/thing/service/property/set"

// rigConfig is the daemon's configuration; the %q are the relay's pty, the topic and the control
// socket. It goes through the daemon's own
// parser and validation. Logging is JSON at info, as deployed.
const rigConfig = `
[serial]
port = %q

[mqtt]
host = "a1B2c3D4e5F.iot-as-mqtt.cn-shanghai.aliyuncs.com"
port = 1883
client_id = "pi-led-01"
username = "bench"
password = "bench"
keepalive = "60s"

[[mqtt.subscribe]]
topic = %q
qos = 1

[control]
socket = %q

[log]
level = "info"
format = "json"
`

// Options say how to run the daemon in a Rig.
type Options struct {
	// Binary is the path of a built gatewayd to run as a child process. Empty: the daemon runs in
	// this process (supervisor and settings exactly as internal/daemon wires them, with a
	// MeasuringLED instead of a GPIO line).
	Binary string
	// LogPipe makes an in-process daemon write its log to a pipe (as the binary writes to the
	// journal's stream), read back into Sink by another goroutine; false hands each line to Sink
	// directly, with no system call.
	LogPipe bool
	// PollerPort is an experiment, not the daemon as shipped: the in-process daemon's AT port is
	// the pty opened non-blocking as an *os.File (reads wait in the Go runtime's poller) instead of
	// through internal/port (go.bug.st/serial: a select(2) then a read(2), each blocking a thread).
	PollerPort bool
	// ReadyTimeout bounds the bring-up; 0 means 30 s.
	ReadyTimeout time.Duration
	// Local runs the daemon's local MQTT endpoint on a free loopback port (Rig.LocalAddr), with
	// its outbox in the rig's directory: every downlink is also published to local subscribers.
	Local bool
	// Metrics serves the daemon's Prometheus metrics on a free loopback port (Rig.MetricsAddr).
	Metrics bool
	// Env is added to a child daemon's environment (e.g. WATCHDOG_USEC, as systemd sets it).
	Env []string
	// TimerSlack is a child daemon's timer slack (prctl PR_SET_TIMERSLACK, inherited by all its
	// threads), as the unit's TimerSlackNSec= sets it; 0 leaves the default (50 µs).
	TimerSlack time.Duration
}

// Rig is the daemon connected through a Relay to the EC600 emulator and an embedded broker.
type Rig struct {
	Broker *sim.Broker
	Module *sim.Module
	Relay  *Relay
	// Sink receives the daemon's log lines.
	Sink *EventSink
	// LED is the daemon's LED when it runs in this process; nil for a child process.
	LED *MeasuringLED
	// Pid is the daemon's process id ("self" when in this process).
	Pid string
	// LocalAddr is the local endpoint's address with Options.Local, else "".
	LocalAddr string
	// MetricsAddr is the metrics listener's address with Options.Metrics, else "".
	MetricsAddr string

	dir    string
	cancel context.CancelFunc
	done   chan error // the daemon's end
	cmd    *exec.Cmd
	closed bool

	lastRead atomic.Int64 // UnixNano when the in-process daemon's last read of its port returned

	logPipe *os.File      // the write end of the in-process daemon's log pipe (LogPipe)
	logRead chan struct{} // closed when the log pipe's reader has ended
}

// Start brings the whole rig up and returns once the daemon has subscribed (its "subscribed" log
// event). Close tears it down.
func Start(ctx context.Context, o Options) (r *Rig, err error) {
	if o.ReadyTimeout == 0 {
		o.ReadyTimeout = 30 * time.Second
	}
	dir, err := os.MkdirTemp("", "gatewayd-bench-")
	if err != nil {
		return nil, err
	}
	r = &Rig{dir: dir, Sink: NewEventSink()}
	defer func() {
		if err != nil {
			r.Close()
			r = nil
		}
	}()
	if r.Broker, err = sim.NewBroker("127.0.0.1:0"); err != nil {
		return r, fmt.Errorf("broker: %w", err)
	}
	if r.Module, err = sim.New(sim.Config{Link: filepath.Join(dir, "ec600-at"), Broker: r.Broker.Addr()}); err != nil {
		return r, fmt.Errorf("emulator: %w", err)
	}
	if err = r.Module.Start(context.WithoutCancel(ctx)); err != nil {
		return r, fmt.Errorf("emulator: %w", err)
	}
	up, err := port.Open(ctx, r.Module.Path(), 115200)
	if err != nil {
		return r, fmt.Errorf("emulator's AT port: %w", err)
	}
	if r.Relay, err = NewRelay(up); err != nil {
		up.Close()
		return r, err
	}
	text := fmt.Sprintf(rigConfig, r.Relay.Path(), Topic, filepath.Join(dir, "control.sock"))
	if o.Local {
		if r.LocalAddr, err = testutil.FreeLoopback(); err != nil {
			return r, err
		}
		text += fmt.Sprintf("\n[local]\nlisten = %q\n\n[outbox]\ndir = %q\n", r.LocalAddr, filepath.Join(dir, "outbox"))
	}
	if o.Metrics {
		if r.MetricsAddr, err = testutil.FreeLoopback(); err != nil {
			return r, err
		}
		text += fmt.Sprintf("\n[metrics]\nlisten = %q\n", r.MetricsAddr)
	}
	dctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	r.cancel = cancel
	r.done = make(chan error, 1)
	if o.Binary == "" {
		err = r.startInProcess(dctx, text, o)
	} else {
		err = r.startProcess(o.Binary, text, o.Env, o.TimerSlack)
	}
	if err != nil {
		return r, err
	}
	rctx, rcancel := context.WithTimeout(ctx, o.ReadyTimeout)
	defer rcancel()
	if err := r.Sink.WaitCount(rctx, logging.EventSubscribed, 1); err != nil {
		return r, fmt.Errorf("daemon bring-up: %w", err)
	}
	return r, nil
}

// freeAddr is a loopback address no one listens on now.
func (r *Rig) startInProcess(ctx context.Context, text string, o Options) error {
	cfg, err := config.Parse([]byte(text), "bench.toml")
	if err != nil {
		return fmt.Errorf("rig configuration: %w", err)
	}
	var w io.Writer = r.Sink
	if o.LogPipe {
		pr, pw, err := os.Pipe()
		if err != nil {
			return err
		}
		r.logPipe = pw
		r.logRead = make(chan struct{})
		go func() {
			defer close(r.logRead)
			defer pr.Close()
			r.scanLog(pr)
		}()
		w = pw
	}
	log, err := logging.New(w, cfg.Log.Level, cfg.Log.Format)
	if err != nil {
		return err
	}
	set, err := daemon.Settings(cfg, log)
	if err != nil {
		return err
	}
	open := set.OpenPort
	if o.PollerPort {
		path := r.Relay.Path()
		open = func(context.Context) (io.ReadWriteCloser, error) {
			return os.OpenFile(path, os.O_RDWR|syscall.O_NOCTTY|syscall.O_NONBLOCK, 0)
		}
	}
	set.OpenPort = func(ctx context.Context) (io.ReadWriteCloser, error) {
		p, err := open(ctx)
		if err != nil {
			return nil, err
		}
		return &stampedPort{ReadWriteCloser: p, last: &r.lastRead}, nil
	}
	r.LED = NewMeasuringLED()
	r.Pid = "self"
	sup := supervisor.New(set, log, r.LED, nil)
	go func() { r.done <- sup.Run(ctx) }()
	return nil
}

func (r *Rig) startProcess(bin, text string, env []string, slack time.Duration) error {
	path := filepath.Join(r.dir, "gatewayd.toml")
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		return err
	}
	r.Sink.Stamp(logging.EventLED)
	cmd := exec.Command(bin, "-config", path)
	if len(env) > 0 {
		cmd.Env = append(os.Environ(), env...)
	}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return err
	}
	if err := withTimerSlack(slack, cmd.Start); err != nil {
		return fmt.Errorf("start %s: %w", bin, err)
	}
	r.cmd = cmd
	r.Pid = strconv.Itoa(cmd.Process.Pid)
	go func() {
		r.scanLog(stderr)
		r.done <- cmd.Wait() // after every line is read, as os/exec asks
	}()
	return nil
}

// withTimerSlack runs start (which forks) on a thread whose timer slack is slack, so that the
// child inherits it as it would from systemd's TimerSlackNSec=; slack 0 runs start as it is.
func withTimerSlack(slack time.Duration, start func() error) error {
	if slack <= 0 {
		return start()
	}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	if err := unix.Prctl(unix.PR_SET_TIMERSLACK, uintptr(slack.Nanoseconds()), 0, 0, 0); err != nil {
		return fmt.Errorf("timer slack: %w", err)
	}
	defer unix.Prctl(unix.PR_SET_TIMERSLACK, 0, 0, 0, 0) // 0: back to the thread's default
	return start()
}

// scanLog feeds the log lines read from rd to Sink until EOF.
func (r *Rig) scanLog(rd io.Reader) {
	sc := bufio.NewScanner(rd)
	sc.Buffer(make([]byte, 64<<10), 4<<20)
	for sc.Scan() {
		r.Sink.Write(sc.Bytes())
	}
}

// Close stops the daemon (SIGTERM for a child, which must exit within 10 s) and tears down relay,
// emulator and broker. It returns the daemon's error, if it failed.
func (r *Rig) Close() error {
	if r.closed {
		return nil
	}
	r.closed = true
	var errs []error
	if r.cancel != nil {
		r.cancel()
	}
	if r.cmd != nil {
		_ = r.cmd.Process.Signal(syscall.SIGTERM)
	}
	if r.done != nil && (r.cmd != nil || r.LED != nil) {
		select {
		case err := <-r.done:
			if err != nil {
				errs = append(errs, fmt.Errorf("daemon: %w", err))
			}
		case <-time.After(10 * time.Second):
			errs = append(errs, errors.New("daemon did not stop within 10 s"))
			if r.cmd != nil {
				_ = r.cmd.Process.Kill()
				<-r.done
			}
		}
	}
	if r.logPipe != nil {
		_ = r.logPipe.Close()
		<-r.logRead
	}
	if r.Relay != nil {
		_ = r.Relay.Close()
	}
	if r.Module != nil {
		_ = r.Module.Close()
	}
	if r.Broker != nil {
		_ = r.Broker.Close()
	}
	_ = os.RemoveAll(r.dir)
	return errors.Join(errs...)
}

// LastRead is when the in-process daemon's latest read(2) of its AT port returned (zero before
// the first, and for a child process). With one downlink in flight, it splits the latency into the
// pty's part (write to read) and the daemon's (read to LED).
func (r *Rig) LastRead() time.Time {
	n := r.lastRead.Load()
	if n == 0 {
		return time.Time{}
	}
	return time.Unix(0, n)
}

// stampedPort is the daemon's AT port with the time of each returning Read noted; it changes
// nothing else.
type stampedPort struct {
	io.ReadWriteCloser
	last *atomic.Int64
}

func (p *stampedPort) Read(b []byte) (int, error) {
	n, err := p.ReadWriteCloser.Read(b)
	p.last.Store(time.Now().UnixNano())
	return n, err
}

// Completed returns how many downlinks the daemon has finished: LED toggles when it runs in this
// process, "led" log lines with why=downlink otherwise (counted as all "led" lines minus the two
// of the bring-up, which Start has seen).
func (r *Rig) Completed() uint64 {
	if r.LED != nil {
		n, _ := r.LED.Toggles()
		return n
	}
	return r.Sink.Count(logging.EventLED) - 2
}

// WaitCompleted blocks until Completed reaches n.
func (r *Rig) WaitCompleted(ctx context.Context, n uint64) error {
	if r.LED != nil {
		_, _, err := r.LED.WaitToggles(ctx, n)
		return err
	}
	return r.Sink.WaitCount(ctx, logging.EventLED, n+2)
}

// Downlink returns the bytes an EC600 writes for a downlink with recv/mode 0,0,1 (payload in the
// URC, length field on): CR LF +QMTRECV: <idx>,<msgID>,"<topic>",<len>,"<payload>" CR LF.
func Downlink(msgID int, topic string, payload []byte) []byte {
	b := fmt.Appendf(nil, "\r\n+QMTRECV: 0,%d,%q,%d,\"", msgID, topic, len(payload))
	b = append(b, payload...)
	return append(b, "\"\r\n"...)
}

// Stream is a prepared run of downlinks: a block of RingSize messages that is injected again and
// again, Batch messages per write(2).
type Stream struct {
	block  []byte
	msgLen int
	// Batch is how many messages go in one write.
	Batch int
	// Window is the most messages written but not yet completed; it keeps the daemon's bounded
	// queues (at: 1024 URCs, qmt: 256 events) from dropping.
	Window int
}

// RingSize is the number of distinct messages (msgIDs 1000-2023) a Stream cycles through.
const RingSize = 1024

// NewStream prepares downlinks with the given payload on Topic. batch must divide RingSize.
func NewStream(payload []byte, batch, window int) (*Stream, error) {
	if batch <= 0 || RingSize%batch != 0 || window < batch {
		return nil, fmt.Errorf("stream: batch %d must divide %d and be at most the window %d", batch, RingSize, window)
	}
	s := &Stream{Batch: batch, Window: window}
	for i := range RingSize {
		m := Downlink(1000+i, Topic, payload)
		if s.msgLen == 0 {
			s.msgLen = len(m)
		} else if len(m) != s.msgLen {
			return nil, fmt.Errorf("stream: message %d is %d bytes, want %d", i, len(m), s.msgLen)
		}
		s.block = append(s.block, m...)
	}
	return s, nil
}

// MessageLen is the length of one message on the wire.
func (s *Stream) MessageLen() int { return s.msgLen }

// Message returns message i of the ring (i mod RingSize).
func (s *Stream) Message(i int) []byte {
	i %= RingSize
	return s.block[i*s.msgLen : (i+1)*s.msgLen]
}

// Stall is how long Stream.Run waits for the daemon to complete one more message before it gives
// up: a daemon that dropped downlinks never completes them.
const Stall = 5 * time.Second

// Run writes n messages to r's daemon as fast as it completes them (never more than Window
// ahead) and returns once all n are completed. It fails if the daemon completes nothing for
// Stall, saying how many it completed.
func (s *Stream) Run(ctx context.Context, r *Rig, n int) error {
	base := r.Completed()
	wait := func(sent, upTo int) error {
		for {
			before := r.Completed()
			wctx, cancel := context.WithTimeout(ctx, Stall)
			err := r.WaitCompleted(wctx, base+uint64(upTo))
			cancel()
			if err == nil {
				return nil
			}
			if ctx.Err() != nil || r.Completed() == before {
				return fmt.Errorf("%d sent, %d completed, none for %s: %w", sent, r.Completed()-base, Stall, err)
			}
		}
	}
	sent, pos := 0, 0
	for sent < n {
		k := min(s.Batch, n-sent)
		if ahead := sent + k - s.Window; ahead > 0 {
			if err := wait(sent, ahead); err != nil {
				return err
			}
		}
		if _, err := r.Relay.Inject(s.block[pos*s.msgLen : (pos+k)*s.msgLen]); err != nil {
			return err
		}
		sent += k
		pos = (pos + k) % RingSize
	}
	return wait(n, n)
}
