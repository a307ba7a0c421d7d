package outbox_test

// BenchmarkWear and BenchmarkLocalPUBACK measure what the outbox costs the card under a steady
// load, with the real drainer emptying it as it fills, through the outbox's exported API, the
// drainer and the local endpoint (see docs/benchmarks.md, "Outbox wear"). -outbox.batch
// measures another group-commit policy (export_test.go).

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"github.com/rs/zerolog"

	"github.com/gatewayd/gatewayd/internal/drain"
	"github.com/gatewayd/gatewayd/internal/local"
	"github.com/gatewayd/gatewayd/internal/outbox"
	"github.com/gatewayd/gatewayd/qmt"
)

var (
	wearFor  = flag.Duration("outbox.wear", 20*time.Second, "how long each BenchmarkWear case publishes (at least 20 messages)")
	wearDir  = flag.String("outbox.dir", "", "where the benchmarks put their stores (default: a temporary directory)")
	wearDev  = flag.String("outbox.dev", "", "block device whose write counter to report too, e.g. vda (default: none)")
	wearWait = flag.Duration("outbox.commitwait", 0, "Config.CommitWait, where the outbox has it (0: its default)")
)

// BenchmarkWear publishes 100-byte QoS 1 messages at 1, 100 and 1,000 a second from 1 and 8
// clients (each a goroutine with its own schedule at a random phase), while the real drainer
// sends every message to an instant publisher and acknowledges it. A client either waits for
// each message to be stored before the next (lockstep: Put) or, as MQTT clients publishing QoS
// 1 at a rate do, goes on publishing while earlier messages wait for their acknowledgement
// (pipelined: Append, and Wait in the client's own acknowledgement goroutine). Reported per
// message, once the store is empty again: bytes this process caused to be written to storage
// (/proc/self/io write_bytes), fdatasyncs (outbox Stats.Syncs, where the outbox counts them),
// latency p50/p99 from publish to acknowledgement (what the local PUBACK waits for), and with
// -outbox.dev the device's own count of bytes written (/sys/block/DEV/stat: everything on
// that device, the journal included — meaningful only where nothing else writes to it).
//
//	go test ./internal/outbox/ -run '^$' -bench Wear -benchtime 1x -outbox.wear 20s
func BenchmarkWear(b *testing.B) {
	for _, rate := range []int{1, 100, 1000} {
		for _, clients := range []int{1, 8} {
			b.Run(fmt.Sprintf("rate=%d/clients=%d", rate, clients), func(b *testing.B) {
				for i := 0; i < b.N; i++ {
					wear(b, rate, clients, putClient)
				}
			})
		}
	}
	for _, rate := range []int{100, 1000} {
		for _, clients := range []int{1, 8} {
			b.Run(fmt.Sprintf("rate=%d/clients=%d/pipelined", rate, clients), func(b *testing.B) {
				for i := 0; i < b.N; i++ {
					wear(b, rate, clients, appendClient)
				}
			})
		}
	}
}

// BenchmarkLocalPUBACK is BenchmarkWear through the local MQTT endpoint: paho clients publish
// QoS 1 and the latency is PUBACK's, as a program on the Pi sees it; a lockstep client waits for
// each PUBACK before its next publish, a pipelined one does not.
func BenchmarkLocalPUBACK(b *testing.B) {
	for _, c := range []struct {
		rate, clients int
		pipelined     bool
	}{{1, 1, false}, {100, 1, false}, {1000, 1, false}, {1000, 8, false}, {1000, 1, true}, {1000, 8, true}} {
		name := fmt.Sprintf("rate=%d/clients=%d", c.rate, c.clients)
		if c.pipelined {
			name += "/pipelined"
		}
		b.Run(name, func(b *testing.B) {
			for i := 0; i < b.N; i++ {
				wear(b, c.rate, c.clients, func(b *testing.B, s *outbox.Store, notify func(), n int) []publishFunc {
					return mqttClient(b, s, notify, n, c.pipelined)
				})
			}
		})
	}
}

// A client publishes one message and calls acked with the outcome once it is acknowledged: a
// lockstep client before it returns, a pipelined one later, from another goroutine, in order.
type publishFunc func(payload []byte, acked func(error)) error

