package probe

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/gatewayd/gatewayd/at"
	"github.com/gatewayd/gatewayd/internal/replay"
	"github.com/gatewayd/gatewayd/qmt"
)

// script runs the steps in order; a step that leaves nothing to build on ends it.
func (p *prober) script(ctx context.Context) error {
	if err := p.opening(ctx); err != nil {
		return err
	}
	p.identity(ctx)
	p.urcPort(ctx)
	p.queries(ctx)
	if err := p.sim(ctx); err != nil {
		return err
	}
	p.registration(ctx)
	if err := p.pdp(ctx); err != nil {
		return err
	}
	if p.host == "" {
		p.find("MQTT part", "skipped: no -broker given")
		return nil
	}
	return p.mqtt(ctx)
}

// opening: the first AT after opening the port, echo, CMEE.
func (p *prober) opening(ctx context.Context) error {
	e0 := p.conn.Stats().Echoes
	_, err := p.do(ctx, at.Command{Line: "AT"}, 3*time.Second)
	if errors.Is(err, at.ErrTimeout) {
		p.find("first AT after opening the port", "no answer within 3 s")
		if err := p.wake(ctx); err != nil {
			return err
		}
	} else {
		p.find("first AT after opening the port", "%s", outcome(err))
	}
	echoOn := p.conn.Stats().Echoes > e0
	p.find("echo at open", "%s", onOff(echoOn))

	e1 := p.conn.Stats().Echoes
	if _, err := p.do(ctx, at.Command{Line: "ATE0"}, 3*time.Second); err != nil {
		return fmt.Errorf("probe: ATE0: %w", err)
	}
	if echoOn {
		p.find("ATE0 echoed itself", "%s", yesNo(p.conn.Stats().Echoes > e1))
		p.find("echo", "switched off for the probe (ATE0, not saved), switched back on at the end")
		p.restores = append(p.restores, func(ctx context.Context) error { return p.restoreCmd(ctx, "echo", "ATE1") })
	}

	resp, err := p.do(ctx, at.Command{Line: "AT+CMEE?", Answers: claims("+CMEE:")}, 3*time.Second)
	cmee := ""
	for _, l := range lineTexts(resp) {
		if v, ok := strings.CutPrefix(l, "+CMEE:"); ok {
			cmee = strings.TrimSpace(v)
		}
	}
	if err != nil || cmee == "" {
		p.find("CMEE at open", "AT+CMEE? answered %s %q", outcome(err), lineTexts(resp))
	} else {
		p.find("CMEE at open", "%s", cmee)
	}
	if _, err := p.do(ctx, at.Command{Line: "AT+CMEE=1"}, 3*time.Second); err != nil {
		return fmt.Errorf("probe: AT+CMEE=1: %w", err)
	}
	if cmee != "" && cmee != "1" {
		p.restores = append(p.restores, func(ctx context.Context) error { return p.restoreCmd(ctx, "CMEE", "AT+CMEE="+cmee) })
	}
	return nil
}

// wake sends AT until the module answers it (any answer proves it alive), for up to 30 s. Each
// try is given time for the engine's whole resynchronisation (ESC, then AT up to 3 × 500 ms), so
// that what the transcript shows does not depend on where a deadline fell: it replays.
func (p *prober) wake(ctx context.Context) error {
	deadline := time.Now().Add(30 * time.Second)
	for {
		_, err := p.do(ctx, at.Command{Line: "AT"}, 5*time.Second)
		var cme *at.CMEError
		switch {
		case err == nil || errors.Is(err, at.ErrError) || errors.As(err, &cme):
			p.find("module answered AT", "%s, %s after the port was opened", outcome(err), ms(time.Since(p.started)))
			return nil
		case errors.Is(err, at.ErrPortGone) || errors.Is(err, at.ErrClosed) || ctx.Err() != nil:
			return fmt.Errorf("probe: waiting for the module to answer AT: %w", err)
		case time.Now().After(deadline):
			return fmt.Errorf("probe: the module does not answer AT (30 s): %w", err)
		}
	}
}

