package sim

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/rs/zerolog"
)

// DefaultMaxLine is the longest command line kept unless Config.MaxLine says otherwise; a longer
// one is answered with ERROR.
const DefaultMaxLine = 4096

// Registration <n> slots: AT+CREG, AT+CGREG, AT+CEREG.
const (
	regCREG = iota
	regCGREG
	regCEREG
)

var regNames = [3]string{"+CREG", "+CGREG", "+CEREG"}

// Cell location reported by the <n>=2 forms of AT+CxREG (made up, fixed).
const (
	cellArea = "1A2B"
	cellID   = "0C3D4E5F"
	cellAcT  = 7 // E-UTRAN
)

// pdpContext is one AT+QICSGP / AT+QIACT context.
type pdpContext struct {
	ctype            int // 1 IPv4, 2 IPv6, 3 IPv4v6
	apn, user, pass  string
	auth             int
	active           bool
	configuredByHost bool
}

// Module-level input events.
type inputEvent struct {
	p *port
	b []byte
}

type portGone struct {
	p   *port
	err error
}

// engine owns every piece of module state; only its goroutine touches it.
type engine struct {
	m   *Module
	log zerolog.Logger
	ctx context.Context

	id         Identity
	port       *port
	w          *writer
	portCancel context.CancelFunc

	boot        uint64 // incremented at each power-on; links remember theirs
	booting     bool
	bootTimer   *time.Timer
	appTimer    *time.Timer // APP RDY after RDY (Config.AppReady)
	poweredDown bool
	// firstError: the next command line is answered ERROR (Config.FirstATError), once per power-on.
	firstError bool
	// bearerRace: the next AT+QIACT? that finds cid 1 inactive is followed by its return (BearerRace).
	bearerRace bool

	echo       bool
	cmee       int
	cfun       int
	regN       [3]int
	sim        bool // physical: survives reboot
	simBusy    bool // the SIM is present but still initialising: SIM commands answer +CME ERROR: 14
	simTimer   *time.Timer
	registered bool // the network accepts us (physical)
	rssi, ber  int
	pdp        [16]pdpContext // index = cid 1-15
	urcPort    string         // AT+QURCCFG="urcport", saved in NV: survives reboot
	clients    [6]*mqttClient
	files      map[string][]byte // the UFS, in flash: survives reboot, not a module swap
	ssl        [6]sslContext     // AT+QSSLCFG contexts 0-5, in RAM

	line      []byte
	lineLong  bool
	data      *dataEntry
	dataTimer *time.Timer
	held      [][]byte  // URCs held back while the host is typing data after "> "
	born      time.Time // power-on: a clock the network never set counts from here

	promptTimer *time.Timer // PromptDelay: the prompt of e.data is still to come
	promptSpace bool        // SplitPrompt: the prompt's space goes in front of the next output
}

func newEngine(m *Module) *engine {
	return &engine{
		m:          m,
		log:        m.log,
		id:         m.cfg.Identity,
		sim:        true,
		registered: true,
		rssi:       31,
		ber:        99,
		urcPort:    m.cfg.SavedURCPort,
		files:      make(map[string][]byte),
		born:       time.Now(),
	}
}

func timerC(t *time.Timer) <-chan time.Time {
	if t == nil {
		return nil
	}
	return t.C
}

// run is the engine goroutine: it serves the port p until ctx ends.
func (e *engine) run(ctx context.Context, p *port) {
	e.ctx = ctx
	e.attach(p)
	e.powerOn()
	for {
		select {
		case <-ctx.Done():
			e.shutdown()
			return
		case fn := <-e.m.reqs:
			fn(e)
		case ev := <-e.m.events:
			e.handle(ev)
		case <-timerC(e.bootTimer):
			e.bootTimer = nil
			e.bootDone()
		case <-timerC(e.appTimer):
			e.appTimer = nil
			e.urc("APP RDY")
		case <-timerC(e.simTimer):
			e.simTimer = nil
			e.simReady()
		case <-timerC(e.dataTimer):
			e.dataTimer = nil
			e.dataTimeout()
		case <-timerC(e.promptTimer):
			e.promptTimer = nil
			e.promptDue()
		}
	}
}

// attach starts the reader and writer of a freshly plugged-in port.
func (e *engine) attach(p *port) {
	pctx, cancel := context.WithCancel(e.ctx)
	e.port, e.portCancel = p, cancel
	e.w = newWriter(e.m, p.master)
	e.m.mu.Lock()
	e.m.tty = p.tty
	e.m.plugged = true
	e.m.mu.Unlock()
	e.m.wg.Add(2)
	go func() {
		defer e.m.wg.Done()
		e.w.run(pctx)
	}()
	go func() {
		defer e.m.wg.Done()
		e.m.readLoop(pctx, p)
	}()
}

