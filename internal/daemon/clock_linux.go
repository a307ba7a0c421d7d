package daemon

import (
	"fmt"

	"golang.org/x/sys/unix"
)

// ClockSynced reports whether the kernel takes the system clock as synchronised (an NTP client
// such as systemd-timesyncd cleared STA_UNSYNC), as timedatectl's "System clock synchronized"
// does. It reads, never sets: adjtimex with no modes.
func ClockSynced() (bool, error) {
	var tx unix.Timex
	state, err := unix.Adjtimex(&tx)
	if err != nil {
		return false, fmt.Errorf("adjtimex: %w", err)
	}
	return state != unix.TIME_ERROR && tx.Status&unix.STA_UNSYNC == 0, nil
}
