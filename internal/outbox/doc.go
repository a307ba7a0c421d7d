// Package outbox is gatewayd's disk buffer for messages on their way to the cloud: a bounded,
// ordered, crash-safe queue kept as an append-only log of segment files (format.go) with an
// index in memory (index.go). A message stored with Put is on disk (written and fdatasynced)
// when Put returns (or once Wait says so, for a message taken by Append) — messages that arrive
// together share one fdatasync — and leaves the store only
// through Ack, which the drainer calls once the module reported the broker's acknowledgement,
// or through a bound (age, or bytes in drop_oldest mode) or a permanent refusal, each logged and
// counted. Every send is recorded durably before it happens, so a message sent again after a
// failure or a restart is counted as a possible duplicate instead of arriving twice in silence.
// A store damaged by a power cut or a failing card is repaired at Open from what can still be
// read (and set aside under a timestamped name when more than single records are damaged), and
// a bbolt store left by an earlier gatewayd is migrated (legacy.go), so the daemon always
// starts. See docs/outbox.md for the design and its figures.
package outbox
