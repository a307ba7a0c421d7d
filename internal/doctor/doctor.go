// Package doctor is `gatewayd doctor`: every part the gateway needs, checked in order, each one
// ok or what is wrong and what to do, as `iotedge check` does for Azure IoT Edge. With the daemon
// running it asks it through the control socket (the daemon owns the port); with the daemon
// stopped it opens the port itself and goes through the bring-up the daemon would do.
package doctor

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/rs/zerolog"

	"github.com/gatewayd/gatewayd/at"
	"github.com/gatewayd/gatewayd/internal/config"
	"github.com/gatewayd/gatewayd/internal/control"
	"github.com/gatewayd/gatewayd/internal/daemon"
	"github.com/gatewayd/gatewayd/internal/port"
	"github.com/gatewayd/gatewayd/modem"
	"github.com/gatewayd/gatewayd/qmt"
	"github.com/gatewayd/gatewayd/qssl"
)

// Level is a check's outcome.
type Level int

// The outcomes, from best to worst; only Fail makes the doctor's exit code non-zero.
const (
	OK Level = iota
	Skip
	Warn
	Fail
)

func (l Level) String() string {
	return [...]string{"ok", "skip", "warn", "FAIL"}[l]
}

// Result is one check's outcome: what was found and, unless OK, what to do.
type Result struct {
	Check  string
	Level  Level
	Detail string
	Fix    string
}

// Options say what to check.
type Options struct {
	Config *config.Config
	// Socket is the control socket to ask first; "" means the configuration's.
	Socket string
	// Wait bounds how long the SIM and the registration may take to get ready (a module just
	// plugged in needs a few seconds); 0 means 20 s.
	Wait time.Duration
	// Proc is the proc file system, "/proc" unless a test says otherwise.
	Proc string
	// UdevRules are the places the udev rule may be installed in.
	UdevRules []string
}

// RuleName is the file name of gatewayd's udev rule (deploy/udev).
const RuleName = "99-gatewayd-ec600.rules"

// Run checks everything, in order, and returns the outcomes.
func Run(ctx context.Context, o Options) []Result {
	if o.Wait == 0 {
		o.Wait = 20 * time.Second
	}
	if o.Proc == "" {
		o.Proc = "/proc"
	}
	if o.UdevRules == nil {
		for _, d := range []string{"/etc/udev/rules.d", "/lib/udev/rules.d", "/usr/lib/udev/rules.d"} {
			o.UdevRules = append(o.UdevRules, filepath.Join(d, RuleName))
		}
	}
	d := &doc{o: o, cfg: o.Config}
	d.config()
	st := d.daemon(ctx)
	cands := d.usb()
	path := d.port(cands)
	held := d.holders(path, st)
	d.udev(path)
	switch {
	case st != nil:
		d.viaDaemon(ctx, st)
	case path == "" || held:
		why := "the port is missing"
		if held {
			why = "another program holds the port"
		}
		d.add("module", Skip, "not checked: "+why, "")
	default:
		d.direct(ctx, path)
	}
	d.tls()
	d.gpio(st)
	d.outbox(st)
	return d.res
}

// Failed reports whether any check failed.
func Failed(rs []Result) bool {
	return slices.ContainsFunc(rs, func(r Result) bool { return r.Level == Fail })
}

// Print writes the outcomes, one line each with what to do under the ones that need it, and a
// count.
func Print(w io.Writer, rs []Result) {
	n := map[Level]int{}
	for _, r := range rs {
		n[r.Level]++
		fmt.Fprintf(w, "  %-4s  %-12s %s\n", r.Level, r.Check, r.Detail)
		if r.Fix != "" && r.Level != OK {
			fmt.Fprintf(w, "  %-4s  %-12s → %s\n", "", "", r.Fix)
		}
	}
	fmt.Fprintf(w, "%d checks: %d ok, %d skipped, %d warnings, %d failed\n", len(rs), n[OK], n[Skip], n[Warn], n[Fail])
}

// doc collects the outcomes of one Run.
type doc struct {
	o   Options
	cfg *config.Config
	res []Result
}

