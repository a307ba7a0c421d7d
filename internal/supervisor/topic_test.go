package supervisor

import "testing"

func TestTopicMatch(t *testing.T) {
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
		if got := topicMatch(c.filter, c.topic); got != c.want {
			t.Errorf("topicMatch(%q, %q) = %v, want %v", c.filter, c.topic, got, c.want)
		}
	}
}
