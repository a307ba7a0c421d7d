package outbox

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gatewayd/gatewayd/test/testutil"
	"github.com/rs/zerolog"
)

// crashCopy copies the store in dir to a new directory as a kill -9 leaves it: everything
// written, synced or not (the page cache outlives the process), and no clean close.
func crashCopy(t *testing.T, dir string) string {
	t.Helper()
	to := t.TempDir()
	src := filepath.Join(dir, FileName)
	if err := os.Mkdir(filepath.Join(to, FileName), 0o700); err != nil {
		t.Fatal(err)
	}
	des, err := os.ReadDir(src)
	if err != nil {
		t.Fatal(err)
	}
	for _, de := range des {
		data, err := os.ReadFile(filepath.Join(src, de.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(to, FileName, de.Name()), data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return to
}

// segments returns the paths of the store's segment files, oldest first.
func segments(t *testing.T, dir string) []string {
	t.Helper()
	gens, _, err := listSegments(filepath.Join(dir, FileName))
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, g := range gens {
		out = append(out, filepath.Join(dir, FileName, segName(g)))
	}
	return out
}

func payloads(ms []Message) []string {
	out := make([]string, len(ms))
	for i, m := range ms {
		out[i] = string(m.Payload)
	}
	return out
}

func syncsOf(s *Store) uint64 { return s.Stats().Syncs }

func TestALonePutIsOneFdatasync(t *testing.T) {
	s, _ := open(t, Config{})
	for i := 0; i < 20; i++ {
		before := syncsOf(s)
		mustPut(t, s, "t", fmt.Sprint(i))
		if n := syncsOf(s) - before; n != 1 {
			t.Fatalf("Put %d: %d fdatasyncs, want 1", i, n)
		}
	}
}

// TestConcurrentPutsShareFdatasyncs releases 8 publishers at once, round after round: while
// the first one's fdatasync runs the others append, and the next fdatasync covers them all.
func TestConcurrentPutsShareFdatasyncs(t *testing.T) {
	s, _ := open(t, Config{})
	const clients, rounds = 8, 30
	before := syncsOf(s)
	for r := 0; r < rounds; r++ {
		var start, done sync.WaitGroup
		start.Add(1)
		for c := 0; c < clients; c++ {
			done.Add(1)
			go func() {
				defer done.Done()
				start.Wait()
				if _, err := s.Put("t", []byte(fmt.Sprintf("%d/%d", r, c)), 1, false); err != nil {
					t.Error(err)
				}
			}()
		}
		start.Done()
		done.Wait()
	}
	syncs := syncsOf(s) - before
	ms := pending(t, s)
	if len(ms) != clients*rounds || !slices.IsSortedFunc(ms, func(a, b Message) int { return int(a.Seq) - int(b.Seq) }) {
		t.Fatalf("%d messages pending, want %d in seq order", len(ms), clients*rounds)
	}
	t.Logf("%d Puts, %d fdatasyncs", clients*rounds, syncs)
	if syncs >= clients*rounds {
		t.Fatalf("%d Puts by %d concurrent clients took %d fdatasyncs: none were shared", clients*rounds, clients, syncs)
	}
}

// TestALonePublisherNeverWaitsForCompany: a Put waits for others only when Puts have been
// waiting at once; one client publishing — with the drainer's Sending and Ack going on beside
// it — never makes two, so it never waits, however long CommitWait is.
func TestALonePublisherNeverWaitsForCompany(t *testing.T) {
	s, _ := open(t, Config{CommitWait: time.Hour})
	stop := make(chan struct{})
	var drained sync.WaitGroup
	drained.Add(1)
	go func() { // a drainer
		defer drained.Done()
		var last uint64
		for {
			select {
			case <-stop:
				return
			default:
			}
			ms, err := s.PendingAfter(last, 8)
			if err != nil {
				t.Error(err)
				return
			}
			for _, m := range ms {
				if err := s.Sending(m.Seq); err != nil {
					t.Error(err)
				}
				if err := s.Ack(m.Seq); err != nil {
					t.Error(err)
				}
				last = m.Seq
			}
			time.Sleep(100 * time.Microsecond)
		}
	}()
	start := time.Now()
	for i := 0; i < 200; i++ {
		mustPut(t, s, "t", fmt.Sprint(i))
	}
	close(stop)
	drained.Wait()
	// Not a speed measurement: one wait for company would take an hour.
	if d := time.Since(start); d > time.Minute {
		t.Fatalf("200 Puts by one client took %v", d)
	}
}

// TestSendingACaughtUpMessageNeedsNoFdatasync: once the drainer has sent what is stored, a new
// message is recorded as possibly sent in its own put record, and its Sending and Ack write
// without an fdatasync: one per message in all.
func TestSendingACaughtUpMessageNeedsNoFdatasync(t *testing.T) {
	s, _ := open(t, Config{})
	step := func(what string, want uint64, f func() error) {
		t.Helper()
		before := syncsOf(s)
		if err := f(); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		if n := syncsOf(s) - before; n != want {
			t.Fatalf("%s: %d fdatasyncs, want %d", what, n, want)
		}
	}
	put := func() error { _, err := s.Put("t", []byte("x"), 1, false); return err }
	step("Put 1", 1, put)
	step("Sending 1 (nothing sent yet in this run)", 1, func() error { return s.Sending(1) })
	step("Ack 1", 0, func() error { return s.Ack(1) })
	for seq := uint64(2); seq < 6; seq++ {
		step(fmt.Sprintf("Put %d", seq), 1, put)
		step(fmt.Sprintf("Sending %d", seq), 0, func() error { return s.Sending(seq) })
		step(fmt.Sprintf("Ack %d", seq), 0, func() error { return s.Ack(seq) })
	}
	if st := s.Stats(); st.Messages != 0 || st.Delivered != 5 || st.DuplicatesPossible != 0 {
		t.Fatalf("Stats = %+v", st)
	}
}

// TestCrashCountsEveryPossiblySentMessage: after a crash (the store copied as kill -9 leaves
// it, no clean close), a message that was sent without being acknowledged, and one that was
// recorded as possibly sent but perhaps never was, both count as sent once: a resend of either
// is reported. Nothing else is.
func TestCrashCountsEveryPossiblySentMessage(t *testing.T) {
	dir := t.TempDir()
	s, _ := open(t, Config{Dir: dir})
	for i := 1; i <= 6; i++ {
		mustPut(t, s, "t", fmt.Sprint(i))
	}
	if err := s.Sending(1, 2, 3); err != nil { // 1-3 sent
		t.Fatal(err)
	}
	if err := s.Ack(1); err != nil {
		t.Fatal(err)
	}
	if err := s.Sending(4, 5, 6); err != nil {
		t.Fatal(err)
	}
	if err := s.Ack(4, 5, 6); err != nil {
		t.Fatal(err)
	}
	mustPut(t, s, "t", "7") // the drainer is caught up: recorded as possibly sent; never sent
	mustPut(t, s, "t", "8")

	crashed, _ := open(t, Config{Dir: crashCopy(t, dir)})
	ms := pending(t, crashed)
	got := map[uint64]int{}
	for _, m := range ms {
		got[m.Seq] = m.Attempts
	}
	if want := map[uint64]int{2: 1, 3: 1, 7: 1, 8: 1}; fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("after a crash: seq → attempts %v, want %v", got, want)
	}

	// After a clean close nothing is in doubt: 7 and 8 were never sent.
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	clean, _ := open(t, Config{Dir: dir})
	got = map[uint64]int{}
	for _, m := range pending(t, clean) {
		got[m.Seq] = m.Attempts
	}
	if want := map[uint64]int{2: 1, 3: 1, 7: 0, 8: 0}; fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("after a clean close: seq → attempts %v, want %v", got, want)
	}
}

// TestEveryCutOfTheLogOpens cuts the log at and inside every record, as a power cut in the
// middle of writing it would, leaving zeros or garbage after the cut: Open keeps exactly the
// records before the cut, damages nothing, and the store goes on working across two restarts.
func TestEveryCutOfTheLogOpens(t *testing.T) {
	dir := t.TempDir()
	s, _ := open(t, Config{Dir: dir})
	for i := 1; i <= 12; i++ {
		mustPut(t, s, "t/cut", fmt.Sprintf("payload %d %s", i, strings.Repeat("z", i*5)))
		if i%4 == 0 {
			if err := s.Sending(uint64(i-3), uint64(i-2)); err != nil {
				t.Fatal(err)
			}
			if err := s.Ack(uint64(i - 3)); err != nil {
				t.Fatal(err)
			}
		}
	}
	src := crashCopy(t, dir)
	seg := segments(t, src)[0]
	orig, err := os.ReadFile(seg)
	if err != nil {
		t.Fatal(err)
	}
	// What the log holds up to each record's end.
	type point struct {
		end  int
		live []string
	}
	var points []point
	live := map[uint64]string{}
	snapshot := func(end int) {
		var l []string
		for seq := uint64(1); seq <= 12; seq++ {
			if p, ok := live[seq]; ok {
				l = append(l, p)
			}
		}
		points = append(points, point{end, l})
	}
	snapshot(segHeaderSize)
	res, _ := scanRecords(orig, 1, func(r record) error {
		switch r.typ {
		case recPut:
			p, _ := parsePut(r.body)
			live[p.seq] = string(p.payload)
		case recRemove:
			parseRuns(r.body[1:], func(seq uint64) { delete(live, seq) })
		}
		snapshot(r.off + recHeaderSize + len(r.body))
		return nil
	})
	if res.damaged != 0 || len(points) < 15 {
		t.Fatalf("the log: %+v, %d records", res, len(points))
	}
	garbage := randomBytes(len(orig))
	for i, p := range points {
		for _, cut := range []int{p.end, p.end + 3, p.end + 11} {
			if i == len(points)-1 && cut > p.end || cut >= len(orig) {
				continue
			}
			want := p.live
			for _, fill := range []string{"zeros", "garbage"} {
				data := bytes.Clone(orig)
				if fill == "zeros" {
					clear(data[cut:])
				} else {
					copy(data[cut:], garbage)
				}
				d := t.TempDir()
				if err := os.MkdirAll(filepath.Join(d, FileName), 0o700); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(filepath.Join(d, FileName, filepath.Base(seg)), data, 0o600); err != nil {
					t.Fatal(err)
				}
				name := fmt.Sprintf("cut at %d (after record %d) + %s", cut, i, fill)
				s1, err := Open(Config{Dir: d}, zerolog.Nop())
				if err != nil {
					t.Fatalf("%s: Open: %v", name, err)
				}
				ms, _ := s1.Pending(100)
				if st := s1.Stats(); st.SetAside != "" || st.Damaged != 0 || !slices.Equal(payloads(ms), want) {
					t.Fatalf("%s: %q (stats %+v), want %q", name, payloads(ms), st, want)
				}
				if _, err := s1.Put("t/cut", []byte("after"), 1, false); err != nil {
					t.Fatalf("%s: Put: %v", name, err)
				}
				s1.Close()
				s2, err := Open(Config{Dir: d}, zerolog.Nop())
				if err != nil {
					t.Fatalf("%s: second Open: %v", name, err)
				}
				ms, _ = s2.Pending(100)
				if got := payloads(ms); !slices.Equal(got, append(slices.Clone(want), "after")) {
					t.Fatalf("%s: after a restart %q", name, got)
				}
				s2.Close()
			}
		}
	}
}

// TestBytesBeyondTheEndAreNeverRead: a power cut can leave a record whole on the disk after
// one that is not (the pages of one commit reach the disk in any order). The next run writes
// over the torn one — here a record that ends exactly where the stale one begins — and a
// later crash must not bring the stale one back: it belongs to the earlier run, whose records
// no longer pass the checks.
func TestBytesBeyondTheEndAreNeverRead(t *testing.T) {
	dir := t.TempDir()
	s, _ := open(t, Config{Dir: dir})
	msg := func(i int) string { return fmt.Sprintf("message %d %s", i, strings.Repeat("b", 30)) }
	for i := 1; i <= 5; i++ {
		mustPut(t, s, "t/stale", msg(i))
	}
	cp := crashCopy(t, dir)
	seg := segments(t, cp)[0]
	data, err := os.ReadFile(seg)
	if err != nil {
		t.Fatal(err)
	}
	var offs []int
	scanRecords(data, 1, func(r record) error {
		if r.typ == recPut {
			offs = append(offs, r.off)
		}
		return nil
	})
	// Tear message 4 (its length and checksum); message 5 stays whole behind it.
	clear(data[offs[3] : offs[3]+recHeaderSize])
	if err := os.WriteFile(seg, data, 0o600); err != nil {
		t.Fatal(err)
	}
	s2, _ := open(t, Config{Dir: cp})
	three := []string{msg(1), msg(2), msg(3)}
	if got := payloads(pending(t, s2)); !slices.Equal(got, three) {
		t.Fatalf("after the tear: %q", got)
	}
	// The run's RUN record takes recHeaderSize+4 bytes where message 4 began; a payload that
	// much shorter ends the new record exactly where the stale message 5 begins.
	short := strings.Repeat("n", len(msg(4))-(recHeaderSize+4))
	mustPut(t, s2, "t/stale", short)
	if got := payloads(pending(t, s2)); !slices.Equal(got, append(three, short)) {
		t.Fatalf("after the new put: %q", got)
	}
	s3, _ := open(t, Config{Dir: crashCopy(t, cp)})
	if got := payloads(pending(t, s3)); !slices.Equal(got, append(three, short)) {
		t.Fatalf("after a second crash: %q (the stale message 5 came back?)", got)
	}
	if st := s3.Stats(); st.Damaged != 0 || st.SetAside != "" {
		t.Fatalf("stats %+v", st)
	}
}

// smallSegments is a Config whose segments are 16 KiB, so that tests fill several.
func smallSegments(dir string) Config {
	return Config{Dir: dir, segSize: 16 << 10, chunk: 4 << 10}
}

// multiSegmentStore writes n messages into segments of 16 KiB and closes the store.
func multiSegmentStore(t *testing.T, dir string, n int) []string {
	t.Helper()
	s, err := Open(smallSegments(dir), zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	var want []string
	for i := 1; i <= n; i++ {
		p := fmt.Sprintf("m%03d %s", i, strings.Repeat("p", 400))
		mustPut(t, s, fmt.Sprintf("t/%d", i), p)
		want = append(want, p)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if n := len(segments(t, dir)); n < 3 {
		t.Fatalf("%d segments, want at least 3", n)
	}
	return want
}

// TestDamageInAnOlderSegment: a flipped byte in a message loses that message only (the store
// is rewritten without it, nothing set aside); damage that cuts a segment short, a missing
// segment or a damaged header sets the store aside and keeps every message that can still be
// read. Every kept message counts as sent once: the damage may have taken its send records.
func TestDamageInAnOlderSegment(t *testing.T) {
	for _, c := range []struct {
		name     string
		damage   func(t *testing.T, segs []string)
		setAside bool
		lost     func(t *testing.T, segs []string, i int) bool // which messages (from 0) are gone
	}{
		{"flipped payload byte", func(t *testing.T, segs []string) {
			data, _ := os.ReadFile(segs[0])
			i := bytes.Index(data, []byte("m005 "))
			data[i+10] ^= 0xff
			os.WriteFile(segs[0], data, 0o600)
		}, false, func(_ *testing.T, _ []string, i int) bool { return i == 4 }},
		{"length of a record zeroed", func(t *testing.T, segs []string) {
			data, _ := os.ReadFile(segs[0])
			i := bytes.Index(data, []byte("m010 ")) - putFixed - len("t/10") - recHeaderSize
			clear(data[i : i+4])
			os.WriteFile(segs[0], data, 0o600)
		}, true, func(t *testing.T, segs []string, i int) bool { return i >= 9 && i < messagesIn(t, segs[0]) }},
		{"a segment missing", func(t *testing.T, segs []string) {
			os.Remove(segs[1])
		}, true, func(t *testing.T, segs []string, i int) bool {
			return i >= messagesIn(t, segs[0]) && i < messagesIn(t, segs[0])+messagesIn(t, segs[1])
		}},
		{"a header damaged", func(t *testing.T, segs []string) {
			data, _ := os.ReadFile(segs[1])
			copy(data, "garbage!")
			os.WriteFile(segs[1], data, 0o600)
		}, true, func(*testing.T, []string, int) bool { return false }},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			all := multiSegmentStore(t, dir, 120)
			segs := segments(t, dir)
			var want []string
			for i, p := range all {
				if !c.lost(t, segs, i) {
					want = append(want, p)
				}
			}
			c.damage(t, segs)
			lb := &testutil.SyncBuffer{}
			s, err := Open(smallSegments(dir), zerolog.New(lb))
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			ms, _ := s.Pending(1000)
			st := s.Stats()
			if got := payloads(ms); !slices.Equal(got, want) {
				t.Fatalf("%d messages kept, want %d (lost: %v)", len(got), len(want), lostOnes(all, got))
			}
			if (st.SetAside != "") != c.setAside {
				t.Fatalf("set aside %q, want %v", st.SetAside, c.setAside)
			}
			if c.setAside {
				if fi, err := os.Stat(st.SetAside); err != nil || !fi.IsDir() {
					t.Fatalf("the damaged store is not kept at %s: %v", st.SetAside, err)
				}
				if !strings.Contains(lb.String(), `"event":"outbox_set_aside"`) {
					t.Fatalf("no set-aside line:\n%s", lb)
				}
			}
			if len(want) < len(all) && st.Damaged == 0 {
				t.Fatalf("messages lost and none counted as damaged: %+v", st)
			}
			for _, m := range ms {
				if m.Attempts < 1 {
					t.Fatalf("seq %d kept with %d attempts after damage: a resend would go unreported", m.Seq, m.Attempts)
				}
			}
			mustPut(t, s, "t/after", "after")
			s.Close()
			again, _ := open(t, smallSegments(dir))
			if st := again.Stats(); st.Damaged != 0 || st.Messages != len(want)+1 {
				t.Fatalf("the repaired store, reopened: %+v", st)
			}
		})
	}
}

// messagesIn counts the put records in a segment file.
func messagesIn(t *testing.T, path string) int {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	gen, _ := parseSegName(filepath.Base(path))
	n := 0
	scanRecords(data, gen, func(r record) error {
		if r.typ == recPut {
			n++
		}
		return nil
	})
	return n
}

func lostOnes(all, got []string) []string {
	var lost []string
	for _, p := range all {
		if !slices.Contains(got, p) {
			lost = append(lost, p[:4])
		}
	}
	return lost
}

// TestEmptySegmentsAreRetiredAndReused: segments whose messages are all delivered go (the
// first becomes the spare and is reused for the next segment), so the store's size follows
// what it holds; sequence numbers go on across restarts.
func TestEmptySegmentsAreRetiredAndReused(t *testing.T) {
	dir := t.TempDir()
	s, _ := open(t, smallSegments(dir))
	var last uint64
	for round := 0; round < 3; round++ {
		for i := 0; i < 150; i++ {
			mustPut(t, s, "t/r", strings.Repeat("r", 200))
		}
		grown := s.Stats()
		ms := pending(t, s)
		if err := s.Sending(seqs(ms)...); err != nil {
			t.Fatal(err)
		}
		if err := s.Ack(seqs(ms)...); err != nil {
			t.Fatal(err)
		}
		mustPut(t, s, "t/r", "x") // a commit, after which the emptied segments go
		st := s.Stats()
		t.Logf("round %d: %d segments (%d bytes) holding 150 messages, %d (%d bytes) once delivered", round, grown.Segments, grown.DiskSize, st.Segments, st.DiskSize)
		if grown.Segments < 3 || st.Segments > 2 {
			t.Fatalf("round %d: %d segments full, %d once emptied", round, grown.Segments, st.Segments)
		}
		if _, err := os.Stat(filepath.Join(dir, FileName, spareName)); round > 0 && err != nil {
			t.Fatalf("no spare segment: %v", err)
		}
		last = seqs(pending(t, s))[0]
		if err := s.Ack(last); err != nil {
			t.Fatal(err)
		}
	}
	s.Close()
	s2, _ := open(t, smallSegments(dir))
	if seq := mustPut(t, s2, "t/r", "y"); seq != last+1 {
		t.Fatalf("seq after a restart %d, want %d", seq, last+1)
	}
}

// TestAMessageThatStaysDoesNotHoldTheLog: one message is never acknowledged (the module refuses
// it, say) while thousands after it are: it is copied forward with its attempts, and the
// segments behind it go instead of piling up.
func TestAMessageThatStaysDoesNotHoldTheLog(t *testing.T) {
	dir := t.TempDir()
	s, _ := open(t, smallSegments(dir))
	stuck := mustPut(t, s, "t/stuck", "the one that stays")
	if err := s.Sending(stuck); err != nil {
		t.Fatal(err)
	}
	if err := s.Sending(stuck); err != nil {
		t.Fatal(err)
	}
	most := 0
	for i := 0; i < 600; i++ {
		seq := mustPut(t, s, "t/go", strings.Repeat("g", 150))
		if err := s.Sending(seq); err != nil {
			t.Fatal(err)
		}
		if err := s.Ack(seq); err != nil {
			t.Fatal(err)
		}
		most = max(most, s.Stats().Segments)
	}
	t.Logf("at most %d segments", most)
	if most > 4 {
		t.Fatalf("%d segments behind one message that stays", most)
	}
	check := func(s *Store, what string) {
		t.Helper()
		ms := pending(t, s)
		if len(ms) != 1 || ms[0].Seq != stuck || string(ms[0].Payload) != "the one that stays" || ms[0].Attempts != 2 {
			t.Fatalf("%s: %+v", what, ms)
		}
	}
	check(s, "in this run")
	crashed, _ := open(t, smallSegments(crashCopy(t, dir)))
	check(crashed, "after a crash")
	s.Close()
	reopened, _ := open(t, smallSegments(dir))
	check(reopened, "after a restart")
}

// TestStrayFilesInTheStoreAreIgnored: files that are not segments are left alone; a
// temporary file left by a crash while making a segment is removed.
func TestStrayFilesInTheStoreAreIgnored(t *testing.T) {
	dir := t.TempDir()
	s, _ := open(t, Config{Dir: dir})
	mustPut(t, s, "t", "kept")
	s.Close()
	db := filepath.Join(dir, FileName)
	os.WriteFile(filepath.Join(db, "README"), []byte("notes"), 0o600)
	os.WriteFile(filepath.Join(db, segName(7)+tmpSuffix), []byte("half a segment"), 0o600)
	s2, _ := open(t, Config{Dir: dir})
	if got := payloads(pending(t, s2)); !slices.Equal(got, []string{"kept"}) || s2.Stats().SetAside != "" {
		t.Fatalf("%q, %+v", got, s2.Stats())
	}
	if _, err := os.Stat(filepath.Join(db, segName(7)+tmpSuffix)); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("temporary file left: %v", err)
	}
	if _, err := os.Stat(filepath.Join(db, "README")); err != nil {
		t.Fatalf("a stray file was removed: %v", err)
	}
}

