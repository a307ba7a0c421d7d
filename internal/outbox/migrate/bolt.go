package migrate

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"runtime/debug"
	"time"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"

	"github.com/rs/zerolog"

	"github.com/gatewayd/gatewayd/internal/logging"
	"github.com/gatewayd/gatewayd/internal/outbox"
)

// The store before issue 16 was one bbolt file at Config.Dir/FileName with two buckets:
// messages (key = seq, 8 bytes big-endian, so bbolt's key order was store order) and attempts
// (sends recorded per seq, uint32 big-endian). Bolt checks such a file as the old store did
// (check.go, then bbolt inside a recover) and copies every message with its attempts and the
// bucket's sequence (so no seq is ever reused) into the outbox's Import, which outbox.Open puts
// in the file's place once it is durable.
//
// A stored message was one key/value pair in messages:
//
//	key:   seq, 8 bytes big-endian
//	value: version (1) | flags (bits 0-1 QoS, bit 2 retain) | stored time, Unix ns, int64 BE |
//	       topic length, uint16 BE | topic | payload | CRC-32C of key and everything before it, BE
const (
	recordVersion = 1
	recordHeader  = 1 + 1 + 8 + 2
	recordCRC     = 4
	keyLen        = 8
)

var (
	bucketMsgs     = []byte("messages")
	bucketAttempts = []byte("attempts")
)

// crcTable is the old store's checksum: CRC-32C.
var crcTable = crc32.MakeTable(crc32.Castagnoli)

// errBadRecord is a bbolt record that fails its checks; it is dropped, logged and counted.
var errBadRecord = errors.New("damaged record")

func seqKey(seq uint64) []byte {
	k := make([]byte, keyLen)
	binary.BigEndian.PutUint64(k, seq)
	return k
}

// encodeRecord is the bbolt store's value for a message (tests build old stores with it).
func encodeRecord(key []byte, topic string, payload []byte, qos int, retain bool, stored time.Time) []byte {
	v := make([]byte, 0, recordHeader+len(topic)+len(payload)+recordCRC)
	flags := byte(qos & 3)
	if retain {
		flags |= 4
	}
	v = append(v, recordVersion, flags)
	v = binary.BigEndian.AppendUint64(v, uint64(stored.UnixNano()))
	v = binary.BigEndian.AppendUint16(v, uint16(len(topic)))
	v = append(v, topic...)
	v = append(v, payload...)
	crc := crc32.Update(crc32.Checksum(key, crcTable), crcTable, v)
	return binary.BigEndian.AppendUint32(v, crc)
}

// decodeRecord checks a bbolt record and returns it as a Message with copied bytes.
func decodeRecord(key, v []byte) (outbox.Message, error) {
	if len(key) != keyLen {
		return outbox.Message{}, fmt.Errorf("%w: key of %d bytes, want %d", errBadRecord, len(key), keyLen)
	}
	seq := binary.BigEndian.Uint64(key)
	if len(v) < recordHeader+recordCRC {
		return outbox.Message{}, fmt.Errorf("%w: seq %d: value of %d bytes is too short", errBadRecord, seq, len(v))
	}
	body := v[:len(v)-recordCRC]
	want := binary.BigEndian.Uint32(v[len(v)-recordCRC:])
	if got := crc32.Update(crc32.Checksum(key, crcTable), crcTable, body); got != want {
		return outbox.Message{}, fmt.Errorf("%w: seq %d: checksum %08x, stored %08x", errBadRecord, seq, got, want)
	}
	if body[0] != recordVersion {
		return outbox.Message{}, fmt.Errorf("%w: seq %d: record version %d, want %d", errBadRecord, seq, body[0], recordVersion)
	}
	flags := body[1]
	if flags&^7 != 0 || flags&3 == 3 {
		return outbox.Message{}, fmt.Errorf("%w: seq %d: flags %#x", errBadRecord, seq, flags)
	}
	tl := int(binary.BigEndian.Uint16(body[10:12]))
	if recordHeader+tl > len(body) || tl == 0 || seq == 0 {
		return outbox.Message{}, fmt.Errorf("%w: seq %d: topic length %d beyond the record", errBadRecord, seq, tl)
	}
	return outbox.Message{
		Seq:     seq,
		Topic:   string(body[recordHeader : recordHeader+tl]),
		Payload: append([]byte(nil), body[recordHeader+tl:]...),
		QoS:     int(flags & 3),
		Retain:  flags&4 != 0,
		Stored:  time.Unix(0, int64(binary.BigEndian.Uint64(body[2:10]))),
	}, nil
}

// Bolt is the outbox.Migrator for the bbolt store of gatewayd before issue 16.
type Bolt struct {
	// Log gets a line for each damaged message dropped.
	Log zerolog.Logger
	// LockTimeout bounds the wait for an old gatewayd that still holds the file. 0 =
	// outbox.DefaultLockTimeout.
	LockTimeout time.Duration
}

// Migrate checks the bbolt file at path and copies its messages to to. A file that fails the
// old store's checks comes back as a damage error (outbox.Open sets it aside); another process
// holding it gives outbox.ErrLocked.
func (m Bolt) Migrate(path string, to *outbox.Import) (damaged int, err error) {
	if err := checkFile(path); err != nil {
		return 0, fmt.Errorf("checking %s: %w", path, err)
	}
	timeout := m.LockTimeout
	if timeout == 0 {
		timeout = outbox.DefaultLockTimeout
	}
	return copyBolt(path, timeout, m.Log, to)
}

// copyBolt opens the bbolt file (untrusted: inside a recover, with faults turned into panics)
// and writes its messages to to. It returns how many were damaged.
func copyBolt(path string, timeout time.Duration, log zerolog.Logger, to *outbox.Import) (bad int, err error) {
	var db *bolt.DB
	// The file passed the structural check but is still untrusted: bbolt panics on some
	// inconsistencies, and a read of its mapping past the end of a file cut short faults.
	// SetPanicOnFault turns such a fault into a panic for this goroutine, and this recover —
	// around the open and read of the untrusted file only — turns any panic into the error
	// that makes Open set the file aside.
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("%w: bbolt panicked on %s: %v", errDamaged, path, r)
		}
		if db != nil {
			db.Close()
		}
	}()
	db, err = bolt.Open(path, 0o600, &bolt.Options{Timeout: timeout, ReadOnly: true})
	if errors.Is(err, berrors.ErrTimeout) {
		return 0, fmt.Errorf("outbox %s: %w (is another gatewayd running?); gave up after %s", path, outbox.ErrLocked, timeout)
	}
	if err != nil {
		return 0, fmt.Errorf("opening %s: %w", path, err)
	}
	err = db.View(func(tx *bolt.Tx) error {
		msgs, att := tx.Bucket(bucketMsgs), tx.Bucket(bucketAttempts)
		if msgs == nil {
			return nil // created, never used
		}
		to.SetNextSeq(msgs.Sequence() + 1)
		c := msgs.Cursor()
		for k, v := c.First(); k != nil; k, v = c.Next() {
			m, err := decodeRecord(k, v)
			if err != nil {
				bad++
				log.Error().Str(logging.EventKey, logging.EventOutboxDamaged).Str("path", path).Str("problem", err.Error()).
					Msg("damaged message dropped from the outbox")
				continue
			}
			if att != nil {
				if a := att.Get(k); len(a) == 4 {
					m.Attempts = int(min(binary.BigEndian.Uint32(a), 1<<31-1))
				}
			}
			if err := to.Put(m); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("reading %s: %w", path, err)
	}
	return bad, nil
}
