package modem

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/gatewayd/gatewayd/at"
)

// Identity is what a module says about itself.
type Identity struct {
	Manufacturer string // "Quectel"
	Model        string // e.g. "EC600N"
	Revision     string // firmware revision
	IMEI         string // 15 digits
	ICCID        string // SIM card number (ICCID reads it once the SIM is ready); empty before
}

// Registration is a network registration state as +CEREG/+CREG/+CGREG report it.
type Registration struct {
	Command string // which query answered: "CEREG", "CGREG" or "CREG"
	Stat    int    // 0 not searching, 1 home, 2 searching, 3 denied, 4 unknown, 5 roaming
}

// Registered reports whether the module can carry data: registered at home or roaming.
func (r Registration) Registered() bool { return r.Stat == 1 || r.Stat == 5 }

// String gives the state in words.
func (r Registration) String() string {
	words := map[int]string{
		0: "not registered, not searching",
		1: "registered, home network",
		2: "not registered, searching",
		3: "registration denied",
		4: "unknown (out of coverage?)",
		5: "registered, roaming",
	}
	w, ok := words[r.Stat]
	if !ok {
		w = "not usable for data"
	}
	return fmt.Sprintf("%s (+%s stat %d)", w, r.Command, r.Stat)
}

// ErrProtocol marks an answer that does not have the shape the reference gives.
var ErrProtocol = errors.New("unexpected answer from the module")

// Module runs module-level commands over an AT engine.
type Module struct {
	conn *at.Conn
}

// New returns a Module that talks over conn.
func New(conn *at.Conn) *Module { return &Module{conn: conn} }

// run runs one command with its own deadline inside ctx.
func (m *Module) run(ctx context.Context, line string, d time.Duration) (at.Response, error) {
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	resp, err := m.conn.Run(ctx, line)
	if err != nil {
		return resp, fmt.Errorf("%s: %w", line, err)
	}
	return resp, nil
}

// Sync sends AT every interval until the module answers OK (or any CME error, which also proves
// it alive), or ctx ends. A plain ERROR (the first AT after the port opened, on an EC2x-class
// module) means alive but not ready: it probes again after interval.
func (m *Module) Sync(ctx context.Context, interval time.Duration) error {
	for {
		_, err := m.run(ctx, "AT", interval)
		var cme *at.CMEError
		if err == nil || errors.As(err, &cme) {
			return nil
		}
		if errors.Is(err, at.ErrPortGone) || errors.Is(err, at.ErrClosed) {
			return err
		}
		if errors.Is(err, at.ErrError) {
			// Alive but not ready: an EC2x-class module answered the first AT after the port
			// opened with ERROR (reference 0, 4.2). Probe again at the same pace as silence.
			t := time.NewTimer(interval)
			select {
			case <-t.C:
			case <-ctx.Done():
				t.Stop()
			}
		}
		if ctx.Err() != nil {
			if errors.Is(err, at.ErrError) {
				return fmt.Errorf("module answers AT only with ERROR: %w", err)
			}
			return fmt.Errorf("module does not answer AT: %w", err)
		}
	}
}

// Prepare switches echo off and selects numeric +CME ERROR codes (AT+CMEE=1), which are stable
// across firmware, where texts are not.
func (m *Module) Prepare(ctx context.Context) error {
	if _, err := m.run(ctx, "ATE0", 2*time.Second); err != nil {
		return err
	}
	if _, err := m.run(ctx, "AT+CMEE=1", 2*time.Second); err != nil {
		return err
	}
	return nil
}

// Identify asks ATI and AT+GSN: the module's own identity, which needs no SIM. The SIM's ICCID is
// read with ICCID once AT+CPIN? says READY.
func (m *Module) Identify(ctx context.Context) (Identity, error) {
	id, err := m.Product(ctx)
	if err != nil {
		return id, err
	}
	id.IMEI, err = m.IMEI(ctx)
	return id, err
}

