package replay

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"reflect"
	"strconv"
	"strings"
	"time"

	"github.com/gatewayd/gatewayd/at"
	"github.com/gatewayd/gatewayd/modem"
	"github.com/gatewayd/gatewayd/qmt"
)

// StepTimeout bounds each command of a replay and each wait for the reader: in a replay every
// answer is already there, so a command that needs longer has lost its answer.
const StepTimeout = 5 * time.Second

// group is a run of consecutive host records, and the module records that follow it.
type group struct {
	host   []Record
	module []byte // the module's bytes after the group, up to the next host record
}

func (g group) bytes() ([]byte, bool) {
	var b []byte
	for _, r := range g.host {
		if r.Dir == HostUnseen {
			return nil, false
		}
		b = append(b, r.Data...)
	}
	return b, true
}

func (g group) size() int {
	n := 0
	for _, r := range g.host {
		n += r.Size()
	}
	return n
}

func groups(t *Transcript) []group {
	var gs []group
	for i := 0; i < len(t.Records); {
		if t.Records[i].Dir == Module {
			i++ // before the first host record: read at start
			continue
		}
		var g group
		for ; i < len(t.Records) && t.Records[i].Dir != Module; i++ {
			g.host = append(g.host, t.Records[i])
		}
		for ; i < len(t.Records) && t.Records[i].Dir == Module; i++ {
			g.module = append(g.module, t.Records[i].Data...)
		}
		gs = append(gs, g)
	}
	return gs
}

// hasPrompt reports whether b holds a line that starts with the data prompt '>'.
func hasPrompt(b []byte) bool {
	for i, c := range b {
		if c == '>' && (i == 0 || b[i-1] == '\r' || b[i-1] == '\n') {
			return true
		}
	}
	return false
}

// hasConnect reports whether b holds a CONNECT line (the go-ahead of AT+QFUPL).
func hasConnect(b []byte) bool {
	for _, l := range bytes.FieldsFunc(b, func(r rune) bool { return r == '\r' || r == '\n' }) {
		if string(l) == "CONNECT" || bytes.HasPrefix(l, []byte("CONNECT ")) {
			return true
		}
	}
	return false
}

// runner holds one replay's stack.
type runner struct {
	port   *Port
	conn   *at.Conn
	sub    *at.Subscription
	client *qmt.Client
	mod    *modem.Module
	out    []string

	resyncing bool // the engine's resynchronisation is under way in the transcript: its ATs are the engine's
}

// onlyResync reports whether b holds nothing but what the engine's resynchronisation writes:
// ESC and "AT\r".
func onlyResync(b []byte) bool {
	b = bytes.ReplaceAll(b, []byte{0x1B}, nil)
	return len(bytes.ReplaceAll(b, []byte("AT\r"), nil)) == 0
}

// hasFinal reports whether the module's bytes b hold a final result, which ends the engine's
// resynchronisation: OK, ERROR, +CME ERROR or +CMS ERROR (any answer proves the module alive).
func hasFinal(b []byte) bool {
	for _, l := range bytes.FieldsFunc(b, func(r rune) bool { return r == '\r' || r == '\n' }) {
		if string(l) == "OK" || string(l) == "ERROR" || bytes.HasPrefix(l, []byte("+CME ERROR:")) || bytes.HasPrefix(l, []byte("+CMS ERROR:")) {
			return true
		}
	}
	return false
}