// readLoop hands what the host writes to the engine until the port closes.
func (m *Module) readLoop(ctx context.Context, p *port) {
	buf := make([]byte, 4096)
	for {
		n, err := p.master.Read(buf)
		if n > 0 {
			b := append([]byte(nil), buf[:n]...)
			select {
			case m.events <- inputEvent{p: p, b: b}:
			case <-ctx.Done():
				return
			}
		}
		if err != nil {
			select {
			case m.events <- portGone{p: p, err: err}:
			case <-ctx.Done():
			}
			return
		}
	}
}

// detach closes the current port (the host sees a hang-up) and removes the symlink.
func (e *engine) detach() {
	if e.port == nil {
		return
	}
	e.portCancel()
	e.port.close()
	if err := removeLink(e.m.cfg.Link, e.port.tty); err != nil {
		e.log.Warn().Err(err).Msg("remove link")
	}
	e.port, e.w = nil, nil
	e.m.mu.Lock()
	e.m.tty = ""
	e.m.plugged = false
	e.m.mu.Unlock()
}

// shutdown ends everything for Close.
func (e *engine) shutdown() {
	e.powerOff()
	e.detach()
	e.log.Info().Msg("module closed")
}

// powerOff drops every link without DISCONNECT and forgets volatile state.
func (e *engine) powerOff() {
	for _, c := range e.clients {
		if c != nil && c.link != nil {
			c.link.stop()
			c.link = nil
		}
	}
	stopTimer(&e.bootTimer)
	stopTimer(&e.appTimer)
	stopTimer(&e.dataTimer)
	e.data, e.held, e.line = nil, nil, nil
}

// powerOn resets every volatile setting and boots: input is ignored until RDY, which comes after
// Config.BootDelay.
func (e *engine) powerOn() { e.powerOnIn(e.m.cfg.BootDelay) }

// powerOnIn is powerOn with RDY after d.
func (e *engine) powerOnIn(d time.Duration) {
	e.boot++
	e.echo = true
	e.cmee = 1
	e.cfun = 1
	e.regN = [3]int{}
	e.poweredDown = false
	e.firstError = e.m.cfg.FirstATError
	e.stopSIMTimer()
	e.simBusy = e.sim && e.m.cfg.SIMBusy > 0 // until simInit's timer, after RDY
	e.line, e.lineLong, e.data, e.held = nil, false, nil, nil
	for cid := range e.pdp {
		e.pdp[cid] = pdpContext{ctype: 1}
	}
	for i := range e.clients {
		e.clients[i] = &mqttClient{idx: i, cfg: newClientCfg()}
	}
	for i := range e.ssl {
		e.ssl[i] = newSSLContext()
	}
	if e.regStat() == 1 {
		e.pdp[1].active = true // LTE attach brings up the default bearer on cid 1
	}
	e.booting = true
	if d > 0 {
		e.bootTimer = time.NewTimer(d)
		return
	}
	e.bootDone()
}

// bootDone prints the power-up URCs (reference 4.1) and starts taking commands.
func (e *engine) bootDone() {
	e.booting = false
	e.urc("RDY")
	if d := e.m.cfg.AppReady; d > 0 {
		e.appTimer = time.NewTimer(d)
	}
	e.urc("+CFUN: 1")
	if e.sim {
		e.simInit()
	} else {
		e.urc("+CPIN: NOT READY")
	}
	e.log.Info().Uint64("boot", e.boot).Msg("boot complete (RDY)")
}

// simInit starts the SIM's initialisation (at power-on, or when a SIM is put in): for
// Config.SIMBusy the SIM commands answer +CME ERROR: 14 (SIM busy), then it is ready.
func (e *engine) simInit() {
	stopTimer(&e.simTimer)
	if d := e.m.cfg.SIMBusy; d > 0 {
		e.simBusy = true
		e.simTimer = time.NewTimer(d)
		return
	}
	e.simReady()
}

// simReady ends the SIM's initialisation with the URCs the reference shows after RDY; the
// module registers once it has a SIM.
func (e *engine) simReady() {
	e.urc("+CPIN: READY")
	e.changeRadio(func() { e.simBusy = false })
	e.urc("+QUSIM: 1")
	e.urc("+QIND: SMS DONE")
	e.urc("+QIND: PB DONE")
}

func (e *engine) stopSIMTimer() {
	stopTimer(&e.simTimer)
	e.simBusy = false
}

// simError is the +CME ERROR a SIM command gets while the SIM is absent (10) or still busy (14),
// and ok = false when the SIM can answer.
func (e *engine) simError() (reply, bool) {
	switch {
	case !e.sim:
		return e.cme(10), true
	case e.simBusy:
		return e.cme(14), true
	}
	return reply{}, false
}

func (e *engine) reboot() {
	e.powerOff()
	e.powerOn()
}

