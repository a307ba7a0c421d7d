package qmt

import "strconv"

// The result-code tables of the reference (ec600-at.md sections 2.1-2.9), in words.

// OpenResultText says what a +QMTOPEN <result> means.
func OpenResultText(result int) string {
	switch result {
	case -1:
		return "failed to open the network link"
	case 0:
		return "link opened"
	case 1:
		return "the module rejected a parameter (host name or port)"
	case 2:
		return "the client index is already in use (close it first)"
	case 3:
		return "could not activate the PDP context (mobile data)"
	case 4:
		return "could not resolve the broker's host name"
	case 5:
		return "network connection error (refused or unreachable)"
	}
	return "unknown open result " + strconv.Itoa(result)
}

// ConnackText says what a CONNACK return code (the <ret_code> of +QMTCONN) means.
func ConnackText(code int) string {
	switch code {
	case 0:
		return "connection accepted"
	case 1:
		return "unacceptable protocol version"
	case 2:
		return "client identifier rejected"
	case 3:
		return "server unavailable"
	case 4:
		return "bad user name or password"
	case 5:
		return "not authorized"
	}
	return "unknown CONNACK return code " + strconv.Itoa(code)
}

// PacketResultText says what the <result> of +QMTCONN, +QMTSUB, +QMTUNS or +QMTPUB(EX) means;
// packet names the MQTT packet ("CONNECT", "PUBLISH", ...).
func PacketResultText(packet string, result int) string {
	switch result {
	case 0:
		return packet + " sent and acknowledged"
	case 1:
		return packet + " being retransmitted"
	case 2:
		return "failed to send " + packet
	}
	return "unknown " + packet + " result " + strconv.Itoa(result)
}

// DiscCloseText says what the <result> of +QMTDISC or +QMTCLOSE means; what is "disconnect" or
// "close the link".
func DiscCloseText(what string, result int) string {
	switch result {
	case 0:
		return "done"
	case -1:
		return "the module failed to " + what
	}
	return "unknown result " + strconv.Itoa(result) + " (failed to " + what + ")"
}

// LinkStatusText says what a +QMTSTAT <err_code> means; codes 8 and above are reserved and read
// as 7, as the reference advises.
func LinkStatusText(code int) string {
	switch code {
	case 1:
		return "connection closed or reset by the peer"
	case 2:
		return "sending PINGREQ timed out or failed"
	case 3:
		return "sending CONNECT timed out or failed"
	case 4:
		return "receiving CONNACK timed out or failed"
	case 5:
		return "the client sent DISCONNECT and the server closed the link"
	case 6:
		return "the client closed the link because sending kept failing"
	case 7:
		return "link not alive or server unavailable"
	case 8:
		// Not in the English tables; the Chinese ones call it "client actively closed the MQTT
		// connection", and EC200-family firmware prints it after a run of QoS 1
		// retransmissions (reference 2.8). Handled as 7.
		return LinkStatusText(7) + ": the module closed the link itself (code 8: EC200-family firmware does so after QoS 1 retransmissions)"
	}
	if code >= 9 {
		return "link not alive or server unavailable (reserved code " + strconv.Itoa(code) + ")"
	}
	return "unknown link status " + strconv.Itoa(code)
}

// String says in words what a connection state from AT+QMTCONN? means.
func (s State) String() string {
	switch s {
	case StateNone:
		return "no link"
	case StateInitializing:
		return "initializing"
	case StateConnecting:
		return "connecting"
	case StateConnected:
		return "connected"
	case StateDisconnecting:
		return "disconnecting"
	}
	return "unknown state " + strconv.Itoa(int(s))
}

// State is a client's MQTT state as AT+QMTCONN? reports it.
type State int

// The states of AT+QMTCONN?.
const (
	StateNone          State = 0 // no line for the client: no link open
	StateInitializing  State = 1
	StateConnecting    State = 2
	StateConnected     State = 3
	StateDisconnecting State = 4
)

// RegStatText says what a registration <stat> of +CREG/+CGREG/+CEREG means.
func RegStatText(stat int) string {
	switch stat {
	case 0:
		return "not registered, not searching"
	case 1:
		return "registered, home network"
	case 2:
		return "not registered, searching"
	case 3:
		return "registration denied"
	case 4:
		return "unknown (out of coverage?)"
	case 5:
		return "registered, roaming"
	}
	return "status " + strconv.Itoa(stat) + " (not usable for data)"
}
