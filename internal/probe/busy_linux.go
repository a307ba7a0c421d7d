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
// by its device number, whatever name they opened it by. For a pty (an emulated module), the
// process that holds its master side is the module, not a competitor, and is not listed.
// Processes whose descriptors this user may not read are not seen.
func holders(path string) ([]string, error) {
	var st syscall.Stat_t
	if err := syscall.Stat(path, &st); err != nil {
		return nil, fmt.Errorf("probe: %s: %w", path, err)
	}
	if st.Mode&syscall.S_IFMT != syscall.S_IFCHR {
		return nil, fmt.Errorf("probe: %s is not a character device (a serial port)", path)
	}
	pts := ""
	if resolved, err := filepath.EvalSymlinks(path); err == nil && filepath.Dir(resolved) == "/dev/pts" {
		pts = filepath.Base(resolved)
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
			if pts != "" && holdsMaster(p, pts) {
				break
			}
			comm, _ := os.ReadFile(filepath.Join(p, "comm"))
			out = append(out, fmt.Sprintf("%d (%s)", pid, strings.TrimSpace(string(comm))))
			break
		}
	}
	return out, nil
}

// holdsMaster reports whether process directory proc has the master side of pty number pts open
// (/dev/ptmx with tty-index pts in its fdinfo).
func holdsMaster(proc, pts string) bool {
	fds, _ := filepath.Glob(filepath.Join(proc, "fd", "*"))
	for _, fd := range fds {
		if l, err := os.Readlink(fd); err != nil || filepath.Base(l) != "ptmx" {
			continue
		}
		info, err := os.ReadFile(filepath.Join(proc, "fdinfo", filepath.Base(fd)))
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(info), "\n") {
			if v, ok := strings.CutPrefix(line, "tty-index:"); ok && strings.TrimSpace(v) == pts {
				return true
			}
		}
	}
	return false
}
