package ufs_test

import (
	"bytes"
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/gatewayd/gatewayd/at"
	"github.com/gatewayd/gatewayd/sim"
	"github.com/gatewayd/gatewayd/test/simtest"
	"github.com/gatewayd/gatewayd/ufs"
)

// newFS starts the emulator (no broker is dialled) and opens its pty as the daemon does.
func newFS(t *testing.T, cfg sim.Config) *ufs.FS {
	t.Helper()
	_, conn := simtest.Start(t, cfg, at.Options{})
	return ufs.New(conn)
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return c
}

func TestUploadListDelete(t *testing.T) {
	for _, variant := range []bool{false, true} {
		fs := newFS(t, sim.Config{ListUFSPrefix: variant})
		if got, err := fs.List(ctx(t)); err != nil || len(got) != 0 {
			t.Fatalf("List on an empty UFS = %v, %v", got, err)
		}
		free0, total, err := fs.Free(ctx(t))
		if err != nil || free0 != total || total <= 0 {
			t.Fatalf("Free = %d, %d, %v", free0, total, err)
		}
		// Raw bytes: CR, LF, Ctrl-Z, ESC and "OK" lines are data, not framing.
		odd := []byte("line\r\nOK\r\n\x1a\x1b> CONNECT\r\n")
		big := bytes.Repeat([]byte("0123456789abcdef"), 20<<10/16) // 20 KiB: many pty reads
		if err := fs.Upload(ctx(t), "odd.bin", odd, false); err != nil {
			t.Fatalf("Upload odd: %v", err)
		}
		if err := fs.Upload(ctx(t), "big.pem", big, true); err != nil {
			t.Fatalf("Upload big: %v", err)
		}
		got, err := fs.List(ctx(t))
		want := []ufs.File{{Name: "big.pem", Size: len(big)}, {Name: "odd.bin", Size: len(odd)}}
		if err != nil || !slices.Equal(got, want) {
			t.Fatalf("List (UFS: prefix %v) = %v, %v; want %v", variant, got, err, want)
		}
		if free, _, err := fs.Free(ctx(t)); err != nil || free != free0-len(odd)-len(big) {
			t.Errorf("Free after uploads = %d, %v; want %d", free, err, free0-len(odd)-len(big))
		}
		if err := fs.Upload(ctx(t), "odd.bin", odd, false); !ufs.IsFileError(err) {
			t.Errorf("Upload onto an existing name = %v, want a file-system error", err)
		}
		if err := fs.Delete(ctx(t), "odd.bin"); err != nil {
			t.Fatalf("Delete: %v", err)
		}
		if err := fs.Delete(ctx(t), "odd.bin"); !ufs.IsFileError(err) {
			t.Errorf("Delete of a missing file = %v, want a file-system error", err)
		}
		// The connection is in step after all that.
		if got, err := fs.List(ctx(t)); err != nil || len(got) != 1 || got[0].Name != "big.pem" {
			t.Errorf("List at the end = %v, %v", got, err)
		}
	}
}

func TestBadInputIsRefusedBeforeSending(t *testing.T) {
	fs := newFS(t, sim.Config{})
	for _, name := range []string{"", "a/b", `q"uote`, "UFS:x", "sp ace", string(bytes.Repeat([]byte("n"), 81))} {
		if err := fs.Upload(ctx(t), name, []byte("x"), false); !errors.Is(err, ufs.ErrBadName) {
			t.Errorf("Upload(%q) = %v, want ErrBadName", name, err)
		}
	}
	if err := fs.Upload(ctx(t), "empty", nil, false); err == nil {
		t.Error("Upload of no data succeeded")
	}
	if got, err := fs.List(ctx(t)); err != nil || len(got) != 0 {
		t.Errorf("List = %v, %v; nothing should have been stored", got, err)
	}
}

// TestShortChecksums: uploads whose checksum the module prints with one, two, three and four hex
// digits (no zero padding, reference 5.2) all succeed.
func TestShortChecksums(t *testing.T) {
	fs := newFS(t, sim.Config{})
	for i, data := range [][]byte{{0x00, 0x05}, {0x00, 0x5f}, {0x0f, 0x5f}, {0x38, 0x4a}} {
		if err := fs.Upload(ctx(t), "sum"+string(rune('0'+i)), data, false); err != nil {
			t.Errorf("upload with checksum %x: %v", data, err)
		}
	}
}
