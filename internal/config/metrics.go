package config

import "net"

// DefaultMetricsListen is [metrics] listen when the section leaves it out.
const DefaultMetricsListen = "127.0.0.1:9108"

// Metrics is the Prometheus endpoint; nil in Config when [metrics] is absent.
type Metrics struct {
	// Listen is the TCP address of the HTTP listener serving /metrics.
	Listen string
	// AllowNonLoopback lets Listen be an address other machines can reach.
	AllowNonLoopback bool
}

func (b *builder) metrics(t *table) {
	m := &Metrics{}
	m.Listen = t.str("listen", DefaultMetricsListen)
	m.AllowNonLoopback = t.boolean("allow_non_loopback", false)
	host, _, err := net.SplitHostPort(m.Listen)
	switch ip := net.ParseIP(host); {
	case err != nil:
		t.fail("listen", "%q is not host:port: %v", m.Listen, err)
	case !m.AllowNonLoopback && (ip == nil || !ip.IsLoopback()):
		t.fail("listen", "%q is not a loopback address; set metrics.allow_non_loopback = true to serve the metrics beyond this machine", m.Listen)
	}
	t.done()
	b.cfg.Metrics = m
}
