package sim

import (
	"strings"
	"testing"
)

// The tests in this file check the reference's wire examples byte for byte, over the pty.

func TestEchoOnAfterPowerUpUntilATE0(t *testing.T) {
	t.Parallel()
	h := newRig(t, Config{}).h
	// Section 0: host 41 54 0D, module 41 54 0D 0D 0A 4F 4B 0D 0A.
	h.write("\x41\x54\x0D")
	h.expect("\x41\x54\x0D\x0D\x0A\x4F\x4B\x0D\x0A")
	h.cmd("ATE0", "ATE0\r\r\nOK\r\n") // the ATE0 line itself is still echoed
	h.cmd("AT", "\r\nOK\r\n")
	h.cmd("ATE1", "\r\nOK\r\n")
	h.cmd("at", "at\r\r\nOK\r\n")
	// Echo is of the bytes as received: CR LF from the host comes back as CR LF.
	h.write("AT\r\n")
	h.expect("AT\r\r\nOK\r\n\n")
}

func TestIdentification(t *testing.T) {
	t.Parallel()
	id := Identity{IMEI: "861234567890128", Model: "EC600S", Revision: "EC600SCNAAR01A01M08", ICCID: "8986002512830601247F", IMSI: "460011234567891"}
	h := newRig(t, Config{Identity: id}).h
	h.cmd("ATE0", "ATE0\r\r\nOK\r\n")
	for _, c := range []struct{ cmd, reply string }{
		{"ATI", "\r\nQuectel\r\nEC600S\r\nRevision: EC600SCNAAR01A01M08\r\n\r\nOK\r\n"},
		{"AT+CGMI", "\r\nQuectel\r\n\r\nOK\r\n"},
		{"AT+GMI", "\r\nQuectel\r\n\r\nOK\r\n"},
		{"AT+CGMM", "\r\nEC600S\r\n\r\nOK\r\n"},
		{"AT+GMM", "\r\nEC600S\r\n\r\nOK\r\n"},
		{"AT+CGMR", "\r\nEC600SCNAAR01A01M08\r\n\r\nOK\r\n"},
		{"AT+GMR", "\r\nEC600SCNAAR01A01M08\r\n\r\nOK\r\n"},
		{"AT+GSN", "\r\n861234567890128\r\n\r\nOK\r\n"},
		{"AT+CGSN", "\r\n861234567890128\r\n\r\nOK\r\n"},
		{"AT+CGSN=1", "\r\n+CGSN: 861234567890128\r\n\r\nOK\r\n"},
		{"AT+QCCID", "\r\n+QCCID: 8986002512830601247F\r\n\r\nOK\r\n"},
		{"AT+CIMI", "\r\n460011234567891\r\n\r\nOK\r\n"},
	} {
		h.cmd(c.cmd, c.reply)
	}
}

func TestStatusCommands(t *testing.T) {
	t.Parallel()
	h := newRig(t, Config{}).h
	h.cmd("ATE0", "ATE0\r\r\nOK\r\n")
	for _, c := range []struct{ cmd, reply string }{
		{"AT+CPIN?", "\r\n+CPIN: READY\r\n\r\nOK\r\n"},
		{"AT+CSQ", "\r\n+CSQ: 31,99\r\n\r\nOK\r\n"},
		{"AT+CREG?", "\r\n+CREG: 0,1\r\n\r\nOK\r\n"},
		{"AT+CGREG?", "\r\n+CGREG: 0,1\r\n\r\nOK\r\n"},
		{"AT+CEREG?", "\r\n+CEREG: 0,1\r\n\r\nOK\r\n"},
		{"AT+CEREG=2", "\r\nOK\r\n"},
		{"AT+CEREG?", "\r\n+CEREG: 2,1,\"1A2B\",\"0C3D4E5F\",7\r\n\r\nOK\r\n"},
		{"AT+CEREG=3", "\r\nERROR\r\n"},
		{"AT+CGATT?", "\r\n+CGATT: 1\r\n\r\nOK\r\n"},
		{"AT+QICSGP=1", "\r\n+QICSGP: 1,\"\",\"\",\"\",0\r\n\r\nOK\r\n"},
		{`AT+QICSGP=1,3,"cmnet","u","p",1`, "\r\nOK\r\n"},
		{"AT+QICSGP=1", "\r\n+QICSGP: 3,\"cmnet\",\"u\",\"p\",1\r\n\r\nOK\r\n"},
		{"AT+QICSGP=16", "\r\nERROR\r\n"},
		{"AT+QIACT?", "\r\n+QIACT: 1,1,3,\"10.2.198.114\",\"240E:404:8A1:D3C6::1\"\r\n\r\nOK\r\n"},
		{"AT+QIACT=1", "\r\nERROR\r\n"}, // already active
		{"AT+QIDEACT=1", "\r\nOK\r\n"},
		{"AT+QIACT?", "\r\nOK\r\n"},
		{"AT+QIACT=1", "\r\nOK\r\n"},
		{"AT+CFUN?", "\r\n+CFUN: 1\r\n\r\nOK\r\n"},
		{"AT+CFUN=0,1", "\r\nERROR\r\n"},
		{`AT+QURCCFG="urcport"`, "\r\n+QURCCFG: \"urcport\",\"usbat\"\r\n\r\nOK\r\n"},
		{`AT+QURCCFG="urcport","uart1"`, "\r\nOK\r\n"},
		{`AT+QURCCFG="urcport"`, "\r\n+QURCCFG: \"urcport\",\"uart1\"\r\n\r\nOK\r\n"},
		{"AT+CMEE?", "\r\n+CMEE: 1\r\n\r\nOK\r\n"},
		{"AT+FOO", "\r\nERROR\r\n"},
		{"ATX9", "\r\nERROR\r\n"},
	} {
		h.cmd(c.cmd, c.reply)
	}
}

