// Package statefile keeps small values the daemon learns at run time (a registered device
// secret, a pinned device name) in the state directory: written atomically and durably (a
// temporary file, mode 0600, fsynced, renamed over the old one, the directory fsynced), so that
// a power cut at any moment leaves either the old file or the new one, never a torn one.
package statefile

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// MaxSize bounds what Read accepts: the values kept here are short.
const MaxSize = 4096

// Write stores value in path atomically and durably, mode 0600, creating the directory (0700)
// when it is missing.
func Write(path string, value []byte) (err error) {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("statefile: %w", err)
	}
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return fmt.Errorf("statefile: %w", err)
	}
	tmp := f.Name()
	defer func() {
		if err != nil {
			_ = f.Close()
			_ = os.Remove(tmp)
		}
	}()
	if err = f.Chmod(0o600); err != nil {
		return fmt.Errorf("statefile: %w", err)
	}
	if _, err = f.Write(value); err != nil {
		return fmt.Errorf("statefile: write %s: %w", tmp, err)
	}
	if err = f.Sync(); err != nil {
		return fmt.Errorf("statefile: fsync %s: %w", tmp, err)
	}
	if err = f.Close(); err != nil {
		return fmt.Errorf("statefile: %w", err)
	}
	if err = os.Rename(tmp, path); err != nil {
		return fmt.Errorf("statefile: %w", err)
	}
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("statefile: %w", err)
	}
	defer d.Close()
	if err = d.Sync(); err != nil {
		return fmt.Errorf("statefile: fsync %s: %w", dir, err)
	}
	return nil
}

// Read returns what path holds; found is false when there is no such file. A file larger than
// MaxSize, or holding a control byte or nothing, is an error naming the file (never its content).
func Read(path string) (value string, found bool, err error) {
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return "", false, nil
	}
	if err != nil {
		return "", false, fmt.Errorf("statefile: %w", err)
	}
	defer f.Close()
	b := make([]byte, MaxSize+1)
	n := 0
	for n < len(b) {
		m, err := f.Read(b[n:])
		n += m
		if err != nil {
			break
		}
	}
	b = b[:n]
	switch {
	case n > MaxSize:
		return "", true, fmt.Errorf("statefile: %s is larger than %d bytes: not a value gatewayd wrote; remove it", path, MaxSize)
	case n == 0:
		return "", true, fmt.Errorf("statefile: %s is empty; remove it", path)
	}
	for i, c := range b {
		if c < 0x20 || c == 0x7f || c == '"' {
			return "", true, fmt.Errorf("statefile: %s holds byte %#x at offset %d (content not shown): not a value gatewayd wrote; remove it", path, c, i)
		}
	}
	return string(b), true, nil
}
