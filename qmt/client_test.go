package qmt

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gatewayd/gatewayd/at"
)

const ok = "\r\nOK\r\n"

// answer scripts replies by command prefix: the first matching prefix wins.
type answer struct {
	prefix string
	reply  func(f *fakeModule, cmd string)
}

func script(answers ...answer) func(*fakeModule, string) bool {
	return func(f *fakeModule, cmd string) bool {
		for _, a := range answers {
			if strings.HasPrefix(cmd, a.prefix) {
				a.reply(f, cmd)
				return true
			}
		}
		return false
	}
}

// say answers with fixed bytes.
func say(s string) func(*fakeModule, string) { return func(f *fakeModule, _ string) { f.send(s) } }

// pubex answers AT+QMTPUBEX=... with the prompt, reads the announced bytes, and says OK.
func pubex(f *fakeModule, cmd string) {
	n, err := strconv.Atoi(cmd[strings.LastIndexByte(cmd, ',')+1:])
	if err != nil {
		f.send("\r\nERROR\r\n")
		return
	}
	f.prompt(cmd, n)
	f.send(ok)
}

// msgIDOf reads <msgID> out of AT+QMTPUBEX=<idx>,<msgID>,... / AT+QMTSUB=<idx>,<msgID>,...
func msgIDOf(t testing.TB, cmd string) int {
	t.Helper()
	fields := strings.Split(cmd[strings.IndexByte(cmd, '=')+1:], ",")
	id, err := strconv.Atoi(fields[1])
	if err != nil {
		t.Fatalf("no msgID in %q", cmd)
	}
	return id
}

func TestOpenWaitsForTheResultNotForOK(t *testing.T) {
	f, c, _ := newFake(t, Options{}, script(answer{"AT+QMTOPEN=", say(ok)}))
	done := result(func() error { return c.Open(context.Background(), "broker.example.com", 1883) })
	if got := f.waitCmd("AT+QMTOPEN="); got != `AT+QMTOPEN=0,"broker.example.com",1883` {
		t.Fatalf("sent %q", got)
	}
	// Results for another client index and for another call must not complete Open.
	f.urc("+QMTOPEN: 1,0")
	f.urc("+QMTCLOSE: 0,0")
	evs := barrier(t, f, c, "one")
	notYet(t, done, "after OK and foreign results")
	if want := []Event{LinkClosed{0, 0}}; !reflect.DeepEqual(evs, want) {
		t.Fatalf("events %v, want %v (the other client's result is not ours)", evs, want)
	}
	f.urc("+QMTOPEN: 0,0")
	if err := wait(t, done); err != nil {
		t.Fatal(err)
	}
}

func TestOpenResults(t *testing.T) {
	tests := []struct {
		name  string
		reply string
		kind  error
		text  string
	}{
		{"URC before OK", "\r\n+QMTOPEN: 0,0\r\n" + ok, nil, ""},
		{"ok", ok + "\r\n+QMTOPEN: 0,0\r\n", nil, ""},
		{"spaces", ok + "\r\n+QMTOPEN: 0 , 0\r\n", nil, ""},
		{"dns", ok + "\r\n+QMTOPEN: 0,4\r\n", ErrDNS, "mqtt open: could not resolve the broker's host name (+QMTOPEN: 0,4)"},
		{"network", ok + "\r\n+QMTOPEN: 0,-1\r\n", ErrNetwork, "mqtt open: failed to open the network link (+QMTOPEN: 0,-1)"},
		{"pdp", ok + "\r\n+QMTOPEN: 0,3\r\n", ErrPDP, "PDP context"},
		{"in use", ok + "\r\n+QMTOPEN: 0,2\r\n", ErrInUse, "already in use"},
		{"ERROR", "\r\nERROR\r\n", at.ErrError, "mqtt open: the module refused the command (a bad parameter, or client 0 is in the wrong state)"},
		{"CME", "\r\n+CME ERROR: 565\r\n", nil, "565"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, c, _ := newFake(t, Options{}, script(answer{"AT+QMTOPEN=", say(tt.reply)}))
			err := c.Open(context.Background(), "h", 1883)
			if tt.text == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.text) {
				t.Fatalf("error %v, want one holding %q", err, tt.text)
			}
			if tt.kind != nil && !errors.Is(err, tt.kind) {
				t.Fatalf("%v is not %v", err, tt.kind)
			}
			var cme *at.CMEError
			if tt.name == "CME" && (!errors.As(err, &cme) || cme.Code != 565) {
				t.Fatalf("%v does not carry the CME error", err)
			}
		})
	}
}

func TestConnectRefusedInWordsAndPasswordMasked(t *testing.T) {
	const password = "69d84ceca71bf26dd9cc21f8d74d3a330495bb83"
	f, c, trace := newFake(t, Options{}, script(answer{"AT+QMTCONN=", say(ok + "\r\n+QMTCONN: 0,0,4\r\n")}))
	err := c.Connect(context.Background(), "pi-led-01|securemode=3,signmethod=hmacsha1|", "pi-led-01&a1B2c3D4e5F", password)
	const want = "mqtt connect: broker refused the connection: bad user name or password (+QMTCONN: 0,0,4)"
	if err == nil || err.Error() != want {
		t.Fatalf("error %q, want %q", err, want)
	}
	if !errors.Is(err, ErrRefused) || !errors.Is(err, ErrBadCredentials) || errors.Is(err, ErrNotAuthorized) {
		t.Fatalf("kinds of %v are wrong", err)
	}
	var re *ResultError
	if !errors.As(err, &re) || re.Code != 4 || re.Result != 0 || re.Client != 0 {
		t.Fatalf("ResultError %+v", re)
	}
	if cmds := f.commands(); len(cmds) != 1 || !strings.HasSuffix(cmds[0], `,"`+password+`"`) {
		t.Fatalf("the module got %q", cmds)
	}
	log := trace.String()
	if !strings.Contains(log, "AT+QMTCONN") {
		t.Fatalf("the trace does not show the command at all:\n%s", log)
	}
	if strings.Contains(log, password) {
		t.Fatalf("the trace shows the password:\n%s", log)
	}
}

