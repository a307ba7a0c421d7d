// Package topic checks MQTT topic filters and matches topics against them (MQTT 3.1.1 section
// 4.7), for the daemon's downlink check and the local endpoint's forwarding rules.
package topic

import (
	"fmt"
	"strings"
	"unicode/utf8"
)

// CheckFilter checks an MQTT topic filter: not empty, valid UTF-8 without NUL, '+' filling a
// whole level, '#' only as the whole last level.
func CheckFilter(f string) error {
	if f == "" {
		return fmt.Errorf("empty topic filter")
	}
	if !utf8.ValidString(f) || strings.ContainsRune(f, 0) {
		return fmt.Errorf("topic filter %q is not valid UTF-8 or holds NUL", f)
	}
	levels := strings.Split(f, "/")
	for i, l := range levels {
		switch {
		case l == "#" && i != len(levels)-1:
			return fmt.Errorf("topic filter %q: '#' must be the last level", f)
		case l != "#" && l != "+" && strings.ContainsAny(l, "+#"):
			return fmt.Errorf("topic filter %q: a wildcard must fill a whole level", f)
		}
	}
	return nil
}

// Match reports whether topic matches filter (MQTT 3.1.1 section 4.7): '+' matches one level,
// '#' the rest (including the parent level), and wildcards at the first level do not match
// topics starting with '$'.
func Match(filter, topic string) bool {
	if strings.HasPrefix(topic, "$") && (strings.HasPrefix(filter, "+") || strings.HasPrefix(filter, "#")) {
		return false
	}
	// Level by level without allocating: it runs for every downlink.
	for {
		fl, frest, fmore := strings.Cut(filter, "/")
		if fl == "#" {
			return true
		}
		tl, trest, tmore := strings.Cut(topic, "/")
		if fl != "+" && fl != tl {
			return false
		}
		switch {
		case !fmore && !tmore:
			return true
		case !tmore:
			return frest == "#" // "a/#" matches "a"
		case !fmore:
			return false
		}
		filter, topic = frest, trest
	}
}
