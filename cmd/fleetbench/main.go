// Command fleetbench runs a fleet of emulated gateways — the real gatewayd binary, each with an
// emulated module of its own and a program publishing QoS 1 messages through its local endpoint
// and outbox — against one broker, restarts the broker, and reports how the fleet came back: the
// time until all are connected again, the CONNECTs per second at the broker, refusals, messages
// lost and memory per gateway.
//
//	go run ./cmd/fleetbench -n 500                 # the embedded broker, refusing CONNECTs for 20 s
//	go run ./cmd/fleetbench -n 500 -mosquitto auto # Debian's mosquitto, stopped for 20 s
//	go run ./cmd/fleetbench -n 30 -bin /tmp/gatewayd-main   # another build of the daemon
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/gatewayd/gatewayd/test/fleet"
)

func main() {
	n := flag.Int("n", 30, "gateways")
	bin := flag.String("bin", "", "the gatewayd binary; empty: build ./cmd/gatewayd")
	mosq := flag.String("mosquitto", "", `the mosquitto binary, "auto" to find it; empty: the embedded broker`)
	refuse := flag.Duration("refuse", 20*time.Second, "how long the broker is away after the restart")
	rate := flag.Int("rate", 0, "the embedded broker refuses CONNECTs above this many a second (0: no limit)")
	stable := flag.Duration("stable", 5*time.Second, "retry.stable_after of the gateways")
	every := flag.Duration("every", time.Second, "each gateway's local program publishes this often")
	timeout := flag.Duration("timeout", 5*time.Minute, "the bound on each phase")
	flag.Parse()
	if err := run(*n, *bin, *mosq, *refuse, *rate, *stable, *every, *timeout); err != nil {
		fmt.Fprintln(os.Stderr, "fleetbench:", err)
		os.Exit(1)
	}
}

func run(n int, bin, mosq string, refuse time.Duration, rate int, stable, every, timeout time.Duration) error {
	if err := raiseFileLimit(); err != nil {
		return err
	}
	dir, err := os.MkdirTemp("", "fleetbench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	if bin == "" {
		bin = filepath.Join(dir, "gatewayd")
		if out, err := exec.Command("go", "build", "-o", bin, "./cmd/gatewayd").CombinedOutput(); err != nil {
			return fmt.Errorf("building gatewayd: %w\n%s", err, out)
		}
	}
	if mosq == "auto" {
		if mosq, err = exec.LookPath("mosquitto"); err != nil {
			mosq = "/usr/sbin/mosquitto"
			if _, err := os.Stat(mosq); err != nil {
				return fmt.Errorf("mosquitto not found (apt-get install mosquitto)")
			}
		}
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	start := time.Now()
	res, err := fleet.Run(ctx, fleet.Config{
		Bin: bin, N: n, Dir: dir, Mosquitto: mosq, RefuseFor: refuse, ConnectRate: rate,
		StableAfter: stable, PublishEvery: every, Timeout: timeout,
		Logf: func(format string, args ...any) {
			fmt.Fprintf(os.Stderr, "%6.1fs  %s\n", time.Since(start).Seconds(), fmt.Sprintf(format, args...))
		},
	})
	if err != nil {
		return err
	}
	fmt.Println(res)
	if res.Lost != 0 {
		return fmt.Errorf("%d messages lost", res.Lost)
	}
	return nil
}

// raiseFileLimit raises the soft limit on open files to the hard limit: every gateway holds a
// pty, sockets and files in this process and in its daemon.
func raiseFileLimit() error {
	var l syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &l); err != nil {
		return err
	}
	if l.Cur < l.Max {
		l.Cur = l.Max
		return syscall.Setrlimit(syscall.RLIMIT_NOFILE, &l)
	}
	return nil
}
