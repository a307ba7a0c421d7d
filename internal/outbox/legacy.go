package outbox

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"time"
)

// A stored message is one bbolt key/value pair in the messages bucket:
//
//	key:   seq, 8 bytes big-endian (so bbolt's byte order is store order)
//	value: version (1) | flags (bits 0-1 QoS, bit 2 retain) | stored time, Unix ns, int64 BE |
//	       topic length, uint16 BE | topic | payload | CRC-32C of key and everything before it, BE
//
// bbolt checksums only its meta pages, so the CRC is what tells a record damaged on the card
// from a good one when the store is checked at open.
const (
	recordVersion = 1
	recordHeader  = 1 + 1 + 8 + 2
	recordCRC     = 4
	keyLen        = 8
	// MaxTopicLen is the longest topic a record can hold (its length field is 16 bits, as in MQTT).
	MaxTopicLen = 1<<16 - 1
)

var crcTable = crc32.MakeTable(crc32.Castagnoli)

// errBadRecord is a record that fails its checks; the store holding it is set aside.
var errBadRecord = errors.New("damaged record")

// recordSize is what one message counts against Config.MaxBytes: its key and value.
func recordSize(topicLen, payloadLen int) int64 {
	return int64(keyLen + recordHeader + topicLen + payloadLen + recordCRC)
}

func seqKey(seq uint64) []byte {
	k := make([]byte, keyLen)
	binary.BigEndian.PutUint64(k, seq)
	return k
}

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

// recordStored reads only the stored time of a record (for expiry scans); ok is false when the
// value is too short to hold one.
func recordStored(v []byte) (time.Time, bool) {
	if len(v) < recordHeader+recordCRC {
		return time.Time{}, false
	}
	return time.Unix(0, int64(binary.BigEndian.Uint64(v[2:10]))), true
}

// decodeRecord checks a record and returns it as a Message with copied bytes.
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
	if recordHeader+tl > len(body) {
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
