package ufs

import (
	"fmt"
	"strings"
	"testing"
)

// FuzzParseListLine: any +QFLST line either parses to a non-negative size and a name, or gives
// an error; it never panics, and what parses prints back the same (unless the name itself
// starts with "UFS:", which printing back would strip again).
func FuzzParseListLine(f *testing.F) {
	for _, s := range []string{`+QFLST: "ca.pem",1758`, `+QFLST: "UFS:ca.pem",1758`, `+QFLST:"a,b",3`, `+QFLST: "",0`, `+QFLST: "x",-1`, `+QFLST: x`, `+QFLST: ""`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		file, err := parseListLine(s)
		if err != nil {
			return
		}
		if file.Size < 0 {
			t.Fatalf("parseListLine(%q) = %+v", s, file)
		}
		if strings.HasPrefix(strings.ToUpper(file.Name), "UFS:") {
			return
		}
		again, err := parseListLine(fmt.Sprintf(`+QFLST: "%s",%d`, file.Name, file.Size))
		if err != nil || again != file {
			t.Fatalf("round trip of %+v: %+v, %v", file, again, err)
		}
	})
}