type clientKind func(b *testing.B, s *outbox.Store, notify func(), n int) []publishFunc

const wearTopic = "site/sensor/temperature"

func putClient(b *testing.B, s *outbox.Store, notify func(), n int) []publishFunc {
	fs := make([]publishFunc, n)
	for i := range fs {
		fs[i] = func(p []byte, acked func(error)) error {
			_, err := s.Put(wearTopic, p, 1, false)
			notify() // what the local endpoint does after a stored message
			acked(err)
			return nil
		}
	}
	return fs
}

// appendClient is a pipelined client of the store: Append from a Source of its own, and Wait
// in a goroutine of the client's own, in order, as the local endpoint's connection writer does.
func appendClient(b *testing.B, s *outbox.Store, notify func(), n int) []publishFunc {
	fs := make([]publishFunc, n)
	for i := range fs {
		type held struct {
			t     outbox.Ticket
			acked func(error)
		}
		q := make(chan held, 1024)
		src := &outbox.Source{}
		b.Cleanup(func() { close(q) })
		go func() {
			for h := range q {
				err := s.Wait(h.t)
				notify()
				h.acked(err)
			}
		}()
		fs[i] = func(p []byte, acked func(error)) error {
			t, err := s.Append(src, wearTopic, p, 1, false)
			if err != nil {
				return err
			}
			q <- held{t, acked}
			return nil
		}
	}
	return fs
}

func mqttClient(b *testing.B, s *outbox.Store, notify func(), n int, pipelined bool) []publishFunc {
	ep, err := local.New(local.Config{Listen: "127.0.0.1:0", Forward: []local.Forward{{Topic: "site/#", QoS: 1}}}, s, notify, zerolog.Nop())
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- ep.Run(ctx) }()
	b.Cleanup(func() { cancel(); <-done })
	addr := ep.Addrs()[0].String()
	fs := make([]publishFunc, n)
	for i := range fs {
		c := paho.NewClient(paho.NewClientOptions().AddBroker("tcp://" + addr).SetClientID(fmt.Sprintf("bench-%d", i)).SetAutoReconnect(false))
		if tok := c.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
			b.Fatalf("connect: %v", tok.Error())
		}
		b.Cleanup(func() { c.Disconnect(0) })
		wait := func(tok paho.Token, acked func(error)) {
			if !tok.WaitTimeout(10 * time.Second) {
				acked(fmt.Errorf("no PUBACK in 10 s"))
				return
			}
			acked(tok.Error())
		}
		fs[i] = func(p []byte, acked func(error)) error {
			tok := c.Publish(wearTopic, 1, false, p)
			if pipelined {
				go wait(tok, acked)
			} else {
				wait(tok, acked)
			}
			return nil
		}
	}
	return fs
}

// instant is a module that delivers every publish at once.
type instant struct{}

func (instant) Publish(context.Context, qmt.Message) error { return nil }
func (instant) PublishQueued(_ context.Context, _ qmt.Message, queued func()) error {
	queued()
	return nil
}