// reset is AT+CFUN=1,1 after its OK, as a BG96 printed it (reference 4.1): after a moment
// (resetPrintDelay), POWERED DOWN with no CR LF after it and a stale +QIURC: "pdpdeact" for each
// active PDP context (whose CR LF ends the POWERED DOWN line); then silence — input ignored —
// until RDY, Config.ResetDelay after the reset (and APP RDY after it with Config.AppReady).
func (e *engine) reset() {
	var b []byte
	if e.urcPort == "all" || e.urcPort == e.m.cfg.URCPort {
		b = []byte("\r\nPOWERED DOWN")
		for cid := range e.pdp {
			if e.pdp[cid].active {
				b = fmt.Appendf(b, "\r\n+QIURC: \"pdpdeact\",%d\r\n", cid)
			}
		}
	}
	d := e.m.cfg.ResetDelay
	switch {
	case d == 0:
		d = DefaultResetDelay
	case d < 0:
		d = 0
	}
	d = max(d, e.m.cfg.BootDelay)
	e.powerOff()
	if d <= resetPrintDelay {
		if b != nil {
			e.emit(outItem{b: b})
		}
		e.powerOnIn(d)
		return
	}
	e.powerOnIn(d)
	boot, m := e.boot, e.m
	time.AfterFunc(resetPrintDelay, func() {
		_ = m.do(func(e *engine) error {
			if e.boot == boot && e.booting && e.w != nil && b != nil {
				e.emit(outItem{b: b})
			}
			return nil
		})
	})
}

// resetPrintDelay is how long after its OK AT+CFUN=1,1 prints POWERED DOWN.
const resetPrintDelay = 100 * time.Millisecond

func (e *engine) unplug() {
	e.powerOff()
	e.detach()
}

func (e *engine) replug(id Identity) error {
	p, err := openPort()
	if err != nil {
		return err
	}
	if err := publishLink(e.m.cfg.Link, p.tty); err != nil {
		p.close()
		return err
	}
	if id.IMEI != e.id.IMEI {
		e.urcPort = "usbat" // a different module has its own NV
		clear(e.files)      // and its own flash
	}
	e.id = id
	e.m.mu.Lock()
	e.m.ident = id
	e.m.mu.Unlock()
	e.attach(p)
	e.powerOn()
	return nil
}

// handle processes one event from the reader or a link.
func (e *engine) handle(ev any) {
	switch ev := ev.(type) {
	case inputEvent:
		if ev.p == e.port {
			e.input(ev.b)
		}
	case portGone:
		if ev.p == e.port {
			e.log.Warn().Err(ev.err).Msg("pty read failed")
		}
	default:
		e.linkEvent(ev)
	}
}

// output --------------------------------------------------------------------------------------

// emit queues bytes for the host unless the module is wedged or unplugged.
func (e *engine) emit(it outItem) {
	if e.w == nil {
		return
	}
	if e.m.unresponsive.Load() {
		e.log.Debug().Int("bytes", len(it.b)).Msg("unresponsive: output dropped")
		return
	}
	if e.promptSpace {
		e.promptSpace = false
		it.b = append([]byte{' '}, it.b...)
	}
	if e.log.GetLevel() <= zerolog.TraceLevel {
		e.log.Trace().Str("tx", strconv.Quote(string(it.b))).Msg("to host")
	}
	e.w.enqueue(it)
}

// urc sends an unsolicited line, honouring AT+QURCCFG="urcport" and holding it back while the
// host is typing data after a "> " prompt.
// maxLine is the longest command line this module takes.
func (e *engine) maxLine() int {
	if n := e.m.cfg.MaxLine; n > 0 {
		return n
	}
	return DefaultMaxLine
}

func (e *engine) urc(line string) { e.urcFramed("\r\n", line, "\r\n") }

// urcFramed is urc with the bytes before and after the line given.
func (e *engine) urcFramed(pre, line, post string) {
	if e.urcPort != "all" && e.urcPort != e.m.cfg.URCPort {
		e.log.Debug().Str("urc", line).Str("urcport", e.urcPort).Msg("URC goes to another port")
		return
	}
	b := []byte(pre + line + post)
	if e.data != nil {
		if e.promptTimer == nil {
			e.held = append(e.held, b)
			return
		}
		e.m.urcsBeforePrompt.Add(1) // the prompt is still to come: the URC goes first (BG96)
	}
	e.log.Debug().Str("urc", line).Msg("urc")
	e.emit(outItem{b: b})
}

func (e *engine) flushHeld() {
	held := e.held
	e.held = nil
	for _, b := range held {
		e.emit(outItem{b: b})
	}
}

// reply is a command's answer.
type reply struct {
	lines   []string
	final   string // "OK", "ERROR", "+CME ERROR: ..."; "" when the command continues in data mode
	compact bool   // MQTT test-command quirk: the info line, one CRLF, then "OK\r\n"
	prompt  bool   // the "\r\n> " data prompt
	after   func() // runs once the reply is queued (URCs that must follow the OK, reboots)
}

func ok(lines ...string) reply { return reply{lines: lines, final: "OK"} }
func errReply() reply          { return reply{final: "ERROR"} }

