// Package probe is the conformance kit behind `gatewayd probe`: a fixed, safe script of AT
// commands, run on a real module's AT port while the daemon is stopped, that records every byte
// both ways with timestamps (secrets masked) in the replay corpus format (package replay) and
// settles, for this module and firmware, the points the AT reference marks UNCONFIRMED or VARIANT:
// the first AT after opening the port, echo and CMEE at open, the urcport setting, the
// AT+QMTCFG=? list, AT+QICSGP=?, the UFS: prefix of AT+QFLST, how long the SIM is busy, the
// AT+QIACT? answer (dual-stack forms), AT+QIACT=1 on an active context, what AT+QMTCLOSE answers
// for an index that is not open, the OK → +QMTOPEN delay, AT+QMTCFG on an open and on a connected
// index, a CONNECT refused for a wrong password (+QMTCONN code, and whether and when +QMTSTAT
// follows), the +QMTCONN success form, the AT+QMTCONN? answer, the QoS granted for a QoS 2
// subscription, the name of the publish result, the data prompt's bytes and reads (and URCs
// before it), a publish received back byte for byte (CR LF and quotes in the payload) and the
// +QMTRECV form it came in, whether OK and +QMTDISC come in one read, the module-level URCs seen,
// and every line the parser did not know.
//
// The Recorder sits under the at engine, at the io.ReadWriter level: what it records is what
// crossed the wire. The script changes no NV setting without saying so in its findings and
// restores every setting it changed (urcport, which the module keeps in NV; echo and CMEE).
// It refuses a port another process has open.
package probe
