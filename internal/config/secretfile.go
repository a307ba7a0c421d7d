package config

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"unicode/utf8"
)

func isUTF8(s string) bool { return utf8.ValidString(s) }

// secret reads the secret at t.key: inline, from the file named at t.fileKey (a path, or
// "cred:<name>" for $CREDENTIALS_DIRECTORY/<name>), or — when implicit is set and neither key is
// present — from the systemd credential cred if $CREDENTIALS_DIRECTORY holds it. It records
// where the secret came from in Config.Sources.
func (b *builder) secret(t *table, key, fileKey, cred string, implicit bool) Secret {
	inline := t.secret(key)
	where := t.key(key).String()
	switch {
	case t.has(key) && t.has(fileKey):
		t.mention(fileKey)
		t.fail(fileKey, "give either %s or %s, not both", t.key(key), t.key(fileKey))
		return Secret{}
	case t.has(key):
		if inline == "" {
			t.fail(key, "is empty; remove it or give a value")
			return Secret{}
		}
		b.cfg.Sources[where] = "inline"
		return NewSecret(inline)
	}
	return b.secretFrom(t, key, fileKey, cred, implicit)
}

// secretFrom reads the secret at t.key from the file named at t.fileKey or, when implicit is set
// and the file key is absent, from the systemd credential cred; never inline (see secret).
func (b *builder) secretFrom(t *table, key, fileKey, cred string, implicit bool) Secret {
	file := t.str(fileKey, "")
	where := t.key(key).String()
	switch {
	case t.has(fileKey):
		if file == "" {
			t.fail(fileKey, "is empty; give a path or %s<name>", CredPrefix)
			return Secret{}
		}
		path, source, ok := b.secretPath(t, fileKey, file)
		if !ok {
			return Secret{}
		}
		v, mode, err := readSecretFile(path)
		if err != nil {
			t.fail(fileKey, "%v", err)
			return Secret{}
		}
		if !strings.HasPrefix(file, CredPrefix) && mode.Perm()&0o077 != 0 {
			b.warn(t.key(fileKey), "%s can be read or written by group or others (mode %04o); chmod 600 it", path, mode.Perm())
		}
		b.cfg.Sources[where] = source
		return NewSecret(v)
	case implicit:
		dir := b.getenv("CREDENTIALS_DIRECTORY")
		if dir == "" {
			return Secret{}
		}
		path := filepath.Join(dir, cred)
		if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) {
			return Secret{}
		}
		v, _, err := readSecretFile(path)
		if err != nil {
			t.fail(key, "systemd credential %s: %v", cred, err)
			return Secret{}
		}
		b.cfg.Sources[where] = "systemd credential " + cred
		return NewSecret(v)
	}
	return Secret{}
}

// secretPath resolves a *_file value to a path and a description of it.
func (b *builder) secretPath(t *table, fileKey, file string) (path, source string, ok bool) {
	name, isCred := strings.CutPrefix(file, CredPrefix)
	if !isCred {
		if !filepath.IsAbs(file) {
			file = filepath.Join(b.dir, file)
		}
		return file, "file " + file, true
	}
	if name == "" || name == "." || name == ".." || strings.ContainsAny(name, "/\x00") {
		t.fail(fileKey, "%q: a credential name is one file name, such as %smqtt-password", file, CredPrefix)
		return "", "", false
	}
	dir := b.getenv("CREDENTIALS_DIRECTORY")
	if dir == "" {
		t.fail(fileKey, "%q needs $CREDENTIALS_DIRECTORY, which is not set (run under systemd with LoadCredential=%s:...)", file, name)
		return "", "", false
	}
	return filepath.Join(dir, name), "systemd credential " + name, true
}

// readSecretFile reads a secret file: a regular file, at most MaxSecretFile bytes, trailing CR and
// LF removed, not empty. Its errors never contain the file's contents.
func readSecretFile(path string) (string, fs.FileMode, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", 0, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return "", 0, err
	}
	if !fi.Mode().IsRegular() {
		return "", 0, fmt.Errorf("%s is not a regular file", path)
	}
	data, err := io.ReadAll(io.LimitReader(f, MaxSecretFile+1))
	if err != nil {
		return "", 0, fmt.Errorf("read %s: %w", path, err)
	}
	if len(data) > MaxSecretFile {
		return "", 0, fmt.Errorf("%s is larger than %d bytes; is it the right file?", path, MaxSecretFile)
	}
	v := strings.TrimRight(string(data), "\r\n")
	if v == "" {
		return "", 0, fmt.Errorf("%s is empty", path)
	}
	return v, fi.Mode(), nil
}
