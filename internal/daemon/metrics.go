package daemon

import (
	"context"

	"github.com/rs/zerolog"

	"github.com/gatewayd/gatewayd/internal/config"
	"github.com/gatewayd/gatewayd/internal/local"
	"github.com/gatewayd/gatewayd/internal/logging"
	"github.com/gatewayd/gatewayd/internal/metrics"
	"github.com/gatewayd/gatewayd/internal/outbox"
	"github.com/gatewayd/gatewayd/internal/supervisor"
	"github.com/gatewayd/gatewayd/internal/thing"
)

// newUplinks returns what counts and times the outbox's publishes for the metrics; nil (counting
// nothing) without [metrics].
func newUplinks(cfg *config.Config) *metrics.Uplinks {
	if cfg.Metrics == nil {
		return nil
	}
	return metrics.NewUplinks()
}

// metricSources are the parts of a running daemon the metrics read; store and ep are nil when
// not in use, outbox is the supervisor's Outbox (a drainer, or nil).
type metricSources struct {
	sup     *supervisor.Supervisor
	outbox  supervisor.Outbox
	store   *outbox.Store
	ep      *local.Endpoint
	uplinks *metrics.Uplinks
	version string
	thing   *thing.Engine // nil without [thing]
	device  string
	rev     string
}

// startMetrics serves the Prometheus metrics until ctx ends, when [metrics] is configured; the
// returned func waits for the listener to stop. A listener that cannot be opened is logged and
// left out: the gateway's job goes on without it.
func startMetrics(ctx context.Context, cfg *config.Config, p metricSources, log zerolog.Logger) (wait func()) {
	if cfg.Metrics == nil {
		return func() {}
	}
	src := metrics.Sources{Status: p.sup.Status, AT: p.sup.ATStats, LocalOn: p.ep != nil, Uplinks: p.uplinks, Version: p.version,
		Device: p.device, ConfigRevision: p.rev}
	if p.store != nil {
		src.Outbox = p.store.Stats
	}
	if d, ok := p.outbox.(drainer); ok {
		src.Drain = d.Stats
	}
	if p.ep != nil {
		src.Local = p.ep.Stats
	}
	if p.thing != nil {
		src.Thing = p.thing.Stats
	}
	fail := func(err error) func() {
		log.Error().Str(logging.EventKey, logging.EventMetricsUnavailable).Str("listen", cfg.Metrics.Listen).Err(err).
			Str("hint", "another program may hold the port (ss -ltnp); pick a free one in [metrics] listen").
			Msg("the metrics listener cannot be opened: running without it")
		return func() {}
	}
	reg, err := metrics.NewRegistry(src)
	if err != nil {
		return fail(err)
	}
	ln, err := metrics.Listen(cfg.Metrics.Listen)
	if err != nil {
		return fail(err)
	}
	log.Info().Str("listen", ln.Addr().String()).Msg("metrics listening")
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := metrics.Serve(ctx, ln, metrics.Handler(reg)); err != nil {
			log.Error().Err(err).Msg("metrics listener stopped")
		}
	}()
	return func() { <-done }
}
