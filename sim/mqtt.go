package sim

import (
	"encoding/hex"
	"fmt"
	"net"
	"strconv"
	"strings"
	"time"
)

// clientState is where one MQTT client index stands.
type clientState int

const (
	stClosed        clientState = iota
	stOpening                   // AT+QMTOPEN accepted, TCP connect in progress
	stOpen                      // link open, not connected (AT+QMTCONN? state 1)
	stConnecting                // AT+QMTCONN accepted (state 2)
	stConnected                 // CONNACK 0 received (state 3)
	stDisconnecting             // AT+QMTDISC accepted (state 4)
	stClosing                   // AT+QMTCLOSE accepted
)

// +QMTSTAT codes the emulator reports (reference 2.8), and the marker for a link the emulator
// ends itself without telling the host.
const (
	statPeerClosed    = 1
	statPingFailed    = 2
	statConnackFailed = 4
	reasonSilent      = -1
	connSendFailed    = -2 // +QMTCONN: <idx>,2
)

// storedMsg is a message held in a buffer-mode slot.
type storedMsg struct {
	msgid   int
	topic   string
	payload []byte
}

// mqttClient is one of the six client indexes.
type mqttClient struct {
	idx   int
	cfg   *clientCfg
	state clientState
	host  string
	port  int
	link  *link
	slots [5]*storedMsg
	// early holds messages paho routed before the CONNACK reached the engine (a persistent
	// session's queued messages race the connect's completion); they follow +QMTCONN.
	early []evMsg
}

// dataKind says what the bytes after a "> " prompt are for.
type dataKind int

const (
	dataLen    dataKind = iota // AT+QMTPUBEX / AT+QMTPUB with a length: exactly want bytes
	dataCtrlZ                  // AT+QMTPUB without length: until Ctrl-Z, ESC aborts
	dataWillex                 // AT+QMTCFG="willex": exactly want bytes
	dataFile                   // AT+QFUPL after CONNECT: exactly want raw bytes, never echoed
)

type dataEntry struct {
	kind     dataKind
	cmd      string // "+QMTPUBEX" or "+QMTPUB": the result URC's name
	idx      int
	msgid    int
	qos      int
	retain   bool
	topic    string
	want     int
	hex      bool // send/mode 1 or dataformat send 1: the data is hex text
	buf      []byte
	willVals []cfgVal
	file     string // dataFile: the name the bytes are stored under
}

// enterData starts data mode for d and returns the prompt reply.
func (e *engine) enterData(d *dataEntry) reply {
	e.data = d
	cfg := e.clients[d.idx].cfg
	if cfg.n("edit/timeout", 0) == 1 {
		e.dataTimer = time.NewTimer(time.Duration(cfg.n("edit/timeout", 1)) * time.Second)
	}
	if d := e.m.cfg.PromptDelay; d > 0 {
		e.promptTimer = time.NewTimer(d)
		return reply{}
	}
	return reply{prompt: true}
}

// promptDue writes the prompt PromptDelay held back.
func (e *engine) promptDue() {
	if e.data != nil {
		e.send(reply{prompt: true})
	}
}

func (e *engine) leaveData() *dataEntry {
	d := e.data
	e.data = nil
	stopTimer(&e.dataTimer)
	stopTimer(&e.promptTimer)
	return d
}

// feedData consumes data-mode bytes and returns how many it took.
func (e *engine) feedData(b []byte) int {
	d := e.data
	echo := func(p []byte) {
		if e.echo && len(p) > 0 && d.kind != dataFile {
			e.emit(outItem{b: append([]byte(nil), p...)})
		}
	}
	if d.kind == dataCtrlZ {
		for i, c := range b {
			switch c {
			case 0x1A:
				echo(b[:i])
				d.buf = append(d.buf, b[:i]...)
				e.finishData()
				return i + 1
			case 0x1B:
				echo(b[:i])
				e.leaveData()
				e.log.Debug().Msg("data aborted with ESC")
				e.send(ok())
				e.flushHeld()
				return i + 1
			}
		}
		echo(b)
		d.buf = append(d.buf, b...)
		if len(d.buf) > e.m.cfg.MaxPayload {
			e.leaveData()
			e.send(errReply())
			e.flushHeld()
		}
		return len(b)
	}
	n := min(len(b), d.want-len(d.buf))
	echo(b[:n])
	d.buf = append(d.buf, b[:n]...)
	if len(d.buf) == d.want {
		e.finishData()
	}
	return n
}

