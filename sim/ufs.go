package sim

import (
	"fmt"
	"path"
	"slices"
	"strings"
	"time"
)

// The module's user file system (UFS), where TLS certificates go (reference section 5.2).
const (
	ufsTotal   = 256 << 10 // bytes of UFS; the EC600's real size is not in the reference
	maxFileLen = 80        // longest file name accepted (unconfirmed: Quectel manuals say 80)
)

// File-system error numbers, as a BG95 driver's table lists them; the reference leaves the
// EC600's numbers UNCONFIRMED ("match 4xx"), so the daemon must not rely on these.
const (
	fsNotFound    = 405
	fsBadName     = 406
	fsExists      = 407
	fsNoSpace     = 420
	fsTimeout     = 421
	fsFileTooLong = 423
)

// fsUsed is how many bytes the files take.
func (e *engine) fsUsed() int {
	n := 0
	for _, b := range e.files {
		n += len(b)
	}
	return n
}

// fileName turns a quoted file-name argument into the stored name: an optional "UFS:" prefix
// (any case) is dropped; ok is false for a name the module refuses.
func fileName(f field) (string, bool) {
	if !f.quoted {
		return "", false
	}
	name := f.text
	if len(name) >= 4 && strings.EqualFold(name[:4], "UFS:") {
		name = name[4:]
	}
	if name == "" || len(name) > maxFileLen || strings.ContainsAny(name, `/\:*?`) {
		return "", false
	}
	return name, true
}

// listName is how AT+QFLST names a file: with "UFS:" when the firmware variant says so.
func (e *engine) listName(name string) string {
	if e.m.cfg.ListUFSPrefix {
		return "UFS:" + name
	}
	return name
}

// cmdQFUPL: AT+QFUPL="<name>",<size>[,<timeout>[,<ackmode>]] answers CONNECT, takes exactly
// size raw bytes (no echo: the port is in data mode), then +QFUPL: <size>,<checksum> and OK.
// A name that exists is refused (reference: AT+QFDEL first). Data that does not all come within
// timeout seconds (default 5) ends with a time-out error and no file. ackmode 1 is not emulated.
func (e *engine) cmdQFUPL(c cmdLine) reply {
	switch c.kind {
	case kindTest:
		return ok(fmt.Sprintf("+QFUPL: <filename>[,(1-%d)[,(1-65535)[,(0,1)]]]", ufsTotal-e.fsUsed()))
	}
	f, fits := c.argsBetween(2, 4)
	if !fits {
		return errReply()
	}
	size, v1 := f[1].num(1, 1<<30)
	timeout, v2 := 5, true
	if len(f) > 2 {
		timeout, v2 = f[2].num(1, 65535)
	}
	v3 := len(f) < 4 || f[3].text == "0"
	if !v1 || !v2 || !v3 || !f[0].quoted {
		return errReply()
	}
	name, valid := fileName(f[0])
	switch {
	case !valid:
		return e.cme(fsBadName)
	case e.files[name] != nil:
		return e.cme(fsExists)
	case size > ufsTotal:
		return e.cme(fsFileTooLong)
	case size > ufsTotal-e.fsUsed():
		return e.cme(fsNoSpace)
	}
	e.data = &dataEntry{kind: dataFile, file: name, want: size}
	e.dataTimer = time.NewTimer(time.Duration(timeout) * time.Second)
	e.log.Debug().Str("file", name).Int("size", size).Msg("QFUPL: CONNECT")
	return reply{lines: []string{"CONNECT"}}
}

// finishFile stores a complete upload.
func (e *engine) finishFile(d *dataEntry) {
	e.files[d.file] = d.buf
	e.log.Info().Str("file", d.file).Int("size", len(d.buf)).Msg("file uploaded")
	e.send(ok(fmt.Sprintf("+QFUPL: %d,%x", len(d.buf), checksum(d.buf))))
}

// checksum is the 16-bit XOR of the data taken as big-endian words (an odd last byte is the
// high byte of a word). The reference calls Quectel's algorithm "XOR-based", details
// UNCONFIRMED: the daemon compares sizes only.
func checksum(b []byte) uint16 {
	var x uint16
	for i := 0; i < len(b); i += 2 {
		w := uint16(b[i]) << 8
		if i+1 < len(b) {
			w |= uint16(b[i+1])
		}
		x ^= w
	}
	return x
}

// cmdQFLST: AT+QFLST lists every file, AT+QFLST="<pattern>" those matching (* and ? wildcards,
// an optional UFS: prefix): one +QFLST: "<name>",<size> line each, in name order, then OK.
func (e *engine) cmdQFLST(c cmdLine) reply {
	pattern := "*"
	switch c.kind {
	case kindTest, kindExec:
		if c.kind == kindTest {
			return ok()
		}
	case kindSet:
		f, err := splitArgs(c.args)
		if err != nil || len(f) != 1 || !f[0].quoted {
			return errReply()
		}
		pattern = f[0].text
		if len(pattern) >= 4 && strings.EqualFold(pattern[:4], "UFS:") {
			pattern = pattern[4:]
		}
		if _, err := path.Match(pattern, ""); err != nil {
			return errReply()
		}
	default:
		return errReply()
	}
	var lines []string
	for _, name := range e.fileNames() {
		if m, _ := path.Match(pattern, name); m {
			lines = append(lines, fmt.Sprintf("+QFLST: %q,%d", e.listName(name), len(e.files[name])))
		}
	}
	return ok(lines...)
}

// cmdQFDEL: AT+QFDEL="<name>" deletes one file (a missing one is an error), "*" all of them.
func (e *engine) cmdQFDEL(c cmdLine) reply {
	if c.kind == kindTest {
		return ok()
	}
	if c.kind != kindSet {
		return errReply()
	}
	f, err := splitArgs(c.args)
	if err != nil || len(f) != 1 || !f[0].quoted {
		return errReply()
	}
	if f[0].text == "*" || strings.EqualFold(f[0].text, "UFS:*") {
		clear(e.files)
		return ok()
	}
	name, valid := fileName(f[0])
	if !valid {
		return e.cme(fsBadName)
	}
	if e.files[name] == nil {
		return e.cme(fsNotFound)
	}
	delete(e.files, name)
	e.log.Info().Str("file", name).Msg("file deleted")
	return ok()
}

// cmdQFLDS: AT+QFLDS="UFS" gives +QFLDS: <free>,<total>.
func (e *engine) cmdQFLDS(c cmdLine) reply {
	if c.kind == kindTest {
		return ok()
	}
	if c.kind != kindSet {
		return errReply()
	}
	f, err := splitArgs(c.args)
	if err != nil || len(f) != 1 || !f[0].quoted || !strings.EqualFold(f[0].text, "UFS") {
		return errReply()
	}
	return ok(fmt.Sprintf("+QFLDS: %d,%d", ufsTotal-e.fsUsed(), ufsTotal))
}

// fileNames gives the stored names in order.
func (e *engine) fileNames() []string {
	names := make([]string, 0, len(e.files))
	for n := range e.files {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}
