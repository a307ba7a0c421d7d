// Package local is gatewayd's MQTT endpoint on the Pi: an embedded MQTT broker (mochi-mqtt) on
// loopback and, optionally, a unix socket, through which host programs talk to the cloud with an
// ordinary MQTT client. Publishes on topics matching a forwarding rule are stored in the outbox
// before the broker acknowledges them (PUBACK only once the message is on disk); downlinks from
// the module are published locally with Deliver, which never waits for a local client. What a
// local client sees when the outbox refuses a message is described on Endpoint. What any local
// client can cost the gateway is bounded — connections and their CONNECT (MaxClients,
// ConnectTimeout), packet size (Config.MaxPacket), retained messages (MaxRetained,
// MaxRetainedBytes), what waits for a subscriber that does not read (WriteTimeout, WriteBudget),
// downlinks waiting to be published (QueueLen, QueueBytes) — and what a bound refuses is counted
// in Stats and logged, throttled (throttle.go). conn.go says why the endpoint has its own
// listener.
package local