func (e *engine) dataTimeout() {
	if e.data == nil {
		return
	}
	d := e.leaveData()
	if d.kind == dataFile {
		e.log.Info().Str("file", d.file).Int("got", len(d.buf)).Int("want", d.want).Msg("QFUPL: data not complete in time")
		e.send(e.cme(fsTimeout))
	} else {
		e.log.Debug().Msg("edit/timeout: data not complete in time")
		e.send(errReply())
	}
	e.flushHeld()
}

// finishData acts on complete data: store the will, or publish.
func (e *engine) finishData() {
	d := e.leaveData()
	defer e.flushHeld()
	if d.kind == dataFile {
		e.finishFile(d)
		return
	}
	c := e.clients[d.idx]
	if d.kind == dataWillex {
		copy(c.cfg.vals["willex"], d.willVals)
		c.cfg.willData = d.buf
		e.send(ok())
		return
	}
	payload := d.buf
	if d.hex {
		p, err := hex.DecodeString(string(payload))
		if err != nil {
			e.send(errReply())
			return
		}
		payload = p
	}
	if c.state != stConnected || c.link == nil {
		r := ok()
		r.after = func() { e.urc(fmt.Sprintf("%s: %d,%d,2", d.cmd, d.idx, d.msgid)) }
		e.send(r)
		return
	}
	notBefore := e.m.resultNotBefore(time.Duration(e.m.brokerDelay.Load()))
	op := opPub{cmd: d.cmd, msgid: d.msgid, qos: byte(d.qos), retain: d.retain, topic: d.topic, payload: payload, notBefore: notBefore}
	if d.qos > 0 && e.m.takeLostPUBACK() {
		op.losePUBACK = true
		op.pktTimeout = time.Duration(c.cfg.n("timeout", 0)) * time.Second
		op.retries = c.cfg.n("timeout", 1)
		e.log.Info().Int("client", d.idx).Int("msgid", d.msgid).Msg("fault: this PUBACK is lost")
	}
	c.link.push(op)
	e.send(ok())
}

// AT+QMTCFG --------------------------------------------------------------------------------------

func (e *engine) cmdQMTCFG(c cmdLine) reply {
	if c.kind == kindTest {
		lines := make([]string, 0, len(qmtcfgSpecs))
		for _, s := range qmtcfgSpecs {
			if e.m.cfg.Unisoc && s.asrOnly {
				continue
			}
			lines = append(lines, "+QMTCFG: "+s.test)
		}
		return reply{lines: lines, final: "OK", compact: true}
	}
	if c.kind != kindSet {
		return errReply()
	}
	f, err := splitArgs(c.args)
	if err != nil || len(f) < 2 || !f[0].quoted {
		return errReply()
	}
	spec, found := lookupCfg(f[0].text)
	if !found {
		return errReply()
	}
	if e.m.cfg.Unisoc && spec.asrOnly {
		// Reference 8 VARIANT: Unisoc firmware lacks the ASR-only names, and may say so with a
		// CME error rather than plain ERROR.
		return e.cme(4)
	}
	idx, valid := f[1].num(0, 5)
	if !valid {
		return errReply()
	}
	cfg := e.clients[idx].cfg
	if len(f) == 2 {
		return ok(spec.format(cfg.vals[spec.name]))
	}
	if st := e.clients[idx].state; st != stClosed && (st != stConnected || e.m.cfg.StrictQMTCFG) {
		// Reference 1: setting QMTCFG on an index that is open (or still opening) is refused
		// with ERROR (EC600K-CN: "resolved by sending AT+QMTCLOSE first"). Whether a connected
		// index refuses it too is UNCONFIRMED: Config.StrictQMTCFG.
		return errReply()
	}
	vals, valid := spec.parse(f[2:])
	if !valid {
		return errReply()
	}
	if spec.data && len(vals) == 5 && vals[4].n > 0 {
		return e.enterData(&dataEntry{kind: dataWillex, idx: idx, want: vals[4].n, willVals: vals})
	}
	copy(cfg.vals[spec.name], vals)
	if spec.data && len(vals) == 5 {
		cfg.willData = nil
	}
	return ok()
}

// index parses the client index field.
func clientIndex(f field) (int, bool) { return f.num(0, 5) }