func TestCFUNRadioOffAndOn(t *testing.T) {
	t.Parallel()
	h := newRig(t, Config{}).h
	h.cmd("ATE0", "ATE0\r\r\nOK\r\n")
	h.cmd("AT+CEREG=1", "\r\nOK\r\n")
	h.cmd("AT+CFUN=4", "\r\nOK\r\n")
	h.expect("\r\n+CEREG: 0\r\n\r\n+QIURC: \"pdpdeact\",1\r\n")
	h.cmd("AT+CFUN?", "\r\n+CFUN: 4\r\n\r\nOK\r\n")
	h.cmd("AT+CSQ", "\r\n+CSQ: 99,99\r\n\r\nOK\r\n")
	h.cmd("AT+QIACT=1", "\r\n+CME ERROR: 30\r\n")
	h.cmd("AT+CFUN=1", "\r\nOK\r\n")
	h.expect("\r\n+CEREG: 1\r\n")
	h.cmd("AT+QIACT?", "\r\n+QIACT: 1,1,1,\"10.2.198.114\"\r\n\r\nOK\r\n")
}

func TestCMEEModes(t *testing.T) {
	t.Parallel()
	r := newRig(t, Config{})
	h := r.h
	h.cmd("ATE0", "ATE0\r\r\nOK\r\n")
	if err := r.m.SetSIM(false); err != nil {
		t.Fatal(err)
	}
	h.expect("\r\n+CPIN: NOT READY\r\n\r\n+QIURC: \"pdpdeact\",1\r\n")
	h.cmd("AT+CMEE=0", "\r\nOK\r\n")
	h.cmd("AT+CPIN?", "\r\nERROR\r\n")
	h.cmd("AT+CMEE=1", "\r\nOK\r\n")
	h.cmd("AT+CPIN?", "\r\n+CME ERROR: 10\r\n")
	h.cmd("AT+CMEE=2", "\r\nOK\r\n")
	h.cmd("AT+CPIN?", "\r\n+CME ERROR: SIM not inserted\r\n")
	h.cmd("AT+CMEE?", "\r\n+CMEE: 2\r\n\r\nOK\r\n")
	h.cmd("AT+CMEE=3", "\r\nERROR\r\n")
	h.cmd("AT+NOSUCH", "\r\nERROR\r\n") // syntax errors stay plain ERROR with CMEE=2
}

