package topic

import "testing"

func TestMatches(t *testing.T) {
	for _, c := range []struct {
		filter, topic string
		want          bool
	}{
		{"a/b", "a/b", true},
		{"a/b", "a/c", false},
		{"a/b", "a/b/c", false},
		{"a/b/c", "a/b", false},
		{"a/+", "a/b", true},
		{"a/+", "a/b/c", false},
		{"a/+/c", "a/b/c", true},
		{"a/+/c", "a//c", true},
		{"+", "a", true},
		{"+", "a/b", false},
		{"+/+", "/a", true},
		{"a/#", "a", true},
		{"a/#", "a/b/c", true},
		{"a/#", "b/a", false},
		{"#", "a/b", true},
		{"#", "$SYS/x", false},
		{"+/x", "$SYS/x", false},
		{"$SYS/#", "$SYS/x", true},
		{"sensors/+/temp", "sensors/kitchen/temp", true},
		{"sensors/+/temp", "sensors/kitchen/humidity", false},
		{"a", "", false},
	} {
		if got := Match(c.filter, c.topic); got != c.want {
			t.Errorf("Match(%q, %q) = %v, want %v", c.filter, c.topic, got, c.want)
		}
	}
}

func TestCheckFilter(t *testing.T) {
	for _, f := range []string{"a", "a/b", "+", "#", "a/+/b", "a/#", "+/+/#", "/"} {
		if err := CheckFilter(f); err != nil {
			t.Errorf("CheckFilter(%q): %v", f, err)
		}
	}
	for _, f := range []string{"", "a/#/b", "a#", "a/b+", "#/a", "a\x00b", "\xff"} {
		if err := CheckFilter(f); err == nil {
			t.Errorf("CheckFilter(%q) accepted", f)
		}
	}
}

func TestMatchSubscriptionFilters(t *testing.T) {
	cases := []struct {
		filter, topic string
		want          bool
	}{
		{"a/b/c", "a/b/c", true},
		{"a/b/c", "a/b/d", false},
		{"a/b", "a/b/c", false},
		{"a/b/c", "a/b", false},
		{"a/+/c", "a/x/c", true},
		{"a/+/c", "a/x/y/c", false},
		{"a/+", "a/", true},
		{"a/b", "a/b/", false},
		{"a/#", "a/x/y/c", true},
		{"a/#", "a", true},
		{"+/+", "a/b", true},
		{"+", "a/b", false},
		{"#", "anything/at/all", true},
		{"#", "$SYS/broker", false},
		{"+/broker", "$SYS/broker", false},
		{"/sys/+/+/thing/service/property/set", "/sys/pk/dn/thing/service/property/set", true},
		{"/sys/+/+/thing/service/property/set", "/sys/pk/dn/thing/event/property/post", false},
	}
	for _, c := range cases {
		if got := Match(c.filter, c.topic); got != c.want {
			t.Errorf("Match(%q, %q) = %v, want %v", c.filter, c.topic, got, c.want)
		}
	}
}

func BenchmarkMatch(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		Match("/sys/+/+/thing/service/property/set", "/sys/a1B2c3D4e5F/pi-led-01/thing/service/property/set")
	}
}