func (d *doc) add(check string, l Level, detail, fix string) {
	d.res = append(d.res, Result{Check: check, Level: l, Detail: detail, Fix: fix})
}

func (d *doc) config() {
	d.add("config", OK, d.cfg.File+" is valid", "")
	for _, w := range d.cfg.Warnings {
		d.add("config", Warn, w, "see the configuration's comments (deploy/gatewayd.example.toml)")
	}
}

// daemon asks the running daemon for its status; nil when it is not reachable.
func (d *doc) daemon(ctx context.Context) *control.Status {
	sock := d.o.Socket
	if sock == "" {
		sock = d.cfg.Control.Socket
	}
	if sock == "" {
		d.add("daemon", Skip, "the control socket is off ([control] socket = \"\"): checking the module directly", "")
		return nil
	}
	actx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	resp, err := control.Ask(actx, sock, control.Request{Command: control.CmdStatus})
	if err == nil && !resp.OK {
		err = errors.New(resp.Error)
	}
	if err != nil {
		d.add("daemon", Skip, fmt.Sprintf("not running (%v): checking the module directly", err), "")
		return nil
	}
	st := resp.Status
	if st.MQTT.Connected {
		d.add("daemon", OK, fmt.Sprintf("gatewayd %s running (pid %d), connected", st.Version, st.Pid), "")
	} else {
		d.add("daemon", Warn, fmt.Sprintf("gatewayd %s running (pid %d), not connected: %s", st.Version, st.Pid, st.Doing),
			"the checks below say which part is missing; `gatewayd status` and the log say more")
	}
	return st
}

// usb lists the EC600 AT interfaces found by USB identity.
func (d *doc) usb() []port.Candidate {
	cands, err := port.Find()
	p := d.cfg.Serial.Port
	usbish := d.usbPort()
	switch {
	case err != nil && p == port.Auto:
		d.add("usb", Fail, err.Error(), "check the cable and the module's power; `lsusb` should list 2c7c:6002 (or 6001, 0901)")
	case err != nil && usbish:
		d.add("usb", Warn, err.Error(), "check the cable and the module's power; `lsusb` should list 2c7c:6002 (or 6001, 0901)")
	case err != nil:
		d.add("usb", Skip, "no EC600 on USB; the port is "+p, "")
	default:
		var s []string
		for _, c := range cands {
			s = append(s, fmt.Sprintf("%s (2c7c:%s interface %s)", c.Path, strings.ToLower(c.PID), c.Interface))
		}
		d.add("usb", OK, "EC600 AT interface: "+strings.Join(s, ", "), "")
	}
	return cands
}

// port checks the configured port and returns its path ("" when there is none).
func (d *doc) port(cands []port.Candidate) string {
	p := d.cfg.Serial.Port
	if p == port.Auto {
		if len(cands) == 0 {
			d.add("port", Fail, `port = "auto" and no EC600 AT interface is attached`, "plug the module in, or set [serial] port")
			return ""
		}
		p = cands[0].Path
	}
	fi, err := os.Stat(p)
	switch {
	case errors.Is(err, os.ErrNotExist):
		d.add("port", Fail, p+" does not exist",
			"check the USB cable; with the udev rule (deploy/udev) the AT port is /dev/ec600-at; `ls -l /dev/ttyUSB*`; or set [serial] port")
		return ""
	case err != nil:
		d.add("port", Fail, err.Error(), "check the permissions: the unit's SupplementaryGroups=dialout; by hand, `usermod -aG dialout $USER`")
		return ""
	case fi.Mode()&os.ModeCharDevice == 0:
		d.add("port", Fail, p+" is not a serial device", "set [serial] port to the module's AT port")
		return ""
	}
	detail := p
	if real, err := filepath.EvalSymlinks(p); err == nil && real != p {
		detail += " → " + real
	}
	d.add("port", OK, detail, "")
	return p
}