func TestQMTCFG(t *testing.T) {
	t.Parallel()
	h := newRig(t, Config{}).h
	h.cmd("ATE0", "ATE0\r\r\nOK\r\n")
	var list strings.Builder
	list.WriteString("\r\n")
	for _, l := range []string{
		`"version",(0-5),(3,4)`,
		`"pdpcid",(0-5),(1-15)`,
		`"ssl",(0-5),(0,1),(0-5)`,
		`"keepalive",(0-5),(0-3600)`,
		`"session",(0-5),(0,1)`,
		`"timeout",(0-5),(1-1200),(1-10),(0,1)`,
		`"will",(0-5),(0,1),(0-2),(0,1),"willtopic","willmessage"`,
		`"willex",(0-5),(0,1),(0-2),(0,1),"willtopic",(0-256)`,
		`"recv/mode",(0-5),(0,1),(0,1)`,
		`"send/mode",(0-5),(0,1)`,
		`"onenet",(0-5),"product id","access key"`,
		`"aliauth",(0-5),"product key","device name","device secret"`,
		`"hwauth",(0-5),"device id","device secret"`,
		`"hwprodid",(0-5),"product id","product secret","nodeid"`,
		`"qmtping",(0-5),(5-60)`,
		`"dataformat",(0-5),(0,1),(0,1)`,
		`"view/mode",(0-5),(0,1)`,
		`"CTWing",(0-5),"client_id","feature_string"`,
		`"edit/timeout",(0-5),(0,1),(1-180)`,
	} {
		list.WriteString("+QMTCFG: " + l + "\r\n")
	}
	list.WriteString("OK\r\n") // MQTT test-command layout: no blank line before OK
	h.cmd("AT+QMTCFG=?", list.String())

	for _, c := range []struct{ cmd, reply string }{
		{`AT+QMTCFG="version",0`, "\r\n+QMTCFG: \"version\",4\r\n\r\nOK\r\n"},
		{`AT+QMTCFG="version",0,3`, "\r\nOK\r\n"},
		{`AT+QMTCFG="version",0`, "\r\n+QMTCFG: \"version\",3\r\n\r\nOK\r\n"},
		{`AT+QMTCFG="version",0,5`, "\r\nERROR\r\n"},
		{`AT+QMTCFG="version",6,4`, "\r\nERROR\r\n"},
		{`AT+QMTCFG="ssl",1,1,2`, "\r\nOK\r\n"},
		{`AT+QMTCFG="ssl",1`, "\r\n+QMTCFG: \"ssl\",1,2\r\n\r\nOK\r\n"},
		{`AT+QMTCFG="ssl",1,1,6`, "\r\nERROR\r\n"},
		{`AT+QMTCFG="keepalive",0`, "\r\n+QMTCFG: \"keepalive\",120\r\n\r\nOK\r\n"},
		{`AT+QMTCFG="keepalive",0,3601`, "\r\nERROR\r\n"},
		{`AT+QMTCFG="timeout",0,10`, "\r\nOK\r\n"},
		{`AT+QMTCFG="timeout",0`, "\r\n+QMTCFG: \"timeout\",10,3,0\r\n\r\nOK\r\n"},
		{`AT+QMTCFG="timeout",0,10,0`, "\r\nERROR\r\n"},
		{`AT+QMTCFG="recv/mode",0,0,1`, "\r\nOK\r\n"},
		{`AT+QMTCFG="recv/mode",0`, "\r\n+QMTCFG: \"recv/mode\",0,1\r\n\r\nOK\r\n"},
		{`AT+QMTCFG="will",0,1,1,0,"dev/status","offline, gone"`, "\r\nOK\r\n"},
		{`AT+QMTCFG="will",0`, "\r\n+QMTCFG: \"will\",1,1,0,\"dev/status\",\"offline, gone\"\r\n\r\nOK\r\n"},
		{`AT+QMTCFG="will",0,1,3,0,"t","m"`, "\r\nERROR\r\n"},
		{`AT+QMTCFG="qmtping",0,4`, "\r\nERROR\r\n"},
		{`AT+QMTCFG="ctwing",2,"id","feat"`, "\r\nOK\r\n"},
		{`AT+QMTCFG="CTWing",2`, "\r\n+QMTCFG: \"CTWing\",\"id\",\"feat\"\r\n\r\nOK\r\n"},
		{`AT+QMTCFG="edit/timeout",0`, "\r\n+QMTCFG: \"edit/timeout\",0,30\r\n\r\nOK\r\n"},
		{`AT+QMTCFG="nosuch",0,1`, "\r\nERROR\r\n"},
		{`AT+QMTCFG="version",0,"4"`, "\r\nERROR\r\n"},
	} {
		h.cmd(c.cmd, c.reply)
	}
	// willex: the message comes in data mode after the prompt.
	h.cmd(`AT+QMTCFG="willex",0,1,0,0,"w",4`, "\r\n> ")
	h.write("a\"\r\n")
	h.expect("\r\nOK\r\n")
	h.cmd(`AT+QMTCFG="willex",0`, "\r\n+QMTCFG: \"willex\",1,0,0,\"w\",4\r\n\r\nOK\r\n")
}

