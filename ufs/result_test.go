package ufs

import "testing"

// TestParseResult: the +QFUPL checksum has one to four hex digits (reference 5.2: "f5f" and
// "372" on a BG96, "2d13" on a BG96 and an EC25-AF); anything else is a bad answer.
func TestParseResult(t *testing.T) {
	good := []struct {
		line string
		size int
		sum  uint16
	}{
		{"+QFUPL: 1267,f5f", 1267, 0xf5f},
		{"+QFUPL: 1188,2d13", 1188, 0x2d13},
		{"+QFUPL: 2,5", 2, 5},
		{"+QFUPL: 2,5f", 2, 0x5f},
		{"+QFUPL: 1220,3500", 1220, 0x3500},
		{"+QFUPL: 1, 0", 1, 0},
	}
	for _, g := range good {
		size, sum, err := parseResult(g.line)
		if err != nil || size != g.size || sum != g.sum {
			t.Errorf("parseResult(%q) = %d, %x, %v; want %d, %x", g.line, size, sum, err, g.size, g.sum)
		}
	}
	for _, b := range []string{"+QFUPL: 1267", "+QFUPL: 1267,", "+QFUPL: 1267,12345", "+QFUPL: 1267,xyz", "+QFUPL: ,f5f", "+QFUPL: -1,1"} {
		if _, _, err := parseResult(b); err == nil {
			t.Errorf("parseResult(%q) accepted a bad answer", b)
		}
	}
}
