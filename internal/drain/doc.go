// Package drain sends the outbox to the cloud while the MQTT session is up: it reads the
// oldest stored messages, records each send in the store before making it, keeps up to a
// window of QoS 1 publishes in flight on the module at once, and removes a message from the
// store only when its publish reports the broker's acknowledgement. On a failure it stops,
// lets what is in flight finish, backs off and starts again from the oldest unacknowledged
// message; a module that refuses a publish while others are in flight gets a window of one
// until Reset. Idle, it waits for Notify and costs nothing.
package drain
