package config

import (
	"fmt"
	"log/slog"
)

// masked is what every printed form of a Secret shows.
const masked = "***"

// Secret holds a password or key. Every way of printing or encoding it — fmt's verbs including
// %#v, String, MarshalText (so encoding/json, TOML and zerolog's Interface/Any), MarshalJSON and
// slog — gives "***". Only Reveal returns the value, so a leak has to be written on purpose.
//
// The value sits behind a pointer, so even reflection-based printers that bypass the methods (fmt
// on an unexported field holding a Secret) show an address, not the text.
type Secret struct{ v *string }

// NewSecret wraps s.
func NewSecret(s string) Secret { return Secret{v: &s} }

// Reveal returns the secret itself, for the one place that must send it (AT+QMTCONN).
func (s Secret) Reveal() string {
	if s.v == nil {
		return ""
	}
	return *s.v
}

// IsZero reports whether no secret, or an empty one, is held.
func (s Secret) IsZero() bool { return s.v == nil || *s.v == "" }

// String returns "***".
func (s Secret) String() string { return masked }

// GoString returns "***", for %#v.
func (s Secret) GoString() string { return masked }

// Format prints "***" for every verb and flag.
func (s Secret) Format(f fmt.State, _ rune) { _, _ = f.Write([]byte(masked)) }

// MarshalText returns "***".
func (s Secret) MarshalText() ([]byte, error) { return []byte(masked), nil }

// MarshalJSON returns "***" as a JSON string.
func (s Secret) MarshalJSON() ([]byte, error) { return []byte(`"` + masked + `"`), nil }

// LogValue returns "***" for log/slog.
func (s Secret) LogValue() slog.Value { return slog.StringValue(masked) }
