// Package sdnotify tells systemd about the daemon's life (READY, RELOADING, STATUS, WATCHDOG, STOPPING)
// through github.com/coreos/go-systemd/v22/daemon. Outside systemd every call does nothing.
package sdnotify

import (
	"strconv"
	"time"

	"github.com/coreos/go-systemd/v22/daemon"
	"github.com/rs/zerolog"
	"golang.org/x/sys/unix"
)

// Notifier sends sd_notify messages. Its zero value is not usable; call New.
type Notifier struct {
	log zerolog.Logger
}

// New returns a Notifier that logs (at debug) when a message cannot be sent.
func New(log zerolog.Logger) *Notifier { return &Notifier{log: log} }

// WatchdogInterval reports the interval systemd expects pings at (WatchdogSec=), or 0 when the
// watchdog is off or the daemon does not run under systemd.
func (n *Notifier) WatchdogInterval() time.Duration {
	d, err := daemon.SdWatchdogEnabled(false)
	if err != nil {
		n.log.Warn().Err(err).Msg("cannot read the systemd watchdog settings")
		return 0
	}
	return d
}

// send never passes unsetEnvironment=true: that would remove NOTIFY_SOCKET and lose every later ping.
func (n *Notifier) send(state string) {
	if _, err := daemon.SdNotify(false, state); err != nil {
		n.log.Debug().Err(err).Str("state", state).Msg("sd_notify failed")
	}
}

// Ready tells systemd the service is up (Type=notify).
func (n *Notifier) Ready() { n.send(daemon.SdNotifyReady) }

// Reloading tells systemd the daemon is reloading its configuration (`systemctl reload`); Ready
// says when it is done. MONOTONIC_USEC, which systemd 253 and later want with it, is the
// monotonic clock's time.
func (n *Notifier) Reloading() {
	var ts unix.Timespec
	state := daemon.SdNotifyReloading
	if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts); err == nil {
		state += "\nMONOTONIC_USEC=" + strconv.FormatInt(ts.Nano()/1000, 10)
	}
	n.send(state)
}

// Status sets the one-line status `systemctl status` shows.
func (n *Notifier) Status(s string) { n.send("STATUS=" + s) }

// Watchdog pings the watchdog.
func (n *Notifier) Watchdog() { n.send(daemon.SdNotifyWatchdog) }

// Stopping tells systemd the service is shutting down.
func (n *Notifier) Stopping() { n.send(daemon.SdNotifyStopping) }
