// Command ec600sim runs the EC600 emulator on its own: an emulated Quectel EC600 on a
// pseudo-terminal behind a symlink, with an embedded MQTT broker (or any broker you name), and
// faults typed as lines on standard input.
//
//	ec600sim [-link PATH] [-listen ADDR [-max-qos Q] | -broker URL] [-imei N] [-model M] [-revision R] [-thing FILE]
//	         [-platform NAME -device ID=SECRET ...] [-tls-cert F -tls-key F [-tls-client-ca F] [-tls-listen ADDR]]
//
// With -platform the embedded broker plays that IoT cloud: it checks every CONNECT's credentials
// as the platform does, against the -device registry, and refuses with the platform's CONNACK
// code (see sim.WithPlatform). With -tls-cert a second embedded broker listens with TLS on
// -tls-listen, and AT+QMTOPEN of a TLS client connects there (Azure and AWS take nothing else).
// With -thing it plays the console of that gatewayd configuration's [thing].
//
// It prints the tty, the link and the broker address, then reads fault commands (type "help").
// With -thing, the gatewayd configuration FILE's [thing] section tells it the device's thing
// model: it then also plays the platform's console on the embedded broker ("set LEDSwitch 1",
// "call blink {\"times\":3}") and prints the device's replies and reports.
// It runs until SIGINT or SIGTERM, or the "quit" command. End of input on stdin only stops the
// command reader: started in the background with stdin from /dev/null, it keeps running.
package main

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/gatewayd/gatewayd/sim"
	"github.com/rs/zerolog"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}

const commandHelp = `fault commands (one per line on standard input):
  drop                   break the MQTT links to the broker      (+QMTSTAT: <idx>,1)
  droplate DUR           break them, refuse commands at once, report +QMTSTAT: <idx>,1 only DUR later
  qmtstat CODE           break the MQTT links with another code  (+QMTSTAT: <idx>,CODE; 8: EC200 after QoS 1 retries)
  pingfail               keep-alive failure                      (+QMTPING: <idx>,1, +QMTSTAT: <idx>,2)
  reboot                 restart: state gone, echo on, boot URCs again
  unplug                 pull the cable: the pty closes and the link disappears
  replug [IMEI [REV]]    plug a module in again, optionally a different one
  noise [HEX]            line noise to the host (default: a few garbage bytes)
  unresponsive on|off    read commands, answer nothing
  slow DUR               hold every reply back DUR (e.g. 500ms; 0 to stop)
  refuse-connect CODE    CONNACK refused with CODE 1-5 (+QMTCONN: <idx>,0,<CODE>); 0 to stop
  refuse-open CODE       +QMTOPEN: <idx>,<CODE> without connecting; 0 to stop
  occupy IDX             leave client IDX opening, as a host restart can (+QMTOPEN: IDX,2 until QMTCLOSE)
  refuse PREFIX|off      answer ERROR to every command starting with PREFIX (e.g. AT+QICSGP)
  sim on|off             insert / remove the SIM
  reg on|off             network registration on / off
  pdpdeact               the network deactivates the PDP context
  bearer-race            the default bearer comes back right after the next AT+QIACT? saw it down (AT+QIACT=1 then ERROR)
  dns on|off             host names resolve (AT+QIDNSGIP, AT+QMTOPEN) or fail (565, +QMTOPEN: <idx>,4)
  chunk N                write output N bytes at a time (0: whole)
  delay DUR              broker round-trip delay added to each publish result
  losepuback N           the next N QoS 1/2 publishes lose their PUBACK: +QMTPUBEX: <idx>,<id>,1,<n>... then ,2
  late DUR               every SUB/UNS/PUB result at least DUR after its command, as after retransmissions (0 to stop)
  burst TOPIC N          the broker delivers N messages on TOPIC back to back (+QMTRECV as fast as the host reads)
  signal RSSI [BER]      what AT+CSQ reports
  clock OFFSET [ZONE]    the network's time is the host's + OFFSET (e.g. -2h, 0), zone in quarter hours (32 = UTC+8)
  clock none             the network sent no time: AT+CCLK? from the 1980 default, AT+QLTS ""
  status                 print tty, link, broker and identity
  help                   this list
  quit                   stop the emulator
console commands (with -thing FILE: the platform's console for that gatewayd configuration):
  set PROP VALUE         property set, VALUE as JSON (1, true, "on") or a bare word (on)
  call SERVICE [JSON]    service call: get_status, blink {"times":3}
`

