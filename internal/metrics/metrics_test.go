package metrics

import (
	"bytes"
	"cmp"
	"context"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil/promlint"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/gatewayd/gatewayd/at"
	"github.com/gatewayd/gatewayd/internal/drain"
	"github.com/gatewayd/gatewayd/internal/local"
	"github.com/gatewayd/gatewayd/internal/outbox"
	"github.com/gatewayd/gatewayd/internal/supervisor"
	"github.com/gatewayd/gatewayd/internal/thing"
	"github.com/gatewayd/gatewayd/modem"
)

// sample is a daemon in the middle of its life: connected, a few losses, an outbox with a
// message waiting, two local clients.
func sample() Sources {
	connected := time.Unix(1_700_000_000, 0)
	st := supervisor.Status{
		PortOpen: true, Stage: "connected", Registered: true, Connected: true, ConnectedAt: connected,
		Module:     modem.Identity{Model: "EC600N", Revision: "EC600NCNLCR03A21M16", IMEI: "866123456789012", ICCID: "89860012345678901234"},
		Signal:     supervisor.Signal{RSSI: -73, HasRSSI: true},
		SignalAt:   connected.Add(time.Minute),
		Reconnects: map[string]uint64{supervisor.LossLinkClosed: 2, "something_new": 1},
		Downlinks:  5, DownlinkBytes: 500, Published: 1,
	}
	u := NewUplinks()
	u.Published(10, 300*time.Millisecond)
	u.Published(20, 2*time.Second)
	return Sources{
		Status: func() supervisor.Status { return st },
		AT: func() at.Stats {
			return at.Stats{Commands: 40, CommandTime: 2 * time.Second, Timeouts: 1, HeldBack: 3, HeldFor: time.Second}
		},
		Outbox: func() outbox.Stats {
			return outbox.Stats{Messages: 1, Bytes: 100, MaxBytes: 1 << 20, Oldest: connected, Stored: 3, Refused: 1}
		},
		Drain:   func() drain.Stats { return drain.Stats{Failed: 1} },
		Local:   func() local.Stats { return local.Stats{Clients: 2, Forwarded: 3} },
		LocalOn: true,
		Uplinks: u,
		Version: "v1.2.3",
		Thing: func() thing.Stats {
			return thing.Stats{Sets: 4, SetsRefused: 1, Calls: 2, Replies: 7, Reports: 9, Dropped: 1, ReportRepliesOK: 8, ReportErrors: 1, Queued: 2}
		},
	}
}

// TestThingCounters: the thing model's requests, replies, reports and report replies are
// counted by kind and result.
func TestThingCounters(t *testing.T) {
	reg := NewRegistry(sample())
	want := `
# HELP gatewayd_thing_requests_total Property sets and service calls from the platform's console, by kind (set, call) and result (applied, refused: answered with the platform's error code).
# TYPE gatewayd_thing_requests_total counter
gatewayd_thing_requests_total{kind="call",result="applied"} 2
gatewayd_thing_requests_total{kind="call",result="refused"} 0
gatewayd_thing_requests_total{kind="set",result="applied"} 4
gatewayd_thing_requests_total{kind="set",result="refused"} 1
# HELP gatewayd_thing_messages_total Replies and property reports the publish path took (the outbox stored them, or the broker acknowledged them), by kind (reply, report).
# TYPE gatewayd_thing_messages_total counter
gatewayd_thing_messages_total{kind="reply"} 7
gatewayd_thing_messages_total{kind="report"} 9
# HELP gatewayd_thing_report_replies_total The platform's answers to property reports, by result (ok, error: an error code, logged in words).
# TYPE gatewayd_thing_report_replies_total counter
gatewayd_thing_report_replies_total{result="error"} 1
gatewayd_thing_report_replies_total{result="ok"} 8
# HELP gatewayd_thing_dropped_total Replies and reports never sent: the bounded queue was full or the outbox refused them (each logged).
# TYPE gatewayd_thing_dropped_total counter
gatewayd_thing_dropped_total 1
`
	if err := compareFamilies(reg, strings.NewReader(want), "gatewayd_thing_requests_total",
		"gatewayd_thing_messages_total", "gatewayd_thing_report_replies_total", "gatewayd_thing_dropped_total"); err != nil {
		t.Fatal(err)
	}
}