// Product asks ATI alone: the manufacturer, model and revision (Identity without the IMEI).
func (m *Module) Product(ctx context.Context) (Identity, error) {
	var id Identity
	resp, err := m.run(ctx, "ATI", 2*time.Second)
	if err != nil {
		return id, err
	}
	lines := texts(resp)
	for i, l := range lines {
		switch {
		case strings.HasPrefix(l, "Revision:"):
			id.Revision = strings.TrimSpace(strings.TrimPrefix(l, "Revision:"))
		case i == 0:
			id.Manufacturer = l
		case i == 1:
			id.Model = l
		}
	}
	if id.Model == "" {
		return id, fmt.Errorf("ATI: %w: %q", ErrProtocol, lines)
	}
	return id, nil
}

// IMEI asks AT+GSN for the module's IMEI: 14-17 digits, else ErrProtocol.
func (m *Module) IMEI(ctx context.Context) (string, error) {
	resp, err := m.run(ctx, "AT+GSN", 2*time.Second)
	if err != nil {
		return "", err
	}
	imei := firstText(resp)
	if !digits(imei) || len(imei) < 14 || len(imei) > 17 {
		return imei, fmt.Errorf("AT+GSN: %w: IMEI %q is not 14-17 digits", ErrProtocol, imei)
	}
	return imei, nil
}

// ICCID asks AT+QCCID for the SIM card number. Ask only after AT+CPIN? said READY: before that
// (for a second or more after RDY, or after the SIM was put back) the module answers
// +CME ERROR: 10, 13 or 14, returned as a *at.CMEError. The answer is input like any other: it
// must be an ICCID (ValidICCID), since it goes into topics as {iccid}.
func (m *Module) ICCID(ctx context.Context) (string, error) {
	resp, err := m.run(ctx, "AT+QCCID", 2*time.Second)
	if err != nil {
		return "", err
	}
	iccid := strings.TrimSpace(strings.TrimPrefix(firstText(resp), "+QCCID:"))
	if err := ValidICCID(iccid); err != nil {
		return "", fmt.Errorf("AT+QCCID: %w: %w", ErrProtocol, err)
	}
	return iccid, nil
}

// ValidICCID checks that s is an ICCID: 18-22 digits, the last of which may be F (padding). An
// ICCID that passes cannot put a topic separator or wildcard (/, +, #) into a topic.
func ValidICCID(s string) error {
	body := s
	if n := len(s); n > 0 && (s[n-1] == 'F' || s[n-1] == 'f') {
		body = s[:n-1]
	}
	if len(s) < 18 || len(s) > 22 || !digits(body) {
		return fmt.Errorf("ICCID %q is not 18-22 digits (a final F allowed)", s)
	}
	return nil
}

// ErrIdentity marks a module identity that cannot go into a topic: it is input from the
// module, and {imei} or {iccid} holding a topic separator or wildcard would subscribe to or
// publish on topics nobody configured.
var ErrIdentity = errors.New("module identity not usable in topics")

// ValidateTopicIdentity checks the identity fields topics take ({imei}, {iccid}) before they
// are put in a topic: the IMEI must be 14-17 digits, the ICCID (when read) 18-22 digits with an
// optional final F, and neither may hold "+", "#", "/" or any other byte. A failure wraps
// ErrIdentity and names the field; it is permanent for this module (retrying reads the same).
// An empty ICCID passes: call it again once ICCID has been read.
func ValidateTopicIdentity(id Identity) error {
	if strings.ContainsAny(id.IMEI, "+#/") || !digits(id.IMEI) || len(id.IMEI) < 14 || len(id.IMEI) > 17 {
		return fmt.Errorf("%w: IMEI %q is not 14-17 digits", ErrIdentity, id.IMEI)
	}
	if id.ICCID != "" {
		if err := ValidICCID(id.ICCID); err != nil {
			return fmt.Errorf("%w: %w", ErrIdentity, err)
		}
	}
	return nil
}

