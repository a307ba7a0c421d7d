package local

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/gatewayd/gatewayd/internal/config"
	"github.com/gatewayd/gatewayd/internal/outbox"
)

func TestAppendPacketsSplitsWholePackets(t *testing.T) {
	pub := func(n int) []byte {
		var b bytes.Buffer
		pk := packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Publish, Qos: 1}, ProtocolVersion: 4,
			TopicName: "a/b", PacketID: 1, Payload: bytes.Repeat([]byte("p"), n)}
		if err := pk.PublishEncode(&b); err != nil {
			t.Fatal(err)
		}
		return b.Bytes()
	}
	puback := []byte{0x40, 0x02, 0x00, 0x01}
	for _, tc := range []struct {
		name    string
		in      []byte
		segs    int
		publish int
		unsplit bool
	}{
		{"one publish", pub(10), 1, 1, false},
		{"a publish over 127 bytes (two length bytes)", pub(300), 1, 1, false},
		{"a publish over 16 KiB (three length bytes)", pub(20000), 1, 1, false},
		{"several", append(append(append([]byte{}, pub(5)...), puback...), pub(200)...), 3, 2, false},
		{"a partial packet stays one segment", pub(50)[:20], 1, 0, true},
		{"a whole one then a partial one", append(append([]byte{}, puback...), pub(50)[:10]...), 2, 0, false},
		{"a length that never ends", []byte{0x30, 0xff, 0xff, 0xff, 0xff, 0x01}, 1, 0, true},
		{"just a type byte", []byte{0x30}, 1, 0, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			q := appendPackets(nil, tc.in)
			if len(q) != tc.segs || countSegments(q) != tc.publish || size(q) != len(tc.in) {
				t.Fatalf("%d segments, %d publishes, %d bytes; want %d, %d, %d", len(q), countSegments(q), size(q), tc.segs, tc.publish, len(tc.in))
			}
			var joined []byte
			for _, s := range q {
				joined = append(joined, s.b...)
			}
			if !bytes.Equal(joined, tc.in) {
				t.Fatal("the segments are not the input")
			}
		})
	}
}

func TestUnwritten(t *testing.T) {
	q := []segment{{b: make([]byte, 10), publish: true}, {b: make([]byte, 5)}, {b: make([]byte, 7), publish: true}}
	for _, tc := range []struct {
		n        int64
		left, pb int
	}{{0, 3, 2}, {9, 3, 2}, {10, 2, 1}, {14, 2, 1}, {15, 1, 1}, {21, 1, 1}, {22, 0, 0}} {
		r := unwritten(q, tc.n)
		if len(r) != tc.left || countSegments(r) != tc.pb {
			t.Errorf("after %d bytes: %d segments left with %d publishes; want %d, %d", tc.n, len(r), countSegments(r), tc.left, tc.pb)
		}
	}
}

func FuzzAppendPackets(f *testing.F) {
	f.Add([]byte{0x30, 0x05, 0, 1, 'a', 'x', 'y', 0x40, 0x02, 0, 1})
	f.Add([]byte{0x30, 0xff, 0xff, 0xff, 0x7f})
	f.Fuzz(func(t *testing.T, b []byte) {
		q := appendPackets(nil, b)
		if size(q) != len(b) {
			t.Fatalf("segments hold %d bytes of %d", size(q), len(b))
		}
		for i, s := range q {
			if len(s.b) == 0 {
				t.Fatalf("segment %d is empty", i)
			}
		}
	})
}

func TestThrottle(t *testing.T) {
	th := newThrottle()
	t0 := time.Unix(1000, 0)
	for i := range logBurst {
		if ok, skipped := th.allow(t0); !ok || skipped != 0 {
			t.Fatalf("line %d of the burst: %v %d", i, ok, skipped)
		}
	}
	for range 7 {
		if ok, _ := th.allow(t0.Add(time.Second)); ok {
			t.Fatal("a line past the burst was let through")
		}
	}
	if n := th.pending(t0.Add(2 * time.Second)); n != 0 {
		t.Fatalf("pending before a token came back: %d", n)
	}
	ok, skipped := th.allow(t0.Add(logEvery))
	if !ok || skipped != 7 {
		t.Fatalf("after logEvery: %v, %d skipped; want true, 7", ok, skipped)
	}
	th.allow(t0.Add(logEvery))
	if n := th.pending(t0.Add(3 * logEvery)); n != 1 {
		t.Fatalf("pending: %d, want 1", n)
	}
	if n := th.pending(t0.Add(3 * logEvery)); n != 0 {
		t.Fatalf("pending twice: %d", n)
	}
}

func TestMochiLogIsThrottledPerMessage(t *testing.T) {
	var b bytes.Buffer
	log := slog.New(newThrottledHandler(slog.NewTextHandler(&b, nil))).With("hook", "x")
	for range 50 {
		log.Warn("client store quota reached", "client", "c")
		log.Warn("another message")
	}
	if n := strings.Count(b.String(), "client store quota reached"); n != logBurst {
		t.Fatalf("%d lines of one message, want %d:\n%s", n, logBurst, b.String())
	}
	if n := strings.Count(b.String(), "another message"); n != logBurst {
		t.Fatalf("%d lines of another, want %d (each message has its own budget)", n, logBurst)
	}
}

// The configuration's defaults are the endpoint's: a [local] without the keys and a Config
// without the fields mean the same.
func TestConfigDefaultsAreTheEndpointDefaults(t *testing.T) {
	for _, c := range []struct {
		name       string
		cfg, local int
	}{
		{"max_clients", config.DefaultLocalMaxClients, DefaultMaxClients},
		{"max_topic", config.DefaultLocalMaxTopic, DefaultMaxTopic},
		{"max_retained", config.DefaultLocalMaxRetained, DefaultMaxRetained},
		{"max_retained_bytes", config.DefaultLocalMaxRetainedBytes, DefaultMaxRetainedBytes},
	} {
		if c.cfg != c.local {
			t.Errorf("%s: config default %d, endpoint default %d", c.name, c.cfg, c.local)
		}
	}
	if config.MaxLocalTopic > 65535 {
		t.Errorf("config allows max_topic %d; the endpoint refuses over 65535", config.MaxLocalTopic)
	}
}

// New gives mochi the bounds that keep a subscriber that stops reading cheap (MaxInflight,
// maxWritesPending; mochi honouring MaximumInflight is TestMochiContractInflightLimit's) and
// its $SYS topics once an hour. Without this test, New could drop any of them unnoticed: no
// endpoint test reaches 1,024 unacknowledged copies.
func TestNewBoundsWhatMochiHoldsPerClient(t *testing.T) {
	e, _ := start(t, Config{}, newStore(t, outbox.Config{}), nil)
	o := e.srv.Options
	if c := o.Capabilities; c.MaximumInflight != MaxInflight || c.MaximumClientWritesPending != maxWritesPending {
		t.Errorf("mochi's MaximumInflight %d, MaximumClientWritesPending %d; want %d, %d",
			c.MaximumInflight, c.MaximumClientWritesPending, MaxInflight, maxWritesPending)
	}
	if o.SysTopicResendInterval != 3600 {
		t.Errorf("mochi's $SYS interval %d s, want 3600", o.SysTopicResendInterval)
	}
}
