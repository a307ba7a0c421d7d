package benchd

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// clockTick is USER_HZ, the unit of the CPU times in /proc/<pid>/stat and /proc/stat. It is 100 on
// every Linux architecture Go supports.
const clockTick = 100

// ProcSample is what /proc says about one process at one moment.
type ProcSample struct {
	At       time.Time
	CPU      time.Duration // on-CPU time of all its threads, from /proc/<pid>/task/*/schedstat (ns)
	CPUTicks int64         // utime+stime from /proc/<pid>/stat, in clock ticks (10 ms)
	Threads  int
	Slices   int64 // times its threads were scheduled in, from schedstat: wakeups, roughly
	// Switches is its threads' context switches, voluntary and not, summed over
	// /proc/<pid>/task/*/status: how often it went to sleep or was put off the CPU, so each
	// wakeup counts once.
	Switches int64
	RSS      int64 // VmRSS, bytes
	HWM      int64 // VmHWM (peak RSS), bytes
	// RSS = Anon + File (+ shared memory, which the daemon has none of): Anon is the heap, the
	// stacks and the runtime's own; File the pages of files it maps (its executable) that its
	// page tables point at, shared with the page cache.
	Anon, File int64 // RssAnon, RssFile, bytes
}

// ReadProc samples process pid ("self" works too). Threads that end between two samples take
// their schedstat time with them; CPUTicks (which counts them) is the cross-check.
func ReadProc(pid string) (ProcSample, error) {
	s := ProcSample{At: time.Now()}
	dir := filepath.Join("/proc", pid)
	stat, err := os.ReadFile(filepath.Join(dir, "stat"))
	if err != nil {
		return s, err
	}
	// Fields after the command name, which is in parentheses and may hold spaces.
	i := bytes.LastIndexByte(stat, ')')
	if i < 0 {
		return s, fmt.Errorf("%s/stat: no ')' in %q", dir, stat)
	}
	f := strings.Fields(string(stat[i+1:]))
	// f[0] is field 3 (state); utime and stime are fields 14 and 15.
	if len(f) < 13 {
		return s, fmt.Errorf("%s/stat: %d fields after the name, want at least 13", dir, len(f))
	}
	ut, err1 := strconv.ParseInt(f[11], 10, 64)
	st, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return s, fmt.Errorf("%s/stat: utime %q stime %q are not numbers", dir, f[11], f[12])
	}
	s.CPUTicks = ut + st

	tasks, err := os.ReadDir(filepath.Join(dir, "task"))
	if err != nil {
		return s, err
	}
	for _, t := range tasks {
		b, err := os.ReadFile(filepath.Join(dir, "task", t.Name(), "schedstat"))
		if err != nil {
			continue // the thread ended meanwhile
		}
		// schedstat: on-CPU ns, run-queue wait ns, timeslices.
		f := strings.Fields(string(b))
		if len(f) != 3 {
			return s, fmt.Errorf("%s/task/%s/schedstat: %q, want three numbers", dir, t.Name(), b)
		}
		ns, err1 := strconv.ParseInt(f[0], 10, 64)
		sl, err2 := strconv.ParseInt(f[2], 10, 64)
		if err1 != nil || err2 != nil {
			return s, fmt.Errorf("%s/task/%s/schedstat: %q, want three numbers", dir, t.Name(), b)
		}
		s.CPU += time.Duration(ns)
		s.Slices += sl
		s.Threads++
		st, err := os.ReadFile(filepath.Join(dir, "task", t.Name(), "status"))
		if err != nil {
			continue // the thread ended meanwhile
		}
		for _, line := range strings.Split(string(st), "\n") {
			k, v, ok := strings.Cut(line, ":")
			if !ok || (k != "voluntary_ctxt_switches" && k != "nonvoluntary_ctxt_switches") {
				continue
			}
			n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
			if err != nil {
				return s, fmt.Errorf("%s/task/%s/status: %s: %w", dir, t.Name(), k, err)
			}
			s.Switches += n
		}
	}

	status, err := os.ReadFile(filepath.Join(dir, "status"))
	if err != nil {
		return s, err
	}
	for _, line := range strings.Split(string(status), "\n") {
		k, v, ok := strings.Cut(line, ":")
		var dst *int64
		switch k {
		case "VmRSS":
			dst = &s.RSS
		case "VmHWM":
			dst = &s.HWM
		case "RssAnon":
			dst = &s.Anon
		case "RssFile":
			dst = &s.File
		}
		if !ok || dst == nil {
			continue
		}
		fs := strings.Fields(v)
		if len(fs) != 2 || fs[1] != "kB" {
			return s, fmt.Errorf("%s/status: %s is %q, want \"<n> kB\"", dir, k, v)
		}
		kb, err := strconv.ParseInt(fs[0], 10, 64)
		if err != nil {
			return s, fmt.Errorf("%s/status: %s: %w", dir, k, err)
		}
		*dst = kb << 10
	}
	if s.HWM == 0 {
		return s, fmt.Errorf("%s/status: no VmHWM line", dir)
	}
	return s, nil
}

// CPUBetween is the CPU time the process used from a to b, as a fraction of one core, from the
// nanosecond schedstat counters.
func CPUBetween(a, b ProcSample) float64 {
	return float64(b.CPU-a.CPU) / float64(b.At.Sub(a.At))
}

// TicksBetween is the same from the 10 ms utime+stime counters (coarse; a cross-check).
func TicksBetween(a, b ProcSample) float64 {
	return float64(b.CPUTicks-a.CPUTicks) / clockTick / b.At.Sub(a.At).Seconds()
}

// HostCPU is the machine's busy and total CPU time from /proc/stat, in clock ticks.
type HostCPU struct {
	At          time.Time
	Busy, Total int64
}

// ReadHostCPU samples the first line of /proc/stat.
func ReadHostCPU() (HostCPU, error) {
	h := HostCPU{At: time.Now()}
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return h, err
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line)
	if len(f) < 8 || f[0] != "cpu" {
		return h, fmt.Errorf("/proc/stat: first line %q is not the cpu total", line)
	}
	for i, v := range f[1:] {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return h, fmt.Errorf("/proc/stat: %q: %w", v, err)
		}
		if i >= 8 { // guest and guest_nice are already counted in user and nice
			break
		}
		h.Total += n
		if i != 3 && i != 4 { // idle, iowait
			h.Busy += n
		}
	}
	return h, nil
}

// BusyCores is how many cores the whole machine kept busy from a to b.
func BusyCores(a, b HostCPU) float64 {
	return float64(b.Busy-a.Busy) / clockTick / b.At.Sub(a.At).Seconds()
}