// Run replays t through the real engine and parsers (see the package comment) and returns the
// rendering, one event per string. It fails when the code wrote something the transcript does
// not have, a command timed out, or records were left unplayed; the rendering so far is
// returned with the error.
func Run(ctx context.Context, t *Transcript) ([]string, error) {
	mode := qmt.RecvDirectLength
	if t.Recv == RecvNoLength {
		mode = qmt.RecvDirect
	}
	r := &runner{port: NewPort(t)}
	// The resynchronisation settings are the daemon's (the defaults), so that a transcript in
	// which the engine resynchronised replays with the same tries.
	r.conn = at.New(r.port, at.Options{URCs: qmt.URCsFor(mode)})
	defer r.conn.Close()
	r.sub = r.conn.Subscribe()
	r.client = qmt.NewClient(r.conn, 0)
	defer r.client.Close()
	go func() {
		for range r.client.Events() { // the URCs are rendered from r.sub; the client's copy is not needed
		}
	}()
	r.mod = modem.New(r.conn)
	r.port.Start()

	gs := groups(t)
	for i := 0; i < len(gs); i++ {
		if err := r.settle(ctx); err != nil {
			return r.out, err
		}
		used, err := r.command(ctx, gs, i)
		if err != nil {
			return r.out, fmt.Errorf("%s: %w", t.Name, err)
		}
		i += used - 1
	}
	if err := r.settle(ctx); err != nil {
		return r.out, err
	}
	if !r.port.Done() {
		return r.out, fmt.Errorf("%s: the replay stopped %s: records left unplayed", t.Name, r.port.Position())
	}
	return r.out, nil
}

// settle waits for the reader to take everything readable, then renders the URCs it routed.
func (r *runner) settle(ctx context.Context) error {
	wctx, cancel := context.WithTimeout(ctx, StepTimeout)
	defer cancel()
	if err := r.port.WaitIdle(wctx); err != nil {
		return err
	}
	for {
		select {
		case l, ok := <-r.sub.C():
			if !ok {
				return fmt.Errorf("the engine ended: %w", r.conn.Err())
			}
			r.out = append(r.out, "urc "+Render(qmt.ParseURC(l)))
		default:
			return nil
		}
	}
}