func TestScanRecords(t *testing.T) {
	const gen = 9
	seed0, seed1 := runSeed(gen, 0), runSeed(gen, 1)
	put := func(seed uint32, seq uint64) []byte {
		return appendRecord(nil, seed, recPut, putBody{seq: seq, topic: "t", payload: []byte("p")}.append(nil))
	}
	run1 := appendRecord(nil, seed0, recRun, []byte{0, 0, 0, 1})
	end := func(seed uint32) []byte { return appendRecord(nil, seed, recEnd, nil) }
	flip := func(b []byte, i int) []byte { b = bytes.Clone(b); b[i] ^= 1; return b }
	seg := func(parts ...[]byte) []byte {
		return append(encodeHeader(segHeader{gen: gen, nextSeq: 1}), slices.Concat(parts...)...)
	}
	for _, c := range []struct {
		name    string
		data    []byte
		seqs    string
		ended   bool
		damaged int
		end     int // records' bytes, after the header
	}{
		{"empty", seg(), "[]", false, 0, 0},
		{"zeros", seg(make([]byte, 64)), "[]", false, 0, 0},
		{"two records", seg(put(seed0, 1), put(seed0, 2), make([]byte, 30)), "[1 2]", false, 0, 2 * len(put(seed0, 1))},
		{"cut inside the second", seg(put(seed0, 1), put(seed0, 2)[:10]), "[1]", false, 0, len(put(seed0, 1))},
		{"a damaged record between sound ones", seg(put(seed0, 1), flip(put(seed0, 2), 20), put(seed0, 3)), "[1 3]", false, 1, 3 * len(put(seed0, 1))},
		{"a damaged record at the end", seg(put(seed0, 1), flip(put(seed0, 2), 20), make([]byte, 40)), "[1]", false, 0, len(put(seed0, 1))},
		{"a damaged length", seg(put(seed0, 1), flip(put(seed0, 2), 1), put(seed0, 3)), "[1]", false, 0, len(put(seed0, 1))},
		{"records of another run after the end", seg(put(seed0, 1), put(seed1, 2)), "[1]", false, 0, len(put(seed0, 1))},
		{"a run", seg(put(seed0, 1), run1, put(seed1, 2)), "[1 2]", false, 0, 2*len(put(seed0, 1)) + len(run1)},
		{"an old run after a run", seg(put(seed0, 1), run1, put(seed0, 2)), "[1]", false, 0, len(put(seed0, 1)) + len(run1)},
		{"END", seg(put(seed0, 1), end(seed0), put(seed0, 2)), "[1]", true, 0, len(put(seed0, 1)) + len(end(seed0))},
		{"another gen's records", append(encodeHeader(segHeader{gen: gen, nextSeq: 1}), appendRecord(nil, runSeed(gen+1, 0), recEnd, nil)...), "[]", false, 0, 0},
	} {
		t.Run(c.name, func(t *testing.T) {
			var got []uint64
			res, err := scanRecords(c.data, gen, func(r record) error {
				if r.typ == recPut {
					p, err := parsePut(r.body)
					if err != nil {
						return err
					}
					got = append(got, p.seq)
				}
				return nil
			})
			if err != nil || fmt.Sprint(got) != c.seqs || res.ended != c.ended || res.damaged != c.damaged || res.end != segHeaderSize+c.end {
				t.Fatalf("seqs %v, %+v, %v; want %s, ended %v, damaged %d, end %d", got, res, err, c.seqs, c.ended, c.damaged, segHeaderSize+c.end)
			}
		})
	}
}

