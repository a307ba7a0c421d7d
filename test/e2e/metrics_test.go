package e2e

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil/promlint"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/gatewayd/gatewayd/sim"
	"github.com/gatewayd/gatewayd/test/logwatch"
	"github.com/gatewayd/gatewayd/test/testutil"
)

// scrape fetches http://addr/metrics as Prometheus would and parses it.
func scrape(t *testing.T, addr string) map[string]*dto.MetricFamily {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatalf("scrape: %v", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("scrape: %d %v\n%s", resp.StatusCode, err, body)
	}
	p := expfmt.NewTextParser(model.LegacyValidation)
	mfs, err := p.TextToMetricFamilies(strings.NewReader(string(body)))
	if err != nil {
		t.Fatalf("scrape: the exposition does not parse: %v\n%s", err, body)
	}
	return mfs
}

// value is the value of the series of family name whose labels include want ("name=value"
// pairs); ok is false when there is none.
func value(mfs map[string]*dto.MetricFamily, name string, want ...string) (v float64, ok bool) {
	mf := mfs[name]
	if mf == nil {
		return 0, false
	}
next:
	for _, m := range mf.GetMetric() {
		have := map[string]string{}
		for _, l := range m.GetLabel() {
			have[l.GetName()] = l.GetValue()
		}
		for _, w := range want {
			k, v, _ := strings.Cut(w, "=")
			if have[k] != v {
				continue next
			}
		}
		switch {
		case m.Counter != nil:
			return m.Counter.GetValue(), true
		case m.Gauge != nil:
			return m.Gauge.GetValue(), true
		case m.Histogram != nil:
			return float64(m.Histogram.GetSampleCount()), true
		case m.Summary != nil:
			return float64(m.Summary.GetSampleCount()), true
		}
	}
	return 0, false
}

// series is value for a series that has to be there.
func series(t *testing.T, mfs map[string]*dto.MetricFamily, name string, labels ...string) float64 {
	t.Helper()
	v, ok := value(mfs, name, labels...)
	if !ok {
		t.Fatalf("no series %s%v in the scrape", name, labels)
	}
	return v
}

