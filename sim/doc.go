// Package sim emulates a Quectel EC600 LTE module for people and tests without one: the AT port
// on a pseudo-terminal, answering byte for byte in the EC600 dialect as the project's AT
// reference (ec600-at.md) gives it, and the module's MQTT client for real, over a real MQTT 3.1.1
// connection to a real broker. Faults a bench can cause are on demand. It frames the protocol on
// its own and shares no code with the daemon's at/ and qmt/ packages, so a misreading in one is
// caught by the other.
//
// The parts:
//
//   - Module is one emulated module. New checks a Config; Start allocates the pty (raw mode, so
//     bytes pass exactly), points Config.Link at it as a udev symlink would, and powers on
//     (RDY, +CFUN: 1, +CPIN: READY, +QUSIM: 1, +QIND: SMS DONE, +QIND: PB DONE). Close ends it.
//   - Broker is an embedded MQTT broker (mochi-mqtt) on a loopback port; WithAuth lets it refuse
//     chosen CONNECTs with a chosen CONNACK code; WithConnectRate refuses CONNECTs above a rate
//     with CONNACK 3 (server unavailable), as a broker with a connection rate limit does, and
//     WithPublishObserver sees every PUBLISH a client sends. Any other broker works too:
//     Config.Broker names where every AT+QMTOPEN connects, whatever host the command gives, so a
//     configuration written for a cloud broker runs unchanged. WithPlatform makes it a checking broker that
//     plays one IoT cloud (Aliyun, Tencent, Huawei, OneNET, Azure, AWS, ThingsBoard): it
//     recomputes every CONNECT's credentials from what arrived, as the platform does, and
//     refuses with the platform's CONNACK code, saying why in its log (cloud.go); WithEvents
//     reports CONNECTs, refusals and DISCONNECTs to a test.
//     written for a cloud broker runs unchanged.
//   - Console plays a cloud platform's console on a Broker for a device whose LED is bound to a
//     property (gatewayd's [thing]): property sets and service calls in the platform's dialect,
//     and the device's replies and reports read back (internal/thing's Console does the dialect).
//
// A test starts both in a few lines:
//
//	b, _ := sim.NewBroker("127.0.0.1:0")
//	defer b.Close()
//	m, _ := sim.New(sim.Config{Link: dir + "/ec600-at", Broker: b.Addr()})
//	_ = m.Start(ctx)
//	defer m.Close()
//	// open m.Path() as the serial port
//
// # What is emulated
//
// Echo (on after power-up until ATE0, the bytes as received), ATI, AT+CGMI/GMI, CGMM/GMM,
// CGMR/GMR, GSN/CGSN, QCCID, CIMI, CPIN?, CSQ, CCLK (27.007) and QLTS (clock.go: the network's
// time, or the 1980 default without it), CREG/CGREG/CEREG (query, =n, URCs), CGATT?,
// QICSGP, QIACT, QIDEACT, CFUN (0/1/4, and 1,1 to reboot), QURCCFG "urcport" (URCs go only to
// the port it names), CMEE 0/1/2, QPOWD; ERROR for anything else. MQTT: AT+QMTCFG with every
// name of the EC600S =? list (stored per client, range-checked, answered on query), QMTOPEN,
// QMTCLOSE, QMTCONN, QMTDISC, QMTSUB, QMTUNS, QMTPUBEX (length form, "> " prompt, data echoed
// under ATE1), QMTPUB (Ctrl-Z form with ESC abort, and the length form), QMTRECV (direct with
// and without length, buffer mode with five slots), the ? and =? forms. Each MQTT command
// answers OK and reports the real outcome later: CONNACK codes, SUBACK granted QoS, PUBACK /
// PUBCOMP. The host's msgIDs are echoed in the URCs; paho uses its own packet ids on the wire.
// Downlink msgIDs are the broker's packet ids (0 for QoS 0). URCs are held back while the host
// types data after a prompt and follow the OK.
//
// TLS is real: AT+QSSLCFG contexts 0-5 (sslversion, ciphersuite, seclevel, cacert, clientcert,
// clientkey, ignorelocaltime, sni, negotiatetime; set, query and =? forms), and a client with
// AT+QMTCFG="ssl",<idx>,1,<ctx> runs a Go crypto/tls handshake at AT+QMTOPEN towards
// Config.TLSBroker (a Broker made WithTLS): the broker's chain is checked against the uploaded
// cacert under the host name AT+QMTOPEN gave (seclevel >= 1), the uploaded client certificate
// and key are shown (seclevel 2), SNI is sent with sni 1. The module's file system: AT+QFUPL
// (CONNECT, exactly <size> raw bytes, never echoed, +QFUPL: <size>,<checksum>), AT+QFLST,
// AT+QFDEL, AT+QFLDS="UFS". Files are flash: a reboot keeps them, a module with another IMEI
// (Replug) has none. Config.ListUFSPrefix and Config.BareCertNames select the firmware
// variants of the reference ("UFS:" in listings; bare names only in AT+QSSLCFG).
//
// More firmware variants (reference VARIANT markers; ec600sim -variant): Config.NoPAPOrCHAP
// (qicsgp-auth-0-2: AT+QICSGP=? offers auth (0-2), 3 answers ERROR, as on a BG770A) and
// Config.Unisoc (unisoc: EC600U firmware without the ASR-only AT+QMTCFG names, refused with
// +CME ERROR: 4 under CMEE=1). The session forms real modules printed (reference 2.3, 0, 4.2):
// Config.RefusalStat (refusal-qmtstat-4: a refused CONNACK then +QMTSTAT: <idx>,4, BG95-M3),
// Config.RefusalStatOnly (refusal-qmtstat-only: no +QMTCONN, only +QMTSTAT: <idx>,1, M95),
// Config.ConnAckTwoFields (qmtconn-two-field: success as +QMTCONN: <idx>,0), Config.FirstATError
// (first-at-error: the first command after power-on answers ERROR, EC2x-class) and
// Config.DualStack (qiact-dual-type1 / qiact-dual-type3: AT+QIACT? gives an IPv4 and an IPv6
// address under type 1 as an EC600S did, or type 3 as an EC200U did). WithMaxQoS makes the
// embedded broker grant less than asked (ec600sim -max-qos 1, as Aliyun grants 1 for 2).
// Downlink topics are printed raw between the quotes, `"`, CR and
// LF included, as the broker passed them (reference 2.10).
//
// Data-path variants (reference 0, 2.6, 2.7): Config.RecvForm prints a counted downlink with its
// payload on the next line (recv-next-line, an EC200U note) or unquoted after the length
// (recv-unquoted, BC25); Config.RecvBlankLines puts an empty line on each side of it
// (recv-blank-lines, BG96); Config.PromptDelay holds the "> " prompt back and writes URCs due
// meanwhile before it (urc-before-prompt, BG96); Config.SplitPrompt writes ">" and puts its space
// in front of the next output (split-prompt, EC200U); Config.Coalesce writes what comes within a
// few milliseconds in one write(2), a result and a downlink in one read (coalesce, BC26). By
// default payloads pass raw (CR LF, quotes, spaces, UTF-8) with <len> their byte count.
//
// # Faults
//
// From Go (methods of Module) and from cmd/ec600sim (lines on its standard input):
//
//	DropLink()          drop       TCP link to the broker broken: +QMTSTAT: <idx>,1
//	DropLinkLate(d)     droplate DUR  the same, commands refused at once, the +QMTSTAT only d later
//	LoseLink(code)      qmtstat CODE  the same with +QMTSTAT: <idx>,<code> (8: EC200 after QoS 1 retries)
//	PingFail()          pingfail   +QMTPING: <idx>,1 then +QMTSTAT: <idx>,2
//	Reboot()            reboot     all state gone, echo on, boot URCs again (same pty)
//	Unplug()            unplug     pty closed (host reads/writes fail), symlink removed
//	Replug(Identity)    replug     new pty behind the symlink, booted; optionally a new IMEI/revision
//	Swap(Identity)      (Unplug, then Replug: another module on the bench)
//	Noise([]byte)       noise      raw bytes on the line
//	SetUnresponsive(b)  unresponsive on|off   input read and ignored, nothing written
//	SetSlow(d)          slow DUR   every command reply held back d
//	RefuseConnect(code) refuse-connect CODE   the broker's CONNACK rewritten to code: +QMTCONN: <idx>,0,<code>
//	RefuseOpen(code)    refuse-open CODE      +QMTOPEN: <idx>,<code> without connecting
//	Occupy(idx)         occupy IDX client idx left opening: not listed by QMTOPEN?, +QMTOPEN: <idx>,2 until QMTCLOSE
//	Refuse(prefix)      refuse PREFIX|off     every command starting with PREFIX (e.g. AT+QICSGP) answers ERROR
//	SetSIM(bool)        sim on|off +CPIN: NOT READY; CPIN?/CIMI/QCCID give CME error 10; deregistered
//	SetRegistered(bool) reg on|off +CEREG: 0,2 (searching); PDP and MQTT links go down
//	DeactivatePDP()     pdpdeact   +QIURC: "pdpdeact",<cid>, then +QMTSTAT: <idx>,1
//	BearerRace()        bearer-race  cid 1 comes back right after the next AT+QIACT? saw it down
//	SetDNS(bool)        dns on|off AT+QIDNSGIP reports 565, AT+QMTOPEN on a host name +QMTOPEN: <idx>,4
//	SetChunking(n)      chunk N    output written n bytes at a time
//	SetBrokerDelay(d)   delay DUR  each publish result held until d after the command was accepted
//	LosePUBACK(n)       losepuback N  next n QoS 1/2 publishes: +QMTPUBEX: <idx>,<id>,1,<k> per retry, then ,2
//	Burst(ctx, t, n, p) burst T N  n downlinks on t back to back, held back (never dropped) while the host does not read
//	SetResultDelay(d)   late DUR   every SUB/UNS/PUB result held until d after its command (retransmissions)
//	SetSignal(r, b)     signal RSSI [BER]     what AT+CSQ reports
//	SetNetworkClock(o, z, ok)  clock OFFSET [ZONE] | clock none   the network's time (AT+CCLK?, AT+QLTS)
//
// DropLink, PingFail and DeactivatePDP close the module's TCP socket, so the broker sees the
// connection end without DISCONNECT (and publishes the will). The broker going away for real (Broker.Close, a killed mosquitto) is +QMTSTAT: <idx>,1; a
// broker refusing credentials is +QMTCONN: <idx>,0,<code>, followed by +QMTSTAT: <idx>,1 as the
// broker closes the link (Config.SilentRefusal leaves that out).
//
// # Choices where the reference is silent or UNCONFIRMED
//
//   - CMEE defaults to 1. Syntax errors and unknown commands are plain ERROR in every mode.
//   - MQTT test commands (=?) use the BG770A layout: info line, one CRLF, "OK\r\n".
//   - AT+QMTCFG (set) on a client index that is open but not connected — opening (or left
//     opening), open, connecting, closing — answers ERROR (reference 1, an EC600K-CN note);
//     queries still answer. A connected index takes it unless Config.StrictQMTCFG
//     (qmtcfg-strict) refuses it there too.
//   - After +QMTSTAT, a refused CONNACK or QMTDISC, the client index is closed: QMTOPEN works
//     directly, and QMTCLOSE/QMTDISC on a closed index answer ERROR. Commands outstanding when
//     a link is lost get no result URC; +QMTSTAT is the signal.
//   - A failed CONNECT without CONNACK is +QMTCONN: <idx>,2 when nothing could be sent, else
//     +QMTSTAT: <idx>,4. Retransmission (result 1) is never reported; "timeout" sets paho's
//     connect and write timeouts to pkt_timeout x (retry+1).
//   - A sixth message in buffer mode (all five slots full) is dropped.
//   - dataformat/send-mode hex: the data after the prompt is hex text of <length> characters;
//     a hex downlink's <len> counts the hex characters printed.
//   - edit/timeout (when enabled) ends data mode with ERROR; default 0,30.
//   - TLS: the highest version is TLS 1.2 (sslversion 4 = TLS 1.0-1.2); sslversion 0 (SSL 3.0)
//     fails. Any setting the handshake cannot work with (a file missing from the UFS, a bad
//     PEM, a failed handshake or verification) is +QMTOPEN: <idx>,-1. With seclevel >= 1 the
//     host name is verified too; ignorelocaltime 1 skips the validity dates. AT+QSSLCFG does
//     not check that a file exists; the handshake does.
//   - Files: names up to 80 bytes without / \ : * ?, an optional "UFS:" prefix; 256 KiB of
//     space. AT+QFUPL needs <file_size>; <timeout> defaults to 5 s; ackmode 1 answers ERROR.
//     Error numbers (a BG95 driver's table; the EC600's are UNCONFIRMED): 405 not found,
//     406 bad name, 407 exists, 420 no space, 421 data not in time (no file kept), 423 too
//     large. The checksum is the XOR of big-endian 16-bit words.
//   - AT+QMTCFG="aliauth" signs with securemode=3, hmacsha1, no timestamp.
//   - AT+CGATT=0 (detach) answers ERROR. QIACT on an active context answers ERROR.
//   - With no SIM or registration, QIACT answers +CME ERROR: 30 and QMTOPEN +QMTOPEN: <idx>,3.
//   - Losing registration deactivates every context with +QIURC: "pdpdeact"; regaining it brings
//     cid 1 (the LTE default bearer) back; a network PDP deactivation stays until AT+QIACT.
//
// Everything runs in goroutines owned by the Module and stopped by Close or the Start context;
// Close returns when they have all ended.
package sim