// test builds the answer to an MQTT =? command, with the BG770A layout the reference logs.
func test(line string) reply { return reply{lines: []string{line}, final: "OK", compact: true} }

// cmeText gives the CMEE=2 wording for the codes the emulator returns.
var cmeText = map[int]string{
	3:  "operation not allowed",
	4:  "operation not supported",
	10: "SIM not inserted",
	30: "no network service",

	fsNotFound:    "file not found",
	fsBadName:     "invalid file name",
	fsExists:      "file already existed",
	fsNoSpace:     "no space",
	fsTimeout:     "time out",
	fsFileTooLong: "file too large",
}

// cme answers an error the CMEE way: ERROR, +CME ERROR: <n> or +CME ERROR: <text>.
func (e *engine) cme(code int) reply {
	switch e.cmee {
	case 0:
		return errReply()
	case 2:
		return reply{final: "+CME ERROR: " + cmeText[code]}
	default:
		return reply{final: "+CME ERROR: " + strconv.Itoa(code)}
	}
}

func (e *engine) send(r reply) {
	var b []byte
	for i, l := range r.lines {
		if i == 0 {
			b = append(b, "\r\n"...)
		}
		b = append(b, l...)
		b = append(b, "\r\n"...)
	}
	if r.prompt {
		b = append(b, "\r\n> "...)
		if e.m.cfg.SplitPrompt {
			b = b[:len(b)-1]
			defer func() { e.promptSpace = true }() // after this reply is queued
		}
	}
	if r.final != "" {
		if !r.compact || len(r.lines) == 0 {
			b = append(b, "\r\n"...)
		}
		b = append(b, r.final...)
		b = append(b, "\r\n"...)
	}
	if len(b) > 0 {
		e.emit(outItem{b: b, answer: true})
	}
	if r.after != nil {
		r.after()
	}
}

// input ---------------------------------------------------------------------------------------

// input consumes bytes from the host: echo as they arrive, lines at CR, data after a prompt.
func (e *engine) input(b []byte) {
	if e.m.unresponsive.Load() {
		e.log.Debug().Int("bytes", len(b)).Msg("unresponsive: input ignored")
		return
	}
	if e.booting || e.poweredDown || e.w == nil {
		e.log.Debug().Int("bytes", len(b)).Bool("booting", e.booting).Msg("input while not ready: ignored")
		return
	}
	if e.log.GetLevel() <= zerolog.TraceLevel {
		e.log.Trace().Str("rx", strconv.Quote(string(b))).Msg("from host")
	}
	var echo []byte
	flush := func() {
		if len(echo) > 0 {
			e.emit(outItem{b: echo})
			echo = nil
		}
	}
	for len(b) > 0 {
		if e.data != nil {
			flush()
			n := e.feedData(b)
			b = b[n:]
			continue
		}
		c := b[0]
		b = b[1:]
		if e.echo {
			echo = append(echo, c)
		}
		switch c {
		case '\r':
			flush()
			line := string(e.line)
			long := e.lineLong
			e.line, e.lineLong = e.line[:0], false
			if long {
				e.send(errReply())
				continue
			}
			boot := e.boot
			e.execLine(line)
			if e.w == nil || e.boot != boot || e.poweredDown {
				return // the command rebooted or powered down the module: the rest is lost
			}
		case '\n':
		case 0x08, 0x7f:
			if len(e.line) > 0 {
				e.line = e.line[:len(e.line)-1]
			}
		default:
			if len(e.line) < e.maxLine() {
				e.line = append(e.line, c)
			} else {
				e.lineLong = true
			}
		}
	}
	flush()
}

func (e *engine) execLine(line string) {
	c, ok := parseCommand(line)
	if ok && e.m.cfg.StrayError && indexAT(line) > 0 {
		e.log.Debug().Str("line", strconv.Quote(line)).Msg("stray bytes before AT: ERROR")
		e.send(errReply())
		return
	}
	if !ok {
		if strings.TrimSpace(line) != "" {
			e.log.Debug().Str("line", strconv.Quote(line)).Msg("not a command: ignored")
		}
		return
	}
	e.m.commands.Add(1)
	e.log.Debug().Str("cmd", redact(c)).Msg("command")
	e.send(e.dispatch(c))
}

// redact hides credentials in what the log shows.
func redact(c cmdLine) string {
	if c.name == "+QMTCONN" && c.kind == kindSet {
		if f, err := splitArgs(c.args); err == nil && len(f) > 2 {
			return fmt.Sprintf("AT+QMTCONN=%s,%q,***", f[0].text, f[1].text)
		}
	}
	if c.name == "+QMTCFG" && strings.Contains(strings.ToLower(c.args), "auth") {
		return "AT+QMTCFG=<auth settings>"
	}
	return c.raw
}