// ThingsBoard's access token is the user name: the trace masks it like a password.
func TestConnectSecretUserMasked(t *testing.T) {
	const token = "A1_TEST_TOKEN_a9f3"
	f, c, trace := newFake(t, Options{}, script(answer{"AT+QMTCONN=", say(ok + "\r\n+QMTCONN: 0,0,0\r\n")}))
	if err := c.ConnectSecretUser(context.Background(), "pi-01", token, ""); err != nil {
		t.Fatal(err)
	}
	if cmds := f.commands(); len(cmds) != 1 || !strings.Contains(cmds[0], `"`+token+`"`) {
		t.Fatalf("the module got %q", cmds)
	}
	if log := trace.String(); !strings.Contains(log, "AT+QMTCONN") || strings.Contains(log, token) {
		t.Fatalf("the trace shows the token, or not the command:\n%s", log)
	}
}

func TestConnectWaitsThroughRetransmission(t *testing.T) {
	f, c, _ := newFake(t, Options{}, script(answer{"AT+QMTCONN=", say(ok)}))
	done := result(func() error { return c.Connect(context.Background(), "id", "", "") })
	f.waitCmd("AT+QMTCONN=")
	f.urc("+QMTCONN: 0,1")
	evs := barrier(t, f, c, "retrans")
	notYet(t, done, "after result 1 (retransmitting)")
	if want := []Event{Connected{Client: 0, Result: 1}}; !reflect.DeepEqual(evs, want) {
		t.Fatalf("events %v, want %v", evs, want)
	}
	f.urc("+QMTCONN: 0,0,0")
	if err := wait(t, done); err != nil {
		t.Fatal(err)
	}
}

func TestConcurrentPublishesCompleteByMsgID(t *testing.T) {
	accepted := make(chan string, 16)
	f, c, _ := newFake(t, Options{}, script(answer{"AT+QMTPUBEX=", func(f *fakeModule, cmd string) {
		pubex(f, cmd)
		accepted <- cmd
	}}))
	payloads := [][]byte{[]byte("m0"), []byte("m1 \"quoted\""), {0, 0x1A, '\r', '\n', 'O', 'K', '\r', '\n'}, []byte("m3")}
	errs := make([]<-chan error, len(payloads))
	for i, p := range payloads {
		errs[i] = result(func() error {
			return c.Publish(context.Background(), Message{Topic: "dev/up", Payload: p, QoS: 1})
		})
	}
	byID := map[int][]byte{}
	var ids []int
	for range payloads {
		var cmd string
		select {
		case cmd = <-accepted:
		case <-time.After(10 * time.Second):
			t.Fatalf("only %d publishes reached the module", len(ids))
		}
		id := msgIDOf(t, cmd)
		if id < 1 || id > MaxMsgID {
			t.Fatalf("msgID %d for QoS 1", id)
		}
		ids = append(ids, id)
		byID[id] = f.payload(cmd)
	}
	if len(byID) != len(payloads) {
		t.Fatalf("msgIDs %v are not distinct", ids)
	}
	// Wrong client index, and a msgID nobody waits for: neither completes a publish.
	for _, id := range ids {
		f.urc(fmt.Sprintf("+QMTPUBEX: 1,%d,0", id))
	}
	f.urc("+QMTPUBEX: 0,9999,0")
	evs := barrier(t, f, c, "foreign")
	for i, ch := range errs {
		notYet(t, ch, fmt.Sprintf("publish %d", i))
	}
	if want := []Event{Published{Client: 0, MsgID: 9999, Result: 0, Ex: true}}; !reflect.DeepEqual(evs, want) {
		t.Fatalf("events %v, want %v", evs, want)
	}
	// Results in reverse order; the one for payloads[2] failed, the rest were acknowledged.
	for i := len(ids) - 1; i >= 0; i-- {
		res := 0
		if string(byID[ids[i]]) == string(payloads[2]) {
			res = 2
		}
		f.urc(fmt.Sprintf("+QMTPUBEX: 0,%d,%d", ids[i], res))
	}
	for i, ch := range errs {
		err := wait(t, ch)
		if i == 2 {
			if !errors.Is(err, ErrSendFailed) || !strings.Contains(err.Error(), "failed to send PUBLISH") {
				t.Errorf("publish 2: %v, want a send failure", err)
			}
			continue
		}
		if err != nil {
			t.Errorf("publish %d: %v", i, err)
		}
	}
	for _, p := range payloads {
		found := false
		for _, got := range byID {
			found = found || string(got) == string(p)
		}
		if !found {
			t.Errorf("payload %q never reached the module intact", p)
		}
	}
}

func TestPublishForms(t *testing.T) {
	t.Run("QoS 0 uses msgID 0 and accepts +QMTPUB", func(t *testing.T) {
		f, c, _ := newFake(t, Options{}, script(answer{"AT+QMTPUBEX=", func(f *fakeModule, cmd string) {
			pubex(f, cmd)
			f.urc("+QMTPUB: 0,0,0")
		}}))
		reply := []byte(`{"id":"123","code":200,"data":{}}`)
		err := c.Publish(context.Background(), Message{Topic: "/sys/a1B2c3D4e5F/pi-led-01/thing/service/property/set_reply", Payload: reply})
		if err != nil {
			t.Fatal(err)
		}
		cmd := f.commands()[0]
		if cmd != `AT+QMTPUBEX=0,0,0,0,"/sys/a1B2c3D4e5F/pi-led-01/thing/service/property/set_reply",33` || string(f.payload(cmd)) != string(reply) {
			t.Fatalf("sent %q + %q", cmd, f.payload(cmd))
		}
	})
	t.Run("Ctrl-Z fallback", func(t *testing.T) {
		f, c, _ := newFake(t, Options{PublishMode: PublishCtrlZ}, script(answer{"AT+QMTPUB=", func(f *fakeModule, cmd string) {
			f.promptCtrlZ(cmd)
			f.send(ok)
			f.urc("+QMTPUB: 0," + strconv.Itoa(msgIDOf(t, cmd)) + ",0")
		}}))
		if err := c.Publish(context.Background(), Message{Topic: "t", Payload: []byte("hello\r\n"), QoS: 2, Retain: true}); err != nil {
			t.Fatal(err)
		}
		cmd := f.commands()[0]
		if cmd != `AT+QMTPUB=0,1,2,1,"t"` || string(f.payload(cmd)) != "hello\r\n" {
			t.Fatalf("sent %q + %q", cmd, f.payload(cmd))
		}
		err := c.Publish(context.Background(), Message{Topic: "t", Payload: []byte{'a', 0x1A}})
		if !errors.Is(err, ErrInvalidArgument) || len(f.commands()) != 1 {
			t.Fatalf("a payload with Ctrl-Z: %v (commands %q)", err, f.commands())
		}
	})
	t.Run("bad topic is never sent", func(t *testing.T) {
		f, c, _ := newFake(t, Options{}, nil)
		err := c.Publish(context.Background(), Message{Topic: "a\"\r\nAT+QPOWD", Payload: []byte("x"), QoS: 1})
		var se *StringError
		if !errors.As(err, &se) || se.Field != "topic" || se.Byte != '"' {
			t.Fatalf("error %v", err)
		}
		if err := c.Publish(context.Background(), Message{Topic: "t", Payload: []byte("x"), QoS: 3}); !errors.Is(err, ErrInvalidArgument) {
			t.Fatalf("QoS 3: %v", err)
		}
		barrier(t, f, c, "nothing sent")
		if cmds := f.commands(); len(cmds) != 0 {
			t.Fatalf("sent %q", cmds)
		}
	})
}

