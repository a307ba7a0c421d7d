package config

import (
	"strings"
	"testing"
)

// Every rejection names the file, the line and the key, and says what is wrong. Each case lists
// the exact problem lines expected (substrings of the joined error).
func TestRejections(t *testing.T) {
	long := func(n int) string { return strings.Repeat("a", n) }
	tests := []struct {
		name string
		src  string
		want []string
	}{
		// TOML itself
		{"syntax error", "[mqtt]\nhost = \"a\"\nport = \n", []string{"gatewayd.toml:3:8: expected value but found '\\n' instead"}},
		{"unclosed table", "[mqtt\n", []string{"gatewayd.toml:1:6: expected '.' or ']' to end table name"}},
		{"syntax error position", "a = 1\nb = \n\n", []string{"gatewayd.toml:2:5: expected value"}},
		{"duplicate key", minimal + "host = \"b\"\n", []string{"gatewayd.toml:4:", "host"}},

		// unknown keys, with a guess
		{"unknown key", minimal + "pasword = \"x\"\n", []string{"gatewayd.toml:4: unknown key mqtt.pasword (did you mean mqtt.password?)"}},
		{"unknown table", "[serail]\nport = \"auto\"\n" + minimal, []string{"gatewayd.toml:1: unknown key serail (did you mean serial?)"}},
		{"unknown sub-table", minimal + "[mqtt.aliyn]\nproduct_key = \"x\"\n", []string{"gatewayd.toml:4: unknown key mqtt.aliyn (did you mean mqtt.aliyun?)"}},
		{"unknown key in array element", minimal + "[[mqtt.subscribe]]\ntopic = \"a\"\n[[mqtt.subscribe]]\ntopic = \"b\"\nqso = 1\n",
			[]string{"gatewayd.toml:8: unknown key mqtt.subscribe[1].qso (did you mean mqtt.subscribe[1].qos?)"}},
		{"key case matters", minimal + "Port = 1\n", []string{"gatewayd.toml:4: unknown key mqtt.Port (did you mean mqtt.port?)"}},
		{"unknown key far from any", minimal + "[log]\nzzzzzzzz = 1\n", []string{"gatewayd.toml:5: unknown key log.zzzzzzzz"}},

		// types
		{"string for integer", minimal + "port = \"1883\"\n", []string{`gatewayd.toml:4: mqtt.port: want an integer, got string "1883"`}},
		{"integer for string", "[mqtt]\nhost = 1\nclient_id = \"c\"\n", []string{"gatewayd.toml:2: mqtt.host: want a string, got integer 1"}},
		{"string for bool", minimal + "clean_session = \"yes\"\n", []string{`gatewayd.toml:4: mqtt.clean_session: want true or false, got string "yes"`}},
		{"scalar for table", "mqtt = 3\n", []string{"gatewayd.toml:1: mqtt: want a table, got integer 3"}},
		{"string for array of tables", minimal + "subscribe = \"a/b\"\n", []string{`gatewayd.toml:4: mqtt.subscribe: want an array of tables ([[mqtt.subscribe]]), got string "a/b"`}},
		{"array of strings for array of tables", minimal + "subscribe = [\"a/b\"]\n", []string{`gatewayd.toml:4: mqtt.subscribe[0]: want a table such as {topic = "a/b"}, got string "a/b"`}},
		{"float for integer", minimal + "retries = 1.5\n", []string{"gatewayd.toml:4: mqtt.retries: want an integer, got float 1.5"}},

		// durations
		{"not a duration", minimal + "keepalive = \"61x\"\n", []string{`gatewayd.toml:4: mqtt.keepalive: "61x" is not a duration`}},
		{"duration without unit", minimal + "keepalive = 60\n", []string{`gatewayd.toml:4: mqtt.keepalive: 60 has no unit; write a duration such as "60s"`}},
		{"keepalive fraction", minimal + "keepalive = \"1500ms\"\n", []string{"gatewayd.toml:4: mqtt.keepalive: 1500ms is not a whole number of seconds"}},
		{"keepalive too long", minimal + "keepalive = \"2h\"\n", []string{"gatewayd.toml:4: mqtt.keepalive: 2h is out of range 0s–3600s"}},
		{"keepalive negative", minimal + "keepalive = \"-1s\"\n", []string{"gatewayd.toml:4: mqtt.keepalive: -1s is out of range 0s–3600s"}},
		{"packet timeout zero", minimal + "packet_timeout = \"0s\"\n", []string{"gatewayd.toml:4: mqtt.packet_timeout: 0s is out of range 1s–60s"}},
		{"sim timeout zero", minimal + "[module]\nsim_timeout = \"0s\"\n", []string{"gatewayd.toml:5: module.sim_timeout: 0s is out of range 1s–600s"}},
		{"register timeout bool", minimal + "[module]\nregister_timeout = true\n", []string{"gatewayd.toml:5: module.register_timeout: want a duration such as \"180s\", got boolean true"}},

		// ranges
		{"port zero", minimal + "port = 0\n", []string{"gatewayd.toml:4: mqtt.port: 0 is out of range 1–65535"}},
		{"port too big", minimal + "port = 65536\n", []string{"gatewayd.toml:4: mqtt.port: 65536 is out of range 1–65535"}},
		{"client index", minimal + "client_index = 6\n", []string{"gatewayd.toml:4: mqtt.client_index: 6 is out of range 0–5"}},
		{"retries zero", minimal + "retries = 0\n", []string{"gatewayd.toml:4: mqtt.retries: 0 is out of range 1–10"}},
		{"retries eleven", minimal + "retries = 11\n", []string{"gatewayd.toml:4: mqtt.retries: 11 is out of range 1–10"}},
		{"pdp context", minimal + "[module]\npdp_context = 16\n", []string{"gatewayd.toml:5: module.pdp_context: 16 is out of range 1–15"}},
		{"pdp context zero", minimal + "[module]\npdp_context = 0\n", []string{"gatewayd.toml:5: module.pdp_context: 0 is out of range 1–15"}},
		{"baud", "[serial]\nbaud = 115201\n" + minimal, []string{"gatewayd.toml:2: serial.baud: 115201 is not a supported rate"}},
		{"baud huge", "[serial]\nbaud = 99999999999\n" + minimal, []string{"gatewayd.toml:2: serial.baud: 99999999999 is out of range"}},

		// serial port
		{"relative port", "[serial]\nport = \"ttyUSB2\"\n" + minimal, []string{`gatewayd.toml:2: serial.port: "ttyUSB2" is neither a device path`}},
		{"port with newline", "[serial]\nport = \"/dev/tty\\n\"\n" + minimal, []string{`gatewayd.toml:2: serial.port: control byte '\n' at offset 8`}},

		// strings sent inside AT quotes
		{"quote in host", "[mqtt]\nhost = 'a\"b'\nclient_id = \"c\"\n", []string{`gatewayd.toml:2: mqtt.host: byte '"' at offset 1 cannot be sent inside an AT command string`}},
		{"CR in client id", "[mqtt]\nhost = \"h\"\nclient_id = \"a\\rb\"\n", []string{`gatewayd.toml:3: mqtt.client_id: byte '\r' at offset 1 cannot be sent`}},
		{"NUL in username", minimal + "username = \"a\\u0000\"\n", []string{`gatewayd.toml:4: mqtt.username: byte '\x00' at offset 1 cannot be sent`}},
		{"DEL in apn", minimal + "[module]\napn = \"a\\u007f\"\n", []string{`gatewayd.toml:5: module.apn: byte '\x7f' at offset 1`}},
		{"tab in topic", minimal + "[[mqtt.subscribe]]\ntopic = \"a\\tb\"\n", []string{`gatewayd.toml:5: mqtt.subscribe[0].topic: byte '\t' at offset 1`}},
		{"LF in password, value hidden", minimal + "username = \"u\"\npassword = \"hunter\\n2\"\n",
			[]string{`gatewayd.toml:5: mqtt.password: byte '\n' at offset 6 cannot be sent inside an AT command string (value not shown)`}},

		// lengths
		{"client id 129 bytes", "[mqtt]\nhost = \"h\"\nclient_id = \"" + long(129) + "\"\n", []string{"gatewayd.toml:3: mqtt.client_id: 129 bytes is longer than 128"}},
		{"user name 257 bytes", minimal + "username = \"" + long(257) + "\"\n", []string{"gatewayd.toml:4: mqtt.username: 257 bytes is longer than 256"}},
		{"password 257 bytes", minimal + "username = \"u\"\npassword = \"" + long(257) + "\"\n", []string{"gatewayd.toml:5: mqtt.password: 257 bytes is longer than 256"}},
		{"host 101 bytes", "[mqtt]\nhost = \"" + long(101) + "\"\nclient_id = \"c\"\n", []string{"gatewayd.toml:2: mqtt.host: 101 bytes is longer than 100"}},
		{"topic 257 bytes", minimal + "[[mqtt.subscribe]]\ntopic = \"" + long(257) + "\"\n", []string{"gatewayd.toml:5: mqtt.subscribe[0].topic: \"" + long(257) + "\" is 257 bytes"}},
		{"topic too long once imei is filled in", minimal + "[[mqtt.subscribe]]\ntopic = \"" + long(250) + "{imei}\"\n",
			[]string{"is 265 bytes (with {imei}/{iccid} at their longest), longer than 256"}},
		{"payload too long", minimal + "[[mqtt.publish_on_connect]]\ntopic = \"t\"\npayload = \"" + long(1025) + "\"\n",
			[]string{"gatewayd.toml:6: mqtt.publish_on_connect[0].payload: 1025 bytes is longer than 1024"}},

		// host names
		{"space in host", "[mqtt]\nhost = \"bro ker\"\nclient_id = \"c\"\n", []string{`gatewayd.toml:2: mqtt.host: "bro ker" is not a host name or IP address (byte ' ' in label "bro ker")`}},
		{"empty label in host", "[mqtt]\nhost = \"a..b\"\nclient_id = \"c\"\n", []string{`gatewayd.toml:2: mqtt.host: "a..b" has an empty label (part 2)`}},
		{"URL as host", "[mqtt]\nhost = \"tcp://b\"\nclient_id = \"c\"\n", []string{`gatewayd.toml:2: mqtt.host: "tcp://b" is not a host name`}},

		// required and consistent
		{"empty file", "", []string{"gatewayd.toml: mqtt.host: required", "gatewayd.toml: mqtt.client_id: required"}},
		{"empty host", "[mqtt]\nhost = \"\"\nclient_id = \"c\"\n", []string{"gatewayd.toml:2: mqtt.host: is empty"}},
		{"empty host with aliyun", "[mqtt]\nhost = \"\"\n" + minimalAliyun, []string{"gatewayd.toml:2: mqtt.host: is empty"}},
		{"no client id", "[mqtt]\nhost = \"h\"\n", []string{"gatewayd.toml:1: mqtt.client_id: required: AT+QMTCONN needs a client id"}},
		{"empty client id", "[mqtt]\nhost = \"h\"\nclient_id = \"\"\n", []string{"gatewayd.toml:3: mqtt.client_id: is empty"}},
		{"password without user", minimal + "password = \"p\"\n", []string{"gatewayd.toml:4: mqtt.password: needs mqtt.username"}},
		{"password and password_file", minimal + "username = \"u\"\npassword = \"p\"\npassword_file = \"/x\"\n",
			[]string{"gatewayd.toml:6: mqtt.password_file: give either mqtt.password or mqtt.password_file, not both"}},
		{"empty password", minimal + "username = \"u\"\npassword = \"\"\n", []string{"gatewayd.toml:5: mqtt.password: is empty"}},
		{"secret of the wrong type is not echoed", minimal + "username = \"u\"\npassword = 123456\n",
			[]string{"gatewayd.toml:5: mqtt.password: want a string, got an integer (value not shown: it is a secret)"}},
		{"secret file key of the wrong type", minimal + "username = \"u\"\npassword_file = 1\n", []string{"gatewayd.toml:5: mqtt.password_file: want a string, got integer 1"}},
		{"client id of the wrong type", "[mqtt]\nhost = \"h\"\nclient_id = 7\n", []string{"gatewayd.toml:3: mqtt.client_id: want a string, got integer 7"}},
		{"apn user without apn", minimal + "[module]\napn_user = \"u\"\n", []string{"gatewayd.toml:5: module.apn_user: needs module.apn"}},
		{"apn password without user", minimal + "[module]\napn = \"a\"\napn_password = \"p\"\n", []string{"gatewayd.toml:6: module.apn_password: needs module.apn_user"}},

		// topics
		{"hash not last", minimal + "[[mqtt.subscribe]]\ntopic = \"a/#/b\"\n", []string{`gatewayd.toml:5: mqtt.subscribe[0].topic: "a/#/b": '#' must be a whole level and the last one`}},
		{"hash inside level", minimal + "[[mqtt.subscribe]]\ntopic = \"a/b#\"\n", []string{`"a/b#": '#' must be a whole level`}},
		{"plus inside level", minimal + "[[mqtt.subscribe]]\ntopic = \"a/+b\"\n", []string{`gatewayd.toml:5: mqtt.subscribe[0].topic: "a/+b": '+' must be a whole level`}},
		{"empty topic", minimal + "[[mqtt.subscribe]]\ntopic = \"\"\n", []string{"gatewayd.toml:5: mqtt.subscribe[0].topic: is empty"}},
		{"missing topic", minimal + "[[mqtt.subscribe]]\nqos = 1\n", []string{"gatewayd.toml:4: mqtt.subscribe[0].topic: required"}},
		{"qos 3", minimal + "[[mqtt.subscribe]]\ntopic = \"a\"\nqos = 3\n", []string{"gatewayd.toml:6: mqtt.subscribe[0].qos: 3 is out of range 0–2"}},
		{"duplicate subscription", minimal + "[[mqtt.subscribe]]\ntopic = \"a\"\n[[mqtt.subscribe]]\ntopic = \"a\"\n",
			[]string{`gatewayd.toml:7: mqtt.subscribe[1].topic: "a" is already subscribed by mqtt.subscribe[0]`}},
		{"wildcard in publish topic", minimal + "[[mqtt.publish_on_connect]]\ntopic = \"a/+\"\n",
			[]string{`gatewayd.toml:5: mqtt.publish_on_connect[0].topic: "a/+": a publish topic cannot contain the wildcards`}},
		{"publish qos 3", minimal + "[[mqtt.publish_on_connect]]\ntopic = \"a\"\nqos = 3\n", []string{"gatewayd.toml:6: mqtt.publish_on_connect[0].qos: 3 is out of range 0–2"}},
		{"aliyun placeholder without aliyun", minimal + "[[mqtt.subscribe]]\ntopic = \"/sys/{product_key}/x\"\n",
			[]string{"gatewayd.toml:5: mqtt.subscribe[0].topic: {product_key} needs [mqtt.aliyun]"}},
		{"unknown placeholder", minimal + "[[mqtt.subscribe]]\ntopic = \"a/{serial}\"\n", []string{"gatewayd.toml:5: mqtt.subscribe[0].topic: unknown placeholder {serial}"}},
		{"inline table element", minimal + "subscribe = [{topic = \"a\"}, {topic = \"b/#/c\"}]\n", []string{"gatewayd.toml:4: mqtt.subscribe[1].topic: \"b/#/c\""}},

		// Alibaba Cloud
		{"aliyun with literal credentials", "[mqtt]\nclient_id = \"c\"\nusername = \"u\"\npassword = \"p\"\n" + minimalAliyun, []string{
			"gatewayd.toml:2: mqtt.client_id: is signed into the Alibaba Cloud password",
			"gatewayd.toml:3: mqtt.username: is signed into the Alibaba Cloud password",
			"gatewayd.toml:4: mqtt.password: is the HMAC Alibaba Cloud checks"}},
		{"aliyun with password_file", "[mqtt]\npassword_file = \"/nonexistent\"\n" + minimalAliyun, []string{"gatewayd.toml:2: mqtt.password_file: open /nonexistent"}},
		{"aliyun missing triple", "[mqtt.aliyun]\nregion = \"cn-shanghai\"\n", []string{
			"gatewayd.toml:1: mqtt.aliyun.device_name: required: the DeviceName",
			"gatewayd.toml:1: mqtt.aliyun.device_secret: required: the DeviceSecret (in a file named by device_secret_file, or the systemd credential aliyun-device-secret)",
			"gatewayd.toml:1: mqtt.aliyun.product_key: required: the ProductKey"}},
		{"ampersand in device name", strings.Replace(minimalAliyun, "pi-led-01", "pi&led", 1), []string{`gatewayd.toml:3: mqtt.aliyun.device_name: "pi&led" holds byte '&' at offset 2`}},
		{"bar in aliyun client id", minimalAliyun + "client_id = \"a|b\"\n", []string{`gatewayd.toml:6: mqtt.aliyun.client_id: "a|b" holds byte '|' at offset 1`}},
		{"aliyun client id 65 bytes", minimalAliyun + "client_id = \"" + long(65) + "\"\n", []string{"gatewayd.toml:6: mqtt.aliyun.client_id: 65 bytes is longer than the 64 Alibaba Cloud allows"}},
		{"placeholders with a broken aliyun section", strings.Replace(minimalAliyun, "cn-shanghai", "cn shanghai", 1) + "[[mqtt.subscribe]]\ntopic = \"/sys/{product_key}/x\"\n",
			[]string{"gatewayd.toml:5: mqtt.aliyun.region:"}},
		{"bad sign method", minimalAliyun + "sign_method = \"sha1\"\n", []string{`gatewayd.toml:6: mqtt.aliyun.sign_method: "sha1" is not one of "hmacsha256", "hmacsha1" or "hmacmd5"`}},
		{"secure mode 2", minimalAliyun + "secure_mode = 2\n", []string{"gatewayd.toml:6: mqtt.aliyun.secure_mode: 2 means TLS: configure [mqtt.tls]"}},
		{"secure mode 1", minimalAliyun + "secure_mode = 1\n", []string{"gatewayd.toml:6: mqtt.aliyun.secure_mode: 1 is out of range 2–3"}},
		{"aliyun keepalive", "[mqtt]\nkeepalive = \"10s\"\n" + minimalAliyun, []string{"gatewayd.toml:2: mqtt.keepalive: 10s is out of range for Alibaba Cloud (30s–1200s)"}},
		{"aliyun keepalive high", "[mqtt]\nkeepalive = \"1201s\"\n" + minimalAliyun, []string{"gatewayd.toml:2: mqtt.keepalive: 1201s is out of range for Alibaba Cloud"}},
		{"region and instance", minimalAliyun + "instance_id = \"iot-1\"\n", []string{"gatewayd.toml:6: mqtt.aliyun.instance_id: give either an instance id or a region, not both"}},
		{"no host, no region", strings.Replace(minimalAliyun, "region = \"cn-shanghai\"\n", "", 1), []string{"gatewayd.toml:1: mqtt.aliyun.region: required to find the broker"}},
		{"bad region", strings.Replace(minimalAliyun, "cn-shanghai", "cn shanghai", 1), []string{`gatewayd.toml:5: mqtt.aliyun.region: region "cn shanghai": byte ' ' at offset 2`}},
		{"empty device secret file", minimalAliyun[:strings.Index(minimalAliyun, "device_secret")] + "device_secret_file = \"\"\nregion = \"x\"\n",
			[]string{"gatewayd.toml:4: mqtt.aliyun.device_secret_file: is empty"}},

		// LED
		{"chip without line", minimal + "[led]\nchip = \"gpiochip0\"\n", []string{"gatewayd.toml:4: led.line: required when led.chip is set"}},
		{"offset without chip", minimal + "[led]\nline = 24\n", []string{"gatewayd.toml:5: led.line: offset 24 needs led.chip"}},
		{"negative offset", minimal + "[led]\nchip = \"gpiochip0\"\nline = -1\n", []string{"gatewayd.toml:6: led.line: offset -1 is out of range 0–65535"}},
		{"float line", minimal + "[led]\nchip = \"gpiochip0\"\nline = 2.5\n", []string{"gatewayd.toml:6: led.line: want an offset (24) or a line name (\"GPIO24\"), got float 2.5"}},
		{"empty line name", minimal + "[led]\nline = \"\"\n", []string{"gatewayd.toml:5: led.line: is empty"}},
		{"relative chip path", minimal + "[led]\nchip = \"dev/gpiochip0\"\nline = 1\n", []string{`gatewayd.toml:5: led.chip: "dev/gpiochip0" is neither a chip name`}},
		{"active_low string", minimal + "[led]\nactive_low = \"yes\"\n", []string{`gatewayd.toml:5: led.active_low: want true or false, got string "yes"`}},

		// reset line
		{"reset without line", minimal + "[reset]\nchip = \"gpiochip0\"\n", []string{"gatewayd.toml:4: reset.line: required when reset.chip is set"}},
		{"empty reset", minimal + "[reset]\npulse = \"1s\"\n", []string{"gatewayd.toml:4: reset.line: required: the GPIO line wired to the module's reset input"}},
		{"reset offset without chip", minimal + "[reset]\nline = 23\n", []string{"gatewayd.toml:5: reset.line: offset 23 needs reset.chip"}},
		{"reset on the LED's line", minimal + "[led]\nchip = \"gpiochip0\"\nline = 24\n[reset]\nchip = \"gpiochip0\"\nline = 24\n", []string{"gatewayd.toml:9: reset.line: is the LED's line too"}},
		{"reset pulse too short", minimal + "[reset]\nline = \"RESET\"\npulse = \"1ms\"\n", []string{"gatewayd.toml:6: reset.pulse: "}},

		// log
		{"log level", minimal + "[log]\nlevel = \"verbose\"\n", []string{`gatewayd.toml:5: log.level: "verbose" is not one of "trace", "debug", "info", "warn" or "error"`}},
		{"log format", minimal + "[log]\nformat = \"text\"\n", []string{`gatewayd.toml:5: log.format: "text" is not one of "json" or "console"`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := noEnv.Parse([]byte(tt.src), name)
			if err == nil {
				t.Fatalf("accepted:\n%s\nresult: %+v", tt.src, c)
			}
			if c != nil {
				t.Errorf("returned a Config along with the error")
			}
			msg := err.Error()
			for _, w := range tt.want {
				if !strings.Contains(msg, w) {
					t.Errorf("error\n%s\nlacks %q", msg, w)
				}
			}
			keys := map[string]bool{}
			for _, line := range strings.Split(msg, "\n") {
				if !strings.HasPrefix(line, name) {
					t.Errorf("problem %q does not start with the file name", line)
				}
				if _, rest, ok := strings.Cut(line, ": "); ok {
					if k, _, ok := strings.Cut(rest, ": "); ok && !strings.HasPrefix(k, "unknown key") {
						if keys[k] {
							t.Errorf("key %s has more than one problem:\n%s", k, msg)
						}
						keys[k] = true
					}
				}
			}
			if strings.Contains(msg, "hunter") || strings.Contains(msg, "123456") {
				t.Errorf("error reveals a secret: %s", msg)
			}
		})
	}
}