// TestExpositionParsesAndPassesLint: the whole exposition, the daemon's own metrics and the Go
// runtime and process metrics, parses as Prometheus parses it and has nothing promlint (the
// rules of promtool check metrics) would flag.
func TestExpositionParsesAndPassesLint(t *testing.T) {
	mfs := parse(t, NewRegistry(sample()).AppendText(nil))
	problems, err := promlint.NewWithMetricFamilies(mfs).Lint()
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("lint: %s: %s", p.Metric, p.Text)
	}
	n := 0
	for _, mf := range mfs {
		n += len(mf.GetMetric())
	}
	if n < 100 {
		t.Fatalf("%d series parsed; the lint above saw too little", n)
	}
}

func TestCollectReadsTheSnapshots(t *testing.T) {
	reg := NewRegistry(sample())
	want := `
# HELP gatewayd_module_info Always 1, for the module last identified: its model, firmware revision, IMEI and SIM ICCID as labels.
# TYPE gatewayd_module_info gauge
gatewayd_module_info{iccid="89860012345678901234",imei="866123456789012",model="EC600N",revision="EC600NCNLCR03A21M16"} 1
# HELP gatewayd_signal_rssi_dbm The received signal strength AT+CSQ last gave, in dBm; absent while unknown.
# TYPE gatewayd_signal_rssi_dbm gauge
gatewayd_signal_rssi_dbm -73
# HELP gatewayd_reconnects_total Sessions lost, by reason.
# TYPE gatewayd_reconnects_total counter
gatewayd_reconnects_total{reason="link_closed"} 2
gatewayd_reconnects_total{reason="module_rebooted"} 0
gatewayd_reconnects_total{reason="other"} 0
gatewayd_reconnects_total{reason="pdp_deactivated"} 0
gatewayd_reconnects_total{reason="ping_failed"} 0
gatewayd_reconnects_total{reason="port_lost"} 0
gatewayd_reconnects_total{reason="sim"} 0
gatewayd_reconnects_total{reason="something_new"} 1
gatewayd_reconnects_total{reason="unresponsive"} 0
# HELP gatewayd_at_command_duration_seconds AT commands sent to the module (count) and the time they took, from being sent to their result or timeout (sum).
# TYPE gatewayd_at_command_duration_seconds summary
gatewayd_at_command_duration_seconds_sum 2
gatewayd_at_command_duration_seconds_count 40
# HELP gatewayd_uplink_bytes_total Payload bytes of those messages.
# TYPE gatewayd_uplink_bytes_total counter
gatewayd_uplink_bytes_total 30
# HELP gatewayd_publish_duration_seconds How long a publish from the outbox took, from handing it to the module to its completion (the broker's PUBACK at QoS 1).
# TYPE gatewayd_publish_duration_seconds histogram
gatewayd_publish_duration_seconds_bucket{le="0.05"} 0
gatewayd_publish_duration_seconds_bucket{le="0.1"} 0
gatewayd_publish_duration_seconds_bucket{le="0.25"} 0
gatewayd_publish_duration_seconds_bucket{le="0.5"} 1
gatewayd_publish_duration_seconds_bucket{le="1"} 1
gatewayd_publish_duration_seconds_bucket{le="2.5"} 2
gatewayd_publish_duration_seconds_bucket{le="5"} 2
gatewayd_publish_duration_seconds_bucket{le="10"} 2
gatewayd_publish_duration_seconds_bucket{le="30"} 2
gatewayd_publish_duration_seconds_bucket{le="60"} 2
gatewayd_publish_duration_seconds_bucket{le="+Inf"} 2
gatewayd_publish_duration_seconds_sum 2.3
gatewayd_publish_duration_seconds_count 2
# HELP gatewayd_outbox_dropped_total Messages that never reached the cloud, by reason: refused (outbox full, too large or a disk error), expired (outbox.max_age), dropped_oldest (overflow), rejected (the module can never send it), damaged (a damaged record).
# TYPE gatewayd_outbox_dropped_total counter
gatewayd_outbox_dropped_total{reason="damaged"} 0
gatewayd_outbox_dropped_total{reason="dropped_oldest"} 0
gatewayd_outbox_dropped_total{reason="expired"} 0
gatewayd_outbox_dropped_total{reason="refused"} 1
gatewayd_outbox_dropped_total{reason="rejected"} 0
# HELP gatewayd_local_clients MQTT clients connected to the local endpoint.
# TYPE gatewayd_local_clients gauge
gatewayd_local_clients 2
`
	if err := compareFamilies(reg, strings.NewReader(want),
		"gatewayd_module_info", "gatewayd_signal_rssi_dbm", "gatewayd_reconnects_total", "gatewayd_at_command_duration_seconds",
		"gatewayd_uplink_bytes_total", "gatewayd_publish_duration_seconds", "gatewayd_outbox_dropped_total", "gatewayd_local_clients"); err != nil {
		t.Fatal(err)
	}
}