// AT+QMTOPEN / AT+QMTCLOSE ---------------------------------------------------------------------

func (e *engine) cmdQMTOPEN(c cmdLine) reply {
	switch c.kind {
	case kindTest:
		return test(`+QMTOPEN: (0-5),"hostname",(1-65535)`)
	case kindRead:
		var lines []string
		for _, cl := range e.clients {
			if cl.state >= stOpen && cl.state != stClosing {
				lines = append(lines, fmt.Sprintf("+QMTOPEN: %d,%q,%d", cl.idx, cl.host, cl.port))
			}
		}
		return ok(lines...)
	}
	f, fits := c.argsBetween(3, 3)
	if !fits {
		return errReply()
	}
	idx, v1 := clientIndex(f[0])
	host, v2 := f[1].str(100)
	port, v3 := f[2].num(1, 65535)
	if !v1 || !v2 || !v3 || host == "" {
		return errReply()
	}
	cl := e.clients[idx]
	result := func(code int) reply {
		r := ok()
		r.after = func() { e.urc(fmt.Sprintf("+QMTOPEN: %d,%d", idx, code)) }
		return r
	}
	if cl.state != stClosed {
		return result(2)
	}
	if code := int(e.m.refuseOpen.Load()); code != 0 {
		e.log.Info().Int("code", code).Msg("QMTOPEN refused (fault)")
		return result(code)
	}
	if !e.pdp[cl.cfg.n("pdpcid", 0)].active {
		return result(3)
	}
	if net.ParseIP(host) == nil && e.m.dnsDown.Load() {
		e.log.Info().Str("host", host).Msg("QMTOPEN: the host name does not resolve (fault)")
		return result(4)
	}
	var op opOpen
	if cl.cfg.n("ssl", 0) == 1 {
		s, err := e.tlsFor(cl.cfg.n("ssl", 1), host)
		op.tls, op.err = &s, err
	}
	cl.state, cl.host, cl.port = stOpening, host, port
	cl.slots = [5]*storedMsg{}
	cl.link = newLink(e.m, e.ctx, idx, e.boot)
	cl.link.push(op)
	e.log.Info().Int("client", idx).Str("host", host).Int("port", port).Str("routed_to", e.m.broker).Msg("QMTOPEN")
	return ok()
}

// clientOnly parses the commands whose one argument is the client index (AT+QMTCLOSE=<idx>,
// AT+QMTDISC=<idx>): the test form answers testLine, anything malformed answers ERROR; ok is
// true with the client for a well-formed set command.
func (e *engine) clientOnly(c cmdLine, testLine string) (cl *mqttClient, r reply, valid bool) {
	switch c.kind {
	case kindTest:
		return nil, test(testLine), false
	case kindSet:
	default:
		return nil, errReply(), false
	}
	f, fits := c.argsBetween(1, 1)
	if !fits {
		return nil, errReply(), false
	}
	idx, valid := clientIndex(f[0])
	if !valid {
		return nil, errReply(), false
	}
	return e.clients[idx], reply{}, true
}

func (e *engine) cmdQMTCLOSE(c cmdLine) reply {
	cl, r, valid := e.clientOnly(c, `+QMTCLOSE: (0-5)`)
	if !valid {
		return r
	}
	switch cl.state {
	case stClosed, stClosing, stDisconnecting:
		return errReply()
	case stOpening:
		e.detachLink(cl)
		r := ok()
		r.after = func() { e.urc(fmt.Sprintf("+QMTCLOSE: %d,0", cl.idx)) }
		return r
	}
	cl.state = stClosing
	cl.link.push(opClose{})
	return ok()
}

// AT+QMTCONN / AT+QMTDISC ----------------------------------------------------------------------

