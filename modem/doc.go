// Package modem speaks the module-level part of the EC600 AT dialect over an at.Conn: waking the
// AT port, switching echo off, identifying the module (model, revision, IMEI, ICCID), the SIM state,
// network registration, signal quality, the PDP context and the reset command. It knows nothing
// of MQTT (package qmt) and nothing of policy (the daemon decides what to do with the answers).
package modem
