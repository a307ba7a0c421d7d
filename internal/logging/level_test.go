package logging

import (
	"bytes"
	"strings"
	"testing"
)

// A reloadable logger's level changes at once, for loggers derived from it too.
func TestReloadableLevel(t *testing.T) {
	var buf bytes.Buffer
	log, lv, err := NewReloadable(&buf, "info", FormatJSON)
	if err != nil {
		t.Fatal(err)
	}
	sub := log.With().Str("part", "x").Logger()
	sub.Debug().Msg("debug-1")
	log.Info().Msg("info-1")
	if err := lv.Set("debug"); err != nil {
		t.Fatal(err)
	}
	sub.Debug().Msg("debug-2")
	if err := lv.Set("error"); err != nil {
		t.Fatal(err)
	}
	log.Warn().Msg("warn-3")
	log.Error().Msg("error-3")
	got := buf.String()
	for _, want := range []string{"info-1", "debug-2", "error-3"} {
		if !strings.Contains(got, want) {
			t.Errorf("missing %s:\n%s", want, got)
		}
	}
	for _, not := range []string{"debug-1", "warn-3"} {
		if strings.Contains(got, not) {
			t.Errorf("%s was written at a level that excludes it:\n%s", not, got)
		}
	}
	if err := lv.Set("loud"); err == nil {
		t.Error("an unknown level was accepted")
	}
	if _, _, err := NewReloadable(&buf, "loud", FormatJSON); err == nil {
		t.Error("an unknown level was accepted at start")
	}
}
