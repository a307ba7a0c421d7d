package outbox

import (
	"fmt"
	"os"
	"strings"
	"time"
)

// Defaults, sized for a Raspberry Pi's SD card.
const (
	DefaultMaxBytes    = 64 << 20           // 64 MiB of messages
	DefaultMaxAge      = 7 * 24 * time.Hour // a week
	DefaultLockTimeout = 2 * time.Second    // wait for another process's lock before giving up
	DefaultCommitWait  = 10 * time.Millisecond
	DefaultStateDir    = "/var/lib/gatewayd"
	// FileName is the store inside Config.Dir: a directory of segment files. Before issue 16 it
	// was one bbolt file of the same name; Open copies such a file with Config.Migrate.
	FileName = "outbox.db"
	// lockName is the file in Config.Dir that one process at a time holds (flock).
	lockName = "outbox.lock"
)

// Overflow says what Put does when the store is full.
type Overflow string

// The overflow policies.
const (
	// OverflowRefuse refuses the new message (ErrFull); the local client sees the refusal.
	OverflowRefuse Overflow = "refuse"
	// OverflowDropOldest drops the oldest messages to make room, logging and counting them.
	OverflowDropOldest Overflow = "drop_oldest"
)

// Config is the [outbox] section.
type Config struct {
	// Dir holds the store. "" = StateDir(os.Getenv): $STATE_DIRECTORY (systemd's
	// StateDirectory=) or /var/lib/gatewayd.
	Dir string
	// MaxBytes bounds the stored messages, each counted as topic + payload + 24 bytes (the
	// measure of the bbolt store before, so a bound holds as many messages as it did). The
	// directory is larger: see docs/outbox.md. 0 = DefaultMaxBytes.
	MaxBytes int64
	// MaxAge drops messages older than this. 0 = DefaultMaxAge; negative = no age limit.
	MaxAge time.Duration
	// Overflow is the policy when full. "" = OverflowRefuse.
	Overflow Overflow
	// LockTimeout bounds the wait for the lock held by another process. 0 = DefaultLockTimeout.
	LockTimeout time.Duration
	// CommitWait is how long a commit may wait for more Puts to share its fdatasync while
	// several clients publish at once, and (up to streamWaits × CommitWait) for a stream to
	// fill its page (see adaptive). A lone publisher never waits. 0 = DefaultCommitWait;
	// negative = never wait.
	CommitWait time.Duration
	// Now is the clock; nil = time.Now. Tests inject one to drive expiry.
	Now func() time.Time
	// Migrate, when set, copies the store of an earlier gatewayd found where the store
	// belongs (a file, not a directory; see Migrator). nil = such a file is set aside.
	Migrate Migrator

	// segSize and chunk are segmentSize and segChunk unless a test sets them smaller.
	segSize, chunk int64
	// clock is the committer's: realClock unless a test injects one.
	clock clock
	// newPolicy makes the group-commit policy: adaptive unless a test or benchmark measures
	// another.
	newPolicy func(commitWait time.Duration) batchPolicy
}

// policy makes the group-commit policy of a resolved Config.
func (c Config) policy() batchPolicy { return c.newPolicy(c.CommitWait) }

// StateDir is where the store lives when Config.Dir is empty: the first directory of
// $STATE_DIRECTORY (set by systemd for StateDirectory=), else DefaultStateDir.
func StateDir(getenv func(string) string) string {
	if d, _, _ := strings.Cut(getenv("STATE_DIRECTORY"), ":"); d != "" {
		return d
	}
	return DefaultStateDir
}

func (c Config) resolve() (Config, error) {
	if c.Dir == "" {
		c.Dir = StateDir(os.Getenv)
	}
	switch {
	case c.MaxBytes < 0:
		return c, fmt.Errorf("outbox: max_bytes %d is negative", c.MaxBytes)
	case c.MaxBytes == 0:
		c.MaxBytes = DefaultMaxBytes
	}
	if c.MaxAge == 0 {
		c.MaxAge = DefaultMaxAge
	}
	switch c.Overflow {
	case "":
		c.Overflow = OverflowRefuse
	case OverflowRefuse, OverflowDropOldest:
	default:
		return c, fmt.Errorf("outbox: overflow %q: want %q or %q", c.Overflow, OverflowRefuse, OverflowDropOldest)
	}
	switch {
	case c.LockTimeout < 0:
		return c, fmt.Errorf("outbox: lock timeout %s is negative", c.LockTimeout)
	case c.LockTimeout == 0:
		c.LockTimeout = DefaultLockTimeout
	}
	if c.CommitWait == 0 {
		c.CommitWait = DefaultCommitWait
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.clock == nil {
		c.clock = realClock{}
	}
	if c.newPolicy == nil {
		c.newPolicy = func(wait time.Duration) batchPolicy { return &adaptive{commitWait: wait} }
	}
	if c.segSize == 0 {
		c.segSize, c.chunk = segmentSize, segChunk
	}
	return c, nil
}
