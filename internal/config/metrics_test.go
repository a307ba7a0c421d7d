package config

import (
	"bytes"
	"strings"
	"testing"
	"time"
)

func TestMetricsOffWithoutTable(t *testing.T) {
	if c := mustParse(t, noEnv, minimal); c.Metrics != nil {
		t.Fatalf("Metrics = %+v without a [metrics] table; want nil (off)", c.Metrics)
	}
}

func TestMetricsDefaultsAndLiteral(t *testing.T) {
	c := mustParse(t, noEnv, minimal+"[metrics]\n")
	if m := c.Metrics; m == nil || m.Listen != "127.0.0.1:9108" || m.AllowNonLoopback {
		t.Fatalf("Metrics = %+v, want the default loopback listener", m)
	}
	c = mustParse(t, noEnv, minimal+"[metrics]\nlisten = \"[::1]:9200\"\n")
	if c.Metrics.Listen != "[::1]:9200" {
		t.Fatalf("Metrics = %+v", c.Metrics)
	}
	var out bytes.Buffer
	if err := c.Describe(&out, time.Unix(0, 0)); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "http://[::1]:9200/metrics") {
		t.Errorf("Describe does not show the metrics address:\n%s", out.String())
	}
}

func TestMetricsNonLoopbackNeedsConsent(t *testing.T) {
	src := minimal + "[metrics]\nlisten = \"0.0.0.0:9108\"\n"
	if _, err := noEnv.Parse([]byte(src), name); err == nil || !strings.Contains(err.Error(), "gatewayd.toml:5: metrics.listen: \"0.0.0.0:9108\" is not a loopback address; set metrics.allow_non_loopback = true") {
		t.Fatalf("err = %v", err)
	}
	c := mustParse(t, noEnv, src+"allow_non_loopback = true\n")
	if c.Metrics.Listen != "0.0.0.0:9108" || !c.Metrics.AllowNonLoopback {
		t.Fatalf("Metrics = %+v", c.Metrics)
	}
}

func TestMetricsRejections(t *testing.T) {
	for _, tc := range []struct{ name, src, want string }{
		{"not host:port", "[metrics]\nlisten = \"9108\"\n", `gatewayd.toml:5: metrics.listen: "9108" is not host:port`},
		{"by name", "[metrics]\nlisten = \"localhost:9108\"\n", `gatewayd.toml:5: metrics.listen: "localhost:9108" is not a loopback address`},
		{"empty", "[metrics]\nlisten = \"\"\n", `gatewayd.toml:5: metrics.listen: "" is not host:port`},
		{"unknown key", "[metrics]\npath = \"/m\"\n", "gatewayd.toml:5: unknown key metrics.path"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := noEnv.Parse([]byte(minimal+tc.src), name)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v; want it to contain %q", err, tc.want)
			}
		})
	}
	if _, err := noEnv.Parse([]byte("metrics = true\n"+minimal), name); err == nil || !strings.Contains(err.Error(), "gatewayd.toml:1: metrics: want a table") {
		t.Fatalf("metrics = true: error %v", err)
	}
}
