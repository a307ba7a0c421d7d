// Package soak holds gatewayd's opt-in soak test (GATEWAYD_SOAK=1): the whole daemon in one
// process with the EC600 emulator and the embedded broker, many thousands of downlinks and faults
// at random moments, reporting goroutine and heap growth. docs/testing.md says how to run it.
package soak