// holders finds the other processes that have the port open (ModemManager probing it, a
// terminal program, a second gatewayd) and reports whether there is one.
func (d *doc) holders(path string, st *control.Status) bool {
	if path == "" {
		return false
	}
	var want uint64
	if fi, err := os.Stat(path); err == nil {
		if s, ok := fi.Sys().(*syscall.Stat_t); ok {
			want = s.Rdev
		}
	}
	daemonPid := 0
	if st != nil {
		daemonPid = st.Pid
	}
	// On a pty (/dev/pts/N: the emulator), the program on the other end — it holds the master
	// with tty-index N, and the slave too to keep the tty — is the module, not a competitor.
	ptyIndex := ""
	if real, err := filepath.EvalSymlinks(path); err == nil && strings.HasPrefix(real, "/dev/pts/") {
		ptyIndex = strings.TrimPrefix(real, "/dev/pts/")
	}
	var found, peers []string
	procs, _ := os.ReadDir(d.o.Proc)
	for _, p := range procs {
		pid := p.Name()
		if pid == fmt.Sprint(os.Getpid()) || pid == fmt.Sprint(daemonPid) || strings.Trim(pid, "0123456789") != "" {
			continue
		}
		fds, err := os.ReadDir(filepath.Join(d.o.Proc, pid, "fd"))
		if err != nil {
			continue // gone, or another user's (seen as root only)
		}
		if ptyIndex != "" && d.holdsMaster(pid, fds, ptyIndex) {
			peers = append(peers, fmt.Sprintf("pid %s (%s)", pid, comm(d.o.Proc, pid)))
			continue
		}
		for _, fd := range fds {
			fi, err := os.Stat(filepath.Join(d.o.Proc, pid, "fd", fd.Name()))
			if err != nil || fi.Mode()&os.ModeCharDevice == 0 {
				continue
			}
			if s, ok := fi.Sys().(*syscall.Stat_t); ok && s.Rdev == want {
				found = append(found, fmt.Sprintf("pid %s (%s)", pid, comm(d.o.Proc, pid)))
				break
			}
		}
	}
	switch {
	case len(found) > 0:
		d.add("port users", Fail, "also open in "+strings.Join(found, ", "),
			"ModemManager: install the udev rule (deploy/udev, ID_MM_DEVICE_IGNORE) and restart it, or `systemctl stop ModemManager`; another program: stop it — two programs on one AT port take each other's answers")
		return true
	case len(peers) > 0 && st != nil:
		d.add("port users", OK, fmt.Sprintf("only gatewayd (pid %d) has it open, and the pty's other end, %s", st.Pid, strings.Join(peers, ", ")), "")
	case len(peers) > 0:
		d.add("port users", OK, "only the pty's other end has it open: "+strings.Join(peers, ", "), "")
	case st != nil:
		d.add("port users", OK, fmt.Sprintf("only gatewayd (pid %d) has it open", st.Pid), "")
	default:
		note := ""
		if os.Geteuid() != 0 {
			note = " (of this user's processes; run as root to see every process)"
		}
		d.add("port users", OK, "no other program has it open"+note, "")
	}
	return false
}

// holdsMaster reports whether process pid holds the master of pty index (its fdinfo says
// "tty-index: <index>").
func (d *doc) holdsMaster(pid string, fds []os.DirEntry, index string) bool {
	for _, fd := range fds {
		target, err := os.Readlink(filepath.Join(d.o.Proc, pid, "fd", fd.Name()))
		if err != nil || filepath.Base(target) != "ptmx" {
			continue
		}
		info, err := os.ReadFile(filepath.Join(d.o.Proc, pid, "fdinfo", fd.Name()))
		if err != nil {
			continue
		}
		for _, l := range strings.Split(string(info), "\n") {
			if v, ok := strings.CutPrefix(l, "tty-index:"); ok && strings.TrimSpace(v) == index {
				return true
			}
		}
	}
	return false
}

// comm is a process's command name.
func comm(proc, pid string) string {
	b, err := os.ReadFile(filepath.Join(proc, pid, "comm"))
	if err != nil {
		return "?"
	}
	return strings.TrimSpace(string(b))
}