// URCPort asks AT+QURCCFG="urcport" which interface the module sends its URCs to ("usbat",
// "usbmodem", "uart1", "uart2", "all"). The module keeps the setting in NV across power cycles.
func (m *Module) URCPort(ctx context.Context) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	resp, err := m.conn.Do(ctx, at.Command{Line: `AT+QURCCFG="urcport"`, Answers: hasPrefix("+QURCCFG:")})
	if err != nil {
		return "", fmt.Errorf(`AT+QURCCFG="urcport": %w`, err)
	}
	for _, l := range texts(resp) {
		if v, ok := strings.CutPrefix(l, "+QURCCFG:"); ok {
			f := fields(v)
			if len(f) == 2 && strings.EqualFold(strings.Trim(f[0], `"`), "urcport") {
				return strings.ToLower(strings.Trim(f[1], `"`)), nil
			}
		}
	}
	return "", fmt.Errorf(`AT+QURCCFG="urcport": %w: %q`, ErrProtocol, texts(resp))
}

// SetURCPort sends the module's URCs to port from now on (and, the module saving it, after every
// power cycle).
func (m *Module) SetURCPort(ctx context.Context, port string) error {
	if err := quotable(port); err != nil {
		return fmt.Errorf("urc port: %w", err)
	}
	_, err := m.run(ctx, `AT+QURCCFG="urcport","`+port+`"`, 2*time.Second)
	return err
}

// SIMNotReady reports whether err is the module's "the SIM cannot answer yet" (+CME ERROR: 10 not
// inserted, 13 SIM failure, 14 SIM busy), which it gives for a while after RDY.
func SIMNotReady(err error) bool {
	var cme *at.CMEError
	return errors.As(err, &cme) && (cme.Code == 10 || cme.Code == 13 || cme.Code == 14)
}

// SIMState asks AT+CPIN? and returns its code ("READY", "SIM PIN", ...). A missing SIM comes back
// as a *at.CMEError with code 10.
func (m *Module) SIMState(ctx context.Context) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	// +CPIN: is also a URC; while this query is in flight the line is its answer.
	resp, err := m.conn.Do(ctx, at.Command{Line: "AT+CPIN?", Answers: hasPrefix("+CPIN:")})
	if err != nil {
		return "", fmt.Errorf("AT+CPIN?: %w", err)
	}
	for _, l := range texts(resp) {
		if v, ok := strings.CutPrefix(l, "+CPIN:"); ok {
			return strings.TrimSpace(v), nil
		}
	}
	return "", fmt.Errorf("AT+CPIN?: %w: %q", ErrProtocol, texts(resp))
}

// Registration asks AT+CEREG? (LTE) and, when that is not registered, AT+CGREG? and AT+CREG?, and
// returns the best answer.
func (m *Module) Registration(ctx context.Context) (Registration, error) {
	var best Registration
	var firstErr error
	for _, q := range []string{"CEREG", "CGREG", "CREG"} {
		reg, err := m.registration(ctx, q)
		if err != nil {
			if firstErr == nil {
				firstErr = err
			}
			continue
		}
		if reg.Registered() {
			return reg, nil
		}
		if best.Command == "" {
			best = reg
		}
	}
	if best.Command == "" {
		return best, firstErr
	}
	return best, nil
}