func (e *engine) dispatch(c cmdLine) reply {
	if e.firstError {
		// Reference 0: an EC2x-class module answered the first "at" after the port was opened
		// with ERROR, the next ones with OK.
		e.firstError = false
		return errReply()
	}
	if c.kind == kindExec && c.name == "" {
		return ok()
	}
	if e.m.refused(c.raw) {
		return errReply()
	}
	if c.kind == kindBasic {
		return e.basic(c.name)
	}
	h, found := handlers[c.name]
	if !found {
		return errReply()
	}
	return h(e, c)
}

// basic handles V.250 basic commands.
func (e *engine) basic(name string) reply {
	switch name {
	case "E", "E0":
		e.echo = false
		return ok()
	case "E1":
		e.echo = true
		return ok()
	case "I", "I0":
		return ok("Quectel", e.id.Model, "Revision: "+e.id.Revision)
	}
	return errReply()
}

// handlers maps an extended command name to its handler.
var handlers = map[string]func(*engine, cmdLine) reply{
	"+CGMI":     identLine(func(e *engine) string { return "Quectel" }),
	"+GMI":      identLine(func(e *engine) string { return "Quectel" }),
	"+CGMM":     identLine(func(e *engine) string { return e.id.Model }),
	"+GMM":      identLine(func(e *engine) string { return e.id.Model }),
	"+CGMR":     identLine(func(e *engine) string { return e.id.Revision }),
	"+GMR":      identLine(func(e *engine) string { return e.id.Revision }),
	"+GSN":      identLine(func(e *engine) string { return e.id.IMEI }),
	"+CGSN":     (*engine).cmdCGSN,
	"+QCCID":    (*engine).cmdQCCID,
	"+CIMI":     (*engine).cmdCIMI,
	"+CPIN":     (*engine).cmdCPIN,
	"+CSQ":      (*engine).cmdCSQ,
	"+COPS":     (*engine).cmdCOPS,
	"+CREG":     regHandler(regCREG),
	"+CGREG":    regHandler(regCGREG),
	"+CEREG":    regHandler(regCEREG),
	"+CGATT":    (*engine).cmdCGATT,
	"+QICSGP":   (*engine).cmdQICSGP,
	"+QIACT":    (*engine).cmdQIACT,
	"+QIDEACT":  (*engine).cmdQIDEACT,
	"+QIDNSGIP": (*engine).cmdQIDNSGIP,
	"+CFUN":     (*engine).cmdCFUN,
	"+QURCCFG":  (*engine).cmdQURCCFG,
	"+CMEE":     (*engine).cmdCMEE,
	"+QPOWD":    (*engine).cmdQPOWD,
	"+QMTCFG":   (*engine).cmdQMTCFG,
	"+QMTOPEN":  (*engine).cmdQMTOPEN,
	"+QMTCLOSE": (*engine).cmdQMTCLOSE,
	"+QMTCONN":  (*engine).cmdQMTCONN,
	"+QMTDISC":  (*engine).cmdQMTDISC,
	"+QMTSUB":   (*engine).cmdQMTSUB,
	"+QMTUNS":   (*engine).cmdQMTUNS,
	"+QMTPUBEX": (*engine).cmdQMTPUBEX,
	"+QMTPUB":   (*engine).cmdQMTPUB,
	"+QMTRECV":  (*engine).cmdQMTRECV,
	"+QFUPL":    (*engine).cmdQFUPL,
	"+QFLST":    (*engine).cmdQFLST,
	"+QFDEL":    (*engine).cmdQFDEL,
	"+QFLDS":    (*engine).cmdQFLDS,
	"+QSSLCFG":  (*engine).cmdQSSLCFG,
	"+CCLK":     (*engine).cmdCCLK,
	"+QLTS":     (*engine).cmdQLTS,
}

// identLine answers an identification command: one line without prefix; =? is just OK.
func identLine(v func(*engine) string) func(*engine, cmdLine) reply {
	return func(e *engine, c cmdLine) reply {
		switch c.kind {
		case kindExec:
			return ok(v(e))
		case kindTest:
			return ok()
		}
		return errReply()
	}
}

func (e *engine) cmdCGSN(c cmdLine) reply {
	switch {
	case c.kind == kindExec || c.kind == kindSet && strings.TrimSpace(c.args) == "0":
		return ok(e.id.IMEI)
	case c.kind == kindSet && strings.TrimSpace(c.args) == "1":
		return ok("+CGSN: " + e.id.IMEI)
	case c.kind == kindTest:
		return ok("+CGSN: (0-1)")
	}
	return errReply()
}

func (e *engine) cmdQCCID(c cmdLine) reply {
	if c.kind != kindExec {
		return errReply()
	}
	if r, bad := e.simError(); bad {
		return r
	}
	return ok("+QCCID: " + e.id.ICCID)
}

func (e *engine) cmdCIMI(c cmdLine) reply {
	switch c.kind {
	case kindExec:
		if r, bad := e.simError(); bad {
			return r
		}
		return ok(e.id.IMSI)
	case kindTest:
		return ok()
	}
	return errReply()
}