// TestWhatIsNotKnownIsLeftOut: before the module is identified there is no module_info and no
// signal; without [local] there are no outbox or local metrics.
func TestWhatIsNotKnownIsLeftOut(t *testing.T) {
	src := Sources{
		Status: func() supervisor.Status { return supervisor.Status{Stage: "port"} },
		AT:     func() at.Stats { return at.Stats{} },
	}
	reg := NewRegistry(src)
	for _, name := range []string{"gatewayd_module_info", "gatewayd_signal_rssi_dbm", "gatewayd_mqtt_session_start_timestamp_seconds",
		"gatewayd_outbox_available", "gatewayd_outbox_messages", "gatewayd_local_clients", "gatewayd_uplink_messages_total"} {
		if mf := family(t, reg, name); mf != nil {
			t.Errorf("%s: %d series, want none", name, len(mf.GetMetric()))
		}
	}
	want := `
# HELP gatewayd_session_stage 1 for the bring-up stage the session is at (port, module, sim, register, pdp, mqtt, connected), 0 for the others.
# TYPE gatewayd_session_stage gauge
gatewayd_session_stage{stage="connected"} 0
gatewayd_session_stage{stage="module"} 0
gatewayd_session_stage{stage="mqtt"} 0
gatewayd_session_stage{stage="pdp"} 0
gatewayd_session_stage{stage="port"} 1
gatewayd_session_stage{stage="register"} 0
gatewayd_session_stage{stage="sim"} 0
`
	if err := compareFamilies(reg, strings.NewReader(want), "gatewayd_session_stage"); err != nil {
		t.Fatal(err)
	}

	// [local] on, but its outbox could not be opened.
	src.LocalOn = true
	reg = NewRegistry(src)
	if err := compareFamilies(reg, strings.NewReader("# HELP gatewayd_outbox_available 1 while the outbox is open; 0 when its directory could not be used (forwarded QoS 1 publishes are refused).\n# TYPE gatewayd_outbox_available gauge\ngatewayd_outbox_available 0\n"), "gatewayd_outbox_available"); err != nil {
		t.Fatal(err)
	}
}

// TestGarbageFromTheModuleDoesNotFailTheScrape: identity strings that are not UTF-8 (a module
// answering noise) are served with replacement characters.
func TestGarbageFromTheModuleDoesNotFailTheScrape(t *testing.T) {
	src := sample()
	st := src.Status()
	st.Module.IMEI, st.Module.Model = "86612\xff\xfe", "EC\x80"
	src.Status = func() supervisor.Status { return st }
	mf := family(t, NewRegistry(src), "gatewayd_module_info")
	if mf == nil {
		t.Fatal("no gatewayd_module_info")
	}
	labels := map[string]string{}
	for _, l := range mf.GetMetric()[0].GetLabel() {
		labels[l.GetName()] = l.GetValue()
	}
	if labels["imei"] != "86612\uFFFD" || labels["model"] != "EC\uFFFD" {
		t.Errorf("imei label %q, model label %q", labels["imei"], labels["model"])
	}
}

func TestNilUplinksDoNothing(t *testing.T) {
	var u *Uplinks
	u.Published(10, time.Second) // must not panic
}

