package thing

import (
	"encoding/json"
	"errors"
	"testing"

	"github.com/rs/zerolog"
)

// FuzzParse feeds every dialect any payload on each of its topics: no panic, an error always
// says which of the refusals it is, and a refused set changes nothing.
func FuzzParse(f *testing.F) {
	for _, s := range []string{
		`{"method":"thing.service.property.set","id":"44777986","params":{"LED":1},"version":"1.0.0"}`,
		`{"method":"control","clientToken":"t","params":{"LEDSwitch":"on"}}`,
		`{"object_device_id":"d","services":[{"service_id":"LED","properties":{"LEDSwitch":0}}]}`,
		`{"LEDSwitch":true,"$version":8}`, `{"version":3,"state":{"LEDSwitch":false}}`,
		`{"method":"blink","params":{"times":3}}`, `{"id":`, `[]`, `null`, ``, "\x00\xff",
		`{"code":200,"id":"1"}`, `{"id":1e999,"params":{"LEDSwitch":-0}}`,
	} {
		for i := range 6 {
			f.Add(i, s)
		}
	}
	f.Fuzz(func(t *testing.T, which int, payload string) {
		for _, name := range Names() {
			tp := testTopics[name]
			topics := []string{tp.Set, tp.ReportReply, tp.Service, "$oc/devices/dev1/sys/properties/set/request_id=1",
				"$iothub/methods/POST/blink/?$rid=4", "v1/devices/me/rpc/request/9", "$aws/things/pi/shadow/update/rejected"}
			topic := topics[((which%len(topics))+len(topics))%len(topics)]
			if topic == "" {
				continue
			}
			d, _ := New(name, tp)
			_, _, err := d.Parse(topic, []byte(payload))
			if err != nil && !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrUnknownProperty) {
				t.Fatalf("%s %s %q: error of no known kind: %v", name, topic, payload, err)
			}
			led := &fakeLED{known: true, on: true}
			e := NewEngine(d, Config{Property: "LEDSwitch"}, led, nil, func() any { return nil }, func() Telemetry { return Telemetry{} }, zerolog.Nop())
			e.Handle(topic, []byte(payload))
			if st := e.Stats(); st.SetsRefused > 0 && !led.on {
				t.Fatalf("%s %q: a refused set changed the LED", name, payload)
			}
			for _, o := range drained(e) {
				if !json.Valid(o.m.Payload) {
					t.Fatalf("%s: %s is not JSON", name, o.m.Payload)
				}
			}
		}
	})
}

// FuzzParseSwitch: any value parses to on/off or to one of the two refusals, never both.
func FuzzParseSwitch(f *testing.F) {
	for _, s := range []string{`1`, `0`, `true`, `"on"`, `"off"`, `2`, `null`, `{}`, `1e999`, `-0`, `"\u006fn"`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		_, _, err := ParseSwitch(json.RawMessage(s))
		if err != nil && !errors.Is(err, ErrWrongType) && !errors.Is(err, ErrOutOfRange) {
			t.Fatalf("%q: %v", s, err)
		}
	})
}
