// Command gatewayd drives a Quectel EC600 LTE module over its serial AT port, keeps the module's
// built-in MQTT client connected, and toggles a GPIO LED when downlinks arrive.
//
//	gatewayd [-config FILE]          run the daemon (default /etc/gatewayd/gatewayd.toml)
//	gatewayd check [-config FILE]    validate a configuration and print what it resolves to
//	gatewayd status [-json] [-q]     ask the running daemon what it is doing
//	gatewayd at 'AT+CSQ'             one AT command through the running daemon
//	gatewayd doctor [-config FILE]   check every part the gateway needs: ok, or what to do
//	gatewayd sim                     the whole daemon on the built-in EC600 emulator and broker
//	gatewayd probe -port DEV         record how a module answers a fixed, safe script
//	gatewayd -version                print the version
//
// The daemon reads its configuration again on SIGHUP (`systemctl reload gatewayd`); see
// internal/daemon's Reload for what is applied how.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime/debug"
	"syscall"
	"time"

	"github.com/rs/zerolog"

	"github.com/gatewayd/gatewayd/internal/config"
	"github.com/gatewayd/gatewayd/internal/daemon"
	"github.com/gatewayd/gatewayd/internal/logging"
	"github.com/gatewayd/gatewayd/internal/memlimit"
	"github.com/gatewayd/gatewayd/internal/sdnotify"
)

// version is set at build time with -ldflags "-X main.version=..."; otherwise the module version
// or VCS revision from the build information is used.
var version = ""

const defaultConfig = "/etc/gatewayd/gatewayd.toml"

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// run is main without the process: it returns the exit code.
func run(args []string, stdout, stderr io.Writer) int {
	cmd := "run"
	if len(args) > 0 && len(args[0]) > 0 && args[0][0] != '-' {
		cmd, args = args[0], args[1:]
	}
	switch cmd {
	case "run":
		return runDaemon(args, stdout, stderr)
	case "check":
		return runCheck(args, stdout, stderr)
	case "status":
		return runStatus(args, stdout, stderr)
	case "at":
		return runAT(args, stdout, stderr)
	case "doctor":
		return runDoctor(args, stdout, stderr)
	case "sim":
		return runSim(args, stdout, stderr)
	case "probe":
		return runProbe(args, stdout, stderr)
	case "version":
		fmt.Fprintln(stdout, "gatewayd", versionString())
		return 0
	case "help":
		usage(stdout)
		return 0
	default:
		fmt.Fprintf(stderr, "gatewayd: unknown command %q\n", cmd)
		usage(stderr)
		return 2
	}
}

func usage(w io.Writer) {
	fmt.Fprint(w, `usage:
  gatewayd [-config FILE]          run the daemon (default `+defaultConfig+`)
  gatewayd check [-config FILE]    validate a configuration and print the settings it resolves to
  gatewayd status [-json] [-q]     ask the running daemon what it is doing (exit 1: not connected)
  gatewayd at [-force] 'AT+CSQ'    one AT command through the running daemon, which owns the port
  gatewayd doctor [-config FILE]   check every part the gateway needs: ok, or what is wrong and what to do
  gatewayd sim [-h]                the whole daemon on the built-in EC600 emulator and broker
  gatewayd probe -port DEV [-h]    record how a module answers a fixed, safe script (daemon stopped)
  gatewayd -version                print the version
`)
}

func versionString() string {
	if version != "" {
		return version
	}
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return "unknown"
	}
	v := bi.Main.Version
	for _, s := range bi.Settings {
		if s.Key == "vcs.revision" && len(s.Value) >= 12 {
			v += " " + s.Value[:12]
		}
	}
	return v
}

