package memlimit

import (
	"strings"
	"testing"
	"testing/fstest"
)

const unit = "0::/system.slice/gatewayd.service\n"

func file(s string) *fstest.MapFile { return &fstest.MapFile{Data: []byte(s)} }

func TestFindTakesTheLowestLimitOfTheGroupAndItsAncestors(t *testing.T) {
	for _, tc := range []struct {
		name string
		fs   fstest.MapFS
		of   int64
		file string
	}{
		{"the unit's MemoryHigh", fstest.MapFS{
			"system.slice/gatewayd.service/memory.high": file("134217728\n"),
			"system.slice/gatewayd.service/memory.max":  file("201326592\n"),
			"system.slice/memory.high":                  file("max\n"),
			"system.slice/memory.max":                   file("max\n"),
		}, 128 << 20, "/sys/fs/cgroup/system.slice/gatewayd.service/memory.high"},
		{"MemoryMax alone", fstest.MapFS{
			"system.slice/gatewayd.service/memory.high": file("max\n"),
			"system.slice/gatewayd.service/memory.max":  file("201326592\n"),
		}, 192 << 20, "/sys/fs/cgroup/system.slice/gatewayd.service/memory.max"},
		{"a slice's lower limit", fstest.MapFS{
			"system.slice/gatewayd.service/memory.high": file("134217728\n"),
			"system.slice/memory.high":                  file("67108864\n"),
		}, 64 << 20, "/sys/fs/cgroup/system.slice/memory.high"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l, ok, err := Find(tc.fs, "/sys/fs/cgroup", []byte(unit))
			if err != nil || !ok {
				t.Fatalf("Find: %+v %v %v", l, ok, err)
			}
			if l.Of != tc.of || l.File != tc.file || l.Soft() != tc.of*3/4 {
				t.Fatalf("got %+v, want %d from %s, 3/4 of it to the runtime", l, tc.of, tc.file)
			}
		})
	}
}

func TestFindWithoutALimit(t *testing.T) {
	for name, fs := range map[string]fstest.MapFS{
		"max everywhere": {
			"system.slice/gatewayd.service/memory.high": file("max\n"),
			"system.slice/gatewayd.service/memory.max":  file("max\n"),
		},
		"no memory controller": {},
	} {
		if l, ok, err := Find(fs, "/sys/fs/cgroup", []byte(unit)); ok || err != nil {
			t.Errorf("%s: %+v %v %v, want no limit and no error", name, l, ok, err)
		}
	}
	// cgroup v1 alone: nothing to read, and nothing wrong.
	if l, ok, err := Find(fstest.MapFS{}, "/sys/fs/cgroup", []byte("4:memory:/system.slice/gatewayd.service\n1:cpu:/\n")); ok || err != nil {
		t.Errorf("cgroup v1: %+v %v %v", l, ok, err)
	}
	// The root group (a process outside systemd's services, e.g. in a container).
	if l, ok, err := Find(fstest.MapFS{}, "/sys/fs/cgroup", []byte("0::/\n")); ok || err != nil {
		t.Errorf("root group: %+v %v %v", l, ok, err)
	}
}

func TestFindSaysWhatIsWrong(t *testing.T) {
	for _, tc := range []struct {
		name, cgroup string
		fs           fstest.MapFS
		want         string
	}{
		{"relative path", "0::system.slice\n", fstest.MapFS{}, "not absolute"},
		{"garbage in memory.high", unit, fstest.MapFS{"system.slice/gatewayd.service/memory.high": file("lots\n")},
			`system.slice/gatewayd.service/memory.high: "lots" is neither`},
		{"zero", unit, fstest.MapFS{"system.slice/gatewayd.service/memory.max": file("0\n")}, `"0" is neither`},
	} {
		_, ok, err := Find(tc.fs, "/sys/fs/cgroup", []byte(tc.cgroup))
		if err == nil || ok || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: ok %v err %v, want an error with %q", tc.name, ok, err, tc.want)
		}
	}
}

func TestApplyLeavesGOMEMLIMITAlone(t *testing.T) {
	t.Setenv("GOMEMLIMIT", "64MiB")
	if _, ok, reason, err := Apply(); ok || err != nil || reason != "GOMEMLIMIT=64MiB is set" {
		t.Fatalf("Apply: ok %v reason %q err %v", ok, reason, err)
	}
}