func (e *engine) cmdQMTCONN(c cmdLine) reply {
	switch c.kind {
	case kindTest:
		return test(`+QMTCONN: (0-5),"clientid","username","password"`)
	case kindRead:
		var lines []string
		for _, cl := range e.clients {
			var s int
			switch cl.state {
			case stOpen:
				s = 1
			case stConnecting:
				s = 2
			case stConnected:
				s = 3
			case stDisconnecting:
				s = 4
			default:
				continue
			}
			lines = append(lines, fmt.Sprintf("+QMTCONN: %d,%d", cl.idx, s))
		}
		return ok(lines...)
	}
	f, fits := c.argsBetween(2, 4)
	if !fits {
		return errReply()
	}
	idx, valid := clientIndex(f[0])
	if !valid {
		return errReply()
	}
	var p connectParams
	var v [3]bool
	v[1], v[2] = true, true
	p.clientID, v[0] = f[1].str(256)
	if len(f) > 2 {
		p.user, v[1] = f[2].str(256)
	}
	if len(f) > 3 {
		p.pass, v[2] = f[3].str(256)
	}
	if !v[0] || !v[1] || !v[2] {
		return errReply()
	}
	cl := e.clients[idx]
	if cl.state != stOpen {
		return errReply()
	}
	cfg := cl.cfg
	p.version = cfg.n("version", 0)
	p.clean = cfg.n("session", 0) == 1
	p.keepalive = cfg.n("keepalive", 0)
	p.pingTimeout = cfg.n("qmtping", 0)
	p.pktTimeout = cfg.n("timeout", 0)
	p.retries = cfg.n("timeout", 1)
	p.refuse = byte(e.m.refuseConnect.Load())
	switch {
	case cfg.n("willex", 0) == 1:
		p.will = &willSpec{topic: cfg.s("willex", 3), payload: cfg.willData, qos: byte(cfg.n("willex", 1)), retain: cfg.n("willex", 2) == 1}
	case cfg.n("will", 0) == 1:
		p.will = &willSpec{topic: cfg.s("will", 3), payload: []byte(cfg.s("will", 4)), qos: byte(cfg.n("will", 1)), retain: cfg.n("will", 2) == 1}
	}
	if pk, dn, secret := cfg.s("aliauth", 0), cfg.s("aliauth", 1), cfg.s("aliauth", 2); pk != "" && dn != "" && secret != "" {
		p.clientID, p.user, p.pass = aliyunCredentials(p.clientID, pk, dn, secret)
	}
	cl.state = stConnecting
	cl.link.push(opConnect{p: p})
	return ok()
}

func (e *engine) cmdQMTDISC(c cmdLine) reply {
	cl, r, valid := e.clientOnly(c, `+QMTDISC: (0-5)`)
	if !valid {
		return r
	}
	if cl.state != stConnected && cl.state != stOpen {
		return errReply()
	}
	cl.state = stDisconnecting
	cl.link.push(opDisc{})
	return ok()
}

// AT+QMTSUB / AT+QMTUNS ------------------------------------------------------------------------

func (e *engine) cmdQMTSUB(c cmdLine) reply {
	switch c.kind {
	case kindTest:
		return test(`+QMTSUB: (0-5),<msgid>,list of ["topic",qos]`)
	case kindSet:
	default:
		return errReply()
	}
	f, err := splitArgs(c.args)
	if err != nil || len(f) < 4 || len(f)%2 != 0 {
		return errReply()
	}
	idx, v1 := clientIndex(f[0])
	msgid, v2 := f[1].num(1, 65535)
	if !v1 || !v2 {
		return errReply()
	}
	op := opSub{msgid: msgid}
	for i := 2; i < len(f); i += 2 {
		topic, vt := f[i].str(1024)
		qos, vq := f[i+1].num(0, 2)
		if !vt || !vq || topic == "" {
			return errReply()
		}
		op.topics = append(op.topics, topic)
		op.qos = append(op.qos, byte(qos))
	}
	cl := e.clients[idx]
	if cl.state != stConnected {
		return errReply()
	}
	op.notBefore = e.m.resultNotBefore(0)
	cl.link.push(op)
	return ok()
}

func (e *engine) cmdQMTUNS(c cmdLine) reply {
	switch c.kind {
	case kindTest:
		return test(`+QMTUNS: (0-5),<msgid>,list of ["topic"]`)
	case kindSet:
	default:
		return errReply()
	}
	f, err := splitArgs(c.args)
	if err != nil || len(f) < 3 {
		return errReply()
	}
	idx, v1 := clientIndex(f[0])
	msgid, v2 := f[1].num(1, 65535)
	if !v1 || !v2 {
		return errReply()
	}
	op := opUns{msgid: msgid}
	for _, t := range f[2:] {
		topic, vt := t.str(1024)
		if !vt || topic == "" {
			return errReply()
		}
		op.topics = append(op.topics, topic)
	}
	cl := e.clients[idx]
	if cl.state != stConnected {
		return errReply()
	}
	op.notBefore = e.m.resultNotBefore(0)
	cl.link.push(op)
	return ok()
}