// All problems come back together, in the order of the file.
func TestAllProblemsReported(t *testing.T) {
	src := `[serial]
baud = 1
[mqtt]
host = "a b"
pasword = "x"
keepalive = "61x"
port = 0
[[mqtt.subscribe]]
topic = "a/#/b"
[log]
level = "loud"
`
	_, err := noEnv.Parse([]byte(src), name)
	if err == nil {
		t.Fatal("accepted")
	}
	got := strings.Split(err.Error(), "\n")
	want := []string{
		"gatewayd.toml:2: serial.baud: 1 is not a supported rate",
		"gatewayd.toml:3: mqtt.client_id: required",
		"gatewayd.toml:4: mqtt.host:",
		"gatewayd.toml:5: unknown key mqtt.pasword",
		"gatewayd.toml:6: mqtt.keepalive:",
		"gatewayd.toml:7: mqtt.port:",
		"gatewayd.toml:9: mqtt.subscribe[0].topic:",
		"gatewayd.toml:11: log.level:",
	}
	if len(got) != len(want) {
		t.Fatalf("%d problems, want %d:\n%s", len(got), len(want), err)
	}
	for i := range want {
		if !strings.HasPrefix(got[i], want[i]) {
			t.Errorf("problem %d = %q, want prefix %q", i, got[i], want[i])
		}
	}
}