// command sends the command of gs[i] (and its data, and for ATI+AT+GSN the next command) and
// renders the outcome. It returns how many groups it used.
func (r *runner) command(ctx context.Context, gs []group, i int) (int, error) {
	g := gs[i]
	b, ok := g.bytes()
	if ok && r.resyncing && onlyResync(b) {
		// A try of the engine's resynchronisation: the engine writes it before the next
		// command; it ends with the try the module answered.
		r.resyncing = !hasFinal(g.module)
		return 1, nil
	}
	r.resyncing = false
	if esc := bytes.IndexByte(b, 0x1B); ok && esc >= 0 {
		return 1, r.abandoned(ctx, g, b[:esc])
	}
	if !ok || len(b) == 0 || b[len(b)-1] != '\r' {
		return 0, fmt.Errorf("host bytes at line %d are not a command line ending in CR, and no prompt or CONNECT came before them", g.host[0].Line)
	}
	line := string(b[:len(b)-1])
	cctx, cancel := context.WithTimeout(ctx, StepTimeout)
	defer cancel()
	head := "cmd " + strconv.Quote(line)

	if hasPrompt(g.module) || hasConnect(g.module) {
		if i+1 >= len(gs) {
			return 0, fmt.Errorf("line %d: %q got a prompt but the transcript has no data after it", g.host[0].Line, line)
		}
		d := gs[i+1]
		data, seen := d.bytes()
		if !seen {
			data = bytes.Repeat([]byte{'x'}, d.size()) // the Port takes any bytes for unseen ones
		}
		cmd := at.Command{Line: line, AfterConnect: !hasPrompt(g.module)}
		if n := len(data); n > 0 && data[n-1] == 0x1A {
			cmd.Data, cmd.DataEnd = data[:n-1], data[n-1:]
		} else {
			cmd.Data = data
		}
		if cmd.Data == nil {
			cmd.Data = []byte{}
		}
		resp, err := r.conn.Do(cctx, cmd)
		r.out = append(r.out, head+" data "+strconv.Itoa(len(data))+" bytes")
		return 2, r.renderResponse(resp, err)
	}

	var res string
	var err error
	switch line {
	case "ATI":
		if i+1 < len(gs) {
			if nb, ok := gs[i+1].bytes(); ok && string(nb) == "AT+GSN\r" {
				id, err := r.mod.Identify(cctx)
				r.out = append(r.out, `cmd "ATI" "AT+GSN" modem.Identify `+fmt.Sprintf("%+v", id)+errText(err))
				return 2, r.fatal(err)
			}
		}
		var id modem.Identity
		id, err = r.mod.Product(cctx)
		res = "modem.Product " + fmt.Sprintf("%+v", id)
	case "AT+GSN":
		var imei string
		imei, err = r.mod.IMEI(cctx)
		res = "modem.IMEI " + strconv.Quote(imei)
	case "AT+CPIN?":
		var s string
		s, err = r.mod.SIMState(cctx)
		res = "modem.SIMState " + strconv.Quote(s)
	case "AT+QIACT?":
		var active bool
		var addr string
		active, addr, err = r.mod.PDPActive(cctx, 1)
		res = fmt.Sprintf("modem.PDPActive(1) active=%v addr=%q", active, addr)
	case "AT+CSQ":
		var dbm int
		var known bool
		dbm, known, err = r.mod.SignalDBm(cctx)
		res = fmt.Sprintf("modem.SignalDBm dbm=%d known=%v", dbm, known)
	case "AT+COPS?":
		var op string
		op, err = r.mod.Operator(cctx)
		res = "modem.Operator " + strconv.Quote(op)
	case `AT+QURCCFG="urcport"`:
		var port string
		port, err = r.mod.URCPort(cctx)
		res = "modem.URCPort " + strconv.Quote(port)
	case "AT+QMTOPEN?":
		var links []qmt.Link
		links, err = r.client.OpenLinks(cctx)
		res = fmt.Sprintf("qmt.OpenLinks %+v", links)
	case "AT+QMTCONN?":
		var st qmt.State
		st, err = r.client.ConnState(cctx)
		res = fmt.Sprintf("qmt.ConnState %d", st)
	default:
		resp, err := r.conn.Do(cctx, at.Command{Line: line, Answers: queryAnswers(line)})
		for tries := 0; errors.Is(err, at.ErrUnresponsive) && tries < 20; tries++ {
			// The resynchronisation before it got no OK: the recorded host did what
			// modem.Sync does and sent the command again (the next resynchronisation first).
			r.out = append(r.out, head, "  resync got no OK: sent again")
			resp, err = r.conn.Do(cctx, at.Command{Line: line, Answers: queryAnswers(line)})
		}
		r.out = append(r.out, head)
		return 1, r.renderResponse(resp, err)
	}
	r.out = append(r.out, head+" "+res+errText(err))
	return 1, r.fatal(err)
}

// resyncGiveUp is how long a replayed command that the module never answered is waited for.
const resyncGiveUp = 300 * time.Millisecond

// abandoned replays a command the module did not answer, after which the engine resynchronised
// (ESC, then AT until OK): the group holds the command (cmd, possibly empty when the group is only
// the resynchronisation) and then the ESC and the ATs the engine writes itself before the next
// command. The command is sent and given up on; the rest is left for the engine to write.
func (r *runner) abandoned(ctx context.Context, g group, cmd []byte) error {
	r.resyncing = !hasFinal(g.module)
	if len(cmd) == 0 {
		r.out = append(r.out, "resync (ESC, AT): written by the engine before the next command")
		return nil
	}
	if cmd[len(cmd)-1] != '\r' {
		return fmt.Errorf("host bytes at line %d before an ESC are not a command line ending in CR", g.host[0].Line)
	}
	line := string(cmd[:len(cmd)-1])
	cctx, cancel := context.WithTimeout(ctx, resyncGiveUp)
	defer cancel()
	_, err := r.conn.Do(cctx, at.Command{Line: line, Answers: queryAnswers(line)})
	if !errors.Is(err, at.ErrTimeout) {
		return fmt.Errorf("line %d: %q was answered (%v), but the transcript has the engine give up on it (ESC follows)", g.host[0].Line, line, err)
	}
	r.out = append(r.out, "cmd "+strconv.Quote(line), "  no answer: the engine resynchronises (ESC, AT) before the next command")
	return nil
}

