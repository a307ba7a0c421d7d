package outbox

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"os"
	"runtime/debug"
	"time"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"

	"github.com/gatewayd/gatewayd/internal/logging"
)

// The store before issue 16 was one bbolt file at Config.Dir/FileName with two buckets:
// messages (key = seq, 8 bytes big-endian, so bbolt's key order was store order) and attempts
// (sends recorded per seq, uint32 big-endian). Open migrates such a file: it checks it as the
// old store did (check.go, then bbolt inside a recover), copies every message with its
// attempts and the bucket's sequence (so no seq is ever reused) into a new store directory,
// and only once that is durable swaps the two and deletes the old file.
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

// errBadRecord is a bbolt record that fails its checks; it is dropped, logged and counted.
var errBadRecord = errors.New("damaged record")

// recordSize is what one message counts against Config.MaxBytes: its key and value in the bbolt
// store, the measure kept by the log so that a bound holds as many messages as before.
func recordSize(topicLen, payloadLen int) int64 {
	return int64(keyLen + recordHeader + topicLen + payloadLen + recordCRC)
}

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
func decodeRecord(key, v []byte) (Message, error) {
	if len(key) != keyLen {
		return Message{}, fmt.Errorf("%w: key of %d bytes, want %d", errBadRecord, len(key), keyLen)
	}
	seq := binary.BigEndian.Uint64(key)
	if len(v) < recordHeader+recordCRC {
		return Message{}, fmt.Errorf("%w: seq %d: value of %d bytes is too short", errBadRecord, seq, len(v))
	}
	body := v[:len(v)-recordCRC]
	want := binary.BigEndian.Uint32(v[len(v)-recordCRC:])
	if got := crc32.Update(crc32.Checksum(key, crcTable), crcTable, body); got != want {
		return Message{}, fmt.Errorf("%w: seq %d: checksum %08x, stored %08x", errBadRecord, seq, got, want)
	}
	if body[0] != recordVersion {
		return Message{}, fmt.Errorf("%w: seq %d: record version %d, want %d", errBadRecord, seq, body[0], recordVersion)
	}
	flags := body[1]
	if flags&^7 != 0 || flags&3 == 3 {
		return Message{}, fmt.Errorf("%w: seq %d: flags %#x", errBadRecord, seq, flags)
	}
	tl := int(binary.BigEndian.Uint16(body[10:12]))
	if recordHeader+tl > len(body) || tl == 0 || seq == 0 {
		return Message{}, fmt.Errorf("%w: seq %d: topic length %d beyond the record", errBadRecord, seq, tl)
	}
	return Message{
		Seq:     seq,
		Topic:   string(body[recordHeader : recordHeader+tl]),
		Payload: append([]byte(nil), body[recordHeader+tl:]...),
		QoS:     int(flags & 3),
		Retain:  flags&4 != 0,
		Stored:  time.Unix(0, int64(binary.BigEndian.Uint64(body[2:10]))),
	}, nil
}

// migrate copies the bbolt store at s.path into a new store directory and puts that in its
// place. A file that fails the old store's checks comes back as a damage error (Open sets it
// aside); another process holding it gives ErrLocked.
func (s *Store) migrate() error {
	if err := checkFile(s.path); err != nil {
		return fmt.Errorf("checking %s: %w", s.path, err)
	}
	tmp := s.path + newSuffix
	if err := os.RemoveAll(tmp); err != nil {
		return fmt.Errorf("outbox: %w", err)
	}
	if err := os.Mkdir(tmp, 0o700); err != nil {
		return fmt.Errorf("outbox: %w", err)
	}
	b := &builder{dir: tmp, segSize: s.cfg.segSize, chunk: s.cfg.chunk}
	n, bad, err := s.copyBolt(b)
	if err == nil {
		err = b.finish()
	}
	if err != nil {
		os.RemoveAll(tmp)
		return err
	}
	// The new store is durable: swap. A crash from here on is finished by finishReplace.
	old := s.path + migratedSuffix
	if err := os.Rename(s.path, old); err != nil {
		return fmt.Errorf("outbox: %w", err)
	}
	if err := s.finishReplace(); err != nil {
		return fmt.Errorf("outbox: %w", err)
	}
	s.damagedN.Add(uint64(bad))
	s.log.Info().Str(logging.EventKey, "outbox_migrated").Str("path", s.path).Int("messages", n).Int("damaged", bad).
		Uint64("next_seq", b.nextSeq).Msg("outbox: the bbolt store of an earlier gatewayd was copied into the segment log and deleted")
	return nil
}

// copyBolt opens the bbolt file (untrusted: inside a recover, with faults turned into panics)
// and writes its messages to b. It returns how many it copied and how many were damaged.
func (s *Store) copyBolt(b *builder) (n, bad int, err error) {
	var db *bolt.DB
	// The file passed the structural check but is still untrusted: bbolt panics on some
	// inconsistencies, and a read of its mapping past the end of a file cut short faults.
	// SetPanicOnFault turns such a fault into a panic for this goroutine, and this recover —
	// around the open and read of the untrusted file only — turns any panic into the error
	// that makes Open set the file aside.
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("%w: bbolt panicked on %s: %v", errDamaged, s.path, r)
		}
		if db != nil {
			db.Close()
		}
	}()
	db, err = bolt.Open(s.path, 0o600, &bolt.Options{Timeout: s.cfg.LockTimeout, ReadOnly: true})
	if errors.Is(err, berrors.ErrTimeout) {
		return 0, 0, fmt.Errorf("outbox %s: %w (is another gatewayd running?); gave up after %s", s.path, ErrLocked, s.cfg.LockTimeout)
	}
	if err != nil {
		return 0, 0, fmt.Errorf("opening %s: %w", s.path, err)
	}
	err = db.View(func(tx *bolt.Tx) error {
		msgs, att := tx.Bucket(bucketMsgs), tx.Bucket(bucketAttempts)
		if msgs == nil {
			return nil // created, never used
		}
		b.nextSeq = msgs.Sequence() + 1
		c := msgs.Cursor()
		for k, v := c.First(); k != nil; k, v = c.Next() {
			m, err := decodeRecord(k, v)
			if err != nil {
				bad++
				s.log.Error().Str(logging.EventKey, logging.EventOutboxDamaged).Str("path", s.path).Str("problem", err.Error()).
					Msg("damaged message dropped from the outbox")
				continue
			}
			var attempts uint32
			if att != nil {
				if a := att.Get(k); len(a) == 4 {
					attempts = binary.BigEndian.Uint32(a)
				}
			}
			flags := byte(m.QoS)
			if m.Retain {
				flags |= putRetain
			}
			if err := b.put(putBody{seq: m.Seq, stored: m.Stored.UnixNano(), flags: flags, attempts: attempts, topic: m.Topic, payload: m.Payload}); err != nil {
				return err
			}
			n++
		}
		return nil
	})
	if err != nil {
		return 0, 0, fmt.Errorf("reading %s: %w", s.path, err)
	}
	return n, bad, nil
}
