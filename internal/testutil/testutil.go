// Package testutil holds small helpers shared by gatewayd's tests.
package testutil

import (
	"bytes"
	"sync"
)

// SyncBuffer is a goroutine-safe bytes.Buffer, for capturing a logger's output in a test while
// the code under test writes to it from its own goroutines.
type SyncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

// Write appends p.
func (s *SyncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

// String returns everything written so far.
func (s *SyncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
