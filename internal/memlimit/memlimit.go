// Package memlimit sets the Go runtime's soft memory limit from the memory limits of the cgroup
// the daemon runs in: systemd's MemoryHigh= (memory.high) and MemoryMax= (memory.max). Past
// memory.high the kernel reclaims the group's memory and throttles its tasks; a Go program that
// does not know the limit lets its heap grow to twice what it holds before it collects, and can
// cross memory.high with garbage. With the soft limit below it, the collector works harder as
// the heap nears the limit instead.
//
// Only cgroup v2 (the unified hierarchy of systemd on Debian 11 and later and Raspberry Pi OS)
// is read. The GOMEMLIMIT environment variable, when set, wins: the runtime applies it itself
// and Apply leaves it alone.
package memlimit

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"runtime/debug"
	"strconv"
	"strings"
)

// Share is the part of the cgroup's limit given to the Go runtime: the rest is for what the
// limit also counts and the runtime does not, the executable's pages and the page cache of the
// files the daemon writes (the outbox).
const Share = 0.75

// Limit is a limit found in a cgroup.
type Limit struct {
	Of   int64  // the cgroup's limit itself
	File string // the file it was read from, e.g. /sys/fs/cgroup/system.slice/gatewayd.service/memory.high
}

// Soft is what to give debug.SetMemoryLimit: Share of the cgroup's limit.
func (l Limit) Soft() int64 { return int64(float64(l.Of) * Share) }

// Find reads the limits of the cgroup named in procCgroup (the content of /proc/self/cgroup)
// under fsys (the cgroup2 mount, /sys/fs/cgroup, as an fs.FS) and returns the lowest memory.high
// or memory.max of the group and of its ancestors. ok is false when none is set ("max"
// everywhere, no memory controller, or no cgroup v2 at all: a system on cgroup v1 alone).
// mount is the directory fsys stands for, for Limit.File.
func Find(fsys fs.FS, mount string, procCgroup []byte) (l Limit, ok bool, err error) {
	group, found, err := unifiedGroup(procCgroup)
	if err != nil || !found {
		return Limit{}, false, err
	}
	for dir := group; ; dir = path.Dir(dir) {
		for _, name := range []string{"memory.high", "memory.max"} {
			file := path.Join(dir, name)
			v, set, err := readLimit(fsys, file)
			if err != nil {
				return Limit{}, false, err
			}
			if set && (!ok || v < l.Of) {
				l, ok = Limit{Of: v, File: path.Join(mount, file)}, true
			}
		}
		if dir == "." {
			break
		}
	}
	return l, ok, nil
}

// unifiedGroup returns the cgroup v2 path of /proc/self/cgroup's "0::/path" line, relative
// (as fs.FS wants it): "system.slice/gatewayd.service", or "." for the root. found is false when
// there is no such line (cgroup v1 alone).
func unifiedGroup(procCgroup []byte) (group string, found bool, err error) {
	for line := range strings.SplitSeq(string(procCgroup), "\n") {
		if p, ok := strings.CutPrefix(line, "0::"); ok {
			if !strings.HasPrefix(p, "/") {
				return "", false, fmt.Errorf("memlimit: /proc/self/cgroup: cgroup v2 path %q is not absolute", p)
			}
			p = strings.TrimPrefix(path.Clean(p), "/")
			if p == "" {
				p = "."
			}
			return p, true, nil
		}
	}
	return "", false, nil
}

// readLimit reads a memory.high or memory.max file: a number of bytes, or "max" (none). A file
// that does not exist (no memory controller there, or the root group) is no limit.
func readLimit(fsys fs.FS, file string) (v int64, set bool, err error) {
	b, err := fs.ReadFile(fsys, file)
	if errors.Is(err, fs.ErrNotExist) {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, fmt.Errorf("memlimit: %w", err)
	}
	s := string(bytes.TrimSpace(b))
	if s == "max" {
		return 0, false, nil
	}
	v, err = strconv.ParseInt(s, 10, 64)
	if err != nil || v <= 0 {
		return 0, false, fmt.Errorf("memlimit: %s: %q is neither a number of bytes nor \"max\"", file, s)
	}
	return v, true, nil
}

// Apply sets the runtime's soft memory limit from the cgroup of this process, unless GOMEMLIMIT
// is set. It returns what it set (ok false: nothing, and why in reason).
func Apply() (l Limit, ok bool, reason string, err error) {
	if v := os.Getenv("GOMEMLIMIT"); v != "" {
		return Limit{}, false, "GOMEMLIMIT=" + v + " is set", nil
	}
	procCgroup, err := os.ReadFile("/proc/self/cgroup")
	if errors.Is(err, fs.ErrNotExist) {
		return Limit{}, false, "the kernel has no cgroups", nil
	}
	if err != nil {
		return Limit{}, false, "", fmt.Errorf("memlimit: %w", err)
	}
	const mount = "/sys/fs/cgroup"
	l, ok, err = Find(os.DirFS(mount), mount, procCgroup)
	if err != nil || !ok {
		return Limit{}, false, "no cgroup v2 memory limit (memory.high, memory.max) is set", err
	}
	debug.SetMemoryLimit(l.Soft())
	return l, true, "", nil
}
