package supervisor

import (
	"context"
	"fmt"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/gatewayd/gatewayd/internal/logging"
	"github.com/gatewayd/gatewayd/qmt"
)

// The downlink consumer. Each link's MQTT client delivers its events in one ordered queue; a
// goroutine of the link's own reads it and hands each downlink on — the log, the LED, the local
// endpoint and the thing model (Settings.Downlinks) — and forwards to the loop, in order, only
// the rare events the session depends on (sessionEvent). So a burst of downlinks never passes
// through the loop, and the loop, while it waits for a call, only has those few to keep.
//
// The consumer writes nothing the loop owns: it reads the link's topic filters and the
// platform's registration answer topics (downTopics, which the loop stores whole), counts
// downlinks in a record of its own (downlinkCount), drives the LED under the LED's lock, and
// sends buffer-mode messages' slots to be read in goroutines that hand the messages back to it.

// sessionQueue bounds the session events the consumer has forwarded and the loop not yet taken;
// beyond it the consumer waits (and the client's queue and the AT reader behind it fill).
const sessionQueue = 64

// sessionEvent reports whether the loop must see ev: a URC that may mean the session must be
// rebuilt (handleEvent). Downlinks, replies nobody waited for, and lines not understood are the
// consumer's alone.
func sessionEvent(ev qmt.Event) bool {
	switch ev.(type) {
	case qmt.LinkStatus, qmt.PingFailed, qmt.PDPDeactivated, qmt.ModuleReady, qmt.AppReady,
		qmt.PoweredDown, qmt.SIMStatus:
		return true
	}
	return false
}

// downlinkCount counts the downlinks handed on (Status.Downlinks, DownlinkBytes). Only the
// downlink consumers write it, one link's at a time.
type downlinkCount struct {
	mu       sync.Mutex
	n, bytes uint64
}

// consumer is the downlink consumer of one link, with the loop's settings it needs, copied when
// it starts.
type consumer struct {
	*Supervisor
	k *link
	// deliver is Settings.Downlinks; toggle says downlinks toggle the LED (no LEDBound).
	deliver func(topic string, payload []byte)
	toggle  bool
}

// startConsumer starts k's downlink consumer. Loop only, once per link.
func (l *loop) startConsumer(ctx context.Context, k *link) {
	k.consuming = true
	c := consumer{Supervisor: l.Supervisor, k: k, deliver: l.set.Downlinks, toggle: l.set.LEDBound == nil}
	go c.run(ctx)
}

// run reads the link's client's events until they end (the port closed or lost), then closes
// the link's session queue, which tells the loop.
func (c consumer) run(ctx context.Context) {
	defer close(c.k.consumed)
	defer close(c.k.session)
	stored := make(chan []qmt.Received)
	for {
		select {
		case ev, ok := <-c.k.client.Events():
			if !ok {
				return
			}
			if !c.event(ctx, ev, stored) {
				return
			}
		case msgs := <-stored:
			for _, m := range msgs {
				c.downlink(m.Topic, m.Payload, m.MsgID)
			}
		}
	}
}

// event handles one event of the client, or forwards it to the loop. It returns false once the
// link is closed.
func (c consumer) event(ctx context.Context, ev qmt.Event, stored chan<- []qmt.Received) bool {
	switch e := ev.(type) {
	case qmt.Received:
		c.downlink(e.Topic, e.Payload, e.MsgID)
	case qmt.Stored:
		go c.readStored(ctx, c.k, e.Slot, stored)
	case qmt.Unknown:
		c.log.Debug().Str("line", e.Line).Msg("unsolicited line not understood")
	case qmt.Malformed:
		c.log.Warn().Str("line", e.Line).Err(e.Err).Msg("malformed line from the module ignored")
	default:
		if !sessionEvent(ev) {
			c.log.Debug().Str("urc", fmt.Sprintf("%+v", ev)).Msg("URC")
			return true
		}
		select {
		case c.k.session <- ev:
		case <-c.k.closed:
			return false
		}
	}
	return true
}

// maxLoggedPayload is the largest payload a downlink log line shows.
const maxLoggedPayload = 256

// downlink hands one message on: a registration's answer to the registration, any other on a
// subscribed topic to the log, the LED and Settings.Downlinks.
func (c consumer) downlink(topic string, payload []byte, msgID int) {
	t := c.k.topics.Load()
	if t != nil && c.registrationAnswer(t.answers, topic, payload) {
		return
	}
	if !t.subscribed(topic) {
		c.log.Warn().Str("topic", topic).Int("bytes", len(payload)).Int("msgid", msgID).
			Msg("message on a topic gatewayd did not subscribe to; ignored")
		return
	}
	ev := c.log.Info().Str("event", logging.EventDownlink).Str("topic", topic).Int("bytes", len(payload)).Int("msgid", msgID)
	switch {
	case len(payload) > maxLoggedPayload:
	case utf8.Valid(payload):
		ev = ev.Str("payload", string(payload))
	default:
		ev = ev.Hex("payload_hex", payload)
	}
	// Counted before it is logged: whoever reads the log line and then the status (a test, an
	// operator) sees it counted.
	c.downlinks.mu.Lock()
	c.downlinks.n, c.downlinks.bytes = c.downlinks.n+1, c.downlinks.bytes+uint64(len(payload))
	c.downlinks.mu.Unlock()
	ev.Msg("downlink")
	if c.toggle {
		c.toggleLED("downlink")
	}
	if c.deliver != nil {
		c.deliver(topic, payload)
	}
}

// readStored reads a buffer-mode message out of its slot (the module frees the slot on reading)
// in a goroutine of its own, and hands what it read to the consumer (out).
func (s *Supervisor) readStored(ctx context.Context, k *link, slot int, out chan<- []qmt.Received) {
	rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	msgs, err := k.client.ReadStored(rctx, slot)
	if err != nil {
		s.log.Error().Err(err).Int("slot", slot).Msg("cannot read a stored downlink")
		return
	}
	select {
	case out <- msgs:
	case <-k.closed:
	case <-ctx.Done():
	}
}