func (e *engine) cmdCPIN(c cmdLine) reply {
	switch c.kind {
	case kindRead:
		if r, bad := e.simError(); bad {
			return r
		}
		return ok("+CPIN: READY")
	case kindTest:
		return ok()
	}
	return errReply()
}

func (e *engine) cmdCSQ(c cmdLine) reply {
	switch c.kind {
	case kindExec:
		if e.cfun != 1 || !e.sim {
			return ok("+CSQ: 99,99")
		}
		return ok(fmt.Sprintf("+CSQ: %d,%d", e.rssi, e.ber))
	case kindTest:
		return ok("+CSQ: (0-31,99),(0-7,99)")
	}
	return errReply()
}

// cmdCOPS answers the operator query the 3GPP way (TS 27.007; the reference gives AT+COPS only its
// timing): `+COPS: 0,0,"<name>",7` while registered on LTE, `+COPS: 0` otherwise. Config.Operator
// names the network; a name of digits only is printed with format 2 (numeric), as a module set
// to AT+COPS=3,2 does.
func (e *engine) cmdCOPS(c cmdLine) reply {
	switch c.kind {
	case kindRead:
		if e.regStat() != 1 {
			return ok("+COPS: 0")
		}
		name := e.m.cfg.Operator
		if name == "" {
			name = DefaultOperator
		}
		format := 0
		if strings.Trim(name, "0123456789") == "" {
			format = 2
		}
		return ok(fmt.Sprintf("+COPS: 0,%d,\"%s\",7", format, name))
	case kindTest:
		return ok(`+COPS: (1,"CHINA MOBILE","CMCC","46000",7),,(0-4),(0-2)`)
	}
	return errReply()
}

// registration ---------------------------------------------------------------------------------

// regStat is the <stat> of AT+CxREG: 1 registered (home), 2 searching, 0 not searching.
func (e *engine) regStat() int {
	switch {
	case e.cfun != 1 || !e.sim || e.simBusy:
		return 0
	case !e.registered:
		return 2
	}
	return 1
}

func regHandler(which int) func(*engine, cmdLine) reply {
	return func(e *engine, c cmdLine) reply {
		name := regNames[which]
		switch c.kind {
		case kindRead:
			n, stat := e.regN[which], e.regStat()
			if n == 2 && stat == 1 {
				return ok(fmt.Sprintf("%s: %d,%d,%q,%q,%d", name, n, stat, cellArea, cellID, cellAcT))
			}
			return ok(fmt.Sprintf("%s: %d,%d", name, n, stat))
		case kindTest:
			return ok(name + ": (0-2)")
		case kindSet:
			n, valid := oneNum(c.args, 0, 2)
			if !valid {
				return errReply()
			}
			e.regN[which] = n
			return ok()
		}
		return errReply()
	}
}

// regURC is the unsolicited form for <n> = 1 or 2.
func (e *engine) regURCs(stat int) {
	for which, n := range e.regN {
		switch {
		case n == 1 || n == 2 && stat != 1:
			e.urc(fmt.Sprintf("%s: %d", regNames[which], stat))
		case n == 2:
			e.urc(fmt.Sprintf("%s: %d,%q,%q,%d", regNames[which], stat, cellArea, cellID, cellAcT))
		}
	}
}

// changeRadio runs fn, which may change SIM, network or CFUN, and reports the consequences.
func (e *engine) changeRadio(fn func()) {
	before := e.regStat()
	fn()
	after := e.regStat()
	if before == after {
		return
	}
	e.regURCs(after)
	switch {
	case before == 1:
		for cid := range e.pdp {
			if e.pdp[cid].active {
				e.pdp[cid].active = false
				e.urc(fmt.Sprintf("+QIURC: \"pdpdeact\",%d", cid))
				e.killLinksOn(cid, statPeerClosed)
			}
		}
	case after == 1:
		e.pdp[1].active = true
	}
}

func (e *engine) setSIM(present bool) {
	if present == e.sim {
		return
	}
	if !present {
		e.urc("+CPIN: NOT READY")
	}
	e.changeRadio(func() {
		e.stopSIMTimer()
		e.sim = present
		e.simBusy = present && e.m.cfg.SIMBusy > 0
	})
	if present {
		e.simInit()
	}
}

func (e *engine) setRegistered(on bool) {
	e.changeRadio(func() { e.registered = on })
}

func (e *engine) cmdCGATT(c cmdLine) reply {
	switch c.kind {
	case kindRead:
		if e.regStat() == 1 {
			return ok("+CGATT: 1")
		}
		return ok("+CGATT: 0")
	case kindTest:
		return ok("+CGATT: (0,1)")
	case kindSet:
		if strings.TrimSpace(c.args) == "1" {
			if e.regStat() != 1 {
				return e.cme(30)
			}
			return ok()
		}
	}
	return errReply() // detach (AT+CGATT=0) is not emulated
}

// PDP contexts -----------------------------------------------------------------------------------

