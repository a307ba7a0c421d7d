package qmt

import (
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestCommandFormatting(t *testing.T) {
	mustLine := func(s string, err error) string {
		t.Helper()
		if err != nil {
			t.Fatalf("unexpected error: %v", err)
		}
		return s
	}
	tests := []struct {
		got, want string
	}{
		{mustLine(openCmd(0, "iot-06z00i8mcbcop1x.mqtt.iothub.aliyuncs.com", 1883)),
			`AT+QMTOPEN=0,"iot-06z00i8mcbcop1x.mqtt.iothub.aliyuncs.com",1883`},
		{mustLine(openCmd(5, "127.0.0.1", 65535)), `AT+QMTOPEN=5,"127.0.0.1",65535`},
		{mustLine(closeCmd(0)), "AT+QMTCLOSE=0"},
		{mustLine(discCmd(3)), "AT+QMTDISC=3"},
		{mustLine(connCmd(0, "pi-led-01|securemode=3,signmethod=hmacsha1,timestamp=1700000000000|", "pi-led-01&a1B2c3D4e5F", "69d84ceca71bf26dd9cc21f8d74d3a330495bb83")),
			`AT+QMTCONN=0,"pi-led-01|securemode=3,signmethod=hmacsha1,timestamp=1700000000000|","pi-led-01&a1B2c3D4e5F","69d84ceca71bf26dd9cc21f8d74d3a330495bb83"`},
		{mustLine(connCmd(1, "dev", "", "")), `AT+QMTCONN=1,"dev"`},
		{mustLine(connCmd(1, "dev", "u", "")), `AT+QMTCONN=1,"dev","u"`},
		{mustLine(connCmd(1, "dev", "", "p")), `AT+QMTCONN=1,"dev","","p"`},
		{mustLine(subCmd(0, 1, []Subscription{{"/sys/pk/dn/thing/service/property/set", 2}})),
			`AT+QMTSUB=0,1,"/sys/pk/dn/thing/service/property/set",2`},
		{mustLine(subCmd(0, 65535, []Subscription{{"a/+/c", 0}, {"d/#", 1}, {"#", 2}})), `AT+QMTSUB=0,65535,"a/+/c",0,"d/#",1,"#",2`},
		{mustLine(unsCmd(2, 9, []string{"a", "b/c"})), `AT+QMTUNS=2,9,"a","b/c"`},
		{mustLine(pubExCmd(0, 0, Message{Topic: "/sys/a1B2c3D4e5F/pi-led-01/thing/service/property/set_reply", Payload: []byte(`{"id":"123","code":200,"data":{}}`)}, 4096)),
			`AT+QMTPUBEX=0,0,0,0,"/sys/a1B2c3D4e5F/pi-led-01/thing/service/property/set_reply",33`},
		{mustLine(pubExCmd(1, 42, Message{Topic: "t", Payload: []byte{0, 0x1A, '\r', '"'}, QoS: 1, Retain: true}, 4096)), `AT+QMTPUBEX=1,42,1,1,"t",4`},
		{mustLine(pubCtrlZCmd(0, 7, Message{Topic: "t", Payload: []byte("hi"), QoS: 2}, 4096)), `AT+QMTPUB=0,7,2,0,"t"`},
		{mustLine(recvReadCmd(0, 4)), "AT+QMTRECV=0,4"},
		{mustLine(recvReadCmd(1, -1)), "AT+QMTRECV=1"},
	}
	for _, tt := range tests {
		if tt.got != tt.want {
			t.Errorf("got  %s\nwant %s", tt.got, tt.want)
		}
	}
}

func TestCommandRefusals(t *testing.T) {
	big := strings.Repeat("x", 5000)
	tests := []struct {
		name string
		err  error
		kind error
		text string
	}{
		{"idx 6", second(openCmd(6, "h", 1)), ErrInvalidArgument, "client index 6 out of range 0-5"},
		{"idx -1", second(closeCmd(-1)), ErrInvalidArgument, "client index -1"},
		{"disc idx", second(discCmd(9)), ErrInvalidArgument, "client index 9"},
		{"port 0", second(openCmd(0, "h", 0)), ErrInvalidArgument, "port 0 out of range 1-65535"},
		{"port big", second(openCmd(0, "h", 65536)), ErrInvalidArgument, "port 65536"},
		{"host quote", second(openCmd(0, `h"x`, 1)), ErrInvalidString, `host "h\"x": byte 0x22 (double quote) at offset 1 would end the quoted AT parameter`},
		{"host CR", second(openCmd(0, "h\rAT+QPOWD", 1)), ErrInvalidString, "byte 0x0D (CR) at offset 1 would end the AT command line"},
		{"host empty", second(openCmd(0, "", 1)), ErrInvalidArgument, "host is empty"},
		{"host long", second(openCmd(0, big, 1)), ErrInvalidArgument, "longer than 100"},
		{"host space", second(openCmd(0, "a b", 1)), ErrInvalidString, "space or comma"},
		{"client id LF", second(connCmd(0, "id\n", "", "")), ErrInvalidString, "client id \"id\\n\": byte 0x0A (LF)"},
		{"client id empty", second(connCmd(0, "", "", "")), ErrInvalidArgument, "client id is empty"},
		{"user quote", second(connCmd(0, "id", `a",""`, "")), ErrInvalidString, "user name"},
		{"password NUL", second(connCmd(0, "id", "u", "pa\x00ss")), ErrInvalidString, "password: byte 0x00 (NUL) at offset 2"},
		{"password ctrl-z", second(connCmd(0, "id", "u", "\x1a")), ErrInvalidString, "Ctrl-Z"},
		{"password ESC", second(connCmd(0, "id", "u", "\x1b")), ErrInvalidString, "ESC"},
		{"password DEL", second(connCmd(0, "id", "u", "\x7f")), ErrInvalidString, "DEL"},
		{"sub none", second(subCmd(0, 1, nil)), ErrInvalidArgument, "at least one topic"},
		{"sub msgid 0", second(subCmd(0, 0, []Subscription{{"t", 0}})), ErrInvalidArgument, "message id 0"},
		{"sub qos 3", second(subCmd(0, 1, []Subscription{{"t", 0}, {"u", 3}})), ErrInvalidArgument, "QoS of topic 2 3"},
		{"sub quote", second(subCmd(0, 1, []Subscription{{`t"`, 0}})), ErrInvalidString, "topic 1"},
		{"sub # middle", second(subCmd(0, 1, []Subscription{{"a/#/b", 0}})), ErrInvalidArgument, "'#' must be the last level"},
		{"sub + partial", second(subCmd(0, 1, []Subscription{{"a/b+", 0}})), ErrInvalidArgument, "whole level"},
		{"sub bad utf8", second(subCmd(0, 1, []Subscription{{"a\xff", 0}})), ErrInvalidString, "UTF-8"},
		{"uns empty topic", second(unsCmd(0, 1, []string{""})), ErrInvalidArgument, "topic 1 is empty"},
		{"uns none", second(unsCmd(0, 1, nil)), ErrInvalidArgument, "at least one topic"},
		{"pub wildcard", second(pubExCmd(0, 0, Message{Topic: "a/+", Payload: []byte("x")}, 10)), ErrInvalidArgument, "wildcard"},
		{"pub qos0 msgid", second(pubExCmd(0, 3, Message{Topic: "a", Payload: []byte("x")}, 10)), ErrInvalidArgument, "must be 0"},
		{"pub qos1 msgid 0", second(pubExCmd(0, 0, Message{Topic: "a", Payload: []byte("x"), QoS: 1}, 10)), ErrInvalidArgument, "message id 0"},
		{"pub msgid big", second(pubExCmd(0, 65536, Message{Topic: "a", Payload: []byte("x"), QoS: 1}, 10)), ErrInvalidArgument, "message id 65536"},
		{"pub empty", second(pubExCmd(0, 0, Message{Topic: "a"}, 10)), ErrInvalidArgument, "payload length 0"},
		{"pub too long", second(pubExCmd(0, 0, Message{Topic: "a", Payload: make([]byte, 11)}, 10)), ErrInvalidArgument, "payload length 11 out of range 1-10"},
		{"pub topic CR", second(pubExCmd(0, 0, Message{Topic: "a\r", Payload: []byte("x")}, 10)), ErrInvalidString, "CR"},
		{"ctrl-z payload", second(pubCtrlZCmd(0, 0, Message{Topic: "a", Payload: []byte("x\x1ay")}, 10)), ErrInvalidArgument, "byte 0x1A (Ctrl-Z) at offset 1"},
		{"esc payload", second(pubCtrlZCmd(0, 0, Message{Topic: "a", Payload: []byte("\x1b")}, 10)), ErrInvalidArgument, "ESC"},
		{"slot 5", second(recvReadCmd(0, 5)), ErrInvalidArgument, "slot 5"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.err == nil {
				t.Fatal("accepted")
			}
			if !errors.Is(tt.err, tt.kind) {
				t.Errorf("%v is not %v", tt.err, tt.kind)
			}
			if !strings.Contains(tt.err.Error(), tt.text) {
				t.Errorf("error %q does not hold %q", tt.err, tt.text)
			}
		})
	}
}

