package qmt

import (
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"
)

// Limits checked before a command is sent. Where the EC600 limit is not documented the nearest
// sibling's documented limit is used (reference section 2).
const (
	MaxClients     = 6     // client indexes 0-5
	MaxMsgID       = 65535 // message identifiers 1-65535
	MaxHostLen     = 100   // host name (EC2x document)
	MaxClientIDLen = 128   // MQTT client identifier (BC66 document)
	MaxUserLen     = 256   // user name (BC66 document)
	MaxPasswordLen = 256   // password (BC66 document)
	MaxTopicLen    = 65535 // MQTT's own limit; the module's is not documented
	MaxWillLen     = 256   // will topic and will message (BC66 document)
	MaxAliAuthLen  = 64    // each aliauth string (BC66 document)
	MaxSlot        = 4     // buffer-mode storage slots 0-4

	// DefaultMaxPayload is the largest publish payload accepted unless Options.MaxPayload says
	// otherwise: the documented maximum of AT+QMTPUB on BG770A and EC2x (EC600's is not documented).
	DefaultMaxPayload = 4096
)

func checkIdx(idx int) error { return checkRange("client index", idx, 0, MaxClients-1) }

func checkQoS(field string, q int) error { return checkRange(field, q, 0, 2) }

func checkMsgID(id int) error { return checkRange("message id", id, 1, MaxMsgID) }

// checkTopicName checks a topic to publish to: not empty, valid UTF-8, no wildcards, and nothing
// that would break the AT command.
func checkTopicName(field, t string) error {
	if err := checkLen(field, t, true, MaxTopicLen, false); err != nil {
		return err
	}
	if !utf8.ValidString(t) {
		return fmt.Errorf("mqtt: %s %q is not valid UTF-8: %w", field, t, ErrInvalidString)
	}
	if i := strings.IndexAny(t, "+#"); i >= 0 {
		return fmt.Errorf("mqtt: %s %q: wildcard %q at offset %d is not allowed in a topic name: %w",
			field, t, t[i], i, ErrInvalidArgument)
	}
	return nil
}