func (e *engine) cmdQICSGP(c cmdLine) reply {
	switch c.kind {
	case kindTest:
		if e.m.cfg.NoPAPOrCHAP {
			return ok(`+QICSGP: (1-15),(1-3),<APN>,<username>,<password>,(0-2)`)
		}
		return ok(`+QICSGP: (1-15),(1-3),<APN>,<username>,<password>,(0-3)`)
	case kindSet:
	default:
		return errReply()
	}
	f, err := splitArgs(c.args)
	if err != nil || len(f) < 1 || len(f) == 4 || len(f) > 6 {
		return errReply()
	}
	cid, valid := f[0].num(1, 15)
	if !valid {
		return errReply()
	}
	p := &e.pdp[cid]
	if len(f) == 1 {
		return ok(fmt.Sprintf("+QICSGP: %d,%q,%q,%q,%d", p.ctype, p.apn, p.user, p.pass, p.auth))
	}
	next := *p
	var v1, v2, v3, v4, v5 bool
	next.ctype, v1 = f[1].num(1, 3)
	v2, v3, v4, v5 = true, true, true, true
	if len(f) > 2 {
		next.apn, v2 = f[2].str(100)
	}
	if len(f) > 4 {
		next.user, v3 = f[3].str(127)
		next.pass, v4 = f[4].str(127)
	}
	if len(f) > 5 {
		hi := 3
		if e.m.cfg.NoPAPOrCHAP {
			hi = 2 // reference 4.2 VARIANT: the BG770A offers (0-2)
		}
		next.auth, v5 = f[5].num(0, hi)
	}
	if !v1 || !v2 || !v3 || !v4 || !v5 {
		return errReply()
	}
	next.configuredByHost = true
	*p = next
	return ok()
}

func pdpAddrs(cid, ctype int) string {
	v4 := fmt.Sprintf("%q", fmt.Sprintf("10.2.198.%d", 113+cid))
	v6 := fmt.Sprintf("%q", fmt.Sprintf("240E:404:8A1:D3C6::%X", cid))
	switch ctype {
	case 2:
		return v6
	case 3:
		return v4 + "," + v6
	}
	return v4
}

func (e *engine) cmdQIACT(c cmdLine) reply {
	switch c.kind {
	case kindRead:
		var lines []string
		for cid := 1; cid < len(e.pdp); cid++ {
			p := e.pdp[cid]
			switch {
			case !p.active:
			case e.m.cfg.DualStack != 0:
				// Reference 4.2 VARIANT: two addresses whatever the type field says (type 1 on
				// an EC600S, type 3 on an EC200U).
				lines = append(lines, fmt.Sprintf("+QIACT: %d,1,%d,%s", cid, e.m.cfg.DualStack, pdpAddrs(cid, 3)))
			default:
				lines = append(lines, fmt.Sprintf("+QIACT: %d,1,%d,%s", cid, p.ctype, pdpAddrs(cid, p.ctype)))
			}
		}
		if e.bearerRace && !e.pdp[1].active && e.regStat() == 1 {
			e.bearerRace = false
			e.pdp[1].active = true // after this answer: the host saw it down
			e.log.Info().Msg("fault: the default bearer is back by itself")
		}
		return ok(lines...)
	case kindTest:
		return ok("+QIACT: (1-15)")
	case kindSet:
		cid, valid := oneNum(c.args, 1, 15)
		if !valid || e.pdp[cid].active {
			return errReply() // already active: ERROR, as on some firmware
		}
		if e.regStat() != 1 {
			return e.cme(30)
		}
		e.pdp[cid].active = true
		return ok()
	}
	return errReply()
}

// dnsAddr is what every host name resolves to while DNS works: the emulator routes every
// connection to its broker whatever the name, so the address only has to look right.
const dnsAddr = "203.0.113.10"

// cmdQIDNSGIP resolves a host name through PDP context <cid>, the way Quectel's TCP/IP
// application notes give it (the reference does not list AT+QIDNSGIP; UNCONFIRMED on EC600):
// OK, then +QIURC: "dnsgip",<err>,<IP_count>,<DNS_ttl> and one +QIURC: "dnsgip","<addr>" per
// address. <err> 0 is success; 565 (DNS parse failed) while SetDNS(false); a context that is not
// active answers +CME ERROR: 561 (open PDP context failed) at once.
func (e *engine) cmdQIDNSGIP(c cmdLine) reply {
	switch c.kind {
	case kindTest:
		return ok(`+QIDNSGIP: (1-15),"hostname"`)
	}
	f, fits := c.argsBetween(2, 2)
	if !fits {
		return errReply()
	}
	cid, v1 := f[0].num(1, 15)
	host, v2 := f[1].str(255)
	if !v1 || !v2 || host == "" {
		return errReply()
	}
	if !e.pdp[cid].active {
		return e.cme(561)
	}
	r := ok()
	r.after = func() {
		if e.m.dnsDown.Load() && net.ParseIP(host) == nil {
			e.urc(`+QIURC: "dnsgip",565`)
			return
		}
		addr := host
		if net.ParseIP(host) == nil {
			addr = dnsAddr
		}
		e.urc(`+QIURC: "dnsgip",0,1,600`)
		e.urc(fmt.Sprintf(`+QIURC: "dnsgip","%s"`, addr))
	}
	return r
}

