package qmt

// Subscription is one topic filter to subscribe to, with the QoS asked for.
type Subscription struct {
	Topic string
	QoS   int
}

// Message is one message to publish.
type Message struct {
	Topic   string
	Payload []byte
	QoS     int
	Retain  bool
}

// PublishMode selects the AT command Publish uses.
type PublishMode int

// The publish modes.
const (
	// PublishLength sends AT+QMTPUBEX=...,<length> and then exactly the payload bytes after the
	// "> " prompt: binary-safe, the form proven on EC600S/EC800M. The default.
	PublishLength PublishMode = iota
	// PublishCtrlZ sends the classic AT+QMTPUB=... and ends the payload with Ctrl-Z (0x1A), for
	// firmware without QMTPUBEX. The payload may not hold 0x1A or 0x1B.
	PublishCtrlZ
)

// Link is one open link as AT+QMTOPEN? lists it.
type Link struct {
	Client int
	Host   string
	Port   int
}