// checkTopicFilter checks a topic filter to subscribe to: like a topic name, but '+' may fill a
// whole level and '#' may be the last level.
func checkTopicFilter(field, t string) error {
	if err := checkLen(field, t, true, MaxTopicLen, false); err != nil {
		return err
	}
	if !utf8.ValidString(t) {
		return fmt.Errorf("mqtt: %s %q is not valid UTF-8: %w", field, t, ErrInvalidString)
	}
	levels := strings.Split(t, "/")
	for i, l := range levels {
		switch {
		case l == "#" && i != len(levels)-1:
			return fmt.Errorf("mqtt: %s %q: '#' must be the last level: %w", field, t, ErrInvalidArgument)
		case l != "#" && l != "+" && strings.ContainsAny(l, "+#"):
			return fmt.Errorf("mqtt: %s %q: a wildcard must fill a whole level: %w", field, t, ErrInvalidArgument)
		}
	}
	return nil
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

// openCmd is AT+QMTOPEN=<idx>,"<host>",<port>.
func openCmd(idx int, host string, port int) (string, error) {
	if err := checkIdx(idx); err != nil {
		return "", err
	}
	if err := checkLen("host", host, true, MaxHostLen, false); err != nil {
		return "", err
	}
	if strings.ContainsAny(host, " ,") {
		return "", fmt.Errorf("mqtt: host %q holds a space or comma: %w", host, ErrInvalidString)
	}
	if err := checkRange("port", port, 1, 65535); err != nil {
		return "", err
	}
	return `AT+QMTOPEN=` + strconv.Itoa(idx) + `,"` + host + `",` + strconv.Itoa(port), nil
}

// closeCmd is AT+QMTCLOSE=<idx>.
func closeCmd(idx int) (string, error) {
	if err := checkIdx(idx); err != nil {
		return "", err
	}
	return "AT+QMTCLOSE=" + strconv.Itoa(idx), nil
}

// discCmd is AT+QMTDISC=<idx>.
func discCmd(idx int) (string, error) {
	if err := checkIdx(idx); err != nil {
		return "", err
	}
	return "AT+QMTDISC=" + strconv.Itoa(idx), nil
}

// connCmd is AT+QMTCONN=<idx>,"<clientID>"[,"<user>"[,"<password>"]]. The user is sent when
// either the user or the password is set; the password when it is set.
func connCmd(idx int, clientID, user, password string) (string, error) {
	if err := checkIdx(idx); err != nil {
		return "", err
	}
	if err := checkLen("client id", clientID, true, MaxClientIDLen, false); err != nil {
		return "", err
	}
	if err := checkLen("user name", user, false, MaxUserLen, false); err != nil {
		return "", err
	}
	if err := checkLen("password", password, false, MaxPasswordLen, true); err != nil {
		return "", err
	}
	s := "AT+QMTCONN=" + strconv.Itoa(idx) + `,"` + clientID + `"`
	if user != "" || password != "" {
		s += `,"` + user + `"`
	}
	if password != "" {
		s += `,"` + password + `"`
	}
	return s, nil
}

// subCmd is AT+QMTSUB=<idx>,<msgID>,"<topic1>",<qos1>[,"<topic2>",<qos2>...].
func subCmd(idx, msgID int, subs []Subscription) (string, error) {
	if err := checkIdx(idx); err != nil {
		return "", err
	}
	if err := checkMsgID(msgID); err != nil {
		return "", err
	}
	if len(subs) == 0 {
		return "", fmt.Errorf("mqtt: subscribe needs at least one topic: %w", ErrInvalidArgument)
	}
	var b strings.Builder
	b.WriteString("AT+QMTSUB=" + strconv.Itoa(idx) + "," + strconv.Itoa(msgID))
	for i, s := range subs {
		if err := checkTopicFilter(fmt.Sprintf("topic %d", i+1), s.Topic); err != nil {
			return "", err
		}
		if err := checkQoS(fmt.Sprintf("QoS of topic %d", i+1), s.QoS); err != nil {
			return "", err
		}
		b.WriteString(`,"` + s.Topic + `",` + strconv.Itoa(s.QoS))
	}
	return b.String(), nil
}

// unsCmd is AT+QMTUNS=<idx>,<msgID>,"<topic1>"[,"<topic2>"...].
func unsCmd(idx, msgID int, topics []string) (string, error) {
	if err := checkIdx(idx); err != nil {
		return "", err
	}
	if err := checkMsgID(msgID); err != nil {
		return "", err
	}
	if len(topics) == 0 {
		return "", fmt.Errorf("mqtt: unsubscribe needs at least one topic: %w", ErrInvalidArgument)
	}
	var b strings.Builder
	b.WriteString("AT+QMTUNS=" + strconv.Itoa(idx) + "," + strconv.Itoa(msgID))
	for i, t := range topics {
		if err := checkTopicFilter(fmt.Sprintf("topic %d", i+1), t); err != nil {
			return "", err
		}
		b.WriteString(`,"` + t + `"`)
	}
	return b.String(), nil
}

// pubCheck checks the parts common to both publish forms.
func pubCheck(idx, msgID int, m Message) error {
	if err := checkIdx(idx); err != nil {
		return err
	}
	if err := checkQoS("QoS", m.QoS); err != nil {
		return err
	}
	if m.QoS == 0 && msgID != 0 {
		return fmt.Errorf("mqtt: message id %d for a QoS 0 publish, must be 0: %w", msgID, ErrInvalidArgument)
	}
	if m.QoS > 0 {
		if err := checkMsgID(msgID); err != nil {
			return err
		}
	}
	return checkTopicName("topic", m.Topic)
}

// pubExCmd is AT+QMTPUBEX=<idx>,<msgID>,<qos>,<retain>,"<topic>",<length>; the payload follows
// the "> " prompt, exactly length bytes, any byte values.
func pubExCmd(idx, msgID int, m Message, maxPayload int) (string, error) {
	if err := pubCheck(idx, msgID, m); err != nil {
		return "", err
	}
	if err := checkRange("payload length", len(m.Payload), 1, maxPayload); err != nil {
		return "", err
	}
	return fmt.Sprintf(`AT+QMTPUBEX=%d,%d,%d,%d,"%s",%d`, idx, msgID, m.QoS, boolInt(m.Retain), m.Topic, len(m.Payload)), nil
}

// pubCtrlZCmd is the classic AT+QMTPUB=<idx>,<msgID>,<qos>,<retain>,"<topic>"; the payload follows
// the "> " prompt and ends with Ctrl-Z, so it may not contain Ctrl-Z (0x1A) or ESC (0x1B).
func pubCtrlZCmd(idx, msgID int, m Message, maxPayload int) (string, error) {
	if err := pubCheck(idx, msgID, m); err != nil {
		return "", err
	}
	if err := checkRange("payload length", len(m.Payload), 0, maxPayload); err != nil {
		return "", err
	}
	for i, b := range m.Payload {
		if b == 0x1A || b == 0x1B {
			return "", fmt.Errorf("mqtt: payload byte 0x%02X (%s) at offset %d %s; the Ctrl-Z publish form cannot carry it (use PublishLength): %w",
				b, byteName(b), i, byteHarm(b), ErrInvalidArgument)
		}
	}
	return fmt.Sprintf(`AT+QMTPUB=%d,%d,%d,%d,"%s"`, idx, msgID, m.QoS, boolInt(m.Retain), m.Topic), nil
}

// recvReadCmd is AT+QMTRECV=<idx>[,<recv_id>]; slot < 0 reads every slot.
func recvReadCmd(idx, slot int) (string, error) {
	if err := checkIdx(idx); err != nil {
		return "", err
	}
	if slot < 0 {
		return "AT+QMTRECV=" + strconv.Itoa(idx), nil
	}
	if err := checkRange("slot", slot, 0, MaxSlot); err != nil {
		return "", err
	}
	return "AT+QMTRECV=" + strconv.Itoa(idx) + "," + strconv.Itoa(slot), nil
}
