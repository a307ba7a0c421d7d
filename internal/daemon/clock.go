package daemon

import (
	"runtime/debug"
	"time"
)

// BuildTime is when the running binary's source was committed (the vcs.time Go stamps into a
// binary built from a git checkout); zero when unknown (go test, go run of a dirty tree still
// has it; a build with -buildvcs=false does not). A system clock before it is certainly wrong.
func BuildTime() time.Time {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return time.Time{}
	}
	for _, s := range bi.Settings {
		if s.Key == "vcs.time" {
			if t, err := time.Parse(time.RFC3339, s.Value); err == nil {
				return t
			}
		}
	}
	return time.Time{}
}