func runDaemon(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("gatewayd", flag.ContinueOnError)
	fs.SetOutput(stderr)
	path := fs.String("config", defaultConfig, "configuration `file`")
	showVersion := fs.Bool("version", false, "print the version and exit")
	fs.Usage = func() { usage(stderr); fs.PrintDefaults() }
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *showVersion {
		fmt.Fprintln(stdout, "gatewayd", versionString())
		return 0
	}
	// SIGHUP (`systemctl reload gatewayd`) reloads the configuration; caught from the start, so
	// that an early one cannot kill the daemon.
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	cfg, err := config.Load(*path)
	if err != nil {
		fmt.Fprintf(stderr, "gatewayd: %v\n", err)
		return 1
	}
	// Log lines that arrive while one is being written go out together in one write.
	logOut := logging.NewBatchWriter(stderr, 0)
	defer logOut.Close()
	log, level, err := logging.NewReloadable(logOut, cfg.Log.Level, cfg.Log.Format)
	if err != nil {
		fmt.Fprintf(stderr, "gatewayd: %v\n", err)
		return 1
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	notify := sdnotify.New(log)
	log.Info().Str("version", versionString()).Str("config", cfg.File).Msg("gatewayd starting")
	logging.RouteStdlib(log)
	applyMemoryLimit(log)
	reloads := make(chan daemon.Reload)
	go reloadOnHUP(ctx, hup, *path, reloads, notify, log)
	err = daemon.RunWith(ctx, cfg, log, daemon.Options{Notify: notify, Watchdog: notify.WatchdogInterval(),
		Version: versionString(), Reloads: reloads, Level: level})
	if err != nil && !errors.Is(err, context.Canceled) {
		log.Error().Err(err).Msg("gatewayd stopped")
		return 1
	}
	log.Info().Msg("gatewayd stopped")
	return 0
}

// applyMemoryLimit gives the Go runtime a soft memory limit below the unit's MemoryHigh= (see
// internal/memlimit) and logs what it did.
func applyMemoryLimit(log zerolog.Logger) {
	l, ok, reason, err := memlimit.Apply()
	switch {
	case err != nil:
		log.Warn().Err(err).Msg("the Go runtime has no memory limit: the cgroup's could not be read")
	case ok:
		log.Info().Int64("limit_bytes", l.Soft()).Int64("cgroup_limit_bytes", l.Of).Str("from", l.File).
			Msg("memory limit set for the Go runtime")
	default:
		log.Debug().Str("reason", reason).Msg("no memory limit set for the Go runtime")
	}
}

// EventConfigReloadRefused is the log event of a reload whose configuration is invalid.
const EventConfigReloadRefused = "config_reload_refused"

// reloadOnHUP reads the configuration at path again on every SIGHUP and hands it to the daemon;
// one that does not load is refused with the error `gatewayd` would stop with at start, and the
// running configuration is kept. systemd hears RELOADING=1 and, when it is done, READY=1.
func reloadOnHUP(ctx context.Context, hup <-chan os.Signal, path string, reloads chan<- daemon.Reload, notify *sdnotify.Notifier, log zerolog.Logger) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-hup:
		}
		notify.Reloading()
		log.Info().Str("config", path).Msg("SIGHUP: reading the configuration again")
		cfg, err := config.Load(path)
		if err != nil {
			log.Error().Str(logging.EventKey, EventConfigReloadRefused).Str("config", path).Err(err).
				Msg("the new configuration is invalid: reload refused, the running configuration is kept")
			notify.Ready()
			continue
		}
		done := make(chan struct{})
		select {
		case reloads <- daemon.Reload{Config: cfg, Done: done}:
		case <-ctx.Done():
			return
		}
		select {
		case <-done:
		case <-ctx.Done():
			return
		}
		notify.Ready()
	}
}

func runCheck(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("gatewayd check", flag.ContinueOnError)
	fs.SetOutput(stderr)
	path := fs.String("config", defaultConfig, "configuration `file`")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	cfg, err := config.Load(*path)
	if err != nil {
		fmt.Fprintf(stderr, "gatewayd check: %v\n", err)
		return 1
	}
	for _, w := range cfg.Warnings {
		fmt.Fprintf(stderr, "warning: %s\n", w)
	}
	if err := cfg.Describe(stdout, time.Now()); err != nil {
		fmt.Fprintf(stderr, "gatewayd check: %v\n", err)
		return 1
	}
	if err := cfg.DescribeOrigins(stdout); err != nil {
		fmt.Fprintf(stderr, "gatewayd check: %v\n", err)
		return 1
	}
	fmt.Fprintf(stdout, "%s: OK\n", cfg.File)
	return 0
}
