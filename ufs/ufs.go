package ufs

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/gatewayd/gatewayd/at"
)

// MaxName is the longest file name sent; Quectel documents 80 bytes.
const MaxName = 80

// commandTimeout bounds the commands that only touch the file system's index.
const commandTimeout = 5 * time.Second

// ErrBadName is returned for a file name that cannot be sent (see CheckName).
var ErrBadName = errors.New("ufs: bad file name")

// ErrShortUpload is returned when the module reports storing a different number of bytes than
// were sent.
var ErrShortUpload = errors.New("ufs: the module stored a different size")

// File is one entry of the listing.
type File struct {
	Name string // without any "UFS:" prefix
	Size int
}

// FS is the file system of the module behind one AT connection.
type FS struct{ conn *at.Conn }

// New returns the file system reached over conn.
func New(conn *at.Conn) *FS { return &FS{conn: conn} }

// CheckName reports whether name can be sent as a UFS file name: 1-MaxName bytes of printable
// ASCII without '"', '/', '\', ':', '*' or '?'.
func CheckName(name string) error {
	if name == "" || len(name) > MaxName {
		return fmt.Errorf("%w: %q: must be 1-%d bytes", ErrBadName, name, MaxName)
	}
	for i := 0; i < len(name); i++ {
		if c := name[i]; c <= 0x20 || c >= 0x7f || strings.IndexByte(`"/\:*?`, c) >= 0 {
			return fmt.Errorf("%w: %q: byte %q at offset %d", ErrBadName, name, c, i)
		}
	}
	return nil
}

// IsFileError reports whether err is the module's file-system error (+CME ERROR: 400-499).
func IsFileError(err error) bool {
	var cme *at.CMEError
	return errors.As(err, &cme) && cme.Code >= 400 && cme.Code < 500
}

// List returns every file in the UFS (AT+QFLST="*"), names without the "UFS:" prefix some
// firmware prints.
func (fs *FS) List(ctx context.Context) ([]File, error) {
	ctx, cancel := context.WithTimeout(ctx, commandTimeout)
	defer cancel()
	resp, err := fs.conn.Run(ctx, `AT+QFLST="*"`)
	if err != nil {
		return nil, fmt.Errorf("ufs: list: %w", err)
	}
	var files []File
	for _, l := range resp.Lines {
		f, err := parseListLine(l.Text)
		if err != nil {
			return nil, fmt.Errorf("ufs: list: %w", err)
		}
		files = append(files, f)
	}
	return files, nil
}

// parseListLine reads `+QFLST: "<name>",<size>`.
func parseListLine(s string) (File, error) {
	rest, ok := strings.CutPrefix(s, "+QFLST:")
	if !ok {
		return File{}, fmt.Errorf("unexpected line %q", s)
	}
	rest = strings.TrimSpace(rest)
	i := strings.LastIndexByte(rest, ',')
	if i < 2 || rest[0] != '"' || rest[i-1] != '"' {
		return File{}, fmt.Errorf("malformed line %q", s)
	}
	size, err := strconv.Atoi(strings.TrimSpace(rest[i+1:]))
	if err != nil || size < 0 {
		return File{}, fmt.Errorf("bad size in %q", s)
	}
	name := rest[1 : i-1]
	if len(name) >= 4 && strings.EqualFold(name[:4], "UFS:") {
		name = name[4:]
	}
	return File{Name: name, Size: size}, nil
}

