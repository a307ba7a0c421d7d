package sim

import (
	"fmt"
	"strings"
	"time"
)

// The module's clock as the network set it (NITZ). The project's AT reference has neither
// command, so the forms are 3GPP TS 27.007's (AT+CCLK) and Quectel's manual's (AT+QLTS):
//
//	AT+CCLK?   +CCLK: "yy/MM/dd,hh:mm:ss±zz"            local time, zone in quarter hours
//	AT+CCLK=?  OK
//	AT+CCLK="yy/MM/dd,hh:mm:ss±zz"   sets the clock (the offset from the host's), OK
//	AT+QLTS    +QLTS: "yyyy/MM/dd,hh:mm:ss±zz,dst"      the time the network last sent
//	AT+QLTS=0|1|2   last sent | now in UTC (zone still shown) | now local
//	AT+QLTS=?  +QLTS: (0-2)
//
// Without network time (Module.SetNetworkClock known false) AT+CCLK? runs from the module's
// power-on default, 80/01/06,00:00:00+00, and AT+QLTS answers `+QLTS: ""`.

// clockEpoch is where a clock the network never set starts (emulator's choice; the GPS epoch
// some Quectel firmware shows).
var clockEpoch = time.Date(1980, 1, 6, 0, 0, 0, 0, time.UTC)

// networkNow is the network's time now and its zone, or ok false without network time.
func (e *engine) networkNow() (t time.Time, zoneQuarters int, ok bool) {
	if e.m.clockUnknown.Load() {
		return time.Time{}, 0, false
	}
	z := int(e.m.clockZone.Load())
	return time.Now().Add(time.Duration(e.m.clockOffset.Load())), z, true
}

// formatZone prints quarter hours as ±zz.
func formatZone(q int) string {
	if q < 0 {
		return fmt.Sprintf("-%02d", -q)
	}
	return fmt.Sprintf("+%02d", q)
}

func (e *engine) cmdCCLK(c cmdLine) reply {
	switch c.kind {
	case kindRead:
		t, z, known := e.networkNow()
		if !known {
			return ok("+CCLK: " + `"` + clockEpoch.Add(time.Since(e.born)).Format("06/01/02,15:04:05") + `+00"`)
		}
		local := t.In(time.FixedZone("", z*15*60))
		return ok(`+CCLK: "` + local.Format("06/01/02,15:04:05") + formatZone(z) + `"`)
	case kindTest:
		return ok()
	case kindSet:
		v := strings.TrimSpace(c.args)
		if len(v) < 2 || v[0] != '"' || v[len(v)-1] != '"' {
			return errReply()
		}
		v = v[1 : len(v)-1]
		i := strings.LastIndexAny(v, "+-")
		if i < 0 {
			return errReply()
		}
		var q int
		if _, err := fmt.Sscanf(v[i+1:], "%d", &q); err != nil || q > 96 {
			return errReply()
		}
		if v[i] == '-' {
			q = -q
		}
		t, err := time.ParseInLocation("06/01/02,15:04:05", v[:i], time.FixedZone("", q*15*60))
		if err != nil {
			return errReply()
		}
		e.m.clockOffset.Store(int64(time.Until(t)))
		e.m.clockZone.Store(int32(q))
		e.m.clockUnknown.Store(false)
		return ok()
	}
	return errReply()
}

func (e *engine) cmdQLTS(c cmdLine) reply {
	mode := 0
	switch c.kind {
	case kindExec:
	case kindSet:
		switch strings.TrimSpace(c.args) {
		case "0":
		case "1":
			mode = 1
		case "2":
			mode = 2
		default:
			return errReply()
		}
	case kindTest:
		return ok("+QLTS: (0-2)")
	default:
		return errReply()
	}
	t, z, known := e.networkNow()
	if !known {
		return ok(`+QLTS: ""`)
	}
	switch mode {
	case 0:
		t = t.Add(-time.Since(e.born)) // the time the network sent it: at registration (power-on here)
		t = t.In(time.FixedZone("", z*15*60))
	case 1:
		t = t.UTC()
	case 2:
		t = t.In(time.FixedZone("", z*15*60))
	}
	return ok(`+QLTS: "` + t.Format("2006/01/02,15:04:05") + formatZone(z) + `,0"`)
}