// TestServe: the listener serves /metrics over loopback, refuses other paths, and stops when its
// context ends.
func TestServe(t *testing.T) {
	reg := NewRegistry(sample())
	ln, err := Listen("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- Serve(ctx, ln, Handler(reg)) }()
	base := "http://" + ln.Addr().String()
	get := func(path string) (int, string) {
		t.Helper()
		resp, err := http.Get(base + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, body := get("/metrics"); code != 200 || !strings.Contains(body, `gatewayd_build_info{version="v1.2.3"} 1`) {
		t.Fatalf("/metrics: %d\n%s", code, body)
	}
	if code, _ := get("/nothing"); code != http.StatusNotFound {
		t.Errorf("/nothing: %d, want 404", code)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Serve = %v after its context ended", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Serve did not return after its context ended")
	}
	if _, err := http.Get(base + "/metrics"); err == nil {
		t.Fatal("the listener still answers after Serve returned")
	}
}

// TestInfoTellsGatewaysApart: one gatewayd_info series carries every identity a fleet dashboard
// groups by — device, IMEI, ICCID, operator, model, firmware, config revision, version — and
// no other metric carries them as labels.
func TestInfoTellsGatewaysApart(t *testing.T) {
	src := sample()
	st := src.Status()
	st.Operator = "CHINA MOBILE"
	src.Status = func() supervisor.Status { return st }
	src.Device, src.ConfigRevision = "pi-led-01", "3f2a9c01b7de"
	reg := NewRegistry(src)
	want := `
# HELP gatewayd_info Always 1; the labels tell gateways apart and group them on a fleet dashboard: the device name, the module's IMEI, the SIM's ICCID, the network operator, the module's model and firmware revision (empty until known), the revision of the merged configuration and the daemon's version.
# TYPE gatewayd_info gauge
gatewayd_info{config_revision="3f2a9c01b7de",device="pi-led-01",firmware="EC600NCNLCR03A21M16",iccid="89860012345678901234",imei="866123456789012",model="EC600N",operator="CHINA MOBILE",version="v1.2.3"} 1
`
	if err := compareFamilies(reg, strings.NewReader(want), "gatewayd_info"); err != nil {
		t.Fatal(err)
	}
	for _, mf := range parse(t, reg.AppendText(nil)) {
		if strings.HasSuffix(mf.GetName(), "_info") || mf.GetName() == "go_info_ext" {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				switch l.GetName() {
				case "device", "imei", "iccid", "operator", "config_revision", "version":
					t.Errorf("%s carries the identity label %s", mf.GetName(), l.GetName())
				}
			}
		}
	}
}

// parse parses an exposition as Prometheus does, failing t when it does not parse.
func parse(t *testing.T, exposition []byte) []*dto.MetricFamily {
	t.Helper()
	p := expfmt.NewTextParser(model.LegacyValidation)
	byName, err := p.TextToMetricFamilies(bytes.NewReader(exposition))
	if err != nil {
		t.Fatalf("the exposition does not parse: %v\n%s", err, exposition)
	}
	mfs := make([]*dto.MetricFamily, 0, len(byName))
	for _, mf := range byName {
		mfs = append(mfs, mf)
	}
	slices.SortFunc(mfs, func(a, b *dto.MetricFamily) int { return cmp.Compare(a.GetName(), b.GetName()) })
	return mfs
}

// family is the family called name in a scrape of reg, or nil.
func family(t *testing.T, reg *Registry, name string) *dto.MetricFamily {
	t.Helper()
	for _, mf := range parse(t, reg.AppendText(nil)) {
		if mf.GetName() == name {
			return mf
		}
	}
	return nil
}

// compareFamilies compares the families called names in a scrape of reg with those of want, an
// exposition: their HELP, TYPE, series, labels and values, whatever the order of their series
// and labels.
func compareFamilies(reg *Registry, want io.Reader, names ...string) error {
	wantText, err := io.ReadAll(want)
	if err != nil {
		return err
	}
	render := func(exposition []byte) (string, error) {
		p := expfmt.NewTextParser(model.LegacyValidation)
		byName, err := p.TextToMetricFamilies(bytes.NewReader(exposition))
		if err != nil {
			return "", err
		}
		var b strings.Builder
		for _, name := range names {
			if mf := byName[name]; mf != nil {
				normalize(mf)
				if _, err := expfmt.MetricFamilyToText(&b, mf); err != nil {
					return "", err
				}
			}
		}
		return b.String(), nil
	}
	got, err := render(reg.AppendText(nil))
	if err != nil {
		return fmt.Errorf("the scrape: %w", err)
	}
	wanted, err := render(wantText)
	if err != nil {
		return fmt.Errorf("want: %w", err)
	}
	if got != wanted {
		return fmt.Errorf("got:\n%s\nwant:\n%s", got, wanted)
	}
	return nil
}

// normalize sorts the labels of each series of mf by name, and the series by their labels.
func normalize(mf *dto.MetricFamily) {
	key := func(m *dto.Metric) string {
		var b strings.Builder
		for _, l := range m.GetLabel() {
			b.WriteString(l.GetName() + "=" + l.GetValue() + "\x00")
		}
		return b.String()
	}
	for _, m := range mf.GetMetric() {
		slices.SortFunc(m.Label, func(a, b *dto.LabelPair) int { return cmp.Compare(a.GetName(), b.GetName()) })
	}
	slices.SortFunc(mf.Metric, func(a, b *dto.Metric) int { return cmp.Compare(key(a), key(b)) })
}

// TestTextFormat: the exposition's own text, byte for byte: HELP and TYPE once per family,
// label values escaped (backslash, double quote, newline) after what is not UTF-8 is replaced,
// whole numbers in digits and the rest in Go's shortest form.
func TestTextFormat(t *testing.T) {
	d := newDesc("x_info", "Help with a \\ and a\nnewline.", gauge, "a", "b")
	var w text
	w.series(&d, "", 1, `say "hi"\`, "two\nlines \xff")
	w.series(&d, "", 1_700_000_000, "", "")
	w.series(&d, "", 2.5e-7)
	n := newDesc("y_seconds", "Y.", summary)
	w.series(&n, "_sum", 2.3)
	w.series(&n, "_count", 40)
	for _, v := range []float64{math.Inf(1), math.Inf(-1), math.NaN(), -73, 1 << 53, 1.5e300} {
		w.series(&n, "_sum", v)
	}
	want := `# HELP x_info Help with a \\ and a\nnewline.
# TYPE x_info gauge
x_info{a="say \"hi\"\\",b="two\nlines ` + "\uFFFD" + `"} 1
x_info{a="",b=""} 1700000000
x_info{a="",b=""} 2.5e-07
# HELP y_seconds Y.
# TYPE y_seconds summary
y_seconds_sum 2.3
y_seconds_count 40
y_seconds_sum +Inf
y_seconds_sum -Inf
y_seconds_sum NaN
y_seconds_sum -73
y_seconds_sum 9.007199254740992e+15
y_seconds_sum 1.5e+300
`
	if string(w.b) != want {
		t.Errorf("got:\n%s\nwant:\n%s", w.b, want)
	}
}

// TestRuntimeMetrics: the Go runtime and process metrics are there, each family with its own
// HELP and TYPE (none falls back to the general HELP for names not known), with those the manual
// and dashboards rely on.
func TestRuntimeMetrics(t *testing.T) {
	var w text
	appendRuntime(&w)
	mfs := parse(t, w.b)
	names := map[string]dto.MetricType{}
	for _, mf := range mfs {
		names[mf.GetName()] = mf.GetType()
		if _, ok := runtimeFamilies[mf.GetName()]; !ok {
			t.Errorf("%s is not in runtimeFamilies", mf.GetName())
		}
		if len(mf.GetMetric()) == 0 {
			t.Errorf("%s: no series", mf.GetName())
		}
	}
	for name, typ := range map[string]dto.MetricType{
		"go_goroutines": dto.MetricType_GAUGE, "go_threads": dto.MetricType_GAUGE, "go_info": dto.MetricType_GAUGE,
		"go_gc_duration_seconds": dto.MetricType_SUMMARY, "go_memstats_heap_alloc_bytes": dto.MetricType_GAUGE,
		"go_memstats_alloc_bytes_total": dto.MetricType_COUNTER, "go_sched_latencies_seconds": dto.MetricType_HISTOGRAM,
		"process_cpu_seconds_total": dto.MetricType_COUNTER, "process_resident_memory_bytes": dto.MetricType_GAUGE,
		"process_start_time_seconds": dto.MetricType_GAUGE, "process_open_fds": dto.MetricType_GAUGE,
		"process_max_fds": dto.MetricType_GAUGE, "process_virtual_memory_bytes": dto.MetricType_GAUGE,
		"process_io_read_bytes_total": dto.MetricType_COUNTER,
	} {
		if got, ok := names[name]; !ok || got != typ {
			t.Errorf("%s: %v (present %v), want %v", name, got, ok, typ)
		}
	}
}

// TestAnnotateOwnsTheMetadata: comment lines in what the package writes (its global switch for
// HELP and TYPE lines, were it ever turned on) are left out, so that every family has one HELP
// and one TYPE line, ours; a name not known is served untyped.
func TestAnnotateOwnsTheMetadata(t *testing.T) {
	raw := "# HELP go_goroutines\n# TYPE go_goroutines gauge\ngo_goroutines 7\n\n" +
		"go_gc_duration_seconds{quantile=\"0\"} 0\ngo_gc_duration_seconds_sum 0\ngo_gc_duration_seconds_count 0\nnew_thing{a=\"b\"} 1\n"
	var w text
	annotate(&w, []byte(raw), runtimeFamily)
	want := `# HELP go_goroutines Number of goroutines that currently exist.
# TYPE go_goroutines gauge
go_goroutines 7
# HELP go_gc_duration_seconds A summary of the wall-time pause (stop-the-world) duration in garbage collection cycles.
# TYPE go_gc_duration_seconds summary
go_gc_duration_seconds{quantile="0"} 0
go_gc_duration_seconds_sum 0
go_gc_duration_seconds_count 0
# HELP new_thing A Go runtime or process metric of github.com/VictoriaMetrics/metrics.
# TYPE new_thing untyped
new_thing{a="b"} 1
`
	if string(w.b) != want {
		t.Errorf("got:\n%s\nwant:\n%s", w.b, want)
	}
}

// TestScrapeLimits: a scrape gets the text format's content type and the whole exposition;
// while MaxInFlight scrapes are being gathered another gets 503 at once; a gathering that takes
// longer than the timeout gets 503, and keeps its slot until it ends.
func TestScrapeLimits(t *testing.T) {
	release := make(chan struct{})
	src := sample()
	st := src.Status()
	var blocking atomic.Bool
	src.Status = func() supervisor.Status {
		if blocking.Load() {
			<-release
		}
		return st
	}
	reg := NewRegistry(src)
	srv := httptest.NewServer(handler(reg, 100*time.Millisecond))
	defer srv.Close()
	get := func(path string) (int, http.Header, string) {
		t.Helper()
		resp, err := http.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatal(err)
		}
		return resp.StatusCode, resp.Header, string(b)
	}
	code, h, body := get("/metrics")
	if code != 200 || h.Get("Content-Type") != "text/plain; version=0.0.4; charset=utf-8" {
		t.Fatalf("/metrics: %d %q", code, h.Get("Content-Type"))
	}
	if mfs := parse(t, []byte(body)); len(mfs) < 80 {
		t.Errorf("%d families served", len(mfs))
	}
	if code, _, body := get("/"); code != 200 || !strings.Contains(body, "/metrics") {
		t.Errorf("/: %d %q", code, body)
	}

	blocking.Store(true)
	for range MaxInFlight {
		if code, _, body := get("/metrics"); code != http.StatusServiceUnavailable || !strings.Contains(body, "too long") {
			t.Errorf("a stuck scrape: %d %q, want 503 after the timeout", code, body)
		}
	}
	if code, _, body := get("/metrics"); code != http.StatusServiceUnavailable || !strings.Contains(body, "too many") {
		t.Errorf("a scrape while %d are stuck: %d %q, want 503 at once", MaxInFlight, code, body)
	}
	close(release)
	deadline := time.Now().Add(5 * time.Second)
	for {
		code, _, _ := get("/metrics")
		if code == 200 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the slots were not given back after the stuck scrapes ended: %d", code)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