func (m *Module) registration(ctx context.Context, q string) (Registration, error) {
	prefix := "+" + q + ":"
	line := "AT+" + q + "?"
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	resp, err := m.conn.Do(ctx, at.Command{
		Line: line,
		// The query answer has <n>,<stat>[,...]; the URC with n=1 has a single field.
		Answers: func(l at.Line) bool {
			v, ok := strings.CutPrefix(l.Text, prefix)
			return ok && strings.Contains(v, ",")
		},
	})
	if err != nil {
		return Registration{}, fmt.Errorf("%s: %w", line, err)
	}
	for _, l := range texts(resp) {
		if v, ok := strings.CutPrefix(l, prefix); ok {
			f := fields(v)
			if len(f) < 2 {
				break
			}
			stat, err := strconv.Atoi(f[1])
			if err != nil {
				break
			}
			return Registration{Command: q, Stat: stat}, nil
		}
	}
	return Registration{}, fmt.Errorf("%s: %w: %q", line, ErrProtocol, texts(resp))
}

// SignalDBm asks AT+CSQ and converts the RSSI to dBm; ok is false when the module reports 99
// (not known).
func (m *Module) SignalDBm(ctx context.Context) (dbm int, ok bool, err error) {
	resp, err := m.run(ctx, "AT+CSQ", 2*time.Second)
	if err != nil {
		return 0, false, err
	}
	v, found := strings.CutPrefix(firstText(resp), "+CSQ:")
	f := fields(v)
	if !found || len(f) < 2 {
		return 0, false, fmt.Errorf("AT+CSQ: %w: %q", ErrProtocol, texts(resp))
	}
	rssi, err := strconv.Atoi(f[0])
	if err != nil {
		return 0, false, fmt.Errorf("AT+CSQ: %w: %q", ErrProtocol, texts(resp))
	}
	if rssi < 0 || rssi > 31 {
		return 0, false, nil
	}
	return -113 + 2*rssi, true, nil
}

// Operator asks AT+COPS? for the network the module is registered on and returns its name as
// the module gives it: long alphanumeric ("CHINA MOBILE"), short, or numeric ("46000"), by the
// <format> set. It returns "" with no error when the module is not registered (`+COPS: 0`).
// The answer's shape is 3GPP TS 27.007's; the reference gives only its timing (AT+COPS is not
// in its byte-exact tables), so any of those formats is accepted.
func (m *Module) Operator(ctx context.Context) (string, error) {
	resp, err := m.run(ctx, "AT+COPS?", 2*time.Second)
	if err != nil {
		return "", err
	}
	v, found := strings.CutPrefix(firstText(resp), "+COPS:")
	f := fields(v)
	switch {
	case !found || len(f) == 0:
		return "", fmt.Errorf("AT+COPS?: %w: %q", ErrProtocol, texts(resp))
	case len(f) < 3:
		return "", nil
	}
	// The name is quoted and may hold a comma: take it between its quotes.
	if i := strings.IndexByte(v, '"'); i >= 0 {
		if j := strings.IndexByte(v[i+1:], '"'); j >= 0 {
			return v[i+1 : i+1+j], nil
		}
	}
	return "", fmt.Errorf("AT+COPS?: %w: %q", ErrProtocol, texts(resp))
}

// Auth is the authentication of a PDP context, the <auth> of AT+QICSGP.
type Auth int

// The authentication methods of AT+QICSGP (reference 4.2).
const (
	// AuthAuto is PAP or CHAP when the module offers that (3), and an ErrAuthNotOffered
	// otherwise: a BG770A-like firmware offers only (0-2), so the method must be chosen.
	AuthAuto      Auth = -1
	AuthNone      Auth = 0
	AuthPAP       Auth = 1
	AuthCHAP      Auth = 2
	AuthPAPOrCHAP Auth = 3
)

// String names the method as a configuration would.
func (a Auth) String() string {
	switch a {
	case AuthAuto:
		return "auto"
	case AuthNone:
		return "none"
	case AuthPAP:
		return "pap"
	case AuthCHAP:
		return "chap"
	case AuthPAPOrCHAP:
		return "pap_or_chap"
	}
	return "auth " + strconv.Itoa(int(a))
}

// ErrAuthNotOffered: the module's AT+QICSGP=? does not offer the authentication method asked for.
var ErrAuthNotOffered = errors.New("authentication method not offered by the module")

