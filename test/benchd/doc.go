// Package benchd holds the measuring rig for gatewayd's end-to-end benchmark (bench_test.go): the
// daemon on a real pty in front of the EC600 emulator and an embedded broker, with a way to write
// +QMTRECV URCs straight onto the daemon's pty and see when its LED changed.
//
//   - Relay is a pty the daemon opens as its AT port. It copies bytes both ways between the daemon
//     and an upstream port (the emulator's), and Inject writes module bytes straight onto the
//     daemon's side, timed, as the module would.
//   - MeasuringLED is a fake LED (it drives no hardware) that counts changes and stamps their time.
//   - EventSink is a log destination that counts the daemon's JSON log lines by their event field.
//   - Rig puts it together: broker, emulator, relay, and the daemon either in this process (with a
//     MeasuringLED) or as the real gatewayd binary (whose stderr feeds an EventSink).
//   - ReadProc and ReadHostCPU read CPU time and memory from /proc.
//
// Nothing here is used by the daemon itself.
package benchd
