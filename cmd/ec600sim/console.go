package main

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"sync"

	"github.com/gatewayd/gatewayd/internal/config"
	"github.com/gatewayd/gatewayd/internal/thing"
	"github.com/gatewayd/gatewayd/sim"
)

// maxPending bounds the console's requests waiting for a reply; the oldest is forgotten (and
// said so) beyond it.
const maxPending = 256

// consoleCLI is the platform's console for the device a gatewayd configuration describes, typed
// at on standard input: it sends sets and calls, and checks every reply against its request.
type consoleCLI struct {
	c   *sim.Console
	out io.Writer

	mu      sync.Mutex
	pending map[string]string // request id → what was asked
	order   []string
}

func newConsoleCLI(file string, b *sim.Broker, out io.Writer) (*consoleCLI, error) {
	cfg, err := config.Load(file)
	if err != nil {
		return nil, err
	}
	th := cfg.Thing
	if th == nil {
		return nil, fmt.Errorf("%s has no [thing]: the LED is not bound to a property", file)
	}
	cc := &consoleCLI{out: out, pending: map[string]string{}}
	cc.c, err = sim.NewConsole(b, th.Dialect, th.Topics, cc.answer)
	if err != nil {
		return nil, err
	}
	fmt.Fprintf(out, "console: %s thing model; the LED follows %s; sets go to %s\n", th.Dialect, th.LEDProperty, th.Topics.Set)
	return cc, nil
}

// answer prints what the device sent, and for a reply whether it answers a request sent here.
func (cc *consoleCLI) answer(topic string, a thing.Answer) {
	cc.mu.Lock()
	defer cc.mu.Unlock()
	if !a.Reply {
		fmt.Fprintf(cc.out, "console: %s (%s)\n", a, topic)
		return
	}
	what, ok := cc.pending[a.ID]
	if !ok {
		fmt.Fprintf(cc.out, "console: %s — no request of this console has that id\n", a)
		return
	}
	delete(cc.pending, a.ID)
	fmt.Fprintf(cc.out, "console: %s — answers %s\n", a, what)
}

// command runs "set PROP VALUE" or "call SERVICE [JSON]".
func (cc *consoleCLI) command(f []string) error {
	var id, topic string
	var err error
	switch {
	case f[0] == "set" && len(f) == 3:
		id, topic, err = cc.c.Set(f[1], jsonArg(f[2]))
	case f[0] == "call" && len(f) >= 2:
		var args json.RawMessage
		if len(f) > 2 {
			args = jsonArg(strings.Join(f[2:], " "))
		}
		id, topic, err = cc.c.Call(f[1], args)
	default:
		return fmt.Errorf(`usage: set PROP VALUE, call SERVICE [JSON]`)
	}
	if err != nil {
		return err
	}
	cc.mu.Lock()
	defer cc.mu.Unlock()
	cc.pending[id] = strings.Join(f, " ")
	cc.order = append(cc.order, id)
	if len(cc.order) > maxPending {
		if what, ok := cc.pending[cc.order[0]]; ok {
			fmt.Fprintf(cc.out, "console: gave up waiting for the reply to %s (id %s)\n", what, cc.order[0])
			delete(cc.pending, cc.order[0])
		}
		cc.order = cc.order[1:]
	}
	fmt.Fprintf(cc.out, "console: sent %s as request %s on %s\n", strings.Join(f, " "), id, topic)
	return nil
}

// jsonArg is s as JSON: as it is when it is JSON, else as a string (on → "on").
func jsonArg(s string) json.RawMessage {
	if json.Valid([]byte(s)) {
		return json.RawMessage(s)
	}
	b, _ := json.Marshal(s)
	return b
}
