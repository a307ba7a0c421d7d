package config

import (
	"bytes"
	"errors"
	"os"
	"strings"
	"testing"
	"time"
)

// FuzzParse: no input makes Parse panic; a rejection is always made of problems that name the
// file; an accepted configuration can be described and its secrets are not in the description.
func FuzzParse(f *testing.F) {
	if ex, err := os.ReadFile(exampleFile); err == nil {
		f.Add(string(ex))
	}
	for _, s := range []string{
		minimal, minimalAliyun,
		minimal + "[[mqtt.subscribe]]\ntopic = \"a/+/#\"\nqos = 1\n",
		minimal + "subscribe = [{topic = \"a\"}, {topic = \"b\", qos = 3}]\n",
		"[mqtt]\nhost = \"h\"\nclient_id = \"c\"\nusername = \"u\"\npassword = \"p\"\n[led]\nchip = \"gpiochip0\"\nline = 3\n",
		"[mqtt.aliyun]\nproduct_key = \"p\"\ndevice_name = \"d\"\ndevice_secret = \"s\"\ninstance_id = \"iot-1\"\n",
		"a.b.c = '''\nx = 1\n'''\n[x.\"y.z\"]\n'q' = 1\n",
		"[[a]]\n[[a.b]]\n[a.b.c]\n",
		minimalAliyun + "[[mqtt.subscribe]]\ntopic = \"{property_set}\"\n[mqtt.will]\ntopic = \"{property_post}\"\nqos = 2\n",
		"[mqtt]\nkeepalive = \"901s\"\nusername = \"u\"\n" + tencentSection + "device_secret_file = \"/nonexistent\"\nlifetime = \"1h\"\n",
		azureSection + "device_key = \"cGFzc3dvcmQ=\"\n[[mqtt.subscribe]]\ntopic = \"{c2d}\"\nqos = 2\n",
		tbSection + "host = \"tb.example.com\"\n[mqtt.tls]\nsni = true\n",
		huaweiSection + onenetSection + awsSection,
		"[mqtt\n", "", "=", "\x00",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, src string) {
		c, err := noEnv.Parse([]byte(src), name)
		if err != nil {
			if c != nil {
				t.Fatal("config returned with an error")
			}
			var p *Problem
			if !errors.As(err, &p) {
				t.Fatalf("error %v is not made of *Problem", err)
			}
			for _, l := range strings.Split(err.Error(), "\n") {
				if !strings.HasPrefix(l, name) {
					// A problem message may itself span lines only if a value did: check the
					// joined errors one by one instead.
					var joined interface{ Unwrap() []error }
					if errors.As(err, &joined) {
						for _, e := range joined.Unwrap() {
							if !strings.HasPrefix(e.Error(), name) {
								t.Fatalf("problem %q does not name the file", e)
							}
						}
					}
					break
				}
			}
			return
		}
		var b bytes.Buffer
		if err := c.Describe(&b, time.UnixMilli(1700000000000)); err != nil {
			t.Fatal(err)
		}
		if pw := c.MQTT.Password.Reveal(); len(pw) > 3 && strings.Contains(b.String(), pw) {
			t.Fatalf("Describe shows the password %q", pw)
		}
	})
}