func TestTimeouts(t *testing.T) {
	t.Run("no result within the worst case", func(t *testing.T) {
		_, c, _ := newFake(t, Options{OpenTimeout: 50 * time.Millisecond, Grace: -1}, script(answer{"AT+QMTOPEN=", say(ok)}))
		err := c.Open(context.Background(), "h", 1)
		if !errors.Is(err, ErrNoResult) || !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "no +QMTOPEN result within 50ms") {
			t.Fatalf("error %v", err)
		}
	})
	t.Run("no OK to the command", func(t *testing.T) {
		_, c, _ := newFake(t, Options{OpenTimeout: 100 * time.Millisecond, Grace: -1}, script(answer{"AT+QMTOPEN=", func(*fakeModule, string) {}}))
		err := c.Open(context.Background(), "h", 1)
		if !errors.Is(err, at.ErrTimeout) || errors.Is(err, ErrNoResult) || !strings.Contains(err.Error(), "mqtt open: the module did not answer the command within 100ms") {
			t.Fatalf("error %v", err)
		}
	})
	t.Run("caller cancels", func(t *testing.T) {
		f, c, _ := newFake(t, Options{}, script(answer{"AT+QMTDISC=", say(ok)}))
		ctx, cancel := context.WithCancel(context.Background())
		done := result(func() error { return c.Disconnect(ctx) })
		f.waitCmd("AT+QMTDISC=")
		barrier(t, f, c, "sent")
		cancel()
		err := wait(t, done)
		if !errors.Is(err, context.Canceled) || errors.Is(err, ErrNoResult) {
			t.Fatalf("error %v", err)
		}
	})
	t.Run("publish worst case from the config, with the last report", func(t *testing.T) {
		_, c, _ := newFake(t, Options{Grace: -1}, script(
			answer{"AT+QMTCFG=", say(ok)},
			answer{"AT+QMTPUBEX=", func(f *fakeModule, cmd string) {
				pubex(f, cmd)
				f.urc("+QMTPUBEX: 0," + strconv.Itoa(msgIDOf(t, cmd)) + ",1,1")
			}}))
		if err := c.Configure(context.Background(), Config{PacketTimeout: time.Second, Retries: 1}); err != nil {
			t.Fatal(err)
		}
		err := c.Publish(context.Background(), Message{Topic: "t", Payload: []byte("x"), QoS: 1})
		if !errors.Is(err, ErrNoResult) || !strings.Contains(err.Error(), "no +QMTPUBEX result within 2s (last report: +QMTPUBEX: 0,1,1,1, retransmitting)") {
			t.Fatalf("error %v", err)
		}
	})
}

func TestLimitsFollowTheReference(t *testing.T) {
	c := &Client{opts: Options{OpenTimeout: DefaultOpenTimeout, CloseTimeout: DefaultCloseTimeout, Grace: DefaultGrace}}
	c.pkt, c.retries = Config{}.timing()
	want := map[string]time.Duration{
		// A result may come packet timeout × (retries+1) after the command: the send, then each
		// retransmission, waits a packet timeout (issue 12.7).
		OpOpen: 122 * time.Second, OpConnect: 22 * time.Second, OpSubscribe: 22 * time.Second,
		OpUnsubscribe: 22 * time.Second, OpPublish: 22 * time.Second, OpDisconnect: 32 * time.Second, OpClose: 32 * time.Second,
	}
	for op, d := range want {
		if got := c.limit(op); got != d {
			t.Errorf("limit(%s) = %s, want %s", op, got, d)
		}
	}
	c.pkt, c.retries = 10*time.Second, 5
	if got := c.limit(OpConnect); got != 62*time.Second {
		t.Errorf("connect with 10 s × (5+1): %s", got)
	}
	if got := c.limit(OpPublish); got != 62*time.Second {
		t.Errorf("publish with 10 s × (5+1): %s", got)
	}
}