func TestRecordRoundTrip(t *testing.T) {
	p := putBody{seq: 42, stored: 1234567890123, flags: 1 | putRetain | putReserved, attempts: 3, topic: "a/b", payload: []byte{0, 1, 0xff}}
	got, err := parsePut(p.append(nil))
	if err != nil || got.seq != p.seq || got.stored != p.stored || got.flags != p.flags || got.attempts != p.attempts ||
		got.topic != p.topic || !bytes.Equal(got.payload, p.payload) {
		t.Fatalf("parsePut = %+v, %v", got, err)
	}
	for _, bad := range []putBody{{seq: 0, topic: "t"}, {seq: 1, flags: 3, topic: "t"}, {seq: 1, flags: 0x80, topic: "t"}} {
		if _, err := parsePut(bad.append(nil)); err == nil {
			t.Errorf("parsePut(%+v) passed", bad)
		}
	}
	if _, err := parsePut(p.append(nil)[:putFixed-1]); err == nil {
		t.Error("a cut put body passed")
	}
	seqsIn := []uint64{1, 2, 3, 7, 9, 10, 3}
	var out []uint64
	if err := parseRuns(appendRuns(nil, seqsIn), func(s uint64) { out = append(out, s) }); err != nil || !slices.Equal(out, seqsIn) {
		t.Fatalf("runs: %v, %v", out, err)
	}
	if err := parseRuns(appendRuns(nil, seqsIn)[:10], func(uint64) {}); err == nil {
		t.Fatal("a cut run list passed")
	}
	h := segHeader{gen: 5, nextSeq: 77}
	if got, err := parseHeader(encodeHeader(h)); err != nil || got != h {
		t.Fatalf("header %+v, %v", got, err)
	}
}