func TestCheckTopicUTF8(t *testing.T) {
	// TOML strings are always valid UTF-8, so this rule is reachable only directly.
	if err := checkTopic("a/\xff", true); err == nil {
		t.Error("invalid UTF-8 accepted")
	}
	for _, ok := range []string{"a", "/", "//", "a//b", "+", "+/+", "#", "a/#", "/#", "$SYS/#", "+/b/#"} {
		if err := checkTopic(ok, true); err != nil {
			t.Errorf("filter %q rejected: %v", ok, err)
		}
	}
	for _, bad := range []string{"a#", "#/", "a/#/", "++", "a+/b", "#a"} {
		if err := checkTopic(bad, true); err == nil {
			t.Errorf("filter %q accepted", bad)
		}
	}
}

// A broken [mqtt.aliyun] is reported once, not again as "{product_key} needs [mqtt.aliyun]".
func TestBrokenAliyunNotBlamedOnTopics(t *testing.T) {
	src := strings.Replace(minimalAliyun, "cn-shanghai", "cn shanghai", 1) + "[[mqtt.subscribe]]\ntopic = \"/sys/{product_key}/x\"\n"
	_, err := noEnv.Parse([]byte(src), name)
	if err == nil {
		t.Fatal("accepted")
	}
	if got := strings.Count(err.Error(), "\n") + 1; got != 1 || strings.Contains(err.Error(), "needs [mqtt.aliyun]") {
		t.Errorf("%d problems, want only the region's:\n%v", got, err)
	}
}

func TestMissingProductKeyReportedOnce(t *testing.T) {
	_, err := noEnv.Parse([]byte("[mqtt.aliyun]\ndevice_name = \"d\"\ndevice_secret = \"s\"\nregion = \"cn-shanghai\"\n"), name)
	if err == nil || err.Error() != "gatewayd.toml:1: mqtt.aliyun.product_key: required: the ProductKey" {
		t.Errorf("error %v, want only the missing product key", err)
	}
}