// udev checks that gatewayd's udev rule is installed where it matters (a USB port) and that
// ModemManager does not run without it.
func (d *doc) udev(path string) {
	if !d.usbPort() {
		d.add("udev", Skip, "the port is not a USB tty: no udev rule needed", "")
		return
	}
	installed := ""
	for _, r := range d.o.UdevRules {
		if _, err := os.Stat(r); err == nil {
			installed = r
			break
		}
	}
	mm := d.running("ModemManager")
	switch {
	case installed != "":
		d.add("udev", OK, "rule installed: "+installed, "")
	case mm:
		d.add("udev", Fail, "ModemManager runs and gatewayd's udev rule is not installed: it may probe and hold the EC600's ports",
			"install deploy/udev/"+RuleName+" in /etc/udev/rules.d, then `udevadm control --reload && udevadm trigger` and restart ModemManager")
	default:
		d.add("udev", Warn, "gatewayd's udev rule is not installed: /dev/ec600-at will not exist, and a ModemManager installed later may take the port",
			"install deploy/udev/"+RuleName+" in /etc/udev/rules.d")
	}
}

// usbPort reports whether the configured port is (or looks like) the module's USB tty: auto,
// ttyUSB*, or the udev rule's ec600-* names — but not a pseudo-terminal (an emulator) behind one.
func (d *doc) usbPort() bool {
	p := d.cfg.Serial.Port
	if p == port.Auto {
		return true
	}
	if real, err := filepath.EvalSymlinks(p); err == nil && strings.HasPrefix(real, "/dev/pts/") {
		return false
	}
	base := filepath.Base(p)
	return strings.HasPrefix(base, "ttyUSB") || strings.HasPrefix(base, "ec600")
}

// running reports whether a process named name runs.
func (d *doc) running(name string) bool {
	procs, _ := os.ReadDir(d.o.Proc)
	for _, p := range procs {
		if strings.Trim(p.Name(), "0123456789") == "" && comm(d.o.Proc, p.Name()) == name {
			return true
		}
	}
	return false
}

// viaDaemon judges the module, the network and the session from the running daemon's status.
func (d *doc) viaDaemon(ctx context.Context, st *control.Status) {
	m := st.Module
	if m.IMEI == "" {
		d.add("module", Fail, "not identified yet: "+st.Doing, "the module does not answer the daemon: the port, the module's power; see the log")
		return
	}
	d.add("module", OK, fmt.Sprintf("%s %s, IMEI %s", m.Model, m.Revision, m.IMEI), "")
	if st.SIM != "READY" {
		d.add("SIM", Fail, orUnknown(st.SIM), simFix(st.SIM))
		return
	}
	d.add("SIM", OK, "READY, ICCID "+m.ICCID, "")
	n := st.Net
	if !n.Registered {
		d.add("network", Fail, "not registered: "+orUnknown(n.Registration), "the antenna and the coverage; a SIM the network refuses: its data plan")
		return
	}
	d.add("network", OK, registered(n.Registration, n.Operator), "")
	if n.RSSIdBm != nil {
		d.signal(*n.RSSIdBm, true)
	} else {
		d.signal(0, false)
	}
	if n.PDPAddress == "" {
		d.add("PDP", Fail, "the PDP context is not active: "+st.Doing, "set [module] apn for your operator; the SIM's data plan")
		return
	}
	d.add("PDP", OK, fmt.Sprintf("context %d active, address %s", d.cfg.Module.PDPContext, n.PDPAddress), "")
	d.dns(ctx, func(ctx context.Context, host string) ([]string, error) {
		resp, err := control.Ask(ctx, d.socket(), control.Request{Command: control.CmdResolve, Host: host})
		if err == nil && !resp.OK {
			err = errors.New(resp.Error)
		}
		return resp.Addresses, err
	})
	q := st.MQTT
	if q.Connected {
		d.add("MQTT", OK, fmt.Sprintf("connected to %s:%d as %s", q.Host, q.Port, q.ClientID), "")
		return
	}
	d.add("MQTT", Fail, fmt.Sprintf("not connected to %s:%d: %s", q.Host, q.Port, orUnknown(q.LastError)), mqttFix(q.LastError))
}

func (d *doc) socket() string {
	if d.o.Socket != "" {
		return d.o.Socket
	}
	return d.cfg.Control.Socket
}

