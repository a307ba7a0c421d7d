package testutil

import (
	"bytes"
	"errors"
	"net"
	"sync"
	"syscall"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"github.com/mochi-mqtt/server/v2/packets"
)

// DialSmall connects to addr over TCP with a receive buffer of 4 KiB, so that a client that stops
// reading is felt by the server at once. The connection is closed when the test ends.
func DialSmall(t testing.TB, addr string) net.Conn {
	t.Helper()
	d := net.Dialer{Timeout: 5 * time.Second, Control: func(_, _ string, rc syscall.RawConn) error {
		var serr error
		err := rc.Control(func(fd uintptr) { serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4096) })
		return errors.Join(err, serr)
	}}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// EncodeMQTT encodes a CONNECT, SUBSCRIBE or PUBLISH packet with mochi's codec, MQTT 3.1.1 unless
// pk says otherwise, for tests that speak to a broker byte by byte.
func EncodeMQTT(t testing.TB, pk packets.Packet) []byte {
	t.Helper()
	if pk.ProtocolVersion == 0 {
		pk.ProtocolVersion = 4
	}
	var b bytes.Buffer
	var err error
	switch pk.FixedHeader.Type {
	case packets.Connect:
		err = pk.ConnectEncode(&b)
	case packets.Subscribe:
		err = pk.SubscribeEncode(&b)
	case packets.Publish:
		err = pk.PublishEncode(&b)
	default:
		t.Fatalf("EncodeMQTT: packet type %d", pk.FixedHeader.Type)
	}
	if err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// Collect subscribes c to filter at QoS 1 and returns a function that waits (up to 20 s, else
// the test fails) until n messages have arrived and returns the payloads received so far, in
// order of arrival.
func Collect(t testing.TB, c paho.Client, filter string) (wait func(n int) []string) {
	t.Helper()
	var mu sync.Mutex
	var got []string
	tok := c.Subscribe(filter, 1, func(_ paho.Client, m paho.Message) {
		mu.Lock()
		got = append(got, string(m.Payload()))
		mu.Unlock()
	})
	if !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("subscribe %s: %v", filter, tok.Error())
	}
	return func(n int) []string {
		t.Helper()
		for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(5 * time.Millisecond) {
			mu.Lock()
			k := len(got)
			mu.Unlock()
			if k >= n {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("received %d messages on %s, want %d", k, filter, n)
			}
		}
		mu.Lock()
		defer mu.Unlock()
		return append([]string(nil), got...)
	}
}