func TestMQTTTestForms(t *testing.T) {
	t.Parallel()
	h := newRig(t, Config{}).h
	h.cmd("ATE0", "ATE0\r\r\nOK\r\n")
	for _, c := range []struct{ cmd, line string }{
		{"AT+QMTOPEN=?", `+QMTOPEN: (0-5),"hostname",(1-65535)`},
		{"AT+QMTCLOSE=?", `+QMTCLOSE: (0-5)`},
		{"AT+QMTCONN=?", `+QMTCONN: (0-5),"clientid","username","password"`},
		{"AT+QMTDISC=?", `+QMTDISC: (0-5)`},
		{"AT+QMTSUB=?", `+QMTSUB: (0-5),<msgid>,list of ["topic",qos]`},
		{"AT+QMTUNS=?", `+QMTUNS: (0-5),<msgid>,list of ["topic"]`},
		{"AT+QMTPUBEX=?", `+QMTPUBEX: (0-5), <msgid>,(0-2),(0,1),"topic","length"`},
		{"AT+QMTPUB=?", `+QMTPUB: (0-5),(0-65535),(0-2),(0,1),<topic>,(1-4096)`},
		{"AT+QMTRECV=?", `+QMTRECV: (0-5),(0-4)`},
	} {
		h.cmd(c.cmd, "\r\n"+c.line+"\r\nOK\r\n")
	}
}

func TestMQTTSessionOnTheWire(t *testing.T) {
	t.Parallel()
	r := newRig(t, Config{})
	h := r.h
	// Reference 2.1, echo on: OK, later the URC; then the query.
	h.cmd(`AT+QMTOPEN=0,"iot-06z00i8mcbcop1x.mqtt.iothub.aliyuncs.com",1883`,
		"AT+QMTOPEN=0,\"iot-06z00i8mcbcop1x.mqtt.iothub.aliyuncs.com\",1883\r\r\nOK\r\n")
	h.expect("\r\n+QMTOPEN: 0,0\r\n")
	h.cmd("AT+QMTOPEN?", "AT+QMTOPEN?\r\r\n+QMTOPEN: 0,\"iot-06z00i8mcbcop1x.mqtt.iothub.aliyuncs.com\",1883\r\n\r\nOK\r\n")
	h.cmd("ATE0", "ATE0\r\r\nOK\r\n")
	h.cmd(`AT+QMTOPEN=0,"again",1883`, "\r\nOK\r\n")
	h.expect("\r\n+QMTOPEN: 0,2\r\n") // index in use
	h.cmd("AT+QMTCONN?", "\r\n+QMTCONN: 0,1\r\n\r\nOK\r\n")
	h.cmd(`AT+QMTSUB=0,1,"a",1`, "\r\nERROR\r\n") // not connected yet
	h.cmd(`AT+QMTCONN=0,"dev-1","user","pass"`, "\r\nOK\r\n")
	h.expect("\r\n+QMTCONN: 0,0,0\r\n")
	h.cmd("AT+QMTCONN?", "\r\n+QMTCONN: 0,3\r\n\r\nOK\r\n")
	h.cmd(`AT+QMTSUB=0,1,"/sys/pk/dn/thing/service/property/set",2`, "\r\nOK\r\n")
	h.expect("\r\n+QMTSUB: 0,1,0,2\r\n")
	h.cmd(`AT+QMTSUB=0,65535,"a/+/c",0,"d/#",1,"#",2`, "\r\nOK\r\n")
	h.expect("\r\n+QMTSUB: 0,65535,0,0,1,2\r\n")
	h.cmd(`AT+QMTUNS=0,3,"a/+/c","d/#"`, "\r\nOK\r\n")
	h.expect("\r\n+QMTUNS: 0,3,0\r\n")
	h.cmd(`AT+QMTSUB=0,0,"a",1`, "\r\nERROR\r\n")       // msgID 0 is not allowed for SUB
	h.cmd(`AT+QMTPUBEX=0,1,0,0,"t",1`, "\r\nERROR\r\n") // QoS 0 needs msgID 0
	h.cmd(`AT+QMTPUBEX=0,0,0,0,"t","inline"`, "\r\nERROR\r\n")
	h.cmd(`AT+QMTPUBEX=0,0,0,0,"t",4097`, "\r\nERROR\r\n")
	h.cmd(`AT+QMTDISC=0`, "\r\nOK\r\n")
	h.expect("\r\n+QMTDISC: 0,0\r\n")
	h.cmd("AT+QMTCONN?", "\r\nOK\r\n")
	h.cmd("AT+QMTOPEN?", "\r\nOK\r\n")
	h.cmd(`AT+QMTDISC=0`, "\r\nERROR\r\n")
	h.cmd(`AT+QMTOPEN=0,"h",1883`, "\r\nOK\r\n")
	h.expect("\r\n+QMTOPEN: 0,0\r\n")
	h.cmd(`AT+QMTCLOSE=0`, "\r\nOK\r\n")
	h.expect("\r\n+QMTCLOSE: 0,0\r\n")
	h.cmd(`AT+QMTCLOSE=0`, "\r\nERROR\r\n")
}