// AT+QMTPUBEX / AT+QMTPUB ----------------------------------------------------------------------

// pubHead parses <idx>,<msgid>,<qos>,<retain>,"<topic>" (the first five fields).
func (e *engine) pubHead(f []field, cmd string) (*dataEntry, bool) {
	idx, v1 := clientIndex(f[0])
	msgid, v2 := f[1].num(0, 65535)
	qos, v3 := f[2].num(0, 2)
	retain, v4 := f[3].num(0, 1)
	topic, v5 := f[4].str(1024)
	if !v1 || !v2 || !v3 || !v4 || !v5 || topic == "" || (qos == 0) != (msgid == 0) {
		return nil, false
	}
	cfg := e.clients[idx].cfg
	return &dataEntry{cmd: cmd, idx: idx, msgid: msgid, qos: qos, retain: retain == 1, topic: topic,
		hex: cfg.n("send/mode", 0) == 1 || cfg.n("dataformat", 0) == 1}, true
}

func (e *engine) cmdQMTPUBEX(c cmdLine) reply {
	switch c.kind {
	case kindTest:
		return test(`+QMTPUBEX: (0-5), <msgid>,(0-2),(0,1),"topic","length"`)
	}
	f, fits := c.argsBetween(6, 6)
	if !fits {
		return errReply() // the inline-string form is rejected on ASR firmware too
	}
	d, valid := e.pubHead(f, "+QMTPUBEX")
	if !valid {
		return errReply()
	}
	if d.want, valid = f[5].num(1, e.m.cfg.MaxPayload); !valid {
		return errReply()
	}
	if e.clients[d.idx].state != stConnected {
		return errReply()
	}
	d.kind = dataLen
	return e.enterData(d)
}

func (e *engine) cmdQMTPUB(c cmdLine) reply {
	switch c.kind {
	case kindTest:
		return test(`+QMTPUB: (0-5),(0-65535),(0-2),(0,1),<topic>,(1-4096)`)
	}
	f, fits := c.argsBetween(5, 6)
	if !fits {
		return errReply()
	}
	d, valid := e.pubHead(f, "+QMTPUB")
	if !valid {
		return errReply()
	}
	d.kind = dataCtrlZ
	if len(f) == 6 {
		if d.want, valid = f[5].num(1, e.m.cfg.MaxPayload); !valid {
			return errReply()
		}
		d.kind = dataLen
	}
	if e.clients[d.idx].state != stConnected {
		return errReply()
	}
	return e.enterData(d)
}

// Receiving ------------------------------------------------------------------------------------

// recvLine formats a message the way recv/mode and dataformat ask, with the length field in form.
func recvLine(cl *mqttClient, msgid int, topic string, payload []byte, form RecvForm) string {
	if cl.cfg.n("dataformat", 1) == 1 {
		payload = []byte(strings.ToUpper(hex.EncodeToString(payload)))
	}
	// The topic is printed raw between the quotes, as the payload is: a topic the broker passes
	// with `"`, CR or LF in it (legal in MQTT) appears on the wire as it is (reference 2.10).
	if cl.cfg.n("recv/mode", 1) == 1 {
		switch form {
		case RecvNextLine:
			return fmt.Sprintf("+QMTRECV: %d,%d,\"%s\",%d\r\n%s", cl.idx, msgid, topic, len(payload), payload)
		case RecvUnquoted:
			return fmt.Sprintf("+QMTRECV: %d,%d,\"%s\",%d,%s", cl.idx, msgid, topic, len(payload), payload)
		}
		return fmt.Sprintf("+QMTRECV: %d,%d,\"%s\",%d,\"%s\"", cl.idx, msgid, topic, len(payload), payload)
	}
	return fmt.Sprintf("+QMTRECV: %d,%d,\"%s\",\"%s\"", cl.idx, msgid, topic, payload)
}

// connectedClient is the first MQTT client whose CONNECT was accepted, or nil.
func (e *engine) connectedClient() *mqttClient {
	for _, cl := range e.clients {
		if cl != nil && cl.state == stConnected {
			return cl
		}
	}
	return nil
}