func (e *engine) cmdQIDEACT(c cmdLine) reply {
	switch c.kind {
	case kindTest:
		return ok("+QIDEACT: (1-15)")
	case kindSet:
		cid, valid := oneNum(c.args, 1, 15)
		if !valid {
			return errReply()
		}
		if e.pdp[cid].active {
			e.pdp[cid].active = false
			e.killLinksOn(cid, statPeerClosed)
		}
		return ok()
	}
	return errReply()
}

// deactivatePDP is the network taking every context down.
func (e *engine) deactivatePDP() error {
	n := 0
	for cid := range e.pdp {
		if e.pdp[cid].active {
			e.pdp[cid].active = false
			e.urc(fmt.Sprintf("+QIURC: \"pdpdeact\",%d", cid))
			e.killLinksOn(cid, statPeerClosed)
			n++
		}
	}
	if n == 0 {
		return errors.New("sim: no PDP context is active")
	}
	return nil
}

// power and misc ------------------------------------------------------------------------------

func (e *engine) cmdCFUN(c cmdLine) reply {
	switch c.kind {
	case kindRead:
		return ok(fmt.Sprintf("+CFUN: %d", e.cfun))
	case kindTest:
		return ok("+CFUN: (0,1,4),(0,1)")
	}
	f, fits := c.argsBetween(1, 2)
	if !fits {
		return errReply()
	}
	fun, valid := f[0].num(0, 4)
	if !valid || fun == 2 || fun == 3 {
		return errReply()
	}
	rst := 0
	if len(f) == 2 {
		if rst, valid = f[1].num(0, 1); !valid {
			return errReply()
		}
	}
	if rst == 1 {
		if fun != 1 {
			return errReply()
		}
		r := ok()
		r.after = func() {
			e.log.Info().Msg("AT+CFUN=1,1: resetting")
			e.reset()
		}
		return r
	}
	r := ok()
	r.after = func() { e.changeRadio(func() { e.cfun = fun }) }
	return r
}

func (e *engine) cmdQURCCFG(c cmdLine) reply {
	switch c.kind {
	case kindTest:
		return ok(`+QURCCFG: "urcport",("usbat","usbmodem","uart1","uart2","all")`)
	}
	f, fits := c.argsBetween(1, 2)
	if !fits || !f[0].quoted || !strings.EqualFold(f[0].text, "urcport") {
		return errReply()
	}
	if len(f) == 1 {
		return ok(fmt.Sprintf(`+QURCCFG: "urcport",%q`, e.urcPort))
	}
	v, valid := f[1].str(16)
	switch v = strings.ToLower(v); {
	case !valid:
		return errReply()
	case v == "usbat", v == "usbmodem", v == "uart1", v == "uart2", v == "all":
		e.urcPort = v
		return ok()
	}
	return errReply()
}

func (e *engine) cmdCMEE(c cmdLine) reply {
	switch c.kind {
	case kindRead:
		return ok(fmt.Sprintf("+CMEE: %d", e.cmee))
	case kindTest:
		return ok("+CMEE: (0-2)")
	case kindSet:
		n, valid := oneNum(c.args, 0, 2)
		if !valid {
			return errReply()
		}
		e.cmee = n
		return ok()
	}
	return errReply()
}

// cmdQPOWD powers the module down: OK, POWERED DOWN, then silence until Reboot or Replug.
func (e *engine) cmdQPOWD(c cmdLine) reply {
	switch c.kind {
	case kindExec:
	case kindSet:
		f, fits := c.argsBetween(1, 1)
		if !fits {
			return errReply()
		}
		if _, valid := f[0].num(0, 1); !valid {
			return errReply()
		}
	case kindTest:
		return ok("+QPOWD: (0,1)")
	default:
		return errReply()
	}
	r := ok()
	r.after = func() {
		e.powerOff()
		e.emit(outItem{b: []byte("\r\nPOWERED DOWN\r\n")})
		e.poweredDown = true
		e.log.Info().Msg("AT+QPOWD: powered down until Reboot or Replug")
	}
	return r
}

// oneNum parses an argument list that is exactly one number within lo-hi.
func oneNum(args string, lo, hi int) (int, bool) {
	f, err := splitArgs(args)
	if err != nil || len(f) != 1 {
		return 0, false
	}
	return f[0].num(lo, hi)
}

// stopTimer stops the timer *t, if one is set, and forgets it.
func stopTimer(t **time.Timer) {
	if *t != nil {
		(*t).Stop()
		*t = nil
	}
}
