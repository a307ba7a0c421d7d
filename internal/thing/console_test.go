package thing

import (
	"encoding/json"
	"testing"

	"github.com/gatewayd/gatewayd/internal/topic"
)

// TestConsoleRoundTrip: for every dialect, what the console sends the engine understands, and
// what the engine answers the console reads as the answer to that request, with its id.
func TestConsoleRoundTrip(t *testing.T) {
	for _, name := range Names() {
		t.Run(name, func(t *testing.T) {
			tp := testTopics[name]
			c, err := NewConsole(name, tp)
			if err != nil {
				t.Fatal(err)
			}
			e, led := newTestEngine(t, name, "LEDSwitch")
			led.on = false
			// answers sends the console's message to the engine and reads the engine's answers
			// that the console's filters let through.
			answers := func(m Message) []Answer {
				if !e.Handle(m.Topic, m.Payload) {
					t.Fatalf("the engine did not take %s %s", m.Topic, m.Payload)
				}
				var out []Answer
				for _, o := range drained(e) {
					seen := false
					for _, f := range c.Filters() {
						seen = seen || topic.Match(f, o.m.Topic)
					}
					if !seen {
						t.Errorf("the console does not subscribe to %s", o.m.Topic)
					}
					if a, ok := c.Read(o.m.Topic, o.m.Payload); ok {
						out = append(out, a)
					}
				}
				return out
			}
			find := func(as []Answer, id string) *Answer {
				for i := range as {
					if as[i].Reply && as[i].ID == id {
						return &as[i]
					}
				}
				return nil
			}
			m, id := c.Set("LEDSwitch", json.RawMessage("true"))
			as := answers(m)
			if on, _ := led.LEDState(); !on {
				t.Fatalf("the console's set %s %s did not turn the LED on", m.Topic, m.Payload)
			}
			if a := find(as, id); name != "aws" && name != "thingsboard" && (a == nil || !a.OK) {
				t.Errorf("answers %v, want an ok reply to %s", as, id)
			}
			if len(as) == 0 {
				t.Errorf("no answer at all to %s", m.Payload)
			}
			m, id = c.Set("LEDSwitch", json.RawMessage(`"dim"`))
			as = answers(m)
			if a := find(as, id); name != "aws" && name != "thingsboard" && (a == nil || a.OK) {
				t.Errorf("answers %v, want a refusal of %s", as, id)
			}
			if name == "aws" {
				return
			}
			m, id, err = c.Call("get_status", nil)
			if err != nil {
				if name == "onenet" && tp.Service == "" {
					return
				}
				t.Fatal(err)
			}
			if a := find(answers(m), id); a == nil || !a.OK || a.Body == "" {
				t.Errorf("get_status answer %v", a)
			}
		})
	}
}
