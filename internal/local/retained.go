package local

import "sync"

// retained keeps count of the retained messages mochi holds (from its OnRetainMessage and
// OnRetainedExpired hooks), so that a new one can be refused when it would take them past
// MaxRetained messages or MaxRetainedBytes bytes (topic plus payload).
//
// The check (fits, in OnPublish or OnWill) and the count (set, when mochi has retained the
// message) are apart, so clients publishing at the same moment can each pass the check and go
// past the bounds together: by at most one packet per connected client.
type retained struct {
	mu    sync.Mutex
	sizes map[string]int // topic → topic plus payload bytes
	bytes int
}

func newRetained() *retained { return &retained{sizes: map[string]int{}} }

// fits says whether a retained message of n bytes (topic plus payload) on topic may be kept
// within maxCount messages and maxBytes bytes. Replacing a message with one no larger always
// fits.
func (r *retained) fits(topic string, n, maxCount, maxBytes int) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	old, had := r.sizes[topic]
	if had && n <= old {
		return true
	}
	count := len(r.sizes)
	if !had {
		count++
	}
	return count <= maxCount && r.bytes-old+n <= maxBytes
}

// set records that topic's retained message is now n bytes; 0 = none.
func (r *retained) set(topic string, n int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.bytes -= r.sizes[topic]
	if n == 0 {
		delete(r.sizes, topic)
		return
	}
	r.sizes[topic] = n
	r.bytes += n
}

// totals returns the messages and bytes held.
func (r *retained) totals() (int, int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.sizes), r.bytes
}
