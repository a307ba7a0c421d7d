// Package local is gatewayd's MQTT endpoint on the Pi: an embedded MQTT broker (mochi-mqtt) on
// loopback and, optionally, a unix socket, through which host programs talk to the cloud with an
// ordinary MQTT client. Publishes on topics matching a forwarding rule are stored in the outbox
// before the broker acknowledges them (PUBACK only once the message is on disk); downlinks from
// the module are published locally with Deliver. What a local client sees when the outbox
// refuses a message is described on Endpoint.
package local