func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("ec600sim", flag.ContinueOnError)
	fs.SetOutput(stderr)
	link := fs.String("link", filepath.Join(os.TempDir(), "ec600-at"), "`path` of the symlink to the emulated AT port")
	listen := fs.String("listen", sim.DefaultBrokerAddr, "`address` of the embedded MQTT broker")
	brokerURL := fs.String("broker", "", "use this broker (`URL` tcp://host:port) instead of the embedded one")
	imei := fs.String("imei", sim.DefaultIdentity.IMEI, "IMEI the module reports (15 digits)")
	model := fs.String("model", sim.DefaultIdentity.Model, "model the module reports")
	revision := fs.String("revision", sim.DefaultIdentity.Revision, "firmware revision the module reports")
	boot := fs.Duration("boot", 0, "time from power-on to RDY")
	verbose := fs.Bool("v", false, "log every command and URC (debug)")
	trace := fs.Bool("trace", false, "log every byte to and from the host")
	variants := fs.String("variant", "", "comma-separated firmware `variants` (see below)")
	maxQoS := fs.Int("max-qos", 2, "highest QoS the embedded broker grants a subscription (Aliyun and ThingsBoard grant 1 for 2)")
	platform := fs.String("platform", "", "embedded broker checks CONNECTs as this `cloud` does: "+strings.Join(sim.Platforms(), ", "))
	var devices []sim.Device
	fs.Func("device", "a device registered on -platform, `ID=SECRET` (repeat; see sim.Device for each platform's ID)", func(s string) error {
		d, err := sim.ParseDevice(s)
		devices = append(devices, d)
		return err
	})
	var products []sim.AliyunProduct
	fs.Func("aliyun-product", "with -platform aliyun: a product with dynamic registration, `PK=PRODUCTSECRET:DN[,DN...]` "+
		"(its pre-registered device names, * for any name with authType=regnwl; repeat for more products). Registration answers over the TLS broker only", func(s string) error {
		p, err := sim.ParseAliyunProduct(s)
		products = append(products, p)
		return err
	})
	registerDelay := fs.Duration("register-delay", 0, "with -aliyun-product: hold each registration's answer back this long after CONNACK")
	regnwlTopic := fs.String("regnwl-topic", "", "with -aliyun-product: the `topic` a regnwl answer is published on (default /ext/regnwl; the documentation's text says /ext/register)")
	aliyunInstance := fs.String("aliyun-instance", "", "with -aliyun-product: the instance `id` a regnwl client id must carry (instanceId=…)")
	tlsCert := fs.String("tls-cert", "", "PEM `file`: the TLS broker's certificate (starts the TLS broker)")
	tlsKey := fs.String("tls-key", "", "PEM `file`: the TLS broker's private key")
	tlsClientCA := fs.String("tls-client-ca", "", "PEM `file`: CA that signs client certificates; asks for and checks them")
	tlsListen := fs.String("tls-listen", "127.0.0.1:8883", "`address` of the embedded TLS broker")
	thingFile := fs.String("thing", "", "gatewayd configuration `file` whose [thing] the console plays (needs the embedded broker)")
	fs.Usage = func() {
		fmt.Fprintf(stderr, "usage: ec600sim [flags]\n\nRuns an emulated Quectel EC600 on a pty behind -link, with an embedded MQTT broker\n"+
			"on -listen unless -broker names another. Every AT+QMTOPEN connects to that broker.\n"+
			"Runs until SIGINT/SIGTERM or \"quit\"; end of input on stdin does not stop it.\n\nflags:\n")
		fs.PrintDefaults()
		fmt.Fprint(stderr, "\n"+variantHelp+"\n"+commandHelp)
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "ec600sim: unexpected argument %q\n", fs.Arg(0))
		fs.Usage()
		return 2
	}

	level := zerolog.InfoLevel
	switch {
	case *trace:
		level = zerolog.TraceLevel
	case *verbose:
		level = zerolog.DebugLevel
	}
	noColor := true
	if f, ok := stderr.(*os.File); ok {
		if fi, err := f.Stat(); err == nil && fi.Mode()&os.ModeCharDevice != 0 {
			noColor = false
		}
	}
	log := zerolog.New(zerolog.ConsoleWriter{Out: stderr, TimeFormat: "15:04:05", NoColor: noColor}).Level(level).With().Timestamp().Logger()

	brokerAddr := *brokerURL
	where := "external"
	var bopts []sim.BrokerOption
	if *platform != "" {
		if brokerAddr != "" {
			fmt.Fprintln(stderr, "ec600sim: -platform checks CONNECTs in the embedded broker; it does not go with -broker")
			return 2
		}
		bopts = append(bopts, sim.WithPlatform(*platform, devices...))
		where = "embedded, checking as " + *platform
	}
	if len(products) > 0 {
		if *platform != sim.PlatformAliyun {
			fmt.Fprintln(stderr, "ec600sim: -aliyun-product needs -platform aliyun")
			return 2
		}
		bopts = append(bopts, sim.WithAliyunRegistration(sim.RegistrationOptions{Delay: *registerDelay, ReplyTopic: *regnwlTopic, InstanceID: *aliyunInstance}, products...))
	}
	tlsAddr := ""
	if *tlsCert != "" || *tlsKey != "" {
		tcfg, err := brokerTLS(*tlsCert, *tlsKey, *tlsClientCA)
		if err != nil {
			fmt.Fprintf(stderr, "ec600sim: %v\n", err)
			return 2
		}
		tb, err := sim.NewBroker(*tlsListen, append([]sim.BrokerOption{sim.WithBrokerLogger(log), sim.WithTLS(tcfg)}, bopts...)...)
		if err != nil {
			fmt.Fprintf(stderr, "ec600sim: embedded TLS broker: %v\n", err)
			return 1
		}
		defer tb.Close()
		tlsAddr = tb.Addr()
	}
	var embedded *sim.Broker
	if brokerAddr == "" {
		if *maxQoS < 0 || *maxQoS > 2 {
			fmt.Fprintf(stderr, "ec600sim: -max-qos %d: must be 0, 1 or 2\n", *maxQoS)
			return 2
		}
		b, err := sim.NewBroker(*listen, append([]sim.BrokerOption{sim.WithBrokerLogger(log), sim.WithMaxQoS(byte(*maxQoS))}, bopts...)...)
		if err != nil {
			fmt.Fprintf(stderr, "ec600sim: embedded broker: %v\n", err)
			return 1
		}
		defer b.Close()
		brokerAddr, embedded = b.Addr(), b
		if where == "external" {
			where = "embedded"
		}
	}
	cfg := sim.Config{
		Link:      *link,
		Broker:    brokerAddr,
		TLSBroker: tlsAddr,
		Identity:  sim.Identity{IMEI: *imei, Model: *model, Revision: *revision},
		Logger:    log,
		BootDelay: *boot,
	}
	if err := applyVariants(&cfg, *variants); err != nil {
		fmt.Fprintf(stderr, "ec600sim: -variant: %v\n", err)
		return 2
	}
	m, err := sim.New(cfg)
	if err != nil {
		fmt.Fprintf(stderr, "ec600sim: %v\n", err)
		return 2
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	if err := m.Start(ctx); err != nil {
		fmt.Fprintf(stderr, "ec600sim: %v\n", err)
		return 1
	}
	defer m.Close()

	out := &lockedWriter{w: stdout}
	var console *consoleCLI
	if *thingFile != "" {
		if embedded == nil {
			fmt.Fprintln(stderr, "ec600sim: -thing needs the embedded broker (not -broker)")
			return 2
		}
		if console, err = newConsoleCLI(*thingFile, embedded, out); err != nil {
			fmt.Fprintf(stderr, "ec600sim: -thing: %v\n", err)
			return 2
		}
	}
	status := func() {
		fmt.Fprintf(out, "tty %s\nlink %s\nbroker %s (%s)\nimei %s\n", orNone(m.TTY()), m.Path(), m.BrokerAddr(), where, m.Identity().IMEI)
		if tlsAddr != "" {
			fmt.Fprintf(out, "tls broker %s\n", tlsAddr)
		}
	}
	status()
	fmt.Fprintln(out, `ready; type "help" for fault commands`)

	lines := make(chan string)
	go func() { // ends at EOF or when the process exits; it only ever blocks on stdin
		sc := bufio.NewScanner(stdin)
		for sc.Scan() {
			select {
			case lines <- sc.Text():
			case <-ctx.Done():
				return
			}
		}
		close(lines)
	}()
	for {
		select {
		case <-ctx.Done():
			fmt.Fprintln(out, "stopping")
			return 0
		case <-m.Done():
			return 0
		case line, ok := <-lines:
			if !ok {
				lines = nil // EOF: keep running until a signal
				continue
			}
			quit, err := command(m, strings.Fields(line), out, status, console)
			switch {
			case quit:
				fmt.Fprintln(out, "stopping")
				return 0
			case err != nil:
				fmt.Fprintf(out, "error: %v\n", err)
			case strings.TrimSpace(line) != "":
				fmt.Fprintln(out, "ok")
			}
		}
	}
}

