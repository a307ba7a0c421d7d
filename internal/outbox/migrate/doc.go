// Package migrate copies the outbox of gatewayd before issue 16 — one bbolt file — into the
// segment log of internal/outbox: Bolt is the outbox.Migrator that the daemon sets in
// outbox.Config.Migrate. It checks the file with plain reads before bbolt may map it
// (check.go), reads it inside a recover, and copies every message with its recorded sends and
// the old store's sequence; outbox.Open puts the copy in the file's place once it is durable.
//
// This package, and the bbolt dependency with it, is removed after 2027-06-30: a gatewayd that
// has not started since then still finds its bbolt file at the store's path, and sets it aside
// (renamed outbox.db.damaged-<time>, logged) instead of migrating it. See docs/outbox.md,
// "Migration from the bbolt store".
package migrate