func second(_ string, err error) error { return err }

func TestPasswordNeverInError(t *testing.T) {
	secret := "s3cr\"et"
	_, err := connCmd(0, "id", "u", secret)
	var se *StringError
	if !errors.As(err, &se) || se.Field != "password" {
		t.Fatalf("want a StringError for the password, got %v", err)
	}
	if strings.Contains(err.Error(), "s3cr") {
		t.Fatalf("error shows the password: %v", err)
	}
	_, err = Config{AliAuth: &AliAuth{ProductKey: "pk", DeviceName: "dn", DeviceSecret: "top\nsecret"}}.Commands(0)
	if err == nil || strings.Contains(err.Error(), "top") || !strings.Contains(err.Error(), "aliauth device secret") {
		t.Fatalf("aliauth secret error: %v", err)
	}
}

func TestConfigCommands(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
		idx  int
		want []string
	}{
		{"zero value", Config{}, 0, []string{
			`AT+QMTCFG="version",0,4`,
			`AT+QMTCFG="pdpcid",0,1`,
			`AT+QMTCFG="ssl",0,0`,
			`AT+QMTCFG="keepalive",0,120`,
			`AT+QMTCFG="session",0,0`,
			`AT+QMTCFG="timeout",0,5,3,0`,
			`AT+QMTCFG="will",0,0`,
			`AT+QMTCFG="recv/mode",0,0,1`,
		}},
		{"everything", Config{
			Version: 3, PDPCID: 2, KeepAlive: 60 * time.Second, CleanSession: true,
			PacketTimeout: 10 * time.Second, Retries: 5, TimeoutNotice: true, RecvMode: RecvBuffered,
			Will:    &Will{Topic: "dev/status", Message: "offline, bye", QoS: 1, Retain: true},
			SSL:     &SSL{Context: 2},
			AliAuth: &AliAuth{ProductKey: "a1B2c3D4e5F", DeviceName: "pi-led-01", DeviceSecret: "Zx9yW8vU7tS6rQ5pO4nM3lK2jI1hG0fE"},
		}, 3, []string{
			`AT+QMTCFG="version",3,3`,
			`AT+QMTCFG="pdpcid",3,2`,
			`AT+QMTCFG="ssl",3,1,2`,
			`AT+QMTCFG="keepalive",3,60`,
			`AT+QMTCFG="session",3,1`,
			`AT+QMTCFG="timeout",3,10,5,1`,
			`AT+QMTCFG="will",3,1,1,1,"dev/status","offline, bye"`,
			`AT+QMTCFG="recv/mode",3,1,0`,
			`AT+QMTCFG="aliauth",3,"a1B2c3D4e5F","pi-led-01","Zx9yW8vU7tS6rQ5pO4nM3lK2jI1hG0fE"`,
		}},
		{"keepalive off, direct no length", Config{KeepAlive: -1, RecvMode: RecvDirect}, 1, []string{
			`AT+QMTCFG="version",1,4`, `AT+QMTCFG="pdpcid",1,1`, `AT+QMTCFG="ssl",1,0`,
			`AT+QMTCFG="keepalive",1,0`, `AT+QMTCFG="session",1,0`, `AT+QMTCFG="timeout",1,5,3,0`,
			`AT+QMTCFG="will",1,0`, `AT+QMTCFG="recv/mode",1,0,0`,
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.cfg.Commands(tt.idx)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("got\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(tt.want, "\n"))
			}
		})
	}
	last := func(c Config) string {
		l, err := c.Commands(0)
		if err != nil {
			t.Fatal(err)
		}
		return l[len(l)-1]
	}
	if got := last(Config{RecvMode: RecvBufferedLength}); got != `AT+QMTCFG="recv/mode",0,1,1` {
		t.Errorf("buffered length: %s", got)
	}
	if s := (Config{AliAuth: &AliAuth{DeviceSecret: "x"}}).Secrets(); !reflect.DeepEqual(s, []string{"x"}) {
		t.Errorf("Secrets() = %q", s)
	}
	if s := (Config{}).Secrets(); s != nil {
		t.Errorf("Secrets() = %q", s)
	}
}

