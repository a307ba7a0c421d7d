package qmt_test

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/gatewayd/gatewayd/at"
	"github.com/gatewayd/gatewayd/qmt"
)

// A session with the module's MQTT client: configure, open, connect, subscribe, publish, and
// handle what the module reports. port is the module's AT port (a serial port or a pty).
func Example() {
	var port interface {
		Read([]byte) (int, error)
		Write([]byte) (int, error)
	} // e.g. a go.bug.st/serial port
	if port == nil {
		return // this example only compiles; see the tests for runs against a fake module
	}
	conn := at.New(port, at.Options{URCs: qmt.URCs()})
	defer conn.Close()
	client := qmt.NewClient(conn, 0)
	defer client.Close()

	ctx := context.Background()
	cfg := qmt.Config{KeepAlive: 60 * time.Second, CleanSession: true}
	if err := client.Configure(ctx, cfg); err != nil {
		fmt.Println(err)
		return
	}
	if err := client.Open(ctx, "broker.example.com", 1883); err != nil {
		fmt.Println(err) // e.g. "mqtt open: could not resolve the broker's host name (+QMTOPEN: 0,4)"
		return
	}
	if err := client.Connect(ctx, "device-1", "user", "secret"); errors.Is(err, qmt.ErrBadCredentials) {
		fmt.Println("fix the credentials:", err)
		return
	}
	granted, err := client.Subscribe(ctx, qmt.Subscription{Topic: "device-1/cmd", QoS: 1})
	fmt.Println(granted, err)
	err = client.Publish(ctx, qmt.Message{Topic: "device-1/up", Payload: []byte("hello"), QoS: 1})
	fmt.Println(err)

	for ev := range client.Events() {
		switch e := ev.(type) {
		case qmt.Received:
			fmt.Printf("%s: %s\n", e.Topic, e.Payload)
		case qmt.LinkStatus:
			fmt.Println("link lost:", e.Reason())
			return
		}
	}
}

// ParseURC turns a line the at engine framed into a typed event; result events say in words
// what went wrong.
func ExampleParseURC() {
	for _, line := range []string{"+QMTCONN: 0,0,4", "+QMTOPEN: 0,4", "+QMTSTAT: 0,1", "+QMTSUB: 0,1,0,1"} {
		switch e := qmt.ParseURC(at.Line{Text: line}).(type) {
		case qmt.Connected:
			fmt.Println(e.Err())
		case qmt.Opened:
			fmt.Println(e.Err(), errors.Is(e.Err(), qmt.ErrDNS))
		case qmt.LinkStatus:
			fmt.Println(e.Reason())
		case qmt.Subscribed:
			fmt.Println("granted QoS", e.Values, e.Err())
		}
	}
	// Output:
	// mqtt connect: broker refused the connection: bad user name or password (+QMTCONN: 0,0,4)
	// mqtt open: could not resolve the broker's host name (+QMTOPEN: 0,4) true
	// connection closed or reset by the peer
	// granted QoS [1] <nil>
}

// A counted +QMTRECV arrives from at as the header and the payload bytes.
func ExampleParseURC_received() {
	ev := qmt.ParseURC(at.Line{Text: `+QMTRECV: 0,0,"dev/cmd",10`, Payload: []byte("a\"b\r\nc\x00d\x1ae")})
	if r, ok := ev.(qmt.Received); ok {
		fmt.Printf("%s %q\n", r.Topic, r.Payload)
	}
	// Output:
	// dev/cmd "a\"b\r\nc\x00d\x1ae"
}

// Config.Commands is the exact AT+QMTCFG list a config produces.
func ExampleConfig_Commands() {
	cfg := qmt.Config{KeepAlive: 60 * time.Second, CleanSession: true}
	lines, err := cfg.Commands(0)
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, l := range lines {
		fmt.Println(l)
	}
	// Output:
	// AT+QMTCFG="version",0,4
	// AT+QMTCFG="pdpcid",0,1
	// AT+QMTCFG="ssl",0,0
	// AT+QMTCFG="keepalive",0,60
	// AT+QMTCFG="session",0,1
	// AT+QMTCFG="timeout",0,5,3,0
	// AT+QMTCFG="will",0,0
	// AT+QMTCFG="recv/mode",0,0,1
}

// A topic that would break the AT command is refused before anything is sent.
func ExampleStringError() {
	_, err := qmt.Config{Will: &qmt.Will{Topic: "dev/status", Message: `say "bye"`}}.Commands(0)
	fmt.Println(err)
	fmt.Println(errors.Is(err, qmt.ErrInvalidString))
	// Output:
	// mqtt: will message "say \"bye\"": byte 0x22 (double quote) at offset 4 would end the quoted AT parameter (there is no escape)
	// true
}
