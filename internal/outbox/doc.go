// Package outbox is gatewayd's disk buffer for messages on their way to the cloud: a bounded,
// ordered, crash-safe queue in one bbolt file. A message stored with Put is on disk (written and
// fsynced) when Put returns, and leaves the store only through Ack — which the drainer calls
// once the module reported the broker's acknowledgement — or through a bound (age, or bytes in
// drop_oldest mode) or a permanent refusal, each logged and counted. Every send is recorded
// before it happens, so a message sent again after a failure or a restart is counted as a
// possible duplicate instead of arriving twice in silence. A store file damaged by a power cut
// or a full disk is checked at open, set aside under a timestamped name, and replaced by a
// fresh one, so the daemon always starts. See docs/outbox.md for the design and its figures.
package outbox