// direct opens the port and goes through the bring-up the daemon would do, up to an MQTT
// connection with the configured credentials (closed again).
func (d *doc) direct(ctx context.Context, path string) {
	p, err := port.Open(ctx, path, d.cfg.Serial.Baud)
	if err != nil {
		d.add("module", Fail, err.Error(), "check the permissions (group dialout) and that no other program holds the port")
		return
	}
	conn := at.New(p, at.Options{URCs: qmt.URCs(), Logger: zerolog.Nop()})
	defer conn.Close()
	mod := modem.New(conn)
	sctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	err = mod.Sync(sctx, 500*time.Millisecond)
	cancel()
	if err != nil {
		d.add("module", Fail, path+" does not answer AT within 5 s",
			"a wrong port? The EC600's AT port is USB interface 3 (ttyUSB1 on 2c7c:6002), interface 2 on 0901; `port = \"auto\"` finds it. Or the module is off or still booting")
		return
	}
	if err := mod.Prepare(ctx); err != nil {
		d.add("module", Fail, "ATE0 / AT+CMEE=1: "+err.Error(), "the module answers AT but refuses basic settings: power-cycle it")
		return
	}
	id, err := mod.Identify(ctx)
	if err != nil {
		d.add("module", Fail, err.Error(), "the module answers AT but not its identification: power-cycle it")
		return
	}
	d.add("module", OK, fmt.Sprintf("%s %s, IMEI %s", id.Model, id.Revision, id.IMEI), "")
	if !d.sim(ctx, mod) || !d.registration(ctx, mod) {
		return
	}
	if dbm, ok, err := mod.SignalDBm(ctx); err == nil {
		d.signal(dbm, ok)
	}
	cid := d.cfg.Module.PDPContext
	if !d.pdp(ctx, mod, cid) {
		return
	}
	if !d.dns(ctx, func(ctx context.Context, host string) ([]string, error) { return mod.ResolveHost(ctx, cid, host) }) {
		return
	}
	d.mqtt(ctx, conn)
}

func (d *doc) sim(ctx context.Context, mod *modem.Module) bool {
	deadline := time.Now().Add(d.o.Wait)
	for {
		state, err := mod.SIMState(ctx)
		var cme *at.CMEError
		if errors.As(err, &cme) {
			state, err = at.CMEMeaning(cme.Code), nil
		}
		switch {
		case err != nil:
			d.add("SIM", Fail, err.Error(), "power-cycle the module")
			return false
		case state == "READY":
			iccid, err := mod.ICCID(ctx)
			if err != nil {
				d.add("SIM", Warn, "READY, but its ICCID cannot be read: "+err.Error(), "reseat the SIM")
				return true
			}
			d.add("SIM", OK, "READY, ICCID "+iccid, "")
			return true
		case time.Now().After(deadline) || !strings.Contains(strings.ToLower(state), "busy"):
			d.add("SIM", Fail, state, simFix(state))
			return false
		}
		if !sleep(ctx, time.Second) {
			d.add("SIM", Fail, state, simFix(state))
			return false
		}
	}
}

func (d *doc) registration(ctx context.Context, mod *modem.Module) bool {
	deadline := time.Now().Add(d.o.Wait)
	for {
		reg, err := mod.Registration(ctx)
		if err != nil {
			d.add("network", Fail, err.Error(), "power-cycle the module")
			return false
		}
		if reg.Registered() {
			op, _ := mod.Operator(ctx)
			d.add("network", OK, registered(reg.String(), op), "")
			return true
		}
		if time.Now().After(deadline) || !sleep(ctx, 2*time.Second) {
			fix := "the antenna and the coverage; wait, the module keeps searching"
			switch reg.Stat {
			case 3:
				fix = "the network refuses the SIM: check its data plan and that it is activated"
			case 0:
				fix = "the module does not search: AT+CFUN? must say 1; check the SIM"
			}
			d.add("network", Fail, fmt.Sprintf("not registered after %s: %s", d.o.Wait, reg), fix)
			return false
		}
	}
}