func TestPublishExWithEcho(t *testing.T) {
	t.Parallel()
	r := newRig(t, Config{})
	r.connect("pub-echo")
	p := newPeer(t, r.broker, "cloud")
	p.subscribe(t, "#", 2)
	h := r.h
	h.cmd("ATE1", "\r\nOK\r\n")
	// Reference 2.6, echo ON: echo, prompt, data echoed, OK after the data, then the URC.
	const topic = "/sys/a1B2c3D4e5F/pi-led-01/thing/service/property/set_reply"
	const data = `{"id":"123","code":200,"data":{}}`
	cmd := `AT+QMTPUBEX=0,0,0,0,"` + topic + `",33`
	h.write(cmd + "\r")
	h.expect(cmd + "\r" + "\r\n> ")
	h.write(data)
	h.expect(data + "\r\nOK\r\n" + "\r\n+QMTPUBEX: 0,0,0\r\n")
	if m := p.next(t); m.Topic() != topic || string(m.Payload()) != data {
		t.Fatalf("broker got %q %q", m.Topic(), m.Payload())
	}
	// With ATE0 the data echo disappears.
	h.cmd("ATE0", "ATE0\r\r\nOK\r\n")
	h.cmd(`AT+QMTPUBEX=0,7,1,0,"up",5`, "\r\n> ")
	h.write("hello")
	h.expect("\r\nOK\r\n\r\n+QMTPUBEX: 0,7,0\r\n")
	if m := p.next(t); string(m.Payload()) != "hello" || m.Qos() != 1 {
		t.Fatalf("broker got %q qos %d", m.Payload(), m.Qos())
	}
	// Data split over several writes, QoS 2.
	h.cmd(`AT+QMTPUBEX=0,8,2,0,"up",6`, "\r\n> ")
	h.write("ab")
	h.write("cd")
	h.write("ef")
	h.expect("\r\nOK\r\n\r\n+QMTPUBEX: 0,8,0\r\n")
	if m := p.next(t); string(m.Payload()) != "abcdef" || m.Qos() != 2 {
		t.Fatalf("broker got %q qos %d", m.Payload(), m.Qos())
	}
}

func TestPublishCtrlZAndLengthForms(t *testing.T) {
	t.Parallel()
	r := newRig(t, Config{})
	r.connect("pub-ctrlz")
	p := newPeer(t, r.broker, "cloud")
	p.subscribe(t, "z", 1)
	h := r.h
	h.cmd(`AT+QMTPUB=0,7,1,0,"z"`, "\r\n> ")
	h.write("line1\r\nline2\x1a")
	h.expect("\r\nOK\r\n\r\n+QMTPUB: 0,7,0\r\n")
	if m := p.next(t); string(m.Payload()) != "line1\r\nline2" {
		t.Fatalf("broker got %q", m.Payload())
	}
	// ESC aborts: OK, nothing published, no URC.
	h.cmd(`AT+QMTPUB=0,8,1,0,"z"`, "\r\n> ")
	h.write("dropped\x1b")
	h.expect("\r\nOK\r\n")
	h.cmd("AT", "\r\nOK\r\n")
	// BG770A length form of QMTPUB.
	h.cmd(`AT+QMTPUB=0,9,1,0,"z",3`, "\r\n> ")
	h.write("\x1a\x00\x1b")
	h.expect("\r\nOK\r\n\r\n+QMTPUB: 0,9,0\r\n")
	if m := p.next(t); string(m.Payload()) != "\x1a\x00\x1b" {
		t.Fatalf("broker got %q (the ESC-aborted publish must not arrive)", m.Payload())
	}
}

