// Package control is gatewayd's control socket: a unix socket (in systemd's RuntimeDirectory,
// mode 0660) on which the running daemon answers `gatewayd status`, `gatewayd at` and `gatewayd
// doctor`, with a small versioned JSON protocol.
//
// One request per connection: the client writes one JSON object on one line, the server answers
// with one JSON object on one line and closes. Version is 1; a server refuses a request of
// another version with an error that says which it speaks. The server bounds what a client can
// cost: a request is at most MaxRequest bytes and must arrive within IOTimeout, the answer must be
// taken within IOTimeout, and at most MaxConns requests are served at once (more are refused at
// once). Nothing a client sends reaches the AT port except through Handler.AT, which applies
// the rules of CheckAT.
package control

import (
	"time"
)

// Version is the protocol version this package speaks.
const Version = 1

// Limits on what one client may cost the daemon.
const (
	MaxRequest = 4096            // bytes of one request line
	IOTimeout  = 5 * time.Second // to send the request, and to take the answer
	MaxConns   = 8               // requests served at once
)

// DefaultSocket is where the daemon listens unless the configuration says otherwise: systemd's
// RuntimeDirectory=gatewayd.
const DefaultSocket = "/run/gatewayd/control.sock"

// Commands of the protocol.
const (
	CmdStatus  = "status"
	CmdAT      = "at"
	CmdResolve = "resolve"
)

// Request is one request.
type Request struct {
	Version int    `json:"version"`
	Command string `json:"command"`
	// Line is the AT command of CmdAT, e.g. "AT+CSQ".
	Line string `json:"line,omitempty"`
	// Force lets CmdAT send a command that CheckAT says would break the session.
	Force bool `json:"force,omitempty"`
	// TimeoutMS bounds CmdAT's (and CmdResolve's) wait for the module's answer; 0 means 10 s
	// (60 s for CmdResolve), at most 60 s.
	TimeoutMS int `json:"timeout_ms,omitempty"`
	// Host is the name CmdResolve asks the module's DNS for.
	Host string `json:"host,omitempty"`
}

// Response is one answer: OK with Status or AT, or not OK with Error.
type Response struct {
	Version int       `json:"version"`
	OK      bool      `json:"ok"`
	Error   string    `json:"error,omitempty"`
	Status  *Status   `json:"status,omitempty"`
	AT      *ATResult `json:"at,omitempty"`
	// Addresses are CmdResolve's answer.
	Addresses []string `json:"addresses,omitempty"`
}

// ATResult is the module's answer to an AT command.
type ATResult struct {
	Lines  []string `json:"lines"`  // the information lines
	Result string   `json:"result"` // "OK", or the error the module or the engine gave
	OK     bool     `json:"ok"`
}

// Status is what `gatewayd status` shows: the daemon, the module, the network, the session, the
// outbox and the local endpoint. Times are RFC 3339; durations are in seconds. A field the daemon
// does not know yet is empty (or absent).
type Status struct {
	Version   string    `json:"version"`
	Pid       int       `json:"pid"`
	Now       time.Time `json:"now"`
	Started   time.Time `json:"started"`
	UptimeSec float64   `json:"uptime_s"`

	Port     string `json:"port"`
	PortOpen bool   `json:"port_open"`
	Stage    string `json:"stage"`
	Doing    string `json:"doing"`

	Module Module  `json:"module"`
	SIM    string  `json:"sim"`
	Net    Network `json:"network"`
	MQTT   MQTT    `json:"mqtt"`

	LED    *bool   `json:"led,omitempty"` // nil: not known
	Outbox *Outbox `json:"outbox,omitempty"`
	Local  *Local  `json:"local,omitempty"`
}

// Module is the module's identity.
type Module struct {
	Model    string `json:"model,omitempty"`
	Revision string `json:"revision,omitempty"`
	IMEI     string `json:"imei,omitempty"`
	ICCID    string `json:"iccid,omitempty"`
}

// Network is the module's view of the mobile network.
type Network struct {
	Registered   bool       `json:"registered"`
	Registration string     `json:"registration,omitempty"`
	Operator     string     `json:"operator,omitempty"`
	RSSIdBm      *int       `json:"rssi_dbm,omitempty"`
	SignalAt     *time.Time `json:"signal_at,omitempty"`
	PDPAddress   string     `json:"pdp_address,omitempty"`
	// PDPAddresses are every address of the context (IPv4 and IPv6 on a dual-stack bearer).
	PDPAddresses []string `json:"pdp_addresses,omitempty"`
}

// MQTT is the session with the broker.
type MQTT struct {
	Connected      bool              `json:"connected"`
	Host           string            `json:"host"`
	Port           int               `json:"port"`
	ClientID       string            `json:"client_id,omitempty"`
	ConnectedAt    *time.Time        `json:"connected_at,omitempty"`
	ConnectedSec   float64           `json:"connected_for_s,omitempty"`
	LastError      string            `json:"last_error,omitempty"`
	LastErrorAt    *time.Time        `json:"last_error_at,omitempty"`
	NextAttemptSec *float64          `json:"next_attempt_in_s,omitempty"`
	Attempt        int               `json:"attempt,omitempty"`
	Subscriptions  []string          `json:"subscriptions,omitempty"`
	Subscribed     []Subscription    `json:"subscribed,omitempty"`
	Reconnects     map[string]uint64 `json:"reconnects,omitempty"`
	Downlinks      uint64            `json:"downlinks"`
	DownlinkBytes  uint64            `json:"downlink_bytes"`
	Published      uint64            `json:"published"`
}

// Subscription is one subscription of the session: the QoS asked and the QoS the broker granted
// (absent when the module did not report it).
type Subscription struct {
	Topic      string `json:"topic"`
	QoS        int    `json:"qos"`
	GrantedQoS *int   `json:"granted_qos,omitempty"`
}

// Outbox is the store of forwarded messages waiting for the cloud.
type Outbox struct {
	Available bool    `json:"available"`
	Messages  int     `json:"messages"`
	Bytes     int64   `json:"bytes"`
	OldestSec float64 `json:"oldest_s,omitempty"`
	Delivered uint64  `json:"delivered"`
	Refused   uint64  `json:"refused"`
	Expired   uint64  `json:"expired"`
	Dropped   uint64  `json:"dropped_oldest"`
	Rejected  uint64  `json:"rejected"`
}

// Local is the local MQTT endpoint.
type Local struct {
	Clients   int    `json:"clients"`
	Forwarded uint64 `json:"forwarded"`
	Delivered uint64 `json:"delivered"`
}
