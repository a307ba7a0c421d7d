package cloud

import (
	"fmt"
	"io"
	"maps"
	"time"
)

// base is what every platform has besides its signing: the endpoint, the topics, the limits, the
// user's overrides and the hints.
type base struct {
	name   string
	ep     Endpoint
	topics map[string]string
	limits Limits
	ov     Overrides
	hint   func(Trouble) string
}

// Name implements Platform.
func (b *base) Name() string { return b.name }

// Endpoint implements Platform.
func (b *base) Endpoint() Endpoint { return b.ep }

// Topics implements Platform; the map is the caller's.
func (b *base) Topics() map[string]string { return maps.Clone(b.topics) }

// Limits implements Platform.
func (b *base) Limits() Limits {
	l := b.limits
	l.Why = maps.Clone(l.Why)
	return l
}

// Hint implements Platform.
func (b *base) Hint(t Trouble) string {
	if b.hint == nil {
		return ""
	}
	return b.hint(t)
}

// own gives New the base of a platform, to apply the overrides.
func (b *base) own() *base { return b }

// apply puts the user's overrides into a signed identity.
func (b *base) apply(id Identity) Identity {
	if b.ov.ClientID != nil {
		id.ClientID = *b.ov.ClientID
	}
	if b.ov.Username != nil {
		id.Username = *b.ov.Username
	}
	if b.ov.Password != nil {
		id.Password, id.Expires = *b.ov.Password, time.Time{}
	}
	return id
}

// PlainName is the name of the platform Plain builds.
const PlainName = "plain"

// plain is a broker with literal credentials.
type plain struct {
	base
	id Identity
}

// Plain is a broker that takes the literal identity id at ep: [mqtt] with host, client_id,
// username and password, and no platform section. Its limits are only the module's.
func Plain(ep Endpoint, id Identity) Platform {
	id.Expires = time.Time{}
	return &plain{base: base{name: PlainName, ep: ep, limits: Limits{MaxQoS: 2, Retain: true}}, id: id}
}

// Identity implements Platform: the same literal identity at every connect.
func (p *plain) Identity(time.Time) (Identity, error) { return p.id, nil }

// String names the platform; it never shows the secrets a platform holds.
func (b *base) String() string { return "cloud.Platform(" + b.name + ")" }

// GoString is String, so %#v shows no secret either.
func (b *base) GoString() string { return b.String() }

// Format writes String for every verb, so that no way of printing a platform (a configuration
// printed with %+v, a log field) shows its secrets.
func (b *base) Format(f fmt.State, _ rune) { _, _ = io.WriteString(f, b.String()) }
