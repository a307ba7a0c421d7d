// Package outbox is gatewayd's disk buffer for messages on their way to the cloud: a bounded,
// ordered, crash-safe queue kept as an append-only log of segment files with an index in
// memory. A message stored with Put is on disk (written and fdatasynced) when Put returns (or
// once Wait says so, for a message taken by Append) — messages that arrive together share one
// fdatasync — and leaves the store only through Ack, which the drainer calls once the module
// reported the broker's acknowledgement, or through a bound (age, or bytes in drop_oldest
// mode) or a permanent refusal, each logged and counted. Every send is recorded durably before
// it happens, so a message sent again after a failure or a restart is counted as a possible
// duplicate instead of arriving twice in silence. A store damaged by a power cut or a failing
// card is repaired at Open from what can still be read (and set aside under a timestamped name
// when more than single records are damaged), so the daemon always starts.
//
// The files, one job each:
//
//   - store.go: Store and its API (Open, Put, Append and Wait, Pending, Sending, Ack, Reject,
//     Stats, Close); config.go: Config, its defaults and their resolution.
//   - log.go: the log — appending records, growing, ending and starting segments, relocating
//     what a mostly emptied segment still holds, retiring segments, reading put records.
//   - commit.go: the committer — group commit: who leads an fdatasync, who shares it;
//     batch.go: its policy, how long a leader waits for company (adaptive); clock.go: its
//     clock, injected by tests.
//   - recover.go: Open's side — the lock, finding and replaying the segments, setting a
//     damaged store aside, and copying an earlier store through Config.Migrate.
//   - repair.go: writing a store afresh (repair, migration) and finishing a replacement a crash
//     interrupted.
//   - bounds.go: what leaves the store unacknowledged — expiry, drop_oldest, refusals — and
//     the drainer's mark (reserve).
//   - index.go: the index in memory; format.go: the on-disk records; segment.go: segment
//     files (create, reuse, retire, fdatasync).
//
// The bbolt store of gatewayd before issue 16 is migrated by internal/outbox/migrate, which the
// daemon sets as Config.Migrate. See docs/outbox.md for the design and its figures.
package outbox