func (d *doc) signal(dbm int, known bool) {
	switch {
	case !known:
		d.add("signal", Warn, "not known (AT+CSQ 99)", "the antenna")
	case dbm <= -105:
		d.add("signal", Warn, fmt.Sprintf("%d dBm: weak", dbm), "the antenna and its placement; expect slow or failing connections")
	default:
		d.add("signal", OK, fmt.Sprintf("%d dBm", dbm), "")
	}
}

func (d *doc) pdp(ctx context.Context, mod *modem.Module, cid int) bool {
	active, addr, err := mod.PDPActive(ctx, cid)
	if err == nil && !active {
		m := d.cfg.Module
		if m.APN != "" {
			err = mod.SetAPNAuth(ctx, cid, m.APN, m.APNUser, m.APNPassword.Reveal(), daemon.APNAuth(m.APNAuth))
		}
		if err == nil {
			err = mod.ActivatePDP(ctx, cid)
		}
		if err == nil {
			active, addr, err = mod.PDPActive(ctx, cid)
		}
	}
	if err != nil || !active {
		detail := fmt.Sprintf("PDP context %d cannot be activated", cid)
		if err != nil {
			detail += ": " + err.Error()
		}
		d.add("PDP", Fail, detail, "set [module] apn (and apn_user, apn_password) for your operator; the SIM's data plan")
		return false
	}
	d.add("PDP", OK, fmt.Sprintf("context %d active, address %s", cid, addr), "")
	return true
}

// dns resolves the broker's host name through the module.
func (d *doc) dns(ctx context.Context, resolve func(context.Context, string) ([]string, error)) bool {
	host := d.cfg.MQTT.Host
	if net.ParseIP(host) != nil {
		d.add("DNS", Skip, "the broker is given by address: "+host, "")
		return true
	}
	rctx, cancel := context.WithTimeout(ctx, modem.DNSWait+5*time.Second)
	defer cancel()
	addrs, err := resolve(rctx, host)
	if err != nil {
		d.add("DNS", Fail, fmt.Sprintf("the module cannot resolve %s: %v", host, err),
			"check [mqtt] host; the APN's DNS servers (some private APNs have none)")
		return false
	}
	d.add("DNS", OK, fmt.Sprintf("%s → %s (through the module)", host, strings.Join(addrs, ", ")), "")
	return true
}

// mqtt opens a link and connects with the configured credentials, then disconnects.
func (d *doc) mqtt(ctx context.Context, conn *at.Conn) {
	set, err := daemon.Settings(d.cfg, zerolog.Nop())
	if err != nil {
		d.add("MQTT", Fail, err.Error(), "")
		return
	}
	c := qmt.NewClient(conn, set.ClientIndex)
	defer c.Close()
	where := fmt.Sprintf("%s:%d", set.Host, set.Port)
	fail := func(step string, err error) {
		d.add("MQTT", Fail, fmt.Sprintf("%s %s: %v", step, where, err), mqttFix(err.Error()))
	}
	if links, err := c.OpenLinks(ctx); err == nil && slices.ContainsFunc(links, func(l qmt.Link) bool { return l.Client == set.ClientIndex }) {
		_ = c.CloseLink(ctx) // a link an earlier process left open
	}
	if set.TLS != nil {
		if _, err := qssl.Apply(ctx, conn, *set.TLS); err != nil {
			fail("TLS set-up for", err)
			return
		}
	}
	if _, err := c.ConfigureReport(ctx, set.MQTT); err != nil {
		fail("configure for", err)
		return
	}
	if err := c.Open(ctx, set.Host, set.Port); err != nil {
		fail("open", err)
		return
	}
	defer func() {
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		if c.Disconnect(cctx) != nil {
			_ = c.CloseLink(cctx)
		}
	}()
	id, err := set.Platform.Identity(time.Now())
	if err != nil {
		d.add("MQTT", Fail, "credentials: "+err.Error(), "check [mqtt] password_file / the systemd credential")
		return
	}
	connect := c.Connect
	if id.SecretUsername {
		connect = c.ConnectSecretUser
	}
	if err := connect(ctx, id.ClientID, id.Username, id.Password); err != nil {
		fail("connect to", err)
		return
	}
	d.add("MQTT", OK, fmt.Sprintf("connected to %s as %s with the configured credentials (and disconnected)", where, id.ClientID), "")
}