// restoreCmd sends line to put a setting back, and says so.
func (p *prober) restoreCmd(ctx context.Context, what, line string) error {
	_, err := p.do(ctx, at.Command{Line: line}, 5*time.Second)
	p.find("restored "+what, "%s: %s", line, outcome(err))
	if err != nil {
		return fmt.Errorf("probe: restoring %s with %s: %w", what, line, err)
	}
	return nil
}

func onOff(b bool) string {
	if b {
		return "on"
	}
	return "off"
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

// identity: ATI and AT+GSN as the daemon asks them, and AT+CGMR.
func (p *prober) identity(ctx context.Context) {
	id, err := p.mod.Identify(ctx)
	if err != nil {
		p.find("identity (ATI, AT+GSN)", "%v", err)
	} else {
		p.ident = strings.TrimSpace(id.Manufacturer + " " + id.Model + " " + id.Revision)
		p.find("identity (ATI, AT+GSN)", "%s %s, revision %s, IMEI of %d digits", id.Manufacturer, id.Model, id.Revision, len(id.IMEI))
	}
	resp, err := p.do(ctx, at.Command{Line: "AT+CGMR"}, 3*time.Second)
	p.find("AT+CGMR", "%s %q", outcome(err), lineTexts(resp))
}

// urcPort makes sure URCs come to this port, changing the NV setting only when they would not,
// and saying so.
func (p *prober) urcPort(ctx context.Context) {
	const point = `urcport (AT+QURCCFG="urcport", kept in NV)`
	want := p.opts.URCPort
	got, err := p.mod.URCPort(ctx)
	switch {
	case err != nil:
		p.find(point, "cannot be read (%v): left as it is; URCs may not reach this port", err)
		return
	case got == want || got == "all":
		p.find(point, "%q: URCs come to this port; not changed", got)
		return
	}
	if err := p.mod.SetURCPort(ctx, want); err != nil {
		p.find(point, "%q: URCs would not reach this port, and setting %q failed: %v", got, want, err)
		return
	}
	p.find(point, "%q: URCs would not reach this port; CHANGED in NV to %q for the probe, to be restored to %q at the end", got, want, got)
	p.restores = append(p.restores, func(ctx context.Context) error {
		return p.restoreCmd(ctx, "urcport (NV)", `AT+QURCCFG="urcport","`+got+`"`)
	})
}

// queries: test and read commands whose answers differ by firmware.
func (p *prober) queries(ctx context.Context) {
	resp, err := p.do(ctx, at.Command{Line: "AT+QMTCFG=?"}, 5*time.Second)
	var names []string
	for _, l := range lineTexts(resp) {
		if v, ok := strings.CutPrefix(l, "+QMTCFG:"); ok {
			name, _, _ := strings.Cut(strings.TrimSpace(v), ",")
			names = append(names, strings.Trim(name, `"`))
		}
	}
	if err != nil || len(names) == 0 {
		p.find("AT+QMTCFG=? names", "%s %q", outcome(err), lineTexts(resp))
	} else {
		p.find("AT+QMTCFG=? names", "%s", strings.Join(names, " "))
	}
	resp, err = p.do(ctx, at.Command{Line: "AT+QICSGP=?"}, 5*time.Second)
	p.find("AT+QICSGP=? (the last range is the authentication offered)", "%s %q", outcome(err), lineTexts(resp))
	resp, err = p.do(ctx, at.Command{Line: "AT+QFLST"}, 5*time.Second)
	files, prefixed := 0, 0
	for _, l := range lineTexts(resp) {
		if v, ok := strings.CutPrefix(l, "+QFLST:"); ok {
			files++
			if strings.HasPrefix(strings.TrimSpace(v), `"UFS:`) {
				prefixed++
			}
		}
	}
	if err != nil || files == 0 {
		p.find(`AT+QFLST names carry "UFS:"`, "cannot tell: %s, %d files", outcome(err), files)
	} else {
		p.find(`AT+QFLST names carry "UFS:"`, "%d of %d", prefixed, files)
	}
}

// sim waits for the SIM (AT+CPIN?) as the daemon does, and says how long it took.
func (p *prober) sim(ctx context.Context) error {
	start := time.Now()
	first := ""
	for {
		st, err := p.mod.SIMState(ctx)
		now := st
		if err != nil {
			now = outcome(err)
		}
		if first == "" {
			first = now
		}
		if err == nil && st == "READY" {
			if time.Since(start) < 100*time.Millisecond && first == "READY" {
				p.find("SIM (AT+CPIN?)", "READY at the first ask")
			} else {
				p.find("SIM (AT+CPIN?)", "first %q, READY after %s", first, ms(time.Since(start)))
			}
			return nil
		}
		if time.Since(start) > 20*time.Second || ctx.Err() != nil {
			p.find("SIM (AT+CPIN?)", "first %q, still %q after 20 s", first, now)
			return fmt.Errorf("probe: the SIM is not ready (AT+CPIN?: %s)", now)
		}
		select {
		case <-time.After(250 * time.Millisecond):
		case <-ctx.Done():
		}
	}
}

// registration: what the network side looks like.
func (p *prober) registration(ctx context.Context) {
	resp, err := p.do(ctx, at.Command{Line: "AT+CEREG?", Answers: claims("+CEREG:")}, 3*time.Second)
	p.find("AT+CEREG?", "%s %q", outcome(err), lineTexts(resp))
	op, err := p.mod.Operator(ctx)
	p.find("AT+COPS? operator", "%q %s", op, outcome(err))
	dbm, known, err := p.mod.SignalDBm(ctx)
	if err != nil || !known {
		p.find("AT+CSQ", "not known (%s)", outcome(err))
	} else {
		p.find("AT+CSQ", "%d dBm", dbm)
	}
}

// pdp makes sure context 1 is active (as the daemon would), then asks AT+QIACT=1 again.
func (p *prober) pdp(ctx context.Context) error {
	m := p.rec.mark()
	active, addr, err := p.mod.PDPActive(ctx, 1)
	switch {
	case err != nil:
		p.find("AT+QIACT? (context 1)", "%v", err)
	case active:
		p.find("AT+QIACT? (context 1)", "active, first address %s (the daemon's reading); the answer: %q", addr, p.linesSince(m, "+QIACT:"))
	default:
		p.find("AT+QIACT? (context 1)", "not active")
		err := p.mod.ActivatePDP(ctx, 1)
		p.find("AT+QIACT=1 (activated for the probe, as the daemon does; not NV)", "%s", outcome(err))
		if err != nil {
			if p.host != "" {
				return fmt.Errorf("probe: context 1 cannot be activated (is the APN set? AT+QICSGP): %w", err)
			}
			return nil
		}
	}
	_, err = p.do(ctx, at.Command{Line: "AT+QIACT=1"}, 10*time.Second)
	p.find("AT+QIACT=1 on an active context", "%s", outcome(err))
	return nil
}

// mqttCmd sends one MQTT command; the URC that answers it is looked for from the returned mark.
func (p *prober) mqttCmd(ctx context.Context, cmd at.Command) (okAt time.Time, from int, err error) {
	from = p.urcs.mark()
	p.cmdMark = p.rec.mark()
	_, err = p.do(ctx, cmd, 10*time.Second)
	return time.Now(), from, err
}

func isClient(idx int) func(qmt.Event) bool {
	return func(ev qmt.Event) bool {
		switch e := ev.(type) {
		case qmt.Opened:
			return e.Client == idx
		case qmt.LinkClosed:
			return e.Client == idx
		case qmt.Connected:
			return e.Client == idx
		case qmt.Disconnected:
			return e.Client == idx
		case qmt.LinkStatus:
			return e.Client == idx
		}
		return false
	}
}

// mqtt is the MQTT part: open, refused CONNECT, CONNECT, subscribe, publish and receive back,
// disconnect.
func (p *prober) mqtt(ctx context.Context) error {
	lister := qmt.NewClient(p.conn, 0)
	go drain(lister)
	links, err := lister.OpenLinks(ctx)
	lister.Close()
	if err != nil {
		p.find("links open at start (AT+QMTOPEN?)", "%v", err)
		return fmt.Errorf("probe: AT+QMTOPEN?: %w", err)
	}
	used := map[int]bool{}
	var open []string
	for _, l := range links {
		used[l.Client] = true
		open = append(open, fmt.Sprintf("%d to %s:%d", l.Client, l.Host, l.Port))
	}
	idx := -1
	for i := 0; i <= 5; i++ {
		if !used[i] {
			idx = i
			break
		}
	}
	if len(open) == 0 {
		p.find("links open at start (AT+QMTOPEN?)", "none")
	} else {
		p.find("links open at start (AT+QMTOPEN?)", "%s (left alone)", strings.Join(open, ", "))
	}
	if idx < 0 {
		return errors.New("probe: all six MQTT client indexes are open; close them (or power-cycle the module) first")
	}

	// AT+QMTCLOSE on an index that is not open.
	okAt, from, err := p.mqttCmd(ctx, at.Command{Line: fmt.Sprintf("AT+QMTCLOSE=%d", idx)})
	if err != nil {
		p.find("AT+QMTCLOSE on an index that is not open", "%s", outcome(err))
	} else if ev, _, ok := p.urcs.wait(ctx, from, p.opts.Settle, isClient(idx)); ok {
		p.find("AT+QMTCLOSE on an index that is not open", "OK, then %s %s", ev.ev, p.after("OK", ev.ev.String(), ev.at.Sub(okAt)))
	} else {
		p.find("AT+QMTCLOSE on an index that is not open", "OK, and no URC within %s", p.opts.Settle)
	}

	client := qmt.NewClient(p.conn, idx)
	go drain(client)
	defer client.Close()
	skipped, err := client.ConfigureReport(ctx, qmt.Config{})
	if err != nil {
		p.find("AT+QMTCFG (the daemon's settings)", "%v", err)
		return fmt.Errorf("probe: %w", err)
	}
	if len(skipped) == 0 {
		p.find("AT+QMTCFG (the daemon's settings)", "all OK")
	} else {
		var s []string
		for _, sk := range skipped {
			s = append(s, sk.Setting+": "+outcome(sk.Err))
		}
		p.find("AT+QMTCFG (the daemon's settings)", "optional ones refused: %s", strings.Join(s, "; "))
	}

	if err := p.open(ctx, idx, true); err != nil {
		return err
	}

	// AT+QMTCFG on the open index, with the value it already has.
	cfgLines, _ := qmt.Config{}.Commands(idx)
	same := cfgLines[0]
	for _, l := range cfgLines {
		if strings.HasPrefix(l, `AT+QMTCFG="keepalive"`) {
			same = l
		}
	}
	_, err = p.do(ctx, at.Command{Line: same}, 5*time.Second)
	p.find("AT+QMTCFG on an open index ("+same+", the value it has)", "%s", outcome(err))

	if err := p.refusedConnect(ctx, idx); err != nil {
		return err
	}
	if err := p.connect(ctx, idx); err != nil {
		return err
	}
	_, err = p.do(ctx, at.Command{Line: same}, 5*time.Second)
	p.find("AT+QMTCFG on a connected index ("+same+", the value it has)", "%s", outcome(err))
	resp, err := p.do(ctx, at.Command{Line: "AT+QMTCONN?", Answers: claims("+QMTCONN:")}, 5*time.Second)
	p.find("AT+QMTCONN? answer while connected", "%s %q", outcome(err), lineTexts(resp))

	// Subscribe with QoS 2.
	from = p.urcs.mark()
	_, err = p.do(ctx, at.Command{Line: fmt.Sprintf(`AT+QMTSUB=%d,1,"%s",2`, idx, p.opts.Topic)}, 10*time.Second)
	if err != nil {
		p.find("QoS granted for a QoS 2 subscription", "AT+QMTSUB: %s", outcome(err))
		return fmt.Errorf("probe: AT+QMTSUB: %w", err)
	}
	ev, _, ok := p.urcs.wait(ctx, from, p.opts.Wait, func(e qmt.Event) bool {
		s, ok := e.(qmt.Subscribed)
		return ok && s.Client == idx && s.MsgID == 1 && s.Result != 1
	})
	if !ok {
		p.find("QoS granted for a QoS 2 subscription", "no +QMTSUB within %s", p.opts.Wait)
		return errors.New("probe: no +QMTSUB")
	}
	p.find("QoS granted for a QoS 2 subscription", "%s", ev.ev)

	if err := p.roundTrip(ctx, idx, 0, 0, []byte("gatewayd probe round trip"), "own publish received back (QMTPUBEX, QoS 0)"); err != nil {
		return err
	}
	if err := p.roundTrip(ctx, idx, 2, 1, []byte("line 1 \"quoted\"\r\nline 2, \"a\",\"b\"\r\n"),
		"payload with CR LF and quotes received back (QMTPUBEX, QoS 1)"); err != nil {
		return err
	}

	// Disconnect.
	m := p.rec.mark()
	okAt, from, err = p.mqttCmd(ctx, at.Command{Line: fmt.Sprintf("AT+QMTDISC=%d", idx)})
	if err != nil {
		p.find("AT+QMTDISC", "%s", outcome(err))
		return fmt.Errorf("probe: AT+QMTDISC: %w", err)
	}
	ev, _, ok = p.urcs.wait(ctx, from, p.opts.Wait, isClient(idx))
	if !ok {
		p.find("AT+QMTDISC", "OK, and no URC within %s", p.opts.Wait)
		return errors.New("probe: no +QMTDISC")
	}
	oneRead := false
	for _, r := range p.rec.since(m) {
		if r.dir == replay.Module && bytes.Contains(r.data, []byte("OK\r\n")) && bytes.Contains(r.data, []byte("+QMTDISC:")) {
			oneRead = true
		}
	}
	p.find("AT+QMTDISC", "OK, then %s %s; OK and the URC in one read: %s", ev.ev, p.after("OK", ev.ev.String(), ev.at.Sub(okAt)), yesNo(oneRead))
	return nil
}

func drain(c *qmt.Client) {
	for range c.Events() {
	}
}

// open opens the link of idx and waits for +QMTOPEN.
func (p *prober) open(ctx context.Context, idx int, report bool) error {
	line := fmt.Sprintf(`AT+QMTOPEN=%d,"%s",%d`, idx, p.host, p.mqttPort)
	okAt, from, err := p.mqttCmd(ctx, at.Command{Line: line})
	if err != nil {
		p.find("AT+QMTOPEN", "%s", outcome(err))
		return fmt.Errorf("probe: AT+QMTOPEN: %w", err)
	}
	ev, _, ok := p.urcs.wait(ctx, from, 4*p.opts.Wait, isClient(idx))
	if !ok {
		p.find("AT+QMTOPEN result", "no URC within %s", 4*p.opts.Wait)
		return errors.New("probe: no +QMTOPEN")
	}
	o, isOpen := ev.ev.(qmt.Opened)
	if report || !isOpen || o.Result != 0 {
		p.find("AT+QMTOPEN result", "%s, %s", ev.ev, p.after("OK", ev.ev.String(), ev.at.Sub(okAt)))
	}
	if !isOpen || o.Result != 0 {
		return fmt.Errorf("probe: the module could not open a link to %s:%d: %s", p.host, p.mqttPort, ev.ev)
	}
	return nil
}

// connLine is AT+QMTCONN with the user and password when either is set.
func connLine(idx int, id, user, password string) string {
	if user == "" && password == "" {
		return fmt.Sprintf(`AT+QMTCONN=%d,"%s"`, idx, id)
	}
	return fmt.Sprintf(`AT+QMTCONN=%d,"%s","%s","%s"`, idx, id, user, password)
}

// refusedConnect sends a CONNECT with a wrong password and watches what follows, then brings the
// link back up.
func (p *prober) refusedConnect(ctx context.Context, idx int) error {
	const point = "refused CONNECT (wrong password)"
	const statPoint = "+QMTSTAT after a refused CONNECT"
	user := p.opts.User
	if user == "" {
		user = "gatewayd-probe"
	}
	okAt, from, err := p.mqttCmd(ctx, at.Command{Line: connLine(idx, p.opts.ClientID, user, p.opts.WrongPassword), Secrets: []string{p.opts.WrongPassword}})
	if err != nil {
		p.find(point, "AT+QMTCONN answered %s", outcome(err))
		return fmt.Errorf("probe: AT+QMTCONN: %w", err)
	}
	ev, next, _ := p.urcs.wait(ctx, from, p.opts.Wait, isClient(idx))
	switch e := ev.ev.(type) {
	case nil:
		p.find(point, "neither +QMTCONN nor +QMTSTAT within %s", p.opts.Wait)
		return errors.New("probe: no answer to CONNECT")
	case qmt.LinkStatus:
		p.find(point, "no +QMTCONN: only %s, %s", e, p.after("OK", e.String(), ev.at.Sub(okAt)))
		p.find(statPoint, "yes, code %d, without +QMTCONN", e.Code)
	case qmt.Connected:
		if e.Err() == nil {
			p.find(point, "%s: the broker accepted a wrong password, so no refusal could be observed (give -user and -password-file of an account the broker checks)", e)
			if _, from, err := p.mqttCmd(ctx, at.Command{Line: fmt.Sprintf("AT+QMTDISC=%d", idx)}); err == nil {
				p.urcs.wait(ctx, from, p.opts.Wait, isClient(idx))
			}
			return p.open(ctx, idx, false)
		}
		p.find(point, "%s, %s", e, p.after("OK", e.String(), ev.at.Sub(okAt)))
		if st, _, ok := p.urcs.wait(ctx, next, p.opts.Settle, func(x qmt.Event) bool {
			_, is := x.(qmt.LinkStatus)
			return is && isClient(idx)(x)
		}); ok {
			p.find(statPoint, "yes, code %d, %s", st.ev.(qmt.LinkStatus).Code, p.after(e.String(), st.ev.String(), st.at.Sub(ev.at)))
		} else {
			p.find(statPoint, "no, none within %s", p.opts.Settle)
		}
	default:
		p.find(point, "%s", e)
	}
	// The link is gone or going: close it (tolerating ERROR), then open it again.
	closeAt, from, err := p.mqttCmd(ctx, at.Command{Line: fmt.Sprintf("AT+QMTCLOSE=%d", idx)})
	if err != nil {
		p.find("AT+QMTCLOSE after a refused CONNECT", "%s", outcome(err))
	} else if c, _, ok := p.urcs.wait(ctx, from, p.opts.Settle, isClient(idx)); ok {
		p.find("AT+QMTCLOSE after a refused CONNECT", "OK, then %s %s", c.ev, p.after("OK", c.ev.String(), c.at.Sub(closeAt)))
	} else {
		p.find("AT+QMTCLOSE after a refused CONNECT", "OK, and no URC within %s", p.opts.Settle)
	}
	return p.open(ctx, idx, false)
}

// connect sends the real CONNECT and reports the success form.
func (p *prober) connect(ctx context.Context, idx int) error {
	cmd := at.Command{Line: connLine(idx, p.opts.ClientID, p.opts.User, p.opts.Password)}
	if p.opts.Password != "" {
		cmd.Secrets = []string{p.opts.Password}
	}
	okAt, from, err := p.mqttCmd(ctx, cmd)
	if err != nil {
		p.find("+QMTCONN on success", "AT+QMTCONN answered %s", outcome(err))
		return fmt.Errorf("probe: AT+QMTCONN: %w", err)
	}
	ev, _, ok := p.urcs.wait(ctx, from, p.opts.Wait, isClient(idx))
	if !ok {
		p.find("+QMTCONN on success", "no URC within %s", p.opts.Wait)
		return errors.New("probe: no +QMTCONN")
	}
	c, isConn := ev.ev.(qmt.Connected)
	if !isConn || c.Err() != nil {
		p.find("+QMTCONN on success", "refused: %s (check -user and -password-file)", ev.ev)
		return fmt.Errorf("probe: the broker refused the CONNECT: %s", ev.ev)
	}
	form := "three fields"
	if !c.HasCode {
		form = "two fields (no ret_code)"
	}
	p.find("+QMTCONN on success", "%s, %s; %s", c, form, p.after("OK", c.String(), ev.at.Sub(okAt)))
	return nil
}

// roundTrip publishes payload on the probe's topic with AT+QMTPUBEX (the daemon's form) and
// waits for the result and for the message to come back.
func (p *prober) roundTrip(ctx context.Context, idx, msgID, qos int, payload []byte, point string) error {
	line := fmt.Sprintf(`AT+QMTPUBEX=%d,%d,%d,0,"%s",%d`, idx, msgID, qos, p.opts.Topic, len(payload))
	m := p.rec.mark()
	okAt, from, err := p.mqttCmd(ctx, at.Command{Line: line, Data: payload})
	p.find("data prompt ("+line+")", "%s", promptForm(p.rec.since(m)))
	if err != nil {
		p.find(point, "AT+QMTPUBEX: %s", outcome(err))
		return fmt.Errorf("probe: AT+QMTPUBEX: %w", err)
	}
	res, _, ok := p.urcs.wait(ctx, from, p.opts.Wait, func(e qmt.Event) bool {
		r, ok := e.(qmt.Published)
		return ok && r.Client == idx && r.MsgID == msgID && r.Result != 1
	})
	if !ok {
		p.find("publish result for AT+QMTPUBEX", "none within %s", p.opts.Wait)
		return errors.New("probe: no publish result")
	}
	name := "+QMTPUB"
	if res.ev.(qmt.Published).Ex {
		name = "+QMTPUBEX"
	}
	p.find("publish result for AT+QMTPUBEX (QoS "+strconv.Itoa(qos)+")", "%s (named %s), %s", res.ev, name, p.after("OK", res.ev.String(), res.at.Sub(okAt)))
	back, _, ok := p.urcs.wait(ctx, from, p.opts.Wait, func(e qmt.Event) bool {
		r, ok := e.(qmt.Received)
		return ok && r.Client == idx && r.Topic == p.opts.Topic
	})
	if !ok {
		p.find(point, "no, not within %s", p.opts.Wait)
		return errors.New("probe: the module did not receive its own publish back (does the broker deliver to the publisher?)")
	}
	r := back.ev.(qmt.Received)
	if bytes.Equal(r.Payload, payload) {
		p.find(point, "yes, byte-exact, %s (msgID %d; %s)", p.after("OK", "+QMTRECV:", back.at.Sub(okAt)), r.MsgID, recvForm(p.rec.since(p.cmdMark), p.opts.Topic))
	} else {
		p.find(point, "yes, but the payload differs: sent %q, got %q", payload, r.Payload)
	}
	return nil
}

// promptForm says how the data prompt came: its bytes and whether its space came in the same read.
func promptForm(recs []record) string {
	var reads [][]byte
	var afterData []byte // the module's first read after the data went out
	for _, r := range recs {
		if r.dir == replay.Module {
			reads = append(reads, r.data)
		} else if len(reads) > 0 {
			// The data went out: the prompt is before it.
			for _, a := range recs[len(reads)+1:] {
				if a.dir == replay.Module {
					afterData = a.data
					break
				}
			}
			break
		}
	}
	var before []byte // the module's bytes before the prompt
	for i, b := range reads {
		j := bytes.LastIndexByte(b, '>')
		if j < 0 {
			before = append(before, b...)
			continue
		}
		before = append(before, b[:j]...)
		urcs := ""
		for _, l := range bytes.FieldsFunc(before, func(r rune) bool { return r == '\r' || r == '\n' }) {
			if l[0] == '+' {
				urcs += fmt.Sprintf(" %q", l)
			}
		}
		if urcs != "" {
			urcs = "; URC lines between the command and its prompt:" + urcs
		}
		where := "at the start of a read"
		if j >= 2 && string(b[j-2:j]) == "\r\n" {
			where = `after "\r\n"`
		}
		switch {
		case j+1 < len(b) && b[j+1] == ' ':
			return fmt.Sprintf(`"> " %s, the space in the same read%s`, where, urcs)
		case j+1 == len(b) && i+1 < len(reads) && len(reads[i+1]) > 0 && reads[i+1][0] == ' ':
			return fmt.Sprintf(`">" %s, its space in the next read%s`, where, urcs)
		case j+1 == len(b) && i+1 == len(reads) && len(afterData) > 0 && afterData[0] == ' ':
			return fmt.Sprintf(`">" %s, its space in the first read after the data (%q)%s`, where, afterData[:min(len(afterData), 12)], urcs)
		default:
			return fmt.Sprintf(`">" %s with no space after it%s`, where, urcs)
		}
	}
	return "no prompt seen"
}

// after says when the module's first read holding b came, against the first holding a, both
// since the last MQTT command was sent, as the Recorder's read times show: "in the same read as
// OK" or "12 ms after OK". a "OK" is the final result line. When either is not found (the module
// spelt it differently), host is the delay the URC reader measured.
func (p *prober) after(a, b string, host time.Duration) string {
	ia, ib := -1, -1
	var ta, tb time.Duration
	for i, r := range p.rec.since(p.cmdMark) {
		if r.dir != replay.Module {
			continue
		}
		if ia < 0 && holds(r.data, a) {
			ia, ta = i, r.at
		}
		if ia >= 0 && holds(r.data, b) {
			ib, tb = i, r.at
			break
		}
	}
	what := a
	if ia < 0 || ib < 0 {
		return ms(host) + " after " + what + " (host clock)"
	}
	if ia == ib {
		return "in the same read as " + what
	}
	return ms(tb-ta) + " after " + what
}

// holds reports whether the module's bytes d hold s; "OK" must be a whole line.
func holds(d []byte, s string) bool {
	if s == "OK" {
		return bytes.HasPrefix(d, []byte("OK\r\n")) || bytes.Contains(d, []byte("\nOK\r\n"))
	}
	return bytes.Contains(d, []byte(s))
}

// linesSince gives the module's lines starting with prefix since Recorder mark m.
func (p *prober) linesSince(m int, prefix string) []string {
	var b []byte
	for _, r := range p.rec.since(m) {
		if r.dir == replay.Module {
			b = append(b, r.data...)
		}
	}
	var out []string
	for _, l := range bytes.FieldsFunc(b, func(r rune) bool { return r == '\r' || r == '\n' }) {
		if bytes.HasPrefix(l, []byte(prefix)) {
			out = append(out, string(l))
		}
	}
	return out
}

// recvForm says how the module printed the +QMTRECV of topic in recs: the payload quoted on the
// header's line, on the next line, unquoted after the length, or without a length; and how many
// CR LF came right before it (more than 2: empty lines).
func recvForm(recs []record, topic string) string {
	var b []byte
	for _, r := range recs {
		if r.dir == replay.Module {
			b = append(b, r.data...)
		}
	}
	head := []byte(`+QMTRECV: `)
	i := bytes.Index(b, head)
	for i >= 0 && !bytes.Contains(b[i:min(len(b), i+len(head)+32+len(topic))], []byte(`"`+topic+`"`)) {
		j := bytes.Index(b[i+1:], head)
		if j < 0 {
			i = -1
			break
		}
		i += 1 + j
	}
	if i < 0 {
		return "its bytes not found"
	}
	rest := b[i:]
	t := bytes.Index(rest, []byte(`"`+topic+`"`))
	if t < 0 {
		return "its bytes not found"
	}
	after := rest[t+len(topic)+2:]
	form := "no length field"
	if len(after) > 1 && after[0] == ',' && after[1] >= '0' && after[1] <= '9' {
		k := 1
		for k < len(after) && after[k] >= '0' && after[k] <= '9' {
			k++
		}
		switch {
		case bytes.HasPrefix(after[k:], []byte(`,"`)):
			form = "length field, payload quoted on the same line"
		case bytes.HasPrefix(after[k:], []byte("\r\n")):
			form = "length field, payload on the next line"
		case bytes.HasPrefix(after[k:], []byte(",")):
			form = "length field, payload unquoted after it"
		default:
			form = "length field, then " + strconv.Quote(string(after[k:min(len(after), k+4)]))
		}
	}
	pairs := 0
	for pre := b[:i]; bytes.HasSuffix(pre, []byte("\r\n")); pre = pre[:len(pre)-2] {
		pairs++
	}
	return form + fmt.Sprintf("; CR LF right before it: %d (2 = the line before and its own, no empty line)", pairs)
}
