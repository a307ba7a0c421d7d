// Package e2e holds gatewayd's end-to-end tests: the real gatewayd binary ↔ the EC600 emulator on a
// pty ↔ a real MQTT broker ↔ a paho client playing the cloud. The daemon is observed from outside,
// through its JSON log, its control socket and its metrics, as an operator would.
//
// TestMain builds ./cmd/gatewayd once for all tests and runs up to four parallel tests at once
// unless -parallel says otherwise. The package has no non-test code; the full run takes about
// eight minutes on two cores:
//
//	go test ./test/e2e/
//	go test ./test/e2e/ -run TestSeedFlow -v
package e2e