func (e *engine) deliver(cl *mqttClient, msgid int, topic string, payload []byte) {
	if cl.cfg.n("recv/mode", 0) == 0 {
		line := recvLine(cl, msgid, topic, payload, e.m.cfg.RecvForm)
		if e.m.cfg.RecvBlankLines {
			e.urcFramed("\r\n\r\n", line, "\r\n\r\n")
			return
		}
		e.urc(line)
		return
	}
	for slot, s := range cl.slots {
		if s == nil {
			cl.slots[slot] = &storedMsg{msgid: msgid, topic: topic, payload: payload}
			e.urc(fmt.Sprintf("+QMTRECV: %d,%d", cl.idx, slot))
			return
		}
	}
	e.log.Warn().Int("client", cl.idx).Str("topic", topic).Msg("all 5 receive slots are full: message dropped")
}

func (e *engine) cmdQMTRECV(c cmdLine) reply {
	switch c.kind {
	case kindTest:
		return test(`+QMTRECV: (0-5),(0-4)`)
	case kindRead:
		var lines []string
		for _, cl := range e.clients {
			stored := false
			var b strings.Builder
			b.WriteString("+QMTRECV: " + strconv.Itoa(cl.idx))
			for _, s := range cl.slots {
				if s != nil {
					stored = true
					b.WriteString(",1")
				} else {
					b.WriteString(",0")
				}
			}
			if stored || cl.state >= stOpen {
				lines = append(lines, b.String())
			}
		}
		return ok(lines...)
	}
	f, fits := c.argsBetween(1, 2)
	if !fits {
		return errReply()
	}
	idx, valid := clientIndex(f[0])
	if !valid {
		return errReply()
	}
	cl := e.clients[idx]
	from, to := 0, len(cl.slots)-1
	if len(f) == 2 {
		if from, valid = f[1].num(0, 4); !valid {
			return errReply()
		}
		to = from
	}
	var lines []string
	for slot := from; slot <= to; slot++ {
		if s := cl.slots[slot]; s != nil {
			lines = append(lines, recvLine(cl, s.msgid, s.topic, s.payload, RecvQuoted))
			cl.slots[slot] = nil
		}
	}
	return ok(lines...)
}

// Link events ----------------------------------------------------------------------------------

// current returns the client whose link l is, or nil for a stale link.
func (e *engine) current(l *link) *mqttClient {
	if l.boot != e.boot {
		return nil
	}
	if cl := e.clients[l.idx]; cl.link == l {
		return cl
	}
	return nil
}

// detachLink forgets the client's link (its goroutines end on their own) and closes the index.
func (e *engine) detachLink(cl *mqttClient) {
	if cl.link != nil {
		cl.link.stop()
		cl.link = nil
	}
	cl.state = stClosed
	cl.early = nil
}