// Upload stores data under name (AT+QFUPL="<name>",<size>,<timeout>): the module answers
// CONNECT, takes exactly len(data) raw bytes, and reports the size it stored. A name that exists
// is refused by the module with a file-system error: Delete it first. With secret set the data
// never appears in the AT trace (a private key). The module's own wait for the data is sized to
// the data (5 s plus 1 s per 2 KB); the call's deadline outlasts it by 5 s, so that an upload
// that stalls ends with the module's time-out error, not with the module still taking bytes
// while the engine resynchronises. ctx bounds the whole exchange.
func (fs *FS) Upload(ctx context.Context, name string, data []byte, secret bool) error {
	if err := CheckName(name); err != nil {
		return err
	}
	if len(data) == 0 {
		return fmt.Errorf("ufs: upload %s: no data (the module cannot store an empty file)", name)
	}
	wait := 5 + len(data)/2000
	ctx, cancel := context.WithTimeout(ctx, time.Duration(wait)*time.Second+commandTimeout)
	defer cancel()
	resp, err := fs.conn.Do(ctx, at.Command{
		Line:         fmt.Sprintf(`AT+QFUPL="%s",%d,%d`, name, len(data), wait),
		Data:         data,
		AfterConnect: true,
		SecretData:   secret,
	})
	if err != nil {
		return fmt.Errorf("ufs: upload %s (%d bytes): %w", name, len(data), err)
	}
	for _, l := range resp.Lines {
		if !strings.HasPrefix(l.Text, "+QFUPL:") {
			continue
		}
		size, _, err := parseResult(l.Text)
		if err != nil {
			return fmt.Errorf("ufs: upload %s: bad result %q: %w", name, l.Text, err)
		}
		if size != len(data) {
			return fmt.Errorf("ufs: upload %s: sent %d bytes, module stored %d: %w", name, len(data), size, ErrShortUpload)
		}
		return nil
	}
	return fmt.Errorf("ufs: upload %s: the module answered OK without +QFUPL: <size>", name)
}

// Delete removes name (AT+QFDEL). A missing file is a file-system error (IsFileError).
func (fs *FS) Delete(ctx context.Context, name string) error {
	if err := CheckName(name); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, commandTimeout)
	defer cancel()
	if _, err := fs.conn.Run(ctx, fmt.Sprintf(`AT+QFDEL="%s"`, name)); err != nil {
		return fmt.Errorf("ufs: delete %s: %w", name, err)
	}
	return nil
}

// Free returns the free and total bytes of the UFS (AT+QFLDS="UFS").
func (fs *FS) Free(ctx context.Context) (free, total int, err error) {
	ctx, cancel := context.WithTimeout(ctx, commandTimeout)
	defer cancel()
	resp, err := fs.conn.Run(ctx, `AT+QFLDS="UFS"`)
	if err != nil {
		return 0, 0, fmt.Errorf("ufs: free space: %w", err)
	}
	for _, l := range resp.Lines {
		rest, ok := strings.CutPrefix(l.Text, "+QFLDS:")
		if !ok {
			continue
		}
		a, b, ok := strings.Cut(rest, ",")
		free, err1 := strconv.Atoi(strings.TrimSpace(a))
		total, err2 := strconv.Atoi(strings.TrimSpace(b))
		if !ok || err1 != nil || err2 != nil {
			break
		}
		return free, total, nil
	}
	return 0, 0, errors.New("ufs: free space: the answer has no +QFLDS: <free>,<total> line")
}

// parseResult decodes `+QFUPL: <size>,<checksum>`. The checksum is a 16-bit value in lower-case
// hex without zero padding, so one to four digits: `f5f` and `372` on a BG96 next to `2d13`
// (reference 5.2). It is returned but not checked: whether ASR and Unisoc firmware compute the
// same sum is UNCONFIRMED, so only the size is compared.
func parseResult(line string) (size int, checksum uint16, err error) {
	rest, ok := strings.CutPrefix(line, "+QFUPL:")
	if !ok {
		return 0, 0, errors.New("not a +QFUPL line")
	}
	sizeText, sumText, found := strings.Cut(strings.TrimSpace(rest), ",")
	if size, err = strconv.Atoi(strings.TrimSpace(sizeText)); err != nil || size < 0 {
		return 0, 0, fmt.Errorf("size %q is not a number", sizeText)
	}
	sumText = strings.TrimSpace(sumText)
	if !found || len(sumText) < 1 || len(sumText) > 4 {
		return 0, 0, fmt.Errorf("checksum %q is not 1-4 hex digits", sumText)
	}
	sum, err := strconv.ParseUint(sumText, 16, 16)
	if err != nil {
		return 0, 0, fmt.Errorf("checksum %q is not 1-4 hex digits", sumText)
	}
	return size, uint16(sum), nil
}