func TestReceiveModes(t *testing.T) {
	t.Parallel()
	r := newRig(t, Config{})
	r.connect("recv")
	h := r.h
	h.cmd(`AT+QMTSUB=0,1,"dn/#",1`, "\r\nOK\r\n")
	h.expect("\r\n+QMTSUB: 0,1,0,1\r\n")
	p := newPeer(t, r.broker, "cloud")
	payload := "{\"a\":\"x\"}\r\n\"quoted\",\r\nend"

	// Default recv/mode 0,0: direct, no length.
	p.publish(t, "dn/1", 0, []byte(payload))
	h.expect("\r\n+QMTRECV: 0,0,\"dn/1\",\"" + payload + "\"\r\n")

	// Direct with length: +QMTRECV: 0,<msgid>,"<topic>",<len>,"<payload>".
	h.cmd(`AT+QMTCFG="recv/mode",0,0,1`, "\r\nOK\r\n")
	p.publish(t, "dn/2", 0, []byte(payload))
	h.expect("\r\n+QMTRECV: 0,0,\"dn/2\"," + itoa(len(payload)) + ",\"" + payload + "\"\r\n")

	// QoS 1 downlink: msgID is the packet id the broker chose (not 0).
	p.publish(t, "dn/3", 1, []byte("q1"))
	got := h.until("\"q1\"\r\n")
	if !strings.HasPrefix(got, "\r\n+QMTRECV: 0,") || strings.HasPrefix(got, "\r\n+QMTRECV: 0,0,") || !strings.HasSuffix(got, ",\"dn/3\",2,\"q1\"\r\n") {
		t.Fatalf("QoS 1 downlink: %q", got)
	}

	// Buffer mode: the URC announces a slot; AT+QMTRECV? shows it; reading frees it.
	h.cmd(`AT+QMTCFG="recv/mode",0,1,1`, "\r\nOK\r\n")
	p.publish(t, "dn/4", 0, []byte(payload))
	h.expect("\r\n+QMTRECV: 0,0\r\n")
	p.publish(t, "dn/5", 0, []byte("second"))
	h.expect("\r\n+QMTRECV: 0,1\r\n")
	h.cmd("AT+QMTRECV?", "\r\n+QMTRECV: 0,1,1,0,0,0\r\n\r\nOK\r\n")
	h.cmd("AT+QMTRECV=0,1", "\r\n+QMTRECV: 0,0,\"dn/5\",6,\"second\"\r\n\r\nOK\r\n")
	h.cmd("AT+QMTRECV?", "\r\n+QMTRECV: 0,1,0,0,0,0\r\n\r\nOK\r\n")
	h.cmd(`AT+QMTCFG="recv/mode",0,1,0`, "\r\nOK\r\n") // read-out without length
	h.cmd("AT+QMTRECV=0", "\r\n+QMTRECV: 0,0,\"dn/4\",\""+payload+"\"\r\n\r\nOK\r\n")
	h.cmd("AT+QMTRECV?", "\r\n+QMTRECV: 0,0,0,0,0,0\r\n\r\nOK\r\n")
	h.cmd("AT+QMTRECV=0", "\r\nOK\r\n")

	// Slots fill up at five; a sixth message is dropped (behaviour UNCONFIRMED on hardware).
	for i := range 6 {
		p.publish(t, "dn/f", 0, []byte{'0' + byte(i)})
		if i < 5 {
			h.expect("\r\n+QMTRECV: 0," + itoa(i) + "\r\n")
		}
	}
	h.cmd("AT+QMTRECV?", "\r\n+QMTRECV: 0,1,1,1,1,1\r\n\r\nOK\r\n")
}

