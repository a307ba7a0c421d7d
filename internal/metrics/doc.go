// Package metrics exports what gatewayd knows to Prometheus: a Registry that reads the
// supervisor's Status, the AT engine's counters, the outbox, the drainer and the local endpoint at
// scrape time, Uplinks that the daemon tells of each publish the broker acknowledged, and Serve,
// the HTTP listener that serves /metrics.
//
// The exposition is the Prometheus text format (version 0.0.4), written here: the HELP and TYPE
// lines, the daemon's own series, the publish histogram (a PrometheusHistogram of
// github.com/VictoriaMetrics/metrics, in a Set of the Uplinks' own) and the Go runtime and process
// metrics that package writes. Neither its default set, its global metadata switch nor its
// summaries (which start a goroutine that wakes periodically) are used.
//
// Nothing here is in a hot path: every value is read from a snapshot that its owner keeps up to
// date anyway (a mutex held for a copy, or atomic counters), so a scrape never waits for the loop
// or the module, and the daemon does no work for the metrics between scrapes.
package metrics