// command runs one fault command line.
func command(m *sim.Module, f []string, out io.Writer, status func(), console *consoleCLI) (quit bool, err error) {
	if len(f) == 0 {
		return false, nil
	}
	arg := func(i int) string {
		if i < len(f) {
			return f[i]
		}
		return ""
	}
	onOff := func() (bool, error) {
		switch arg(1) {
		case "on":
			return true, nil
		case "off":
			return false, nil
		}
		return false, fmt.Errorf("%s needs on or off", f[0])
	}
	number := func() (int, error) {
		n, err := strconv.Atoi(arg(1))
		if err != nil {
			return 0, fmt.Errorf("%s needs a number: %q", f[0], arg(1))
		}
		return n, nil
	}
	duration := func() (time.Duration, error) {
		if arg(1) == "0" {
			return 0, nil
		}
		d, err := time.ParseDuration(arg(1))
		if err != nil {
			return 0, fmt.Errorf("%s needs a duration such as 500ms: %q", f[0], arg(1))
		}
		return d, nil
	}
	switch f[0] {
	case "help", "?":
		fmt.Fprint(out, commandHelp)
	case "set", "call":
		if console == nil {
			return false, fmt.Errorf("%s plays the platform's console: start ec600sim with -thing FILE (a gatewayd configuration with [thing])", f[0])
		}
		return false, console.command(f)
	case "quit", "exit":
		return true, nil
	case "status":
		status()
	case "drop":
		return false, m.DropLink()
	case "pingfail":
		return false, m.PingFail()
	case "qmtstat":
		n, err := number()
		if err == nil {
			err = m.LoseLink(n)
		}
		return false, err
	case "reboot":
		return false, m.Reboot()
	case "unplug":
		return false, m.Unplug()
	case "replug":
		if err := m.Replug(sim.Identity{IMEI: arg(1), Revision: arg(2)}); err != nil {
			return false, err
		}
		status()
	case "noise":
		var b []byte
		if arg(1) != "" {
			if b, err = hex.DecodeString(arg(1)); err != nil {
				return false, fmt.Errorf("noise takes hex bytes: %w", err)
			}
		}
		return false, m.Noise(b)
	case "unresponsive":
		on, err := onOff()
		if err == nil {
			m.SetUnresponsive(on)
		}
		return false, err
	case "slow":
		d, err := duration()
		if err == nil {
			m.SetSlow(d)
		}
		return false, err
	case "delay":
		d, err := duration()
		if err == nil {
			m.SetBrokerDelay(d)
		}
		return false, err
	case "losepuback":
		n, err := number()
		if err == nil {
			m.LosePUBACK(n)
		}
		return false, err
	case "burst":
		n, err := strconv.Atoi(arg(2))
		if err != nil || arg(1) == "" || n < 0 {
			return false, fmt.Errorf("burst needs a topic and a count: burst devices/x/led 10000")
		}
		return false, m.Burst(context.Background(), arg(1), n, nil)
	case "droplate":
		d, err := duration()
		if err == nil {
			err = m.DropLinkLate(d)
		}
		return false, err
	case "late":
		d, err := duration()
		if err == nil {
			m.SetResultDelay(d)
		}
		return false, err
	case "chunk":
		n, err := number()
		if err == nil {
			m.SetChunking(n)
		}
		return false, err
	case "refuse-connect":
		n, err := number()
		if err == nil {
			err = m.RefuseConnect(n)
		}
		return false, err
	case "occupy":
		n, err := number()
		if err == nil {
			err = m.Occupy(n)
		}
		return false, err
	case "refuse":
		if arg(1) == "" {
			return false, fmt.Errorf("refuse needs a command prefix such as AT+QICSGP, or off")
		}
		if arg(1) == "off" {
			m.Refuse("")
		} else {
			m.Refuse(arg(1))
		}
	case "refuse-open":
		n, err := number()
		if err == nil {
			m.RefuseOpen(n)
		}
		return false, err
	case "sim":
		on, err := onOff()
		if err == nil {
			err = m.SetSIM(on)
		}
		return false, err
	case "reg":
		on, err := onOff()
		if err == nil {
			err = m.SetRegistered(on)
		}
		return false, err
	case "dns":
		on, err := onOff()
		if err == nil {
			m.SetDNS(on)
		}
		return false, err
	case "pdpdeact":
		return false, m.DeactivatePDP()
	case "bearer-race":
		return false, m.BearerRace()
	case "signal":
		rssi, err := number()
		if err != nil {
			return false, err
		}
		ber := 99
		if arg(2) != "" {
			if ber, err = strconv.Atoi(arg(2)); err != nil {
				return false, fmt.Errorf("signal: BER %q is not a number", arg(2))
			}
		}
		return false, m.SetSignal(rssi, ber)
	case "clock":
		if arg(1) == "none" {
			return false, m.SetNetworkClock(0, 32, false)
		}
		off, err := duration()
		if err != nil {
			return false, err
		}
		zone := 32
		if arg(2) != "" {
			if zone, err = strconv.Atoi(arg(2)); err != nil {
				return false, fmt.Errorf("clock: zone %q is not a number of quarter hours", arg(2))
			}
		}
		return false, m.SetNetworkClock(off, zone, true)
	default:
		return false, fmt.Errorf("unknown command %q (type help)", f[0])
	}
	return false, nil
}