func TestConfigRefusals(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
		idx  int
		kind error
		text string
	}{
		{"idx", Config{}, 6, ErrInvalidArgument, "client index 6"},
		{"version", Config{Version: 5}, 0, ErrInvalidArgument, "version 5"},
		{"pdpcid", Config{PDPCID: 17}, 0, ErrInvalidArgument, "pdpcid 17 out of range 1-16"},
		{"ssl ctx", Config{SSL: &SSL{Context: 6}}, 0, ErrInvalidArgument, "ssl context 6"},
		{"keepalive long", Config{KeepAlive: time.Hour + time.Second}, 0, ErrInvalidArgument, "keepalive 1h0m1s out of range 1-3600 s"},
		{"keepalive fraction", Config{KeepAlive: 1500 * time.Millisecond}, 0, ErrInvalidArgument, "not a whole number of seconds"},
		{"pkt timeout", Config{PacketTimeout: 1201 * time.Second}, 0, ErrInvalidArgument, "packet timeout"},
		{"retries", Config{Retries: 11}, 0, ErrInvalidArgument, "retries 11 out of range 1-10"},
		{"will qos", Config{Will: &Will{Topic: "t", QoS: 3}}, 0, ErrInvalidArgument, "will QoS 3"},
		{"will topic empty", Config{Will: &Will{}}, 0, ErrInvalidArgument, "will topic is empty"},
		{"will topic wildcard", Config{Will: &Will{Topic: "a/#"}}, 0, ErrInvalidArgument, "wildcard"},
		{"will message quote", Config{Will: &Will{Topic: "t", Message: `say "hi"`}}, 0, ErrInvalidString, "will message"},
		{"will message long", Config{Will: &Will{Topic: "t", Message: strings.Repeat("m", 257)}}, 0, ErrInvalidArgument, "257 bytes, longer than 256"},
		{"recv mode", Config{RecvMode: 9}, 0, ErrInvalidArgument, "receive mode 9"},
		{"aliauth pk quote", Config{AliAuth: &AliAuth{ProductKey: `a"`, DeviceName: "d", DeviceSecret: "s"}}, 0, ErrInvalidString, "aliauth product key"},
		{"aliauth dn long", Config{AliAuth: &AliAuth{ProductKey: "p", DeviceName: strings.Repeat("d", 65), DeviceSecret: "s"}}, 0, ErrInvalidArgument, "aliauth device name"},
		{"aliauth secret empty", Config{AliAuth: &AliAuth{ProductKey: "p", DeviceName: "d"}}, 0, ErrInvalidArgument, "aliauth device secret is empty"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := tt.cfg.Commands(tt.idx)
			if err == nil {
				t.Fatal("accepted")
			}
			if !errors.Is(err, tt.kind) || !strings.Contains(err.Error(), tt.text) {
				t.Fatalf("error %q: want kind %v and text %q", err, tt.kind, tt.text)
			}
			if tt.idx == 0 && tt.cfg.Validate() == nil {
				t.Fatal("Validate accepted what Commands refused")
			}
		})
	}
}

func TestEditTimeoutCommand(t *testing.T) {
	lines, err := Config{EditTimeout: 2 * time.Second}.Commands(0)
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, l := range lines {
		if l == `AT+QMTCFG="edit/timeout",0,1,2` {
			found = true
		}
	}
	if !found {
		t.Fatalf("no edit/timeout line in %q", lines)
	}
	for _, bad := range []time.Duration{1500 * time.Millisecond, 181 * time.Second} {
		if _, err := (Config{EditTimeout: bad}).Commands(0); err == nil {
			t.Errorf("edit timeout %v accepted", bad)
		}
	}
	lines, _ = Config{}.Commands(0)
	for _, l := range lines {
		if strings.Contains(l, "edit/timeout") {
			t.Fatalf("edit/timeout sent without being asked for: %q", l)
		}
	}
}
