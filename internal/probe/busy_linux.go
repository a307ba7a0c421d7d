package probe

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// holders lists the other processes that have the device at path open ("1234 (ModemManager)"),
// by its device number, whatever name they opened it by. Processes whose descriptors this user
// may not read are not seen.
func holders(path string) ([]string, error) {
	var st syscall.Stat_t
	if err := syscall.Stat(path, &st); err != nil {
		return nil, fmt.Errorf("probe: %s: %w", path, err)
	}
	if st.Mode&syscall.S_IFMT != syscall.S_IFCHR {
		return nil, fmt.Errorf("probe: %s is not a character device (a serial port)", path)
	}
	procs, _ := filepath.Glob("/proc/[0-9]*")
	self := os.Getpid()
	var out []string
	for _, p := range procs {
		pid, err := strconv.Atoi(filepath.Base(p))
		if err != nil || pid == self {
			continue
		}
		fds, _ := filepath.Glob(filepath.Join(p, "fd", "*"))
		for _, fd := range fds {
			var fst syscall.Stat_t
			if syscall.Stat(fd, &fst) != nil || fst.Mode&syscall.S_IFMT != syscall.S_IFCHR || fst.Rdev != st.Rdev {
				continue
			}
			comm, _ := os.ReadFile(filepath.Join(p, "comm"))
			out = append(out, fmt.Sprintf("%d (%s)", pid, strings.TrimSpace(string(comm))))
			break
		}
	}
	return out, nil
}
