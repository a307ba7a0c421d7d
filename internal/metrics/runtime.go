package metrics

import (
	"bytes"

	vm "github.com/VictoriaMetrics/metrics"
)

// appendRuntime appends the Go runtime and process metrics (go_*, process_*) to t: the series
// that github.com/VictoriaMetrics/metrics writes, with the HELP and TYPE lines of runtimeFamilies.
func appendRuntime(t *text) {
	var raw bytes.Buffer
	vm.WriteProcessMetrics(&raw)
	vm.WriteFDMetrics(&raw)
	annotate(t, raw.Bytes(), runtimeFamily)
}

// annotate appends the series lines of raw, an exposition without HELP and TYPE lines, to t,
// each family's with the HELP and TYPE of family(the series' name). Comment lines in raw are left
// out: the HELP and TYPE lines are t's alone. The name is passed as bytes of raw, so that looking
// it up allocates nothing: a scrape annotates some 300 lines.
func annotate(t *text, raw []byte, family func(series []byte) *desc) {
	for len(raw) > 0 {
		var line []byte
		line, raw, _ = bytes.Cut(raw, []byte{'\n'})
		end := bytes.IndexAny(line, "{ ")
		if len(line) == 0 || line[0] == '#' || end <= 0 {
			continue
		}
		t.header(family(line[:end]))
		t.b = append(t.b, line...)
		t.b = append(t.b, '\n')
	}
}

// runtimeFamily is the family of a go_* or process_* series: the one of its name, or for a
// histogram's or summary's _bucket, _sum and _count the one they belong to; a name not in
// runtimeFamilies (a newer version of the package) is served untyped, with a general HELP.
func runtimeFamily(series []byte) *desc {
	if d, ok := runtimeFamilies[string(series)]; ok {
		return d
	}
	for _, suffix := range []string{"_bucket", "_sum", "_count"} {
		if base, ok := bytes.CutSuffix(series, []byte(suffix)); ok {
			if d, ok := runtimeFamilies[string(base)]; ok && (d.kind == histogram || d.kind == summary) {
				return d
			}
		}
	}
	return &desc{name: string(series), kind: untyped, help: "A Go runtime or process metric of github.com/VictoriaMetrics/metrics."}
}

