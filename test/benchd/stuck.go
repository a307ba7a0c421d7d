package benchd

import (
	"fmt"
	"io"
	"net"
	"syscall"
	"time"
)

// StuckSubscriber connects to a local MQTT endpoint at addr as a program that hangs would: it
// sends CONNECT (MQTT 3.1.1, clean session, keep-alive off), subscribes to topic with QoS 1, reads
// the CONNACK and SUBACK, and then never reads again, with a receive buffer of 4 KiB so that the
// broker's writes to it soon block. Close the returned connection to end it.
func StuckSubscriber(addr, topic string) (net.Conn, error) {
	d := net.Dialer{Timeout: 5 * time.Second, Control: func(_, _ string, c syscall.RawConn) error {
		var serr error
		err := c.Control(func(fd uintptr) {
			serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4096)
		})
		if err != nil {
			return err
		}
		return serr
	}}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("stuck subscriber: %w", err)
	}
	fail := func(err error) (net.Conn, error) {
		c.Close()
		return nil, fmt.Errorf("stuck subscriber: %w", err)
	}
	id := "stuck-subscriber"
	connect := append([]byte{0x10, byte(12 + len(id)), 0, 4, 'M', 'Q', 'T', 'T', 4, 0x02, 0, 0, 0, byte(len(id))}, id...)
	sub := append([]byte{0x82, byte(2 + 2 + len(topic) + 1), 0, 1, byte(len(topic) >> 8), byte(len(topic))}, topic...)
	sub = append(sub, 1)
	if len(topic) > 120 {
		return fail(fmt.Errorf("topic of %d bytes: this client encodes lengths below 128 only", len(topic)))
	}
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Write(append(connect, sub...)); err != nil {
		return fail(err)
	}
	ack := make([]byte, 4+5) // CONNACK, SUBACK
	if _, err := io.ReadFull(c, ack); err != nil {
		return fail(fmt.Errorf("reading CONNACK and SUBACK: %w", err))
	}
	if ack[0] != 0x20 || ack[3] != 0 || ack[4] != 0x90 || ack[8] != 1 {
		return fail(fmt.Errorf("CONNACK/SUBACK % x: refused", ack))
	}
	_ = c.SetDeadline(time.Time{})
	return c, nil
}