func wear(b *testing.B, rate, clients int, kind clientKind) {
	b.StopTimer()
	dir := b.TempDir()
	if *wearDir != "" {
		var err error
		if dir, err = os.MkdirTemp(*wearDir, "wear"); err != nil {
			b.Fatal(err)
		}
		defer os.RemoveAll(dir)
	}
	cfg, err := outbox.BenchConfig(outbox.Config{Dir: dir, CommitWait: *wearWait})
	if err != nil {
		b.Fatal(err)
	}
	s, err := outbox.Open(cfg, zerolog.Nop())
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	d := drain.New(s, drain.Options{}, zerolog.Nop())
	ctx, cancel := context.WithCancel(context.Background())
	drained := make(chan error, 1)
	go func() { drained <- d.Run(ctx, instant{}) }()
	defer func() { cancel(); <-drained }()
	pubs := kind(b, s, d.Notify, clients)

	n := max(20, int(float64(rate)*wearFor.Seconds()))
	n -= n % clients
	payload := bytes.Repeat([]byte("x"), 100)
	interval := time.Duration(float64(time.Second) * float64(clients) / float64(rate))
	var (
		mu    sync.Mutex
		all   []time.Duration
		acks  sync.WaitGroup
		wg    sync.WaitGroup
		fails int
	)
	syncs0, w0, dev0 := syncs(s), writeBytes(b), devBytes(b)
	start := time.Now()
	b.StartTimer()
	for c := range pubs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			next := start.Add(rand.N(interval))
			for i := 0; i < n/clients; i++ {
				time.Sleep(time.Until(next))
				t := time.Now()
				acks.Add(1)
				if err := pubs[c](payload, func(err error) {
					mu.Lock()
					all = append(all, time.Since(t))
					if err != nil {
						fails++
						b.Error(err)
					}
					mu.Unlock()
					acks.Done()
				}); err != nil {
					acks.Done()
					b.Error(err)
					return
				}
				next = next.Add(interval)
			}
		}()
	}
	wg.Wait()
	acks.Wait()
	if fails > 0 {
		b.Fatalf("%d publishes failed", fails)
	}
	for deadline := time.Now().Add(10 * time.Second); s.Stats().Messages > 0; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			b.Fatalf("not drained: %d messages left", s.Stats().Messages)
		}
	}
	b.StopTimer()
	elapsed := time.Since(start)
	w, dev, sy := writeBytes(b)-w0, devBytes(b)-dev0, syncs(s)-syncs0
	slices.Sort(all)
	if st := s.Stats(); st.Delivered != uint64(len(all)) {
		b.Fatalf("%d published, %d delivered", len(all), st.Delivered)
	}
	per := float64(len(all))
	b.ReportMetric(float64(w)/per, "written-B/msg")
	if *wearDev != "" {
		b.ReportMetric(float64(dev)/per, "dev-B/msg")
	}
	if _, counted := syncsCounted(s); counted {
		b.ReportMetric(float64(sy)/per, "fdatasyncs/msg")
	}
	b.ReportMetric(float64(all[len(all)/2].Microseconds()), "p50-µs")
	b.ReportMetric(float64(all[len(all)*99/100].Microseconds()), "p99-µs")
	b.ReportMetric(per/elapsed.Seconds(), "msgs/s")
}

// syncs is the outbox's count of fdatasyncs, 0 from an outbox that does not count them.
func syncs(s *outbox.Store) int64 {
	n, _ := syncsCounted(s)
	return n
}

// syncsCounted is the outbox's count of fdatasyncs, and whether it counts them at all (the
// bbolt store before issue 16 did not: count its with strace -f -c -e trace=fdatasync).
func syncsCounted(s *outbox.Store) (int64, bool) {
	f := reflect.ValueOf(s.Stats()).FieldByName("Syncs")
	if !f.IsValid() {
		return 0, false
	}
	return int64(f.Uint()), true
}

// writeBytes is this process's write_bytes from /proc/self/io: bytes it caused to be written
// to storage, counted when pages are dirtied (a page dirtied twice before it is written counts
// once). On kernels whose page cache holds large folios for the file, a small write into one
// counts the whole folio; the outbox writes its files a page at a time so that it does not.
func writeBytes(b *testing.B) int64 {
	data, err := os.ReadFile("/proc/self/io")
	if err != nil {
		b.Skipf("no /proc/self/io: %v", err)
	}
	for _, l := range strings.Split(string(data), "\n") {
		if v, ok := strings.CutPrefix(l, "write_bytes: "); ok {
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil {
				b.Fatal(err)
			}
			return n
		}
	}
	b.Skip("no write_bytes in /proc/self/io")
	return 0
}

// devBytes is the sectors written to -outbox.dev, in bytes; 0 without the flag.
func devBytes(b *testing.B) int64 {
	if *wearDev == "" {
		return 0
	}
	data, err := os.ReadFile(filepath.Join("/sys/block", *wearDev, "stat"))
	if err != nil {
		b.Fatal(err)
	}
	f := strings.Fields(string(data))
	if len(f) < 7 {
		b.Fatalf("/sys/block/%s/stat: %q", *wearDev, data)
	}
	n, err := strconv.ParseInt(f[6], 10, 64)
	if err != nil {
		b.Fatal(err)
	}
	return n * 512
}