// TestMetricsEndpoint: the real binary with [metrics] serves Prometheus metrics over loopback:
// names that pass promlint, the emulator's identity on gatewayd_module_info, and counters that
// move with a downlink and an uplink from a local client.
func TestMetricsEndpoint(t *testing.T) {
	b := newBench(t, nil)
	cloud := b.subscribe(telemetry + "/#")
	listen, metricsAddr := testutil.FreeAddr(t), testutil.FreeAddr(t)
	cfg := localConfig(b.mod.Path(), listen, t.TempDir())
	cfg = strings.Replace(cfg, "[mqtt]", "[module]\nhealth_interval = \"1s\"\n\n[mqtt]", 1)
	cfg += fmt.Sprintf("\n[metrics]\nlisten = %q\n", metricsAddr)
	d := b.start(cfg)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if _, _, err := d.log.Wait(ctx, 0, func(e logwatch.Entry) bool {
		return e.Str("message") == "metrics listening" && e.Str("listen") == metricsAddr
	}); err != nil {
		t.Fatal(err)
	}
	d.wait(t, 0, "session_up")
	// The daemon subscribes to the topic it posts "test publish" to on connect: that downlink
	// comes first, before the counters are read.
	d.wait(t, 0, "downlink")

	m := scrape(t, metricsAddr)
	var problems []string
	var list []*dto.MetricFamily
	for _, mf := range m {
		list = append(list, mf)
	}
	lint, err := promlint.NewWithMetricFamilies(list).Lint()
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range lint {
		problems = append(problems, p.Metric+": "+p.Text)
	}
	sort.Strings(problems)
	if len(problems) > 0 {
		t.Errorf("promlint:\n%s", strings.Join(problems, "\n"))
	}
	id := sim.DefaultIdentity
	if v := series(t, m, "gatewayd_module_info", "imei="+id.IMEI, "iccid="+id.ICCID, "model=EC600N"); v != 1 {
		t.Errorf("gatewayd_module_info = %v, want 1", v)
	}
	if mf := m["gatewayd_module_info"]; len(mf.GetMetric()) != 1 {
		t.Errorf("%d gatewayd_module_info series, want 1", len(mf.GetMetric()))
	}
	if v := series(t, m, "gatewayd_info", "device=pi-led-01|securemode=3,signmethod=hmacsha1|", "imei="+id.IMEI, "iccid="+id.ICCID,
		"operator="+sim.DefaultOperator, "model=EC600N", "firmware="+id.Revision); v != 1 {
		t.Errorf("gatewayd_info with the device, module, SIM and operator = %v, want 1", v)
	}
	if mf := m["gatewayd_info"]; len(mf.GetMetric()) != 1 {
		t.Errorf("%d gatewayd_info series, want 1", len(mf.GetMetric()))
	} else {
		for _, l := range mf.GetMetric()[0].GetLabel() {
			if (l.GetName() == "config_revision" || l.GetName() == "version") && l.GetValue() == "" {
				t.Errorf("gatewayd_info has an empty %s", l.GetName())
			}
		}
	}
	for _, name := range []string{"gatewayd_mqtt_connected", "gatewayd_network_registered", "gatewayd_port_open"} {
		if v := series(t, m, name); v != 1 {
			t.Errorf("%s = %v while connected, want 1", name, v)
		}
	}
	if v := series(t, m, "gatewayd_session_stage", "stage=connected"); v != 1 {
		t.Errorf(`gatewayd_session_stage{stage="connected"} = %v`, v)
	}
	if v := series(t, m, "gatewayd_at_command_duration_seconds"); v < 10 {
		t.Errorf("%v AT commands counted after a bring-up", v)
	}
	// No label anywhere but gatewayd_info and module_info carries the identity.
	for name, mf := range m {
		for _, s := range mf.GetMetric() {
			for _, l := range s.GetLabel() {
				if name != "gatewayd_module_info" && name != "gatewayd_info" && (l.GetValue() == id.IMEI || l.GetValue() == id.ICCID) {
					t.Errorf("%s carries the identity in label %s", name, l.GetName())
				}
			}
		}
	}

	// A downlink moves the downlink counters.
	downs, downBytes := series(t, m, "gatewayd_downlink_messages_total"), series(t, m, "gatewayd_downlink_bytes_total")
	from := d.log.Len()
	payload := []byte(`{"params":{"LED":1}}`)
	b.publish(setTopic, payload)
	d.wait(t, from, "downlink")
	m = scrape(t, metricsAddr)
	if got := series(t, m, "gatewayd_downlink_messages_total"); got != downs+1 {
		t.Errorf("gatewayd_downlink_messages_total %v after a downlink, was %v", got, downs)
	}
	if got := series(t, m, "gatewayd_downlink_bytes_total"); got != downBytes+float64(len(payload)) {
		t.Errorf("gatewayd_downlink_bytes_total %v after %d bytes, was %v", got, len(payload), downBytes)
	}

	// An uplink from a local client: counted, timed, delivered from the outbox.
	c := localClient(t, d, listen, "sensor-1")
	if v := series(t, scrape(t, metricsAddr), "gatewayd_local_clients"); v != 1 {
		t.Errorf("gatewayd_local_clients = %v with one connected", v)
	}
	publishRange(t, c, 0, 1)
	cloud.wait(t, 1)
	ctx, cancel = context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, _, err := d.log.Wait(ctx, 0, func(e logwatch.Entry) bool { return e.Event() == "published" && e.Str("from") == "outbox" }); err != nil {
		t.Fatal(err)
	}
	m = scrape(t, metricsAddr)
	for name, want := range map[string]float64{
		"gatewayd_uplink_messages_total":    1,
		"gatewayd_uplink_bytes_total":       5, // "m0000"
		"gatewayd_publish_duration_seconds": 1,
		"gatewayd_outbox_stored_total":      1,
		"gatewayd_local_forwarded_total":    1,
		"gatewayd_outbox_available":         1,
	} {
		if got := series(t, m, name); got != want {
			t.Errorf("%s = %v after one uplink, want %v", name, got, want)
		}
	}

	// The signal, polled by a health check (health_interval 1 s here).
	deadline := time.Now().Add(10 * time.Second)
	for {
		if v, ok := value(scrape(t, metricsAddr), "gatewayd_signal_rssi_dbm"); ok {
			if v > -51 || v < -113 {
				t.Errorf("gatewayd_signal_rssi_dbm = %v, not a CSQ reading", v)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no gatewayd_signal_rssi_dbm 10 s after the session came up")
		}
		time.Sleep(200 * time.Millisecond)
	}
	if _, err := d.stop(t); err != nil {
		t.Fatalf("exit after SIGTERM: %v", err)
	}
	if _, err := http.Get("http://" + metricsAddr + "/metrics"); err == nil {
		t.Error("the metrics listener still answers after the daemon exited")
	}
}

// TestMetricsListenerTakenIsNotFatal: a metrics address another program holds is logged as an
// error with a hint, and the gateway goes on without the metrics.
func TestMetricsListenerTakenIsNotFatal(t *testing.T) {
	b := newBench(t, nil)
	taken := testutil.FreeAddr(t)
	ln, err := net.Listen("tcp", taken)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	cfg := seedConfig(b.mod.Path(), "") + fmt.Sprintf("\n[metrics]\nlisten = %q\n", taken)
	d := b.start(cfg)
	e, _ := d.wait(t, 0, "metrics_unavailable")
	if e.Str("level") != "error" || !strings.Contains(e.Str("error"), "address already in use") {
		t.Errorf("metrics_unavailable: %v", e)
	}
	d.wait(t, 0, "session_up") // the gateway goes on
}