// SetAPN configures PDP context cid with an IPv4v6 APN (AT+QICSGP). user and password may be
// empty; when either is set the authentication is AuthAuto (see SetAPNAuth).
func (m *Module) SetAPN(ctx context.Context, cid int, apn, user, password string) error {
	return m.SetAPNAuth(ctx, cid, apn, user, password, AuthAuto)
}

// SetAPNAuth is SetAPN with an authentication method, used when user or password is set. The
// range differs by firmware (reference 4.2 VARIANT: (0-3), or (0-2) on a BG770A capture), so it
// first asks AT+QICSGP=? what the module offers: AuthAuto takes PAP or CHAP (3) when offered;
// a method the module does not offer is an error wrapping ErrAuthNotOffered, sent to no module.
// A module that answers =? with an error is sent the method as asked (AuthAuto: 3).
func (m *Module) SetAPNAuth(ctx context.Context, cid int, apn, user, password string, auth Auth) error {
	for _, s := range []struct{ name, v string }{{"apn", apn}, {"apn user", user}, {"apn password", password}} {
		if err := quotable(s.v); err != nil {
			return fmt.Errorf("%s: %w", s.name, err)
		}
	}
	line := fmt.Sprintf("AT+QICSGP=%d,3,%q", cid, apn)
	secrets := []string(nil)
	if user != "" || password != "" {
		chosen, err := m.chooseAuth(ctx, auth)
		if err != nil {
			return fmt.Errorf("AT+QICSGP=%d: %w", cid, err)
		}
		line = fmt.Sprintf(`AT+QICSGP=%d,3,"%s","%s","%s",%d`, cid, apn, user, password, chosen)
		if password != "" {
			secrets = []string{password}
		}
	}
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	if _, err := m.conn.Do(ctx, at.Command{Line: line, Secrets: secrets}); err != nil {
		return fmt.Errorf("AT+QICSGP=%d: %w", cid, err)
	}
	return nil
}

// chooseAuth picks the <auth> to send for want, from what AT+QICSGP=? offers.
func (m *Module) chooseAuth(ctx context.Context, want Auth) (Auth, error) {
	if want < AuthAuto || want > AuthPAPOrCHAP {
		return 0, fmt.Errorf("authentication %d: %w", want, ErrAuthNotOffered)
	}
	offered, err := m.APNAuthOffered(ctx)
	if err != nil {
		if ctx.Err() != nil || errors.Is(err, at.ErrPortGone) || errors.Is(err, at.ErrClosed) {
			return 0, err
		}
		offered = nil // cannot tell: send what was asked and let the module answer
	}
	pick := want
	if want == AuthAuto {
		pick = AuthPAPOrCHAP
	}
	if offered == nil || slices.Contains(offered, pick) {
		return pick, nil
	}
	names := make([]string, len(offered))
	for i, a := range offered {
		names[i] = fmt.Sprintf("%d (%s)", int(a), a)
	}
	hint := ""
	if want == AuthAuto {
		hint = "; choose PAP or CHAP"
	}
	return 0, fmt.Errorf("%w: %s (%d) is not among %s%s", ErrAuthNotOffered, pick, int(pick), strings.Join(names, ", "), hint)
}

// APNAuthOffered asks AT+QICSGP=? which <auth> values the module takes: the last range of
// `+QICSGP: (1-15),(1-3),<APN>,<username>,<password>,(0-3)`.
func (m *Module) APNAuthOffered(ctx context.Context) ([]Auth, error) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	resp, err := m.conn.Do(ctx, at.Command{Line: "AT+QICSGP=?", Answers: hasPrefix("+QICSGP:")})
	if err != nil {
		return nil, fmt.Errorf("AT+QICSGP=?: %w", err)
	}
	for _, l := range texts(resp) {
		v, ok := strings.CutPrefix(l, "+QICSGP:")
		if !ok {
			continue
		}
		open, end := strings.LastIndexByte(v, '('), strings.LastIndexByte(v, ')')
		if open < 0 || end < open {
			break
		}
		vals, ok := parseRange(v[open+1 : end])
		if !ok || len(vals) == 0 {
			break
		}
		out := make([]Auth, len(vals))
		for i, n := range vals {
			out[i] = Auth(n)
		}
		return out, nil
	}
	return nil, fmt.Errorf("AT+QICSGP=?: %w: %q", ErrProtocol, texts(resp))
}