const variantHelp = `firmware variants (-variant a,b; the reference marks each VARIANT or UNCONFIRMED):
  ufs-prefix             AT+QFLST names carry a "UFS:" prefix
  bare-cert-names        AT+QSSLCFG wants bare file names; "UFS:name" answers ERROR
  silent-refusal         no +QMTSTAT: <idx>,1 after a refused CONNACK (kinder than the field)
  urcport-uart1          NV holds AT+QURCCFG="urcport","uart1": URCs go to the UART, not this port
  qicsgp-auth-0-2        AT+QICSGP=? offers authentication (0-2): 3 (PAP or CHAP) answers ERROR (BG770A)
  unisoc                 EC600U: no ASR-only AT+QMTCFG names (edit/timeout, willex, ...): +CME ERROR: 4
  sim-ready              the SIM is ready at RDY (kinder than the field's +CME ERROR: 14 for ~1 s)
  short-lines            command lines over 1024 bytes answer ERROR (the EC600's limit is UNCONFIRMED; default 4096)
  app-rdy                a second ready URC, APP RDY, 1 s after RDY (BG77; EC200U after a reset)
  stray-error            a command line with bytes before "AT" (an ESC, noise) answers ERROR
  refusal-qmtstat-4      a refused CONNACK is followed by +QMTSTAT: <idx>,4, not 1 (BG95-M3)
  refusal-qmtstat-only   a refused CONNECT gets no +QMTCONN at all, only +QMTSTAT: <idx>,1 (M95)
  qmtconn-two-field      an accepted CONNECT is +QMTCONN: <idx>,0 without the ret_code (older firmware)
  first-at-error         the first command after power-on answers ERROR (EC2x-class)
  qiact-dual-type1       AT+QIACT? lists an IPv4 and an IPv6 address under type 1 (EC600S)
  qiact-dual-type3       AT+QIACT? lists an IPv4 and an IPv6 address under type 3 (EC200U)
  qmtcfg-strict          AT+QMTCFG answers ERROR on a connected index too (by default: open, not connected)
  recv-next-line         +QMTRECV: <idx>,<id>,"<topic>",<len> CR LF <payload> (EC200U note)
  recv-unquoted          +QMTRECV: <idx>,<id>,"<topic>",<len>,<payload> (BC25)
  recv-blank-lines       an empty line on each side of every +QMTRECV (BG96)
  urc-before-prompt      the "> " prompt comes 50 ms after the command; URCs due meanwhile go first (BG96)
  split-prompt           ">" first, its space in front of the next output: " \r\nOK" (EC200U)
  coalesce               output gathered for 20 ms and written in one write(2): result and downlink in one read (BC26)
`

