package outbox

import (
	"flag"
	"fmt"
	"strconv"
	"strings"
	"time"
)

var batchFlag = flag.String("outbox.batch", "", `the group-commit policy the benchmarks measure: "" for the store's (adaptive), or "fixed:DELAY,SIZE" for bbolt's Batch (a leader waits until SIZE puts wait or DELAY has passed)`)

// BenchConfig returns cfg with the group-commit policy -outbox.batch names.
func BenchConfig(cfg Config) (Config, error) {
	if *batchFlag == "" {
		return cfg, nil
	}
	spec, ok := strings.CutPrefix(*batchFlag, "fixed:")
	ds, ns, ok2 := strings.Cut(spec, ",")
	delay, err := time.ParseDuration(ds)
	size, err2 := strconv.Atoi(ns)
	if !ok || !ok2 || err != nil || err2 != nil || size < 1 {
		return cfg, fmt.Errorf("-outbox.batch %q: want fixed:DELAY,SIZE", *batchFlag)
	}
	cfg.newPolicy = func(time.Duration) batchPolicy { return &fixedBatch{delay: delay, size: size} }
	return cfg, nil
}

// fixedBatch is bbolt's Batch as a group-commit policy, the yardstick for adaptive: a leader
// waits until size puts wait or delay has passed since it began.
type fixedBatch struct {
	delay time.Duration
	size  int
	start time.Time
}

func (p *fixedBatch) arrived(time.Time, int, bool)  {}
func (p *fixedBatch) begin(now time.Time, _, _ int) { p.start = now }
func (p *fixedBatch) wait(now time.Time, waiting, _ int) time.Duration {
	if waiting >= p.size {
		return 0
	}
	return p.delay - now.Sub(p.start)
}