// parseRange reads a test-command range list such as "0-3" or "0,1,2" or "0-2,5" (values 0-99).
func parseRange(s string) ([]int, bool) {
	var out []int
	for _, part := range strings.Split(s, ",") {
		lo, hi, isRange := strings.Cut(strings.TrimSpace(part), "-")
		a, err1 := strconv.Atoi(strings.TrimSpace(lo))
		b := a
		var err2 error
		if isRange {
			b, err2 = strconv.Atoi(strings.TrimSpace(hi))
		}
		if err1 != nil || err2 != nil || a < 0 || b < a || b > 99 {
			return nil, false
		}
		for n := a; n <= b; n++ {
			out = append(out, n)
		}
	}
	return out, true
}

// PDPActive reports whether context cid is active (AT+QIACT?) and its first address.
func (m *Module) PDPActive(ctx context.Context, cid int) (active bool, addr string, err error) {
	active, addrs, err := m.PDPAddresses(ctx, cid)
	if len(addrs) > 0 {
		addr = addrs[0]
	}
	return active, addr, err
}

// PDPAddresses reports whether context cid is active (AT+QIACT?) and every address the module
// lists for it, in its order. The type field does not tell how many follow: an EC600S listed an
// IPv4 and an IPv6 address under type 1, an EC200U under type 3 (reference 4.2, VARIANT).
func (m *Module) PDPAddresses(ctx context.Context, cid int) (active bool, addrs []string, err error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	resp, err := m.conn.Do(ctx, at.Command{Line: "AT+QIACT?"})
	if err != nil {
		return false, nil, fmt.Errorf("AT+QIACT?: %w", err)
	}
	for _, l := range texts(resp) {
		v, ok := strings.CutPrefix(l, "+QIACT:")
		if !ok {
			continue
		}
		f := fields(v)
		if len(f) < 3 || f[0] != strconv.Itoa(cid) {
			continue
		}
		for _, a := range f[3:] {
			if a = strings.Trim(a, `"`); a != "" {
				addrs = append(addrs, a)
			}
		}
		return f[1] == "1", addrs, nil
	}
	return false, nil, nil
}

// ActivatePDP activates context cid (AT+QIACT=cid, up to 150 s). Firmware answers plain ERROR
// when the context is already active, with no code that tells it from a real failure
// (reference 4.2: EC600S, BG770A-GL), so after an ERROR it asks AT+QIACT? and takes an active
// context as done.
func (m *Module) ActivatePDP(ctx context.Context, cid int) error {
	_, err := m.run(ctx, fmt.Sprintf("AT+QIACT=%d", cid), 150*time.Second)
	if err == nil || !errors.Is(err, at.ErrError) {
		return err
	}
	if active, _, qerr := m.PDPAddresses(ctx, cid); qerr == nil && active {
		return nil
	}
	return err
}

// Reset reboots the module with AT+CFUN=1,1. On USB the port disappears afterwards.
func (m *Module) Reset(ctx context.Context) error {
	_, err := m.run(ctx, "AT+CFUN=1,1", 15*time.Second)
	return err
}

// hasPrefix claims the lines that start with prefix as a query's answer.
func hasPrefix(prefix string) func(at.Line) bool {
	return func(l at.Line) bool { return strings.HasPrefix(l.Text, prefix) }
}