func (d *doc) tls() {
	t := d.cfg.MQTT.TLS
	if t == nil {
		d.add("TLS", Skip, "no [mqtt.tls]: plain MQTT", "")
		return
	}
	if err := t.QSSL().Validate(); err != nil {
		d.add("TLS", Fail, err.Error(), "ca_file must be the CA that signed the broker's certificate; cert_file and key_file a pair")
		return
	}
	d.add("TLS", OK, "the CA, certificate and key files are readable and valid", "")
}

func (d *doc) gpio(st *control.Status) {
	l := d.cfg.LED
	if l.Virtual() {
		d.add("LED", OK, "virtual (no [led] line): its changes are only logged", "")
		return
	}
	if st != nil {
		if st.LED == nil {
			d.add("LED", Warn, "the daemon has not set it yet", "see the log for `cannot set the LED`")
			return
		}
		d.add("LED", OK, "the daemon drives "+l.String(), "")
		return
	}
	led, err := daemon.OpenLED(l, zerolog.Nop())
	if err != nil {
		d.add("LED", Fail, err.Error(), "`gpioinfo` lists the chips and their lines (on a Pi 5 the header is gpiochip4); the unit's group gpio")
		return
	}
	if err := led.Close(); err != nil {
		d.add("LED", Warn, "releasing "+l.String()+": "+err.Error(), "")
		return
	}
	d.add("LED", OK, l.String()+" can be driven", "")
}

func (d *doc) outbox(st *control.Status) {
	if d.cfg.Local == nil {
		d.add("outbox", Skip, "no [local]: no outbox", "")
		return
	}
	dir := d.cfg.Outbox.Dir
	if st != nil && st.Outbox != nil {
		if !st.Outbox.Available {
			d.add("outbox", Fail, dir+" cannot be used: the daemon runs without its outbox", "see the log (outbox_unavailable): a read-only SD card, permissions")
			return
		}
		d.add("outbox", OK, fmt.Sprintf("%s: %d messages waiting", dir, st.Outbox.Messages), "")
		return
	}
	if err := writable(dir); err != nil {
		d.add("outbox", Fail, err.Error(), "the directory must be writable by gatewayd (systemd's StateDirectory); `dmesg` for a card gone read-only")
		return
	}
	d.add("outbox", OK, dir+" is writable", "")
}

// writable creates dir if needed and writes, syncs and removes a file in it.
func writable(dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	f, err := os.CreateTemp(dir, ".doctor-*")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	if _, err := f.WriteString("gatewayd doctor\n"); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func simFix(state string) string {
	s := strings.ToLower(state)
	switch {
	case strings.Contains(s, "not inserted"), state == "":
		return "insert the SIM (with the module powered off)"
	case strings.Contains(s, "pin"), strings.Contains(s, "puk"):
		return "remove the SIM's PIN (in a phone); gatewayd does not enter PINs"
	case strings.Contains(s, "busy"):
		return "the SIM is still starting: run the doctor again in a minute"
	}
	return "reseat the SIM; try it in a phone"
}

func mqttFix(err string) string {
	s := strings.ToLower(err)
	switch {
	case strings.Contains(s, "user name or password"), strings.Contains(s, "not authorized"):
		return "[mqtt] username and password; for Alibaba Cloud the device secret and product key"
	case strings.Contains(s, "identifier"):
		return "the client id: shorter; for Alibaba Cloud check the securemode/signmethod suffix"
	case strings.Contains(s, "domain name"), strings.Contains(s, "dns"):
		return "check [mqtt] host and the APN's DNS"
	case strings.Contains(s, "tls"), strings.Contains(s, "ssl"):
		return "the CA must have signed the broker's certificate and the certificate must name [mqtt] host"
	}
	return "check [mqtt] host and port, and that the broker is up"
}

func registered(reg, operator string) string {
	if operator != "" {
		return reg + ", operator " + operator
	}
	return reg
}

func orUnknown(s string) string {
	if s == "" {
		return "not known yet"
	}
	return s
}

// sleep waits d or until ctx ends, and reports whether d passed.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