// runtimeFamilies are the HELP and TYPE of the series github.com/VictoriaMetrics/metrics writes
// (v1.45.0, on Linux). The names that client_golang's collectors had keep their HELP text. The
// histograms of runtime/metrics have no _sum and _count (Go does not keep the sum), and their
// buckets above 1 s are folded into +Inf. go_cgo_calls_count, go_gc_forced_count and go_cpu_count
// end in _count without being summaries or histograms (the first two are counters without
// _total), so they are served untyped: promlint would flag them as counters or gauges.
var runtimeFamilies = familyIndex(
	newDesc("go_sched_latencies_seconds", "Time goroutines spent ready to run before running (runtime/metrics /sched/latencies:seconds).", histogram),
	newDesc("go_mutex_wait_seconds_total", "Approximate time goroutines spent blocked on a sync.Mutex or sync.RWMutex (/sync/mutex/wait/total:seconds).", counter),
	newDesc("go_gc_mark_assist_cpu_seconds_total", "Estimated CPU time goroutines spent helping the garbage collector mark (/cpu/classes/gc/mark/assist:cpu-seconds).", counter),
	newDesc("go_gc_cpu_seconds_total", "Estimated CPU time spent in the garbage collector (/cpu/classes/gc/total:cpu-seconds).", counter),
	newDesc("go_gc_pauses_seconds", "The garbage collector's stop-the-world pauses (runtime/metrics /gc/pauses:seconds).", histogram),
	newDesc("go_scavenge_cpu_seconds_total", "Estimated CPU time spent returning memory to the operating system (/cpu/classes/scavenge/total:cpu-seconds).", counter),
	newDesc("go_memlimit_bytes", "The Go runtime's soft memory limit (GOMEMLIMIT; math.MaxInt64 when unset), from /gc/gomemlimit:bytes.", gauge),

	newDesc("go_memstats_alloc_bytes", "Number of bytes allocated in heap and currently in use. Equals to /memory/classes/heap/objects:bytes.", gauge),
	newDesc("go_memstats_alloc_bytes_total", "Total number of bytes allocated in heap until now, even if released already. Equals to /gc/heap/allocs:bytes.", counter),
	newDesc("go_memstats_buck_hash_sys_bytes", "Number of bytes used by the profiling bucket hash table. Equals to /memory/classes/profiling/buckets:bytes.", gauge),
	newDesc("go_memstats_frees_total", "Total number of heap objects frees. Equals to /gc/heap/frees:objects + /gc/heap/tiny/allocs:objects.", counter),
	newDesc("go_memstats_gc_cpu_fraction", "The fraction of the CPU time available to the program that the garbage collector used since the program started.", gauge),
	newDesc("go_memstats_gc_sys_bytes", "Number of bytes used for garbage collection system metadata. Equals to /memory/classes/metadata/other:bytes.", gauge),
	newDesc("go_memstats_heap_alloc_bytes", "Number of heap bytes allocated and currently in use, same as go_memstats_alloc_bytes. Equals to /memory/classes/heap/objects:bytes.", gauge),
	newDesc("go_memstats_heap_idle_bytes", "Number of heap bytes waiting to be used. Equals to /memory/classes/heap/released:bytes + /memory/classes/heap/free:bytes.", gauge),
	newDesc("go_memstats_heap_inuse_bytes", "Number of heap bytes that are in use. Equals to /memory/classes/heap/objects:bytes + /memory/classes/heap/unused:bytes", gauge),
	newDesc("go_memstats_heap_objects", "Number of currently allocated objects. Equals to /gc/heap/objects:objects.", gauge),
	newDesc("go_memstats_heap_released_bytes", "Number of heap bytes released to OS. Equals to /memory/classes/heap/released:bytes.", gauge),
	newDesc("go_memstats_heap_sys_bytes", "Number of heap bytes obtained from system. Equals to /memory/classes/heap/objects:bytes + /memory/classes/heap/unused:bytes + /memory/classes/heap/released:bytes + /memory/classes/heap/free:bytes.", gauge),
	newDesc("go_memstats_last_gc_time_seconds", "Number of seconds since 1970 of last garbage collection.", gauge),
	newDesc("go_memstats_lookups_total", "Pointer lookups the runtime performed (runtime.MemStats.Lookups).", counter),
	newDesc("go_memstats_mallocs_total", "Total number of heap objects allocated, both live and gc-ed. Semantically a counter version for go_memstats_heap_objects gauge. Equals to /gc/heap/allocs:objects + /gc/heap/tiny/allocs:objects.", counter),
	newDesc("go_memstats_mcache_inuse_bytes", "Number of bytes in use by mcache structures. Equals to /memory/classes/metadata/mcache/inuse:bytes.", gauge),
	newDesc("go_memstats_mcache_sys_bytes", "Number of bytes used for mcache structures obtained from system. Equals to /memory/classes/metadata/mcache/inuse:bytes + /memory/classes/metadata/mcache/free:bytes.", gauge),
	newDesc("go_memstats_mspan_inuse_bytes", "Number of bytes in use by mspan structures. Equals to /memory/classes/metadata/mspan/inuse:bytes.", gauge),
	newDesc("go_memstats_mspan_sys_bytes", "Number of bytes used for mspan structures obtained from system. Equals to /memory/classes/metadata/mspan/inuse:bytes + /memory/classes/metadata/mspan/free:bytes.", gauge),
	newDesc("go_memstats_next_gc_bytes", "Number of heap bytes when next garbage collection will take place. Equals to /gc/heap/goal:bytes.", gauge),
	newDesc("go_memstats_other_sys_bytes", "Number of bytes used for other system allocations. Equals to /memory/classes/other:bytes.", gauge),
	newDesc("go_memstats_stack_inuse_bytes", "Number of bytes obtained from system for stack allocator in non-CGO environments. Equals to /memory/classes/heap/stacks:bytes.", gauge),
	newDesc("go_memstats_stack_sys_bytes", "Number of bytes obtained from system for stack allocator. Equals to /memory/classes/heap/stacks:bytes + /memory/classes/os-stacks:bytes.", gauge),
	newDesc("go_memstats_sys_bytes", "Number of bytes obtained from system. Equals to /memory/classes/total:byte.", gauge),
	newDesc("go_cgo_calls_count", "Calls from Go to C the process made (runtime.NumCgoCall); a counter.", untyped),
	newDesc("go_cpu_count", "Logical CPUs the process can use (runtime.NumCPU); a gauge.", untyped),
	newDesc("go_gc_duration_seconds", "A summary of the wall-time pause (stop-the-world) duration in garbage collection cycles.", summary),
	newDesc("go_gc_forced_count", "Garbage collections the program forced (runtime.GC, debug.FreeOSMemory); a counter.", untyped),
	newDesc("go_gomaxprocs", "The current runtime.GOMAXPROCS setting: how many threads can run Go code at once.", gauge),
	newDesc("go_goroutines", "Number of goroutines that currently exist.", gauge),
	newDesc("go_threads", "Number of OS threads created.", gauge),
	newDesc("go_info", "Information about the Go environment.", gauge),
	newDesc("go_info_ext", "Always 1; the labels are the Go compiler, target architecture and system, and GOROOT (empty in a -trimpath build).", gauge),

	newDesc("process_cpu_seconds_system_total", "System CPU time spent in seconds.", counter),
	newDesc("process_cpu_seconds_total", "Total user and system CPU time spent in seconds.", counter),
	newDesc("process_cpu_seconds_user_total", "User CPU time spent in seconds.", counter),
	newDesc("process_major_pagefaults_total", "Page faults that had to read a page from storage.", counter),
	newDesc("process_minor_pagefaults_total", "Page faults served without reading from storage.", counter),
	newDesc("process_num_threads", "Threads of the process.", gauge),
	newDesc("process_resident_memory_bytes", "Resident memory size in bytes.", gauge),
	newDesc("process_start_time_seconds", "Start time of the process since unix epoch in seconds.", gauge),
	newDesc("process_virtual_memory_bytes", "Virtual memory size in bytes.", gauge),
	newDesc("process_virtual_memory_peak_bytes", "Peak virtual memory size in bytes (VmPeak).", gauge),
	newDesc("process_resident_memory_peak_bytes", "Peak resident memory size in bytes (VmHWM).", gauge),
	newDesc("process_resident_memory_anon_bytes", "Resident anonymous memory in bytes (RssAnon): heap, stacks and other private memory.", gauge),
	newDesc("process_resident_memory_file_bytes", "Resident file-backed memory in bytes (RssFile): mostly the pages of the binary.", gauge),
	newDesc("process_resident_memory_shared_bytes", "Resident shared memory in bytes (RssShmem).", gauge),
	newDesc("process_io_read_bytes_total", "Bytes the process read through read system calls, from storage or not (rchar in /proc/self/io).", counter),
	newDesc("process_io_written_bytes_total", "Bytes the process wrote through write system calls, to storage or not (wchar).", counter),
	newDesc("process_io_read_syscalls_total", "Read system calls of the process (syscr).", counter),
	newDesc("process_io_write_syscalls_total", "Write system calls of the process (syscw).", counter),
	newDesc("process_io_storage_read_bytes_total", "Bytes the process had read from storage (read_bytes).", counter),
	newDesc("process_io_storage_written_bytes_total", "Bytes the process had written to storage (write_bytes).", counter),
	newDesc("process_pressure_cpu_waiting_seconds_total", "Time some tasks of the process's cgroup waited for a CPU since the process started (PSI some; cgroup v2).", counter),
	newDesc("process_pressure_cpu_stalled_seconds_total", "Time all tasks of the process's cgroup waited for a CPU since the process started (PSI full; cgroup v2).", counter),
	newDesc("process_pressure_io_waiting_seconds_total", "Time some tasks of the process's cgroup waited for I/O since the process started (PSI some; cgroup v2).", counter),
	newDesc("process_pressure_io_stalled_seconds_total", "Time all tasks of the process's cgroup waited for I/O since the process started (PSI full; cgroup v2).", counter),
	newDesc("process_pressure_memory_waiting_seconds_total", "Time some tasks of the process's cgroup waited for memory since the process started (PSI some; cgroup v2).", counter),
	newDesc("process_pressure_memory_stalled_seconds_total", "Time all tasks of the process's cgroup waited for memory since the process started (PSI full; cgroup v2).", counter),
	newDesc("process_cgroup_cpu_throttled_seconds_total", "Time the process's cgroup was held back by its CPU quota since the process started.", counter),
	newDesc("process_max_fds", "Maximum number of open file descriptors.", gauge),
	newDesc("process_open_fds", "Number of open file descriptors.", gauge),
)

// familyIndex maps the names of ds to them.
func familyIndex(ds ...desc) map[string]*desc {
	m := make(map[string]*desc, len(ds))
	for i := range ds {
		m[ds[i].name] = &ds[i]
	}
	return m
}