// fatal passes on the errors that end a replay: a timeout or a lost engine. The module's refusals
// are rendered, not fatal.
func (r *runner) fatal(err error) error {
	if err == nil {
		return nil
	}
	if e := r.port.Err(); e != nil {
		return e
	}
	if errors.Is(err, at.ErrTimeout) || errors.Is(err, at.ErrPortGone) || errors.Is(err, at.ErrClosed) ||
		errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("replay %s: %w", r.port.Position(), err)
	}
	return nil
}

func errText(err error) string {
	if err == nil {
		return ""
	}
	return " error=" + strconv.Quote(err.Error())
}

// renderResponse renders a raw command's information lines and final result.
func (r *runner) renderResponse(resp at.Response, err error) error {
	for _, l := range resp.Lines {
		r.out = append(r.out, "  "+RenderLine(l))
	}
	if f := r.fatal(err); f != nil {
		return f
	}
	var cme *at.CMEError
	switch {
	case err == nil:
		r.out = append(r.out, "  OK")
	case errors.As(err, &cme):
		r.out = append(r.out, "  "+cme.Error())
	case errors.Is(err, at.ErrError):
		r.out = append(r.out, "  ERROR")
	default:
		r.out = append(r.out, "  error "+strconv.Quote(err.Error()))
	}
	return nil
}

// queryAnswers claims, for a query (AT+X?) or a test command (AT+X=?), the lines that start with
// +X: — as the daemon's own queries do — so that an answer whose prefix is also a URC (+CREG:,
// +QMTPUBEX:) goes to the command. Other commands claim nothing.
func queryAnswers(line string) func(at.Line) bool {
	u := strings.ToUpper(strings.TrimSpace(line))
	if !strings.HasPrefix(u, "AT+") || !strings.HasSuffix(u, "?") {
		return nil
	}
	name := strings.TrimSuffix(strings.TrimSuffix(u[2:], "?"), "=")
	prefix := name + ":"
	return func(l at.Line) bool { return strings.HasPrefix(l.Text, prefix) }
}

// RenderLine renders an information line: its text, and its counted payload and framing error
// when it has them, quoted byte for byte.
func RenderLine(l at.Line) string {
	s := "line " + strconv.Quote(l.Text)
	if l.Payload != nil {
		s += " payload " + strconv.Quote(string(l.Payload))
	}
	if l.Err != nil {
		s += " err " + strconv.Quote(l.Err.Error())
	}
	return s
}

// Render renders a decoded URC: its Go type and fields, a downlink's topic and payload quoted
// byte for byte.
func Render(ev qmt.Event) string {
	switch e := ev.(type) {
	case qmt.Received:
		return fmt.Sprintf("qmt.Received client=%d msgid=%d topic=%q payload=%q nolength=%v",
			e.Client, e.MsgID, e.Topic, e.Payload, e.NoLength)
	case qmt.Malformed:
		return fmt.Sprintf("qmt.Malformed line=%q err=%q", e.Line, e.Err.Error())
	case qmt.Unknown:
		return fmt.Sprintf("qmt.Unknown line=%q", e.Line)
	}
	return fmt.Sprintf("%T", ev) + fieldsOf(ev)
}

// fieldsOf renders a struct's fields as {Name:value ...}, without the String method the events
// have (which gives the module's wording, not the parsed fields).
func fieldsOf(v any) string {
	rv := reflect.ValueOf(v)
	if rv.Kind() != reflect.Struct {
		return fmt.Sprintf("{%v}", v)
	}
	var b strings.Builder
	b.WriteString("{")
	for i := 0; i < rv.NumField(); i++ {
		if i > 0 {
			b.WriteString(" ")
		}
		f := rv.Field(i)
		b.WriteString(rv.Type().Field(i).Name + ":")
		if f.Kind() == reflect.String {
			b.WriteString(strconv.Quote(f.String()))
			continue
		}
		fmt.Fprintf(&b, "%v", f.Interface())
	}
	b.WriteString("}")
	return b.String()
}
