package cloud

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

func sprintf(f string, v any) string { return fmt.Sprintf(f, v) }

// FuzzNew feeds every platform arbitrary values: New and Identity never panic, an identity never
// carries a byte an AT command string cannot, and no error quotes the secret.
func FuzzNew(f *testing.F) {
	f.Add("tencent", "1A17RZR3XX", "gate_dev01", tcSecret, "host.example.com", int64(3600))
	f.Add("aliyun", "pk", "device", "secret", "cn-shanghai", int64(0))
	f.Add("azure", "hub", "dev", azKey, "myiothub", int64(60))
	f.Add("huawei", "id", "x", "12345678", "a.b.c", int64(1))
	f.Add("onenet", "1", "d", onKey, "", int64(-5))
	f.Add("aws", "a-ats.iot.x.amazonaws.com", "t", "", "", int64(0))
	f.Add("thingsboard", "", "", "tok\"en", "h", int64(0))
	f.Fuzz(func(t *testing.T, name, a, b, secret, host string, n int64) {
		fields, err := Fields(name)
		if err != nil {
			return
		}
		// A marker in the secret that a leak would show (the fuzzed part may also be elsewhere).
		const mark = "Zq9SecretMark"
		secret += mark
		vals := map[string]any{}
		for i, fl := range fields {
			switch fl.Kind {
			case Secret:
				vals[fl.Key] = secret
			case String:
				vals[fl.Key] = []string{a, b, host}[i%3]
			case Bool:
				vals[fl.Key] = n%2 == 0
			case Int:
				vals[fl.Key] = n
			case Duration:
				vals[fl.Key] = time.Duration(n) * time.Second
			}
		}
		p, err := New(name, Settings{Values: vals, TLS: n%3 == 0})
		if err != nil {
			if strings.Contains(err.Error(), mark) && !strings.Contains(a+b+host, mark) {
				t.Fatalf("error quotes the secret: %v", err)
			}
			return
		}
		id, err := p.Identity(time.Unix(1700000000, 0))
		if err != nil {
			return
		}
		for _, s := range []string{id.ClientID, id.Username, id.Password} {
			if strings.ContainsAny(s, "\"\r\n\x00") {
				t.Fatalf("identity %q carries a byte AT cannot", s)
			}
		}
	})
}
