package sim

import (
	"encoding/json"
	"fmt"

	"github.com/gatewayd/gatewayd/internal/thing"
)

// Console plays a cloud platform's console on the embedded broker for a device whose LED is
// bound to a property ([thing] in gatewayd's configuration): it publishes property sets and
// service calls in the platform's dialect and hands every answer and report of the device to a
// function, as the platform's console shows them.
type Console struct {
	b *Broker
	c *thing.Console
}

// NewConsole subscribes, on b, to where the device answers and reports (dialect and topics as in
// gatewayd's [thing]); show receives each answer with its topic. It must not wait.
func NewConsole(b *Broker, dialect string, t thing.Topics, show func(topic string, a thing.Answer)) (*Console, error) {
	c, err := thing.NewConsole(dialect, t)
	if err != nil {
		return nil, err
	}
	for _, f := range c.Filters() {
		err := b.Subscribe(f, func(topic string, payload []byte) {
			if a, ok := c.Read(topic, payload); ok {
				show(topic, a)
			}
		})
		if err != nil {
			return nil, fmt.Errorf("console subscribe %s: %w", f, err)
		}
	}
	return &Console{b: b, c: c}, nil
}

// Set asks the device to set prop to value (raw JSON: 1, true, "on"); it returns the request id
// the device's reply must carry.
func (c *Console) Set(prop string, value json.RawMessage) (id, topic string, err error) {
	m, id := c.c.Set(prop, value)
	return id, m.Topic, c.b.Publish(m.Topic, m.Payload, false, 1)
}

// Call calls service with args (raw JSON, nil for none) and returns the request id.
func (c *Console) Call(service string, args json.RawMessage) (id, topic string, err error) {
	m, id, err := c.c.Call(service, args)
	if err != nil {
		return "", "", err
	}
	return id, m.Topic, c.b.Publish(m.Topic, m.Payload, false, 1)
}