func TestLinkLossEndsWaitingCalls(t *testing.T) {
	t.Run("+QMTSTAT during connect", func(t *testing.T) {
		f, c, _ := newFake(t, Options{}, script(answer{"AT+QMTCONN=", say(ok)}))
		done := result(func() error { return c.Connect(context.Background(), "id", "u", "p") })
		f.waitCmd("AT+QMTCONN=")
		f.urc("+QMTSTAT: 0,3")
		err := wait(t, done)
		if !errors.Is(err, ErrLinkLost) || err.Error() != "mqtt connect: link lost: sending CONNECT timed out or failed (+QMTSTAT: 0,3)" {
			t.Fatalf("error %v", err)
		}
		if evs := barrier(t, f, c, "after"); !reflect.DeepEqual(evs, []Event{LinkStatus{0, 3}}) {
			t.Fatalf("events %v", evs)
		}
	})
	t.Run("+QMTSTAT of another client", func(t *testing.T) {
		f, c, _ := newFake(t, Options{}, script(answer{"AT+QMTSUB=", say(ok)}))
		done := result(func() error { _, err := c.Subscribe(context.Background(), Subscription{"t", 1}); return err })
		cmd := f.waitCmd("AT+QMTSUB=")
		f.urc("+QMTSTAT: 2,1")
		barrier(t, f, c, "b")
		notYet(t, done, "after another client's +QMTSTAT")
		f.urc("+QMTSUB: 0," + strconv.Itoa(msgIDOf(t, cmd)) + ",0,1")
		if err := wait(t, done); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("RDY during publish", func(t *testing.T) {
		f, c, _ := newFake(t, Options{}, script(answer{"AT+QMTPUBEX=", pubex}))
		done := result(func() error {
			return c.Publish(context.Background(), Message{Topic: "t", Payload: []byte("x"), QoS: 1})
		})
		f.waitCmd("AT+QMTPUBEX=")
		barrier(t, f, c, "sent")
		f.urc("RDY")
		err := wait(t, done)
		if !errors.Is(err, ErrModuleReset) || !strings.Contains(err.Error(), "mqtt publish: the module restarted or powered down (RDY)") {
			t.Fatalf("error %v", err)
		}
	})
}

func TestSubscribeUnsubscribe(t *testing.T) {
	var mu sync.Mutex
	granted := "1,0"
	f, c, _ := newFake(t, Options{}, script(
		answer{"AT+QMTSUB=", func(f *fakeModule, cmd string) {
			f.send(ok)
			mu.Lock()
			g := granted
			mu.Unlock()
			f.urc(fmt.Sprintf("+QMTSUB: 0,%d,0,%s", msgIDOf(t, cmd), g))
		}},
		answer{"AT+QMTUNS=", func(f *fakeModule, cmd string) {
			f.send(ok)
			f.urc(fmt.Sprintf("+QMTUNS: 0,%d,0", msgIDOf(t, cmd)))
		}}))
	subs := []Subscription{{"/sys/pk/dn/thing/service/property/set", 2}, {"/sys/pk/dn/thing/event/property/post_reply", 0}}
	got, err := c.Subscribe(context.Background(), subs...)
	if err != nil || !reflect.DeepEqual(got, []int{1, 0}) {
		t.Fatalf("granted %v, %v", got, err)
	}
	if cmd := f.commands()[0]; cmd != `AT+QMTSUB=0,1,"/sys/pk/dn/thing/service/property/set",2,"/sys/pk/dn/thing/event/property/post_reply",0` {
		t.Fatalf("sent %q", cmd)
	}
	mu.Lock()
	granted = "1,128"
	mu.Unlock()
	got, err = c.Subscribe(context.Background(), subs...)
	if !errors.Is(err, ErrRefused) || !strings.Contains(err.Error(), `refused the subscription to "/sys/pk/dn/thing/event/property/post_reply"`) || !reflect.DeepEqual(got, []int{1, 128}) {
		t.Fatalf("granted %v, %v", got, err)
	}
	if err := c.Unsubscribe(context.Background(), "a", "b"); err != nil {
		t.Fatal(err)
	}
	if cmd := f.commands()[2]; cmd != `AT+QMTUNS=0,3,"a","b"` {
		t.Fatalf("sent %q", cmd)
	}
}

func TestDisconnectAndCloseLink(t *testing.T) {
	f, c, _ := newFake(t, Options{}, script(
		answer{"AT+QMTDISC=", say(ok + "\r\n+QMTSTAT: 0,5\r\n\r\n+QMTDISC: 0,0\r\n")},
		answer{"AT+QMTCLOSE=", say(ok + "\r\n+QMTCLOSE: 0,-1\r\n")}))
	if err := c.Disconnect(context.Background()); err != nil {
		t.Fatalf("disconnect (with +QMTSTAT 5 before the result): %v", err)
	}
	err := c.CloseLink(context.Background())
	if !errors.Is(err, ErrFailed) || err.Error() != "mqtt close: the module failed to close the link (+QMTCLOSE: 0,-1)" {
		t.Fatalf("close: %v", err)
	}
	if evs := barrier(t, f, c, "end"); !reflect.DeepEqual(evs, []Event{LinkStatus{0, 5}}) {
		t.Fatalf("events %v", evs)
	}
}

func TestEventsFromTheWire(t *testing.T) {
	f, c, _ := newFakeMode(t, RecvDirect, Options{}, nil) // every +QMTRECV form, the length-less too
	aliyun := `{"method":"thing.service.property.set","id":"44777986","params":{"LED":1},"version":"1.0.0"}`
	f.send("\r\n+QMTRECV: 0,0,\"/sys/a1VPyJEJRjJ/test01/thing/service/property/set\",92,\"" + aliyun + "\"\r\n")
	f.send("\r\n+QMTRECV: 0,7,\"bin\",9,\"\"\r\nOK\r\n\x00\x1a\"\r\n") // payload: "\r\nOK\r\n NUL ^Z
	f.send("\r\n+QMTRECV: 0,0,\"pump/01/cmd\",5\r\nhello\r\n")         // payload on the next line
	f.urc(`+QMTRECV: 0,0,"topic","no length"`)
	f.urc(`+QMTRECV: 3,0,"other/client","x"`)
	f.urc("+QMTRECV: 0,2")
	f.urc("+QMTSTAT: 0,1")
	f.urc("+QMTPING: 0,1")
	f.urc("+QMTSTAT: x,1")
	f.urc("+CPIN: READY")
	f.urc(`+QIURC: "pdpdeact",1`)
	f.urc(`+CEREG: 1,"1A2B","01C2D3E4",7`)
	f.urc("POWERED DOWN")
	f.urc("RDY")
	f.urc("SOMETHING NEW")
	evs := barrier(t, f, c, "end")
	want := []Event{
		Received{Topic: "/sys/a1VPyJEJRjJ/test01/thing/service/property/set", Payload: []byte(aliyun)},
		Received{MsgID: 7, Topic: "bin", Payload: []byte("\"\r\nOK\r\n\x00\x1a")},
		Received{Topic: "pump/01/cmd", Payload: []byte("hello")},
		Received{Topic: "topic", Payload: []byte("no length"), NoLength: true},
		Stored{0, 2},
		LinkStatus{0, 1},
		PingFailed{0, 1},
		nil, // Malformed, checked below
		SIMStatus{"READY"},
		PDPDeactivated{1},
		RegistrationChanged{Command: "CEREG", Stat: 1, Area: "1A2B", Cell: "01C2D3E4", AcT: 7, HasLocation: true, HasAcT: true},
		PoweredDown{},
		ModuleReady{},
		Unknown{"SOMETHING NEW"},
	}
	if len(evs) != len(want) {
		t.Fatalf("got %d events, want %d:\n%v", len(evs), len(want), evs)
	}
	for i := range want {
		if want[i] == nil {
			m, ok := evs[i].(Malformed)
			if !ok || m.Line != "+QMTSTAT: x,1" || !strings.Contains(m.Err.Error(), "not a number") {
				t.Errorf("event %d: %#v, want Malformed", i, evs[i])
			}
			continue
		}
		if !reflect.DeepEqual(evs[i], want[i]) {
			t.Errorf("event %d: %#v\nwant %#v", i, evs[i], want[i])
		}
	}
}

func TestBadTrailerIsMalformed(t *testing.T) {
	f, c, _ := newFake(t, Options{}, nil)
	f.send("\r\n+QMTRECV: 0,0,\"t\",3,\"abcd\"\r\n")
	evs := barrier(t, f, c, "after")
	if len(evs) == 0 {
		t.Fatal("no event for the bad frame")
	}
	m, ok := evs[0].(Malformed)
	if !ok || !errors.Is(m.Err, at.ErrBadTrailer) {
		t.Fatalf("events %#v, want a Malformed with at.ErrBadTrailer first", evs)
	}
}

func TestQueries(t *testing.T) {
	f, c, _ := newFakeMode(t, RecvBuffered, Options{}, script( // read-outs with and without a length
		answer{"AT+QMTCONN?", func(f *fakeModule, _ string) {
			f.send("\r\n+QMTCONN: 1,2\r\n+QMTCONN: 0,3\r\n")
			f.urc("+QMTCONN: 0,0,0") // a result URC in the middle is not an answer
			f.send(ok)
		}},
		answer{"AT+QMTOPEN?", say("\r\n+QMTOPEN: 0,\"iot-06z00i8mcbcop1x.mqtt.iothub.aliyuncs.com\",1883\r\n+QMTOPEN: 2,\"10.0.0.1\",8883\r\n" + ok)},
		answer{"AT+QMTRECV?", say("\r\n+QMTRECV: 1,1,1,1,1,1\r\n+QMTRECV: 0,0,1,0,0,1\r\n" + ok)},
		answer{"AT+QMTRECV=0,2", func(f *fakeModule, _ string) {
			f.send("\r\n+QMTRECV: 0,5,\"t\",6,\"a\r\nb\"c\"\r\n")
			f.urc("+QMTRECV: 0,4") // an announcement in the middle stays an event
			f.send(ok)
		}},
		answer{"AT+QMTRECV=0", say("\r\n+QMTRECV: 0,1,\"x\",\"one\"\r\n+QMTRECV: 0,2,\"y\",3,\"two\"\r\n" + ok)},
	))
	ctx := context.Background()
	st, err := c.ConnState(ctx)
	if err != nil || st != StateConnected || st.String() != "connected" {
		t.Fatalf("ConnState = %v, %v", st, err)
	}
	links, err := c.OpenLinks(ctx)
	if want := []Link{{0, "iot-06z00i8mcbcop1x.mqtt.iothub.aliyuncs.com", 1883}, {2, "10.0.0.1", 8883}}; err != nil || !reflect.DeepEqual(links, want) {
		t.Fatalf("OpenLinks = %v, %v", links, err)
	}
	slots, err := c.StoredStatus(ctx)
	if err != nil || !reflect.DeepEqual(slots, []bool{false, true, false, false, true}) {
		t.Fatalf("StoredStatus = %v, %v", slots, err)
	}
	msgs, err := c.ReadStored(ctx, 2)
	if want := []Received{{MsgID: 5, Topic: "t", Payload: []byte("a\r\nb\"c")}}; err != nil || !reflect.DeepEqual(msgs, want) {
		t.Fatalf("ReadStored = %#v, %v", msgs, err)
	}
	all, err := c.ReadAllStored(ctx)
	if want := []Received{{MsgID: 1, Topic: "x", Payload: []byte("one"), NoLength: true}, {MsgID: 2, Topic: "y", Payload: []byte("two")}}; err != nil || !reflect.DeepEqual(all, want) {
		t.Fatalf("ReadAllStored = %#v, %v", all, err)
	}
	if _, err := c.ReadStored(ctx, 5); !errors.Is(err, ErrInvalidArgument) {
		t.Fatalf("slot 5: %v", err)
	}
	evs := barrier(t, f, c, "end")
	if want := []Event{Connected{Client: 0, Result: 0, Code: 0, HasCode: true}, Stored{0, 4}}; !reflect.DeepEqual(evs, want) {
		t.Fatalf("events %v, want %v", evs, want)
	}
}

func TestQueryWithoutOurLine(t *testing.T) {
	_, c, _ := newFake(t, Options{}, script(
		answer{"AT+QMTCONN?", say(ok)},
		answer{"AT+QMTRECV?", say("\r\n+QMTRECV: 1,0,0,0,0,0\r\n" + ok)}))
	if st, err := c.ConnState(context.Background()); err != nil || st != StateNone {
		t.Fatalf("ConnState = %v, %v", st, err)
	}
	if _, err := c.StoredStatus(context.Background()); !errors.Is(err, ErrUnexpectedAnswer) {
		t.Fatalf("StoredStatus: %v", err)
	}
}

func TestConfigureSendsTheConfigAndMasksTheSecret(t *testing.T) {
	f, c, trace := newFake(t, Options{}, script(answer{"AT+QMTCFG=", say(ok)}))
	cfg := Config{
		KeepAlive: 60 * time.Second, CleanSession: true, PacketTimeout: 7 * time.Second, Retries: 2,
		AliAuth: &AliAuth{ProductKey: "a1B2c3D4e5F", DeviceName: "pi-led-01", DeviceSecret: "Zx9yW8vU7tS6rQ5pO4nM3lK2jI1hG0fE"},
	}
	if err := c.Configure(context.Background(), cfg); err != nil {
		t.Fatal(err)
	}
	want, _ := cfg.Commands(0)
	if got := f.commands(); !reflect.DeepEqual(got, want) {
		t.Fatalf("sent\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if log := trace.String(); strings.Contains(log, "Zx9yW8vU7tS6rQ5pO4nM3lK2jI1hG0fE") || !strings.Contains(log, "aliauth") {
		t.Fatalf("trace:\n%s", log)
	}
	if got := c.limit(OpConnect); got != 7*3*time.Second+DefaultGrace {
		t.Fatalf("connect limit after Configure: %s", got)
	}
	if err := c.Configure(context.Background(), Config{Version: 9}); !errors.Is(err, ErrInvalidArgument) || len(f.commands()) != len(want) {
		t.Fatalf("bad config: %v, sent %d", err, len(f.commands()))
	}
}

func TestConfigureStopsAtTheFirstRefusal(t *testing.T) {
	f, c, _ := newFake(t, Options{}, script(
		answer{`AT+QMTCFG="keepalive"`, say("\r\nERROR\r\n")},
		answer{"AT+QMTCFG=", say(ok)}))
	err := c.Configure(context.Background(), Config{})
	if !errors.Is(err, at.ErrError) || !strings.Contains(err.Error(), "keepalive") {
		t.Fatalf("error %v", err)
	}
	if n := len(f.commands()); n != 4 {
		t.Fatalf("sent %d commands, want 4 (stop after keepalive)", n)
	}
}

func TestClientEnds(t *testing.T) {
	t.Run("Close", func(t *testing.T) {
		f, c, _ := newFake(t, Options{}, script(answer{"AT+QMTOPEN=", say(ok)}))
		done := result(func() error { return c.Open(context.Background(), "h", 1) })
		f.waitCmd("AT+QMTOPEN=")
		barrier(t, f, c, "sent")
		c.Close()
		if err := wait(t, done); !errors.Is(err, ErrClientClosed) {
			t.Fatalf("pending call: %v", err)
		}
		if _, open := <-c.Events(); open {
			t.Fatal("Events not closed")
		}
		if err := c.Publish(context.Background(), Message{Topic: "t", Payload: []byte("x")}); !errors.Is(err, ErrClientClosed) {
			t.Fatalf("publish after Close: %v", err)
		}
		c.Close() // twice is fine
	})
	t.Run("conn closed", func(t *testing.T) {
		f, c, _ := newFake(t, Options{}, script(answer{"AT+QMTOPEN=", say(ok)}))
		done := result(func() error { return c.Open(context.Background(), "h", 1) })
		f.waitCmd("AT+QMTOPEN=")
		barrier(t, f, c, "sent")
		c.conn.Close()
		err := wait(t, done)
		if !errors.Is(err, ErrClientClosed) || !errors.Is(err, at.ErrClosed) {
			t.Fatalf("pending call: %v", err)
		}
		for range c.Events() {
		}
	})
}

func TestMsgIDAllocation(t *testing.T) {
	c := &Client{inFlight: map[int]bool{}}
	for want := 1; want <= 3; want++ {
		if id, err := c.allocID(); err != nil || id != want {
			t.Fatalf("allocID = %d, %v; want %d", id, err, want)
		}
	}
	c.freeID(2)
	c.nextID = MaxMsgID - 1
	if id, _ := c.allocID(); id != MaxMsgID {
		t.Fatalf("got %d, want %d", id, MaxMsgID)
	}
	// Wraps to 1 but 1 and 3 are in flight: 2 is next.
	if id, _ := c.allocID(); id != 2 {
		t.Fatalf("after the wrap got %d, want 2 (1 and 3 still in flight)", id)
	}
	for len(c.inFlight) < MaxMsgID {
		if _, err := c.allocID(); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := c.allocID(); !errors.Is(err, ErrNoMsgID) {
		t.Fatalf("all in flight: %v", err)
	}
}

func TestInvalidIndex(t *testing.T) {
	f, c0, _ := newFake(t, Options{}, nil)
	c := NewClient(c0.conn, 7)
	defer c.Close()
	if c.Index() != 7 {
		t.Fatalf("Index() = %d", c.Index())
	}
	ctx := context.Background()
	calls := map[string]error{
		"open":        c.Open(ctx, "h", 1),
		"connect":     c.Connect(ctx, "id", "", ""),
		"publish":     c.Publish(ctx, Message{Topic: "t", Payload: []byte("x"), QoS: 1}),
		"unsubscribe": c.Unsubscribe(ctx, "t"),
		"disconnect":  c.Disconnect(ctx),
		"close":       c.CloseLink(ctx),
		"configure":   c.Configure(ctx, Config{}),
	}
	_, calls["subscribe"] = c.Subscribe(ctx, Subscription{"t", 0})
	_, calls["read stored"] = c.ReadStored(ctx, 0)
	for name, err := range calls {
		if !errors.Is(err, ErrInvalidArgument) || !strings.Contains(err.Error(), "client index 7 out of range 0-5") {
			t.Errorf("%s: %v", name, err)
		}
	}
	barrier(t, f, c0, "nothing sent")
	if cmds := f.commands(); len(cmds) != 0 {
		t.Fatalf("sent %q", cmds)
	}
}

// A full Events channel holds the event loop back instead of dropping: the events come out in
// order, and the call whose result was behind them completes once they are read.
func TestFullEventQueueHoldsBackAndLosesNothing(t *testing.T) {
	_, c, _ := newFake(t, Options{EventQueue: 1}, script(answer{"AT+QMTOPEN=", func(f *fakeModule, _ string) {
		f.urc("+QIND: a")
		f.urc("+QIND: b")
		f.urc("+QIND: c")
		f.send(ok + "\r\n+QMTOPEN: 0,0\r\n")
	}}))
	done := result(func() error { return c.Open(context.Background(), "h", 1) })
	for deadline := time.Now().Add(10 * time.Second); c.HeldBack() == 0; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("HeldBack() = 0: the queue of 1 never filled")
		}
	}
	select {
	case err := <-done:
		t.Fatalf("Open returned (%v) before the events ahead of its result were read", err)
	default:
	}
	for _, want := range []string{"a", "b", "c"} {
		if ev := <-c.Events(); ev != (Indication{Text: want}) {
			t.Fatalf("event %v, want +QIND: %s", ev, want)
		}
	}
	if err := wait(t, done); err != nil {
		t.Fatal(err)
	}
}

// TestPublishQueuedSignalsAcceptanceBeforeTheResult: queued runs once the module said OK and
// before the broker's acknowledgement arrives; a refused command never calls it.
func TestPublishQueuedSignalsAcceptanceBeforeTheResult(t *testing.T) {
	release := make(chan struct{})
	f, c, _ := newFake(t, Options{}, script(answer{"AT+QMTPUBEX=", func(f *fakeModule, cmd string) {
		if strings.Contains(cmd, `"refused"`) {
			f.send("\r\nERROR\r\n")
			return
		}
		pubex(f, cmd)
		go func() {
			<-release // the broker's acknowledgement comes only when the test says so
			f.urc("+QMTPUBEX: 0," + strconv.Itoa(msgIDOf(t, cmd)) + ",0")
		}()
	}}))
	queued := make(chan struct{})
	done := make(chan error, 1)
	go func() {
		done <- c.PublishQueued(context.Background(), Message{Topic: "t", Payload: []byte("x"), QoS: 1}, func() { close(queued) })
	}()
	select {
	case <-queued:
	case err := <-done:
		t.Fatalf("PublishQueued returned %v before calling queued", err)
	case <-time.After(5 * time.Second):
		t.Fatal("queued was not called after the module's OK")
	}
	select {
	case err := <-done:
		t.Fatalf("PublishQueued returned %v before the acknowledgement", err)
	case <-time.After(50 * time.Millisecond):
	}
	close(release)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	calls := 0
	err := c.PublishQueued(context.Background(), Message{Topic: "refused", Payload: []byte("x"), QoS: 1}, func() { calls++ })
	if err == nil || calls != 0 {
		t.Fatalf("refused publish: err %v, queued called %d times; want an error and no call", err, calls)
	}
	if len(f.commands()) != 2 {
		t.Fatalf("commands %q", f.commands())
	}
}

// TestPublishQueuedInSequenceKeepsWireOrder: publishes started one after another, each in its
// own goroutine and each only once the previous one was queued (as the drainer does), reach the
// module in the order they were started, and all of them are in flight at once: the module
// acknowledges none until it has seen every one, then acknowledges them in reverse order.
func TestPublishQueuedInSequenceKeepsWireOrder(t *testing.T) {
	const n = 16
	var (
		mu   sync.Mutex
		ids  []int
		wire []string
	)
	f, c, _ := newFake(t, Options{}, script(answer{"AT+QMTPUBEX=", func(f *fakeModule, cmd string) {
		pubex(f, cmd)
		mu.Lock()
		defer mu.Unlock()
		wire = append(wire, string(f.payload(cmd)))
		ids = append(ids, msgIDOf(t, cmd))
		if len(ids) == n {
			for i := n - 1; i >= 0; i-- {
				f.urc("+QMTPUBEX: 0," + strconv.Itoa(ids[i]) + ",0")
			}
		}
	}}))
	var results []<-chan error
	for i := range n {
		queued := make(chan struct{})
		done := make(chan error, 1) // this publish's own result: the earlier ones may end meanwhile
		go func() {
			done <- c.PublishQueued(context.Background(), Message{Topic: "t", Payload: []byte(fmt.Sprintf("m%02d", i)), QoS: 1}, func() { close(queued) })
		}()
		select {
		case <-queued:
		case err := <-done:
			select {
			case <-queued: // queued, then its result came at once (the 16th)
				done <- err
			default:
				t.Fatalf("publish %d returned %v before it was queued", i, err)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("publish %d was never queued", i)
		}
		results = append(results, done)
	}
	for _, done := range results {
		if err := wait(t, done); err != nil {
			t.Fatal(err)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	for i, p := range wire {
		if want := fmt.Sprintf("m%02d", i); p != want {
			t.Fatalf("payload %d on the wire is %q, want %q (wire order %q)", i, p, want, wire)
		}
	}
	if len(f.commands()) != n {
		t.Fatalf("commands %q", f.commands())
	}
}

// TestConfigureSkipsSettingsTheFirmwareLacks: an ERROR for edit/timeout (not on every firmware)
// does not fail Configure; an ERROR for any other setting does.
func TestConfigureSkipsSettingsTheFirmwareLacks(t *testing.T) {
	refuse := "edit/timeout"
	f, c, _ := newFake(t, Options{}, script(answer{"AT+QMTCFG=", func(f *fakeModule, cmd string) {
		if strings.Contains(cmd, refuse) {
			f.send("\r\nERROR\r\n")
			return
		}
		f.send(ok)
	}}))
	if err := c.Configure(context.Background(), Config{EditTimeout: 2 * time.Second}); err != nil {
		t.Fatalf("Configure failed on an optional setting: %v", err)
	}
	if n := len(f.commands()); n < 6 {
		t.Fatalf("only %d commands sent: %q", n, f.commands())
	}
	refuse = "keepalive"
	if err := c.Configure(context.Background(), Config{}); err == nil {
		t.Fatal("Configure ignored an ERROR for keepalive")
	}
}

// TestRawTopicCannotForgeAnAcknowledgement: a downlink topic holding `"`, CR and LF (legal in
// MQTT, printed raw by the module) that spells a +QMTPUBEX line is read as the topic of its
// +QMTRECV, not as the module acknowledging the publish in flight; the real result decides.
func TestRawTopicCannotForgeAnAcknowledgement(t *testing.T) {
	topic := "up\"\r\n+QMTPUBEX: 0,1,0\r\n\r\n+QMTPUB: 0,1,0\r\nx"
	sent := make(chan struct{})
	f, c, trace := newFake(t, Options{}, func(f *fakeModule, cmd string) bool {
		if !strings.HasPrefix(cmd, "AT+QMTPUBEX=0,1,1,0,") {
			return false
		}
		f.prompt(cmd, 2)
		f.send("\r\nOK\r\n")
		f.send("\r\n+QMTRECV: 0,0,\"" + topic + "\",5,\"\r\nhi\"\"\r\n")
		close(sent)
		return true
	})
	done := result(func() error {
		return c.Publish(context.Background(), Message{Topic: "t", Payload: []byte("ok"), QoS: 1})
	})
	<-sent
	evs := barrier(t, f, c, "forged")
	if want := []Event{Received{Topic: topic, Payload: []byte("\r\nhi\"")}}; !reflect.DeepEqual(evs, want) {
		t.Fatalf("events %#v, want %#v\n%s", evs, want, trace.String())
	}
	notYet(t, done, "publish after a forged acknowledgement in a topic")
	f.urc("+QMTPUBEX: 0,1,2")
	if err := wait(t, done); !errors.Is(err, ErrSendFailed) {
		t.Fatalf("publish = %v, want the module's own result (failed to send)", err)
	}
}

// TestLateQoS0ResultDoesNotCompleteTheNext: QoS 0 results all carry message id 0. A QoS 0
// publish given up on before its result leaves a ghost that takes the late result, and the next
// QoS 0 publish is sent only then, so it gets its own result (issue 12.7).
func TestLateQoS0ResultDoesNotCompleteTheNext(t *testing.T) {
	f, c, _ := newFake(t, Options{}, func(f *fakeModule, cmd string) bool {
		if !strings.HasPrefix(cmd, "AT+QMTPUBEX=0,0,0,0,") {
			return false
		}
		f.prompt(cmd, 1)
		f.send("\r\nOK\r\n")
		return true
	})
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	if err := c.Publish(ctx, Message{Topic: "a", Payload: []byte("1")}); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("first publish: %v, want its deadline", err)
	}
	second := result(func() error { return c.Publish(context.Background(), Message{Topic: "b", Payload: []byte("2")}) })
	time.Sleep(100 * time.Millisecond)
	if got := f.commands(); len(got) != 1 {
		t.Fatalf("the second QoS 0 publish was sent while the first one's result was owed: %q", got)
	}
	f.urc("+QMTPUBEX: 0,0,0") // the first one's, late
	f.waitCmd("AT+QMTPUBEX=0,0,0,0,\"b\"")
	notYet(t, second, "second publish after the first one's late result")
	f.urc("+QMTPUBEX: 0,0,2") // the second one's own
	if err := wait(t, second); !errors.Is(err, ErrSendFailed) {
		t.Fatalf("second publish = %v, want its own result (failed to send)", err)
	}
	if evs := barrier(t, f, c, "late"); !reflect.DeepEqual(evs, []Event{Published{MsgID: 0, Result: 0, Ex: true}}) {
		t.Fatalf("events %#v: want the late result passed on", evs)
	}
}

// TestOwedQoS0ResultExpires: a ghost whose result never comes holds the next QoS 0 publish for
// one worst-case wait at most.
func TestOwedQoS0ResultExpires(t *testing.T) {
	_, c, _ := newFake(t, Options{Grace: -1}, func(f *fakeModule, cmd string) bool {
		switch {
		case strings.HasPrefix(cmd, "AT+QMTCFG="):
			f.send("\r\nOK\r\n")
		case strings.HasPrefix(cmd, "AT+QMTPUBEX=0,0,0,0,"):
			f.prompt(cmd, 1)
			f.send("\r\nOK\r\n")
			if strings.Contains(cmd, `"b"`) {
				f.urc("+QMTPUBEX: 0,0,0")
			}
		default:
			return false
		}
		return true
	})
	if err := c.Configure(context.Background(), Config{PacketTimeout: time.Second, Retries: 1}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if err := c.Publish(ctx, Message{Topic: "a", Payload: []byte("1")}); err == nil {
		t.Fatal("first publish succeeded without a result")
	}
	start := time.Now()
	if err := c.Publish(context.Background(), Message{Topic: "b", Payload: []byte("2")}); err != nil {
		t.Fatalf("second publish: %v", err)
	}
	if d := time.Since(start); d < 1500*time.Millisecond || d > 4*time.Second {
		t.Fatalf("second publish held %v, want about the 2 s worst case", d)
	}
}

// TestCloseIndex: the bring-up's AT+QMTCLOSE takes every answer the reference lists (2.2): OK
// then +QMTCLOSE (something was open), OK alone (after a short wait for a URC that does not
// come), and ERROR (nothing open). +QMTCLOSE: <idx>,-1 is still a failure.
func TestCloseIndex(t *testing.T) {
	for _, tc := range []struct {
		name     string
		answer   string
		open     bool
		fails    bool
		waitsURC bool
	}{
		{"ok and urc", ok + "\r\n+QMTCLOSE: 0,0\r\n", true, false, false},
		{"ok alone", ok, true, false, true},
		{"error", "\r\nERROR\r\n", false, false, false},
		{"close failed", ok + "\r\n+QMTCLOSE: 0,-1\r\n", true, true, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, c, _ := newFake(t, Options{}, script(answer{"AT+QMTCLOSE=0", say(tc.answer)}))
			start := time.Now()
			open, err := c.CloseIndex(context.Background(), 300*time.Millisecond)
			took := time.Since(start)
			if open != tc.open || (err != nil) != tc.fails {
				t.Fatalf("CloseIndex = %v, %v; want open %v, failure %v", open, err, tc.open, tc.fails)
			}
			if tc.waitsURC != (took >= 300*time.Millisecond) {
				t.Errorf("CloseIndex took %s; waiting for the URC: %v", took, tc.waitsURC)
			}
		})
	}
}