// FuzzOpenDamagedLog opens a real log store with fuzzed bytes written over one of its
// segments, or arbitrary bytes as its only segment. Open must never fail or crash, never
// return a message that was not stored, and the store must work afterwards.
func FuzzOpenDamagedLog(f *testing.F) {
	src := f.TempDir()
	s, err := Open(smallSegments(src), zerolog.Nop())
	if err != nil {
		f.Fatal(err)
	}
	stored := map[string]bool{}
	for i := 1; i <= 60; i++ {
		p := fmt.Sprintf("m%02d %s", i, strings.Repeat("f", i*12))
		if _, err := s.Put("t/fuzz", []byte(p), 1, false); err != nil {
			f.Fatal(err)
		}
		stored[p] = true
		if i%7 == 0 {
			s.Sending(uint64(i-1), uint64(i))
			s.Ack(uint64(i - 2))
		}
	}
	s.Close()
	gens, _, err := listSegments(filepath.Join(src, FileName))
	if err != nil || len(gens) < 2 {
		f.Fatalf("segments %v, %v", gens, err)
	}
	orig := map[uint64][]byte{}
	for _, g := range gens {
		orig[g], _ = os.ReadFile(filepath.Join(src, FileName, segName(g)))
	}
	f.Add(uint8(0), uint32(0), []byte{})
	f.Add(uint8(0), uint32(segHeaderSize), []byte{0, 0, 0, 0})
	f.Add(uint8(1), uint32(segHeaderSize+100), []byte("\xff\xff\xff\xff"))
	f.Add(uint8(1), uint32(3), []byte("x"))
	f.Add(uint8(0x80), uint32(0), []byte("GWOBXLOG garbage"))
	f.Fuzz(func(t *testing.T, which uint8, at uint32, patch []byte) {
		dir := t.TempDir()
		db := filepath.Join(dir, FileName)
		if err := os.Mkdir(db, 0o700); err != nil {
			t.Fatal(err)
		}
		victim := gens[int(which&0x7f)%len(gens)]
		for _, g := range gens {
			data := bytes.Clone(orig[g])
			if g == victim {
				if which&0x80 != 0 {
					data = patch // the bytes are the whole segment
				} else if len(data) > 0 {
					copy(data[int(at)%len(data):], patch)
				}
			}
			if err := os.WriteFile(filepath.Join(db, segName(g)), data, 0o600); err != nil {
				t.Fatal(err)
			}
		}
		s, err := Open(smallSegments(dir), zerolog.Nop())
		if err != nil {
			t.Fatalf("Open: %v", err)
		}
		defer s.Close()
		ms, err := s.Pending(1 << 20)
		if err != nil {
			t.Fatalf("Pending: %v", err)
		}
		for _, m := range ms {
			if !stored[string(m.Payload)] {
				t.Fatalf("a message that was never stored: %q", m.Payload)
			}
		}
		if _, err := s.Put("after", []byte("x"), 1, false); err != nil {
			t.Fatalf("Put: %v", err)
		}
		if ms, err := s.Pending(1 << 20); err != nil || len(ms) == 0 || ms[len(ms)-1].Topic != "after" {
			t.Fatalf("Pending after a Put: %d, %v", len(ms), err)
		}
	})
}

