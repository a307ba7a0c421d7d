package drain_test

import (
	"context"
	"os"

	"github.com/rs/zerolog"

	"github.com/gatewayd/gatewayd/internal/drain"
	"github.com/gatewayd/gatewayd/internal/local"
	"github.com/gatewayd/gatewayd/internal/outbox"
	"github.com/gatewayd/gatewayd/qmt"
)

// Example shows how the daemon wires the outbox, the local endpoint and the drainer: the
// endpoint stores and notifies, the drainer runs while a session is connected.
func Example() {
	log := zerolog.New(os.Stderr)
	ctx := context.Background()

	store, err := outbox.Open(outbox.Config{Dir: os.TempDir()}, log) // [outbox]
	if err != nil {
		log.Fatal().Err(err).Msg("outbox")
	}
	defer store.Close()
	d := drain.New(store, drain.Options{Window: 8}, log)

	ep, err := local.New(local.Config{ // [local]
		Listen:  local.DefaultListen,
		Forward: []local.Forward{{Topic: "sensors/#", QoS: 1}},
	}, store, d.Notify, log)
	if err != nil {
		log.Fatal().Err(err).Msg("local endpoint")
	}
	go ep.Run(ctx) // for the daemon's lifetime

	// In the supervisor, each time the MQTT session becomes connected:
	var client *qmt.Client // the session's client
	sessionCtx, linkDown := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- d.Run(sessionCtx, client) }()
	// ... for each downlink (qmt.Received): ep.Deliver(e.Topic, e.Payload)
	// ... when a module with another IMEI is attached: d.Reset()
	// When the link goes down: stop the drainer and wait for it.
	linkDown()
	<-done
}
