//go:build nosim

package main

import (
	"fmt"
	"io"
)

// runSim answers `gatewayd sim` in a build without the emulator: the Debian package's binary
// (built with -tags nosim) carries only what a Pi runs.
func runSim(args []string, stdout, stderr io.Writer) int {
	fmt.Fprint(stderr, `gatewayd sim: this gatewayd was built without the EC600 emulator (-tags nosim, as the
Debian package is). Run the emulator from a checkout of the source, on any machine with Go:
    go run ./cmd/gatewayd sim
`)
	return 2
}
