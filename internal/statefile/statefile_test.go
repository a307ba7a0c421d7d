package statefile

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestWriteRead(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "state")
	p := filepath.Join(dir, "aliyun-pk-dn.secret")
	if v, found, err := Read(p); v != "" || found || err != nil {
		t.Fatalf("missing file: %q %v %v", v, found, err)
	}
	if err := Write(p, []byte("s3cr3t")); err != nil {
		t.Fatal(err)
	}
	if err := Write(p, []byte("s3cr3t-2")); err != nil {
		t.Fatal(err)
	}
	v, found, err := Read(p)
	if v != "s3cr3t-2" || !found || err != nil {
		t.Fatalf("read back %q %v %v", v, found, err)
	}
	fi, err := os.Stat(p)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("mode %v %v, want 0600", fi.Mode(), err)
	}
	if di, _ := os.Stat(dir); di.Mode().Perm() != 0o700 {
		t.Errorf("directory mode %v, want 0700", di.Mode())
	}
	ents, _ := os.ReadDir(dir)
	if len(ents) != 1 {
		t.Errorf("temporary files left: %v", ents)
	}
}

func TestReadRefusesWhatItDidNotWrite(t *testing.T) {
	dir := t.TempDir()
	for name, content := range map[string]string{
		"empty": "", "newline": "s3cr3t\n", "big": strings.Repeat("x", MaxSize+1),
	} {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		_, found, err := Read(p)
		if err == nil || !found {
			t.Errorf("%s: accepted", name)
		} else if strings.Contains(err.Error(), "s3cr3t") {
			t.Errorf("%s: error shows the content: %v", name, err)
		}
	}
}