func (e *engine) linkEvent(ev any) {
	switch ev := ev.(type) {
	case evOpened:
		cl := e.current(ev.l)
		if cl == nil || cl.state != stOpening {
			return
		}
		if ev.code == 0 {
			cl.state = stOpen
		} else {
			e.detachLink(cl)
		}
		e.urc(fmt.Sprintf("+QMTOPEN: %d,%d", cl.idx, ev.code))
	case evConnected:
		cl := e.current(ev.l)
		if cl == nil || cl.state != stConnecting {
			return
		}
		switch {
		case ev.fail == connSendFailed:
			e.detachLink(cl)
			e.urc(fmt.Sprintf("+QMTCONN: %d,2", cl.idx))
		case ev.fail > 0:
			e.detachLink(cl)
			e.statURC(cl.idx, ev.fail)
		case ev.fail < 0:
			e.detachLink(cl)
		default:
			if ev.rc == 0 {
				cl.state = stConnected
			} else {
				e.detachLink(cl)
			}
			cfg := e.m.cfg
			switch {
			case ev.rc != 0 && cfg.RefusalStatOnly:
				// Reference 2.3 VARIANT (M95): no +QMTCONN, only the link's end.
				e.urc(fmt.Sprintf("+QMTSTAT: %d,%d", cl.idx, statPeerClosed))
			case ev.rc != 0:
				e.urc(fmt.Sprintf("+QMTCONN: %d,0,%d", cl.idx, ev.rc))
				if !cfg.SilentRefusal {
					// The broker closes the connection after a refusal (MQTT 3.1.1, 3.2.2.3);
					// a BG95-M3 reports it as code 4 (Config.RefusalStat).
					code := statPeerClosed
					if cfg.RefusalStat != 0 {
						code = cfg.RefusalStat
					}
					e.urc(fmt.Sprintf("+QMTSTAT: %d,%d", cl.idx, code))
				}
			case cfg.ConnAckTwoFields:
				e.urc(fmt.Sprintf("+QMTCONN: %d,0", cl.idx)) // reference 2.3 VARIANT: no ret_code
			default:
				e.urc(fmt.Sprintf("+QMTCONN: %d,0,%d", cl.idx, ev.rc))
			}
			for _, m := range cl.early {
				e.deliver(cl, m.msgid, m.topic, m.payload)
			}
			cl.early = nil
		}
	case evLost:
		cl := e.current(ev.l)
		if cl == nil || ev.code <= 0 {
			return
		}
		e.detachLink(cl)
		e.statURC(cl.idx, ev.code)
	case evDisc:
		if cl := e.current(ev.l); cl != nil {
			e.detachLink(cl)
			e.urc(fmt.Sprintf("+QMTDISC: %d,0", cl.idx))
		}
	case evClosed:
		if cl := e.current(ev.l); cl != nil {
			e.detachLink(cl)
			e.urc(fmt.Sprintf("+QMTCLOSE: %d,0", cl.idx))
		}
	case evSubDone:
		if cl := e.current(ev.l); cl != nil {
			if !ev.ok {
				e.urc(fmt.Sprintf("+QMTSUB: %d,%d,2", cl.idx, ev.msgid))
				return
			}
			g := make([]string, len(ev.granted))
			for i, q := range ev.granted {
				g[i] = strconv.Itoa(q)
			}
			e.urc(fmt.Sprintf("+QMTSUB: %d,%d,0,%s", cl.idx, ev.msgid, strings.Join(g, ",")))
		}
	case evUnsDone:
		if cl := e.current(ev.l); cl != nil {
			e.urc(fmt.Sprintf("+QMTUNS: %d,%d,%d", cl.idx, ev.msgid, okResult(ev.ok)))
		}
	case evPubRetry:
		if cl := e.current(ev.l); cl != nil {
			e.urc(fmt.Sprintf("%s: %d,%d,1,%d", ev.cmd, cl.idx, ev.msgid, ev.count))
		}
	case evPubDone:
		if cl := e.current(ev.l); cl != nil {
			e.urc(fmt.Sprintf("%s: %d,%d,%d", ev.cmd, cl.idx, ev.msgid, okResult(ev.ok)))
		}
	case evMsg:
		switch cl := e.current(ev.l); {
		case cl == nil:
		case cl.state == stConnected:
			e.deliver(cl, ev.msgid, ev.topic, ev.payload)
		case cl.state == stConnecting:
			cl.early = append(cl.early, ev)
		}
	}
}

func okResult(ok bool) int {
	if ok {
		return 0
	}
	return 2
}

// statURC reports a dead link; a keep-alive failure is announced by +QMTPING first.
func (e *engine) statURC(idx, code int) {
	if code == statPingFailed {
		e.urc(fmt.Sprintf("+QMTPING: %d,1", idx))
	}
	e.urc(fmt.Sprintf("+QMTSTAT: %d,%d", idx, code))
}

// killLinks breaks the broker link of every client that has one (for PingFail: every connected
// client) with the given +QMTSTAT code.
func (e *engine) killLinks(code int) error {
	n := 0
	for _, cl := range e.clients {
		ok := cl.link != nil && cl.state >= stOpen && cl.state <= stConnected
		if code == statPingFailed {
			ok = cl.link != nil && cl.state == stConnected
		}
		if ok && cl.link.kill(code) {
			n++
		}
	}
	if n == 0 {
		return ErrNoLink
	}
	e.log.Info().Int("links", n).Int("qmtstat", code).Msg("fault: broker links broken")
	return nil
}

// killLinksOn breaks the links of clients that use PDP context cid.
func (e *engine) killLinksOn(cid, code int) {
	for _, cl := range e.clients {
		if cl.link == nil || cl.cfg.n("pdpcid", 0) != cid {
			continue
		}
		if cl.state == stOpening {
			e.detachLink(cl)
			e.urc(fmt.Sprintf("+QMTOPEN: %d,3", cl.idx))
			continue
		}
		if !cl.link.kill(code) {
			e.detachLink(cl)
			e.statURC(cl.idx, code)
		}
	}
}
