package qmt

import (
	"context"
	"strconv"
	"sync"
	"testing"

	"github.com/gatewayd/gatewayd/at"
)

func BenchmarkParseURCReceived(b *testing.B) {
	payload := []byte(`{"method":"thing.service.property.set","id":"44777986","params":{"LED":1},"version":"1.0.0"}`)
	l := at.Line{Text: `+QMTRECV: 0,0,"/sys/a1VPyJEJRjJ/test01/thing/service/property/set",92`, Payload: payload}
	b.ReportAllocs()
	for b.Loop() {
		if _, ok := ParseURC(l).(Received); !ok {
			b.Fatal("not parsed")
		}
	}
}

func BenchmarkParseURCResult(b *testing.B) {
	l := at.Line{Text: "+QMTPUBEX: 0,17,0"}
	b.ReportAllocs()
	for b.Loop() {
		if _, ok := ParseURC(l).(Published); !ok {
			b.Fatal("not parsed")
		}
	}
}

func BenchmarkRecvPayload(b *testing.B) {
	head := []byte(`+QMTRECV: 0,0,"/sys/a1VPyJEJRjJ/test01/thing/service/property/set",92,"`)
	b.ReportAllocs()
	for b.Loop() {
		if _, ok := RecvPayload(head); !ok {
			b.Fatal("refused")
		}
	}
}

// BenchmarkPublishQoS1 publishes 64-byte QoS 1 messages through a real at.Conn to the fake
// module over net.Pipe, which acknowledges each right after OK; 8 publishers at once. It
// measures the host-side cost of a publish round trip, not the module's.
func BenchmarkPublishQoS1(b *testing.B) {
	_, c, _ := newFake(b, Options{}, script(answer{"AT+QMTPUBEX=", func(f *fakeModule, cmd string) {
		pubex(f, cmd)
		f.urc("+QMTPUBEX: 0," + strconv.Itoa(msgIDOf(b, cmd)) + ",0")
	}}))
	msg := Message{Topic: "dev/up", Payload: make([]byte, 64), QoS: 1}
	b.ReportAllocs()
	b.SetParallelism(4) // 4 × GOMAXPROCS goroutines
	var once sync.Once
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if err := c.Publish(context.Background(), msg); err != nil {
				once.Do(func() { b.Error(err) })
				return
			}
		}
	})
}
