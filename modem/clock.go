package modem

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// ErrNoNetworkTime means the module does not know the time: the network sent none (NITZ), so
// its clock still runs from its power-on default.
var ErrNoNetworkTime = errors.New("the module has no network time")

// NetworkTime asks the module for the time its network gave it: AT+CCLK? (3GPP TS 27.007,
// `+CCLK: "yy/MM/dd,hh:mm:ss±zz"`, local time and the zone in quarter hours) and, when that is
// refused or is before notBefore (a clock the network never set, which starts in 1980 or 2000),
// AT+QLTS=2 (Quectel, `+QLTS: "yyyy/MM/dd,hh:mm:ss±zz,dst"`, "" without network time). The
// project's AT reference has neither command; their forms are the 27.007 and Quectel manual
// ones. It returns ErrNoNetworkTime when neither gives a time at or after notBefore.
func (m *Module) NetworkTime(ctx context.Context, notBefore time.Time) (time.Time, error) {
	var errs []error
	if resp, err := m.run(ctx, "AT+CCLK?", 2*time.Second); err != nil {
		errs = append(errs, err)
	} else if v, ok := strings.CutPrefix(firstText(resp), "+CCLK:"); !ok {
		errs = append(errs, fmt.Errorf("AT+CCLK?: %w: %q", ErrProtocol, texts(resp)))
	} else if t, err := ParseModuleTime(v); err != nil {
		errs = append(errs, fmt.Errorf("AT+CCLK?: %w", err))
	} else if !t.Before(notBefore) {
		return t, nil
	} else {
		errs = append(errs, fmt.Errorf("AT+CCLK? says %s", t.Format(time.RFC3339)))
	}
	if ctx.Err() != nil {
		return time.Time{}, ctx.Err()
	}
	if resp, err := m.run(ctx, "AT+QLTS=2", 2*time.Second); err != nil {
		errs = append(errs, err)
	} else if v, ok := strings.CutPrefix(firstText(resp), "+QLTS:"); !ok {
		errs = append(errs, fmt.Errorf("AT+QLTS=2: %w: %q", ErrProtocol, texts(resp)))
	} else if strings.TrimSpace(v) == `""` {
		errs = append(errs, errors.New("AT+QLTS=2: no time from the network"))
	} else if t, err := ParseModuleTime(v); err != nil {
		errs = append(errs, fmt.Errorf("AT+QLTS=2: %w", err))
	} else if !t.Before(notBefore) {
		return t, nil
	} else {
		errs = append(errs, fmt.Errorf("AT+QLTS=2 says %s", t.Format(time.RFC3339)))
	}
	return time.Time{}, fmt.Errorf("%w: %w", ErrNoNetworkTime, errors.Join(errs...))
}

// ParseModuleTime reads a module's clock answer, without its prefix: `"yy/MM/dd,hh:mm:ss±zz"`
// (AT+CCLK?) or `"yyyy/MM/dd,hh:mm:ss±zz,dst"` (AT+QLTS), local time with the zone in quarter
// hours (±zz; missing: UTC). A two-digit year is 20yy, or 19yy from 80 on (a clock at its
// 1980 default).
func ParseModuleTime(s string) (time.Time, error) {
	v := strings.TrimSpace(s)
	if len(v) < 2 || v[0] != '"' {
		return time.Time{}, fmt.Errorf("%w: time %q not quoted", ErrProtocol, s)
	}
	v, _, ok := strings.Cut(v[1:], `"`)
	if !ok {
		return time.Time{}, fmt.Errorf("%w: time %q not quoted", ErrProtocol, s)
	}
	if i := strings.IndexByte(v, ',') + 1; i > 0 {
		if j := strings.IndexByte(v[i:], ','); j >= 0 {
			v = v[:i+j] // QLTS: the daylight-saving field after the time
		}
	}
	zone := 0
	if i := strings.LastIndexAny(v, "+-"); i > strings.IndexByte(v, ',') && i > 0 {
		q, err := strconv.Atoi(v[i+1:])
		if err != nil || q > 96 {
			return time.Time{}, fmt.Errorf("%w: time zone in %q", ErrProtocol, s)
		}
		if zone = q * 15 * 60; v[i] == '-' {
			zone = -zone
		}
		v = v[:i]
	}
	layout := "2006/01/02,15:04:05"
	if strings.IndexByte(v, '/') == 2 {
		layout = "06/01/02,15:04:05"
	}
	t, err := time.ParseInLocation(layout, v, time.FixedZone("", zone))
	if err != nil {
		return time.Time{}, fmt.Errorf("%w: time %q: %w", ErrProtocol, s, err)
	}
	return t.UTC(), nil
}