func TestHexDataFormat(t *testing.T) {
	t.Parallel()
	r := newRig(t, Config{})
	r.connect("hex")
	h := r.h
	p := newPeer(t, r.broker, "cloud")
	p.subscribe(t, "up", 0)
	h.cmd(`AT+QMTCFG="dataformat",0,1,1`, "\r\nOK\r\n")
	h.cmd(`AT+QMTCFG="recv/mode",0,0,1`, "\r\nOK\r\n")
	h.cmd(`AT+QMTSUB=0,1,"dn",0`, "\r\nOK\r\n")
	h.expect("\r\n+QMTSUB: 0,1,0,0\r\n")
	h.cmd(`AT+QMTPUBEX=0,0,0,0,"up",6`, "\r\n> ")
	h.write("00FF41")
	h.expect("\r\nOK\r\n\r\n+QMTPUBEX: 0,0,0\r\n")
	if m := p.next(t); string(m.Payload()) != "\x00\xffA" {
		t.Fatalf("broker got %q", m.Payload())
	}
	p.publish(t, "dn", 0, []byte("\x01\r\n"))
	h.expect("\r\n+QMTRECV: 0,0,\"dn\",6,\"010D0A\"\r\n")
}

// TestRawTopicOnTheWire: a downlink topic holding `"`, CR and LF (legal in MQTT, passed by the
// broker) is printed raw between the quotes, as the real module does (reference 2.10).
func TestRawTopicOnTheWire(t *testing.T) {
	t.Parallel()
	r := newRig(t, Config{})
	r.connect("rawtopic")
	h := r.h
	h.cmd(`AT+QMTCFG="recv/mode",0,0,1`, "\r\nOK\r\n")
	h.cmd(`AT+QMTSUB=0,1,"dn/#",0`, "\r\nOK\r\n")
	h.expect("\r\n+QMTSUB: 0,1,0,0\r\n")
	p := newPeer(t, r.broker, "cloud")
	topic := "dn/a\"b\r\nRDY\r\n\r\nOK\r\n\",9,\"c"
	p.publish(t, topic, 0, []byte("p"))
	h.expect("\r\n+QMTRECV: 0,0,\"" + topic + "\",1,\"p\"\r\n")
}

// TestNoPAPOrCHAPVariant: the BG770A-like firmware offers authentication (0-2) in AT+QICSGP=?
// and refuses 3 (reference 4.2 VARIANT).
func TestNoPAPOrCHAPVariant(t *testing.T) {
	t.Parallel()
	for _, narrow := range []bool{false, true} {
		r := newRig(t, Config{NoPAPOrCHAP: narrow})
		h := r.h
		h.cmd("ATE0", "ATE0\r\r\nOK\r\n")
		set3 := "\r\nOK\r\n"
		offer := "(0-3)"
		if narrow {
			set3, offer = "\r\nERROR\r\n", "(0-2)"
		}
		h.cmd("AT+QICSGP=?", "\r\n+QICSGP: (1-15),(1-3),<APN>,<username>,<password>,"+offer+"\r\n\r\nOK\r\n")
		h.cmd(`AT+QICSGP=1,3,"apn","u","p",3`, set3)
		h.cmd(`AT+QICSGP=1,3,"apn","u","p",2`, "\r\nOK\r\n")
	}
}

// TestUnisocVariant: EC600U firmware lacks the ASR-only AT+QMTCFG names: not in =?, refused with
// a CME error in the CMEE mode set (reference 1, 8 VARIANT).
func TestUnisocVariant(t *testing.T) {
	t.Parallel()
	r := newRig(t, Config{Unisoc: true})
	h := r.h
	h.cmd("ATE0", "ATE0\r\r\nOK\r\n")
	h.write("AT+QMTCFG=?\r")
	list := h.until("OK\r\n")
	if strings.Contains(list, "edit/timeout") || strings.Contains(list, "willex") || !strings.Contains(list, `"timeout"`) {
		t.Fatalf("=? list %q", list)
	}
	h.cmd(`AT+QMTCFG="edit/timeout",0,1,30`, "\r\n+CME ERROR: 4\r\n")
	h.cmd("AT+CMEE=2", "\r\nOK\r\n")
	h.cmd(`AT+QMTCFG="qmtping",0,10`, "\r\n+CME ERROR: operation not supported\r\n")
	h.cmd("AT+CMEE=0", "\r\nOK\r\n")
	h.cmd(`AT+QMTCFG="willex",0,0`, "\r\nERROR\r\n")
	h.cmd(`AT+QMTCFG="recv/mode",0,0,1`, "\r\nOK\r\n")
}
