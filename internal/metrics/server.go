package metrics

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"time"

	"golang.org/x/net/netutil"
)

// Limits on what scrapers can cost the daemon.
const (
	MaxConns      = 4                // connections served at once; more wait in the kernel's backlog
	MaxInFlight   = 2                // scrapes gathered at once; more get 503
	ScrapeTimeout = 5 * time.Second  // a scrape that takes longer gets 503
	IOTimeout     = 10 * time.Second // to send a request, and to take the answer
)

// contentType is that of the Prometheus text format, version 0.0.4.
const contentType = "text/plain; version=0.0.4; charset=utf-8"

// Registry is everything a scrape serves: the daemon's own metrics from its Sources, the publish
// histogram of their Uplinks and the Go runtime and process metrics.
type Registry struct {
	collector *collector
	uplinks   *Uplinks
}

// NewRegistry returns the Registry over src.
func NewRegistry(src Sources) *Registry {
	return &Registry{collector: newCollector(src), uplinks: src.Uplinks}
}

// AppendText appends the whole exposition, in the Prometheus text format, to b.
func (r *Registry) AppendText(b []byte) []byte {
	t := text{b: b}
	r.collector.appendText(&t)
	if r.uplinks != nil {
		r.uplinks.appendText(&t)
	}
	appendRuntime(&t)
	return t.b
}

// Handler serves the metrics of r at /metrics (and a pointer to it at /).
func Handler(r *Registry) http.Handler { return handler(r, ScrapeTimeout) }

// handler is Handler with the given scrape timeout.
func handler(r *Registry, timeout time.Duration) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", &scrapes{reg: r, slots: make(chan struct{}, MaxInFlight), timeout: timeout})
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		fmt.Fprintln(w, "gatewayd: the metrics are at /metrics")
	})
	return mux
}

// scrapes serves /metrics: at most MaxInFlight expositions are built at once (more get 503), and
// one not built within timeout gets 503. The exposition is built whole before a byte is sent, so
// a slow client holds nothing but its own buffer.
type scrapes struct {
	reg     *Registry
	slots   chan struct{}
	timeout time.Duration
}

func (s *scrapes) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	select {
	case s.slots <- struct{}{}:
	default:
		http.Error(w, "too many scrapes at once", http.StatusServiceUnavailable)
		return
	}
	built := make(chan []byte, 1)
	go func() {
		defer func() { <-s.slots }() // held until built, even when the scraper gave up: a stuck source takes its slot
		built <- s.reg.AppendText(nil)
	}()
	timeout := time.NewTimer(s.timeout)
	defer timeout.Stop()
	select {
	case body := <-built:
		w.Header().Set("Content-Type", contentType)
		w.Header().Set("Content-Length", strconv.Itoa(len(body)))
		_, _ = w.Write(body) // an error is the scraper gone: nothing to do
	case <-timeout.C:
		http.Error(w, "the metrics took too long to gather", http.StatusServiceUnavailable)
	case <-req.Context().Done():
	}
}

// Listen opens the TCP listener for Serve.
func Listen(addr string) (net.Listener, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("metrics: %w", err)
	}
	return ln, nil
}

// Serve serves h on ln until ctx ends, then closes ln; it returns nil after ctx ended. At most
// MaxConns connections are served at once, each bounded by IOTimeout.
func Serve(ctx context.Context, ln net.Listener, h http.Handler) error {
	srv := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: IOTimeout,
		ReadTimeout:       IOTimeout,
		WriteTimeout:      IOTimeout,
		IdleTimeout:       time.Minute,
		MaxHeaderBytes:    8 << 10,
	}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(netutil.LimitListener(ln, MaxConns)) }()
	select {
	case err := <-done:
		return fmt.Errorf("metrics: %w", err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		srv.Close() // a scrape still being written: cut it
	}
	if err := <-done; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("metrics: %w", err)
	}
	return nil
}