// TestAFailedSegmentSwitchLosesNothing: a message too large for the segment makes the store
// end it and start another; when that cannot be made (here a directory stands in the way of
// its temporary file; a full disk in life) the message is refused, and the messages stored
// after it — which must not go into the ended segment, whose scan stops at its END — survive a
// restart.
func TestAFailedSegmentSwitchLosesNothing(t *testing.T) {
	dir := t.TempDir()
	s, _ := open(t, smallSegments(dir))
	mustPut(t, s, "t/before", "before")
	block := filepath.Join(dir, FileName, segName(2)+tmpSuffix)
	if err := os.MkdirAll(filepath.Join(block, "x"), 0o700); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Put("t/big", bytes.Repeat([]byte("b"), 20<<10), 1, false); err == nil {
		t.Fatal("the big message was stored although no segment could be made for it")
	}
	if err := os.RemoveAll(block); err != nil {
		t.Fatal(err)
	}
	want := []string{"before"}
	for i := 0; i < 5; i++ {
		p := fmt.Sprintf("after %d", i)
		mustPut(t, s, "t/after", p)
		want = append(want, p)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s2, _ := open(t, smallSegments(dir))
	if got := payloads(pending(t, s2)); !slices.Equal(got, want) {
		t.Fatalf("after a restart: %q, want %q", got, want)
	}
}

func TestAnAppendIsGivenToTheDrainerOnlyOnceDurable(t *testing.T) {
	s, _ := open(t, Config{})
	var ts []Ticket
	var src Source
	for i := 0; i < 3; i++ {
		tk, err := s.Append(&src, "t", []byte(fmt.Sprint(i)), 1, false)
		if err != nil {
			t.Fatal(err)
		}
		ts = append(ts, tk)
	}
	if ms := pending(t, s); len(ms) != 0 || s.Stats().Messages != 3 || s.Stats().Stored != 0 {
		t.Fatalf("before any Wait: %d pending, %+v; want none pending, 3 held, none stored", len(ms), s.Stats())
	}
	before := syncsOf(s)
	if err := s.Wait(ts[2]); err != nil {
		t.Fatal(err)
	}
	// The last one's fdatasync made the earlier ones durable too: their Waits need none.
	for _, tk := range ts[:2] {
		if err := s.Wait(tk); err != nil {
			t.Fatal(err)
		}
	}
	if n := syncsOf(s) - before; n != 1 {
		t.Fatalf("%d fdatasyncs for three appends, want 1", n)
	}
	if ms := pending(t, s); !slices.Equal(payloads(ms), []string{"0", "1", "2"}) || s.Stats().Stored != 3 {
		t.Fatalf("after Wait: %q pending, %d stored", payloads(ms), s.Stats().Stored)
	}
}

// stream appends n messages of 100 bytes from one Source, one every pace (as the local endpoint
// does for a client with publishes in flight), and waits for them in order in a goroutine of
// its own, which starts once two are in flight. It returns once all are durable.
func stream(t *testing.T, s *Store, n int, pace time.Duration) {
	t.Helper()
	var inFlight sync.WaitGroup
	var src Source
	q := make(chan Ticket, n)
	twoIn := make(chan struct{})
	inFlight.Add(1)
	go func() {
		<-twoIn
		defer inFlight.Done()
		for tk := range q {
			if err := s.Wait(tk); err != nil {
				t.Error(err)
			}
		}
	}()
	payload := bytes.Repeat([]byte("x"), 100)
	next := time.Now()
	for i := 0; i < n; i++ {
		time.Sleep(time.Until(next))
		next = next.Add(pace)
		tk, err := s.Append(&src, "t", payload, 1, false)
		if err != nil {
			t.Fatal(err)
		}
		q <- tk
		if i == 1 {
			close(twoIn)
		}
	}
	close(q)
	inFlight.Wait()
}

// TestAStreamFillsAPagePerCommit: a source that goes on appending while its messages wait has a
// commit wait for its page to fill (about 30 records of 133 bytes), not one fdatasync each.
func TestAStreamFillsAPagePerCommit(t *testing.T) {
	s, _ := open(t, Config{CommitWait: time.Second})
	const n = 300
	before := syncsOf(s)
	stream(t, s, n, 2*time.Millisecond)
	syncs := syncsOf(s) - before
	t.Logf("%d appends, %d fdatasyncs", n, syncs)
	// A page a commit is about 10; a late wake-up on a busy machine ends a commit early (the
	// stream looks stopped), so allow more, far from one per message.
	if syncs > n/10 {
		t.Fatalf("%d appends by a stream took %d fdatasyncs; want about one a page (%d)", n, syncs, n/30)
	}
	if ms, _ := s.Pending(n + 1); len(ms) != n {
		t.Fatalf("%d durable, want %d", len(ms), n)
	}
}

// TestAStreamThatStopsIsCommittedAtOnce: a commit waits for a stream only while its messages
// keep coming; the last of a stream is not held for CommitWait (an hour here).
func TestAStreamThatStopsIsCommittedAtOnce(t *testing.T) {
	s, _ := open(t, Config{CommitWait: time.Hour})
	done := make(chan struct{})
	go func() {
		defer close(done)
		stream(t, s, 40, time.Millisecond)
	}()
	select {
	case <-done:
	case <-time.After(time.Minute): // not a speed measurement: a wrong wait takes hours
		t.Fatal("a stream's last messages waited for more that never came")
	}
}

// randomBytes is n bytes of a fixed pseudo-random sequence.
func randomBytes(n int) []byte {
	r := rand.New(rand.NewPCG(1, 2))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}
