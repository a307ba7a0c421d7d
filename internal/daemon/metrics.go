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

// metricsPart is the Prometheus metrics listener of cfg as a part (see keep), or false without
// [metrics]. A listener that cannot be opened is logged and left out: the gateway's job goes on
// without it.
func metricsPart(cfg *config.Config, p metricSources, log zerolog.Logger) (part, bool) {
	if cfg.Metrics == nil {
		return part{}, false
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
	addr := cfg.Metrics.Listen
	return part{
		name: "metrics listener", field: "listen", addr: addr, event: logging.EventMetricsUnavailable,
		hint:       "another program may hold the port (ss -ltnp); pick a free one in [metrics] listen",
		cannotOpen: "the metrics listener cannot be opened: running without it",
		open: func() (func(context.Context) error, error) {
			reg := metrics.NewRegistry(src)
			ln, err := metrics.Listen(addr)
			if err != nil {
				return nil, err
			}
			log.Info().Str("listen", ln.Addr().String()).Msg("metrics listening")
			h := metrics.Handler(reg)
			return func(ctx context.Context) error { return metrics.Serve(ctx, ln, h) }, nil
		},
	}, true
}
