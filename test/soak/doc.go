// Package soak holds gatewayd's opt-in soak test: the whole daemon in one process with the EC600
// emulator and the embedded broker, many thousands of downlinks, and faults injected at random
// moments; at the end it reports goroutine and heap growth. Run it with
//
//	GATEWAYD_SOAK=1 go test -v -run Soak -timeout 30m ./test/soak/
//
// GATEWAYD_SOAK_DOWNLINKS sets how many downlinks (default 20000).
package soak
