package sim

import (
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
	"github.com/eclipse/paho.mqtt.golang/packets"
)

// TestConnectRateRefusesWithServerUnavailable: a broker that takes 2 CONNECTs a second refuses
// the third and later ones of that second with CONNACK 3 (server unavailable) — refused ones
// count too — and accepts again in the next second; WithEvents sees every CONNECT and its code.
// Through the module, the refusal is +QMTCONN: 0,0,3 followed by the link closing.
func TestConnectRateRefusesWithServerUnavailable(t *testing.T) {
	t.Parallel()
	var clock atomic.Int64
	clock.Store(time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC).UnixNano())
	var mu sync.Mutex
	var seen []byte
	r := newRig(t, Config{}, WithConnectRate(2),
		WithEvents(func(e BrokerEvent) {
			mu.Lock()
			switch e.Kind {
			case "connect":
				seen = append(seen, 0)
			case "refused":
				seen = append(seen, e.Code)
			}
			mu.Unlock()
		}),
		WithBrokerClock(func() time.Time { return time.Unix(0, clock.Load()) }))
	connect := func(id string) error {
		c := mqtt.NewClient(mqtt.NewClientOptions().AddBroker("tcp://" + r.broker).SetClientID(id).
			SetConnectTimeout(2 * time.Second).SetProtocolVersion(4).SetAutoReconnect(false).SetConnectRetry(false))
		tok := c.Connect()
		if !tok.WaitTimeout(5 * time.Second) {
			return fmt.Errorf("%s: no CONNACK", id)
		}
		if tok.Error() == nil {
			t.Cleanup(func() { c.Disconnect(0) })
		}
		return tok.Error()
	}
	for i := 0; i < 4; i++ {
		err := connect(fmt.Sprintf("c%d", i))
		switch {
		case i < 2 && err != nil:
			t.Fatalf("CONNECT %d within the rate refused: %v", i, err)
		case i >= 2 && (err == nil || err.Error() != packets.ErrorRefusedServerUnavailable.Error()):
			t.Fatalf("CONNECT %d above the rate: %v, want %v", i, err, packets.ErrorRefusedServerUnavailable)
		}
	}
	h := r.h
	h.cmd("ATE0", "ATE0\r\r\nOK\r\n")
	h.cmd(`AT+QMTOPEN=0,"h",1883`, "\r\nOK\r\n")
	h.expect("\r\n+QMTOPEN: 0,0\r\n")
	h.cmd(`AT+QMTCONN=0,"dev"`, "\r\nOK\r\n")
	h.expect("\r\n+QMTCONN: 0,0,3\r\n\r\n+QMTSTAT: 0,1\r\n")

	clock.Add(int64(time.Second)) // the next second
	if err := connect("c9"); err != nil {
		t.Fatalf("CONNECT in the next second: %v", err)
	}
	mu.Lock()
	defer mu.Unlock()
	if want := []byte{0, 0, 3, 3, 3, 0}; string(seen) != string(want) {
		t.Fatalf("events saw codes %v, want %v", seen, want)
	}
}