// applyVariants sets the firmware variants named in list (comma-separated) on cfg.
func applyVariants(cfg *sim.Config, list string) error {
	for _, v := range strings.Split(list, ",") {
		switch strings.TrimSpace(v) {
		case "":
		case "ufs-prefix":
			cfg.ListUFSPrefix = true
		case "bare-cert-names":
			cfg.BareCertNames = true
		case "silent-refusal":
			cfg.SilentRefusal = true
		case "urcport-uart1":
			cfg.SavedURCPort = "uart1"
		case "qicsgp-auth-0-2":
			cfg.NoPAPOrCHAP = true
		case "unisoc":
			cfg.Unisoc = true
		case "app-rdy":
			cfg.AppReady = time.Second
		case "stray-error":
			cfg.StrayError = true
		case "sim-ready":
			cfg.SIMBusy = -1
		case "short-lines":
			cfg.MaxLine = 1024
		case "refusal-qmtstat-4":
			cfg.RefusalStat = 4
		case "refusal-qmtstat-only":
			cfg.RefusalStatOnly = true
		case "qmtconn-two-field":
			cfg.ConnAckTwoFields = true
		case "first-at-error":
			cfg.FirstATError = true
		case "qiact-dual-type1":
			cfg.DualStack = 1
		case "qiact-dual-type3":
			cfg.DualStack = 3
		case "qmtcfg-strict":
			cfg.StrictQMTCFG = true
		case "recv-next-line":
			cfg.RecvForm = sim.RecvNextLine
		case "recv-unquoted":
			cfg.RecvForm = sim.RecvUnquoted
		case "recv-blank-lines":
			cfg.RecvBlankLines = true
		case "urc-before-prompt":
			cfg.PromptDelay = 50 * time.Millisecond
		case "split-prompt":
			cfg.SplitPrompt = true
		case "coalesce":
			cfg.Coalesce = 20 * time.Millisecond
		default:
			return fmt.Errorf("unknown variant %q (see -help)", v)
		}
	}
	return nil
}

func orNone(s string) string {
	if s == "" {
		return "(unplugged)"
	}
	return s
}

// lockedWriter serialises writes to the output.
type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// brokerTLS is the embedded TLS broker's configuration: its certificate and key and, with a
// client CA, a demand for client certificates signed by it.
func brokerTLS(certFile, keyFile, clientCAFile string) (*tls.Config, error) {
	if certFile == "" || keyFile == "" {
		return nil, errors.New("-tls-cert and -tls-key go together")
	}
	pair, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, fmt.Errorf("-tls-cert/-tls-key: %w", err)
	}
	cfg := &tls.Config{Certificates: []tls.Certificate{pair}, MinVersion: tls.VersionTLS12}
	if clientCAFile != "" {
		pemData, err := os.ReadFile(clientCAFile)
		if err != nil {
			return nil, fmt.Errorf("-tls-client-ca: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pemData) {
			return nil, fmt.Errorf("-tls-client-ca %s: no PEM certificate in it", clientCAFile)
		}
		cfg.ClientCAs, cfg.ClientAuth = pool, tls.RequireAndVerifyClientCert
	}
	return cfg, nil
}