func texts(r at.Response) []string {
	out := make([]string, 0, len(r.Lines))
	for _, l := range r.Lines {
		out = append(out, strings.TrimSpace(l.Text))
	}
	return out
}

func firstText(r at.Response) string {
	if len(r.Lines) == 0 {
		return ""
	}
	return strings.TrimSpace(r.Lines[0].Text)
}

// fields splits a comma-separated answer and trims the spaces around each field.
func fields(s string) []string {
	f := strings.Split(s, ",")
	for i := range f {
		f[i] = strings.TrimSpace(f[i])
	}
	return f
}

func digits(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// quotable refuses a string that would end or split a quoted AT parameter.
func quotable(s string) error {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c == '"' || c < 0x20 || c == 0x7f {
			return fmt.Errorf("byte %q at offset %d cannot be sent inside an AT string", c, i)
		}
	}
	return nil
}

// ErrDNS is wrapped by ResolveHost when the module's DNS reports an error for the name.
var ErrDNS = errors.New("the module could not resolve the host name")

// DNSWait bounds ResolveHost's wait for the module's DNS answer after its OK.
const DNSWait = 60 * time.Second

// ResolveHost asks the module's own DNS, through PDP context cid, for host's addresses: what the
// module's MQTT client will do when it opens the link. It sends AT+QIDNSGIP=<cid>,"<host>" and
// reads the answer the way Quectel's TCP/IP application notes give it (the reference does not
// list the command; UNCONFIRMED on EC600): +QIURC: "dnsgip",<err>,<count>,<ttl>, then one
// +QIURC: "dnsgip","<addr>" per address. A non-zero <err> wraps ErrDNS with the code; a context
// that is not active gives the module's +CME ERROR.
func (m *Module) ResolveHost(ctx context.Context, cid int, host string) ([]string, error) {
	if err := quotable(host); err != nil || host == "" {
		return nil, fmt.Errorf("resolve %q: %w", host, errors.Join(ErrProtocol, err))
	}
	sub := m.conn.Subscribe() // before the command: the answer may follow the OK at once
	defer sub.Close()
	line := fmt.Sprintf(`AT+QIDNSGIP=%d,"%s"`, cid, host)
	if _, err := m.run(ctx, line, 5*time.Second); err != nil {
		return nil, err
	}
	wctx, cancel := context.WithTimeout(ctx, DNSWait)
	defer cancel()
	want := -1
	var addrs []string
	for {
		select {
		case l, open := <-sub.C():
			if !open {
				return nil, fmt.Errorf("%s: %w", line, at.ErrPortGone)
			}
			rest, found := strings.CutPrefix(l.Text, "+QIURC:")
			if !found {
				continue
			}
			v, found := strings.CutPrefix(strings.TrimSpace(rest), `"dnsgip",`)
			if !found {
				continue
			}
			if want < 0 {
				f := fields(v)
				code, err := strconv.Atoi(f[0])
				if err != nil {
					return nil, fmt.Errorf("%s: %w: %q", line, ErrProtocol, l.Text)
				}
				if code != 0 {
					return nil, fmt.Errorf("%s: error %d: %w", line, code, ErrDNS)
				}
				if len(f) < 2 {
					return nil, fmt.Errorf("%s: %w: %q", line, ErrProtocol, l.Text)
				}
				if want, err = strconv.Atoi(f[1]); err != nil || want < 0 {
					return nil, fmt.Errorf("%s: %w: %q", line, ErrProtocol, l.Text)
				}
				if want == 0 {
					return nil, fmt.Errorf("%s: no address: %w", line, ErrDNS)
				}
				continue
			}
			addrs = append(addrs, strings.Trim(strings.TrimSpace(v), `"`))
			if len(addrs) == want {
				return addrs, nil
			}
		case <-wctx.Done():
			return addrs, fmt.Errorf("%s: no answer from the module's DNS within %s: %w", line, DNSWait, wctx.Err())
		}
	}
}
