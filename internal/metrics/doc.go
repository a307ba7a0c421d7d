// Package metrics exports what gatewayd knows to Prometheus: a Collector that reads the
// supervisor's Status, the AT engine's counters, the outbox, the drainer and the local endpoint at
// scrape time, Uplinks that the daemon tells of each publish the broker acknowledged, and Serve,
// the HTTP listener that serves /metrics.
//
// Nothing here is in a hot path: every value is read from a snapshot that its owner keeps up to
// date anyway (a mutex held for a copy, or atomic counters), so a scrape never waits for the loop
// or the module, and the daemon does no work for the metrics between scrapes.
package metrics
