package logging

import (
	"io"

	"github.com/rs/zerolog"
)

// Priority is the sd-daemon prefix ("<N>", syslog's numbering) a line of level l starts with on
// the journal's stream: journald strips it and files the line at that priority
// (SyslogLevelPrefix=, on by default), so `journalctl -p warning` shows exactly the warnings and
// errors, and `journalctl -o cat` shows the line as it was before the prefix.
func Priority(l zerolog.Level) string {
	switch l {
	case zerolog.TraceLevel, zerolog.DebugLevel:
		return "<7>" // SD_DEBUG
	case zerolog.WarnLevel:
		return "<4>" // SD_WARNING
	case zerolog.ErrorLevel:
		return "<3>" // SD_ERR
	case zerolog.FatalLevel, zerolog.PanicLevel:
		return "<2>" // SD_CRIT
	}
	return "<6>" // SD_INFO: info, and lines without a level
}

// prefixed writes each line it is given to w in one Write, after prefix. A BatchWriter takes
// both without a copy, so the prefix stays at the start of its line in any batch.
type prefixed struct {
	w      io.Writer
	prefix string
}

func (p prefixed) Write(b []byte) (int, error) {
	if bw, ok := p.w.(*BatchWriter); ok {
		return bw.write(p.prefix, b)
	}
	line := make([]byte, 0, len(p.prefix)+len(b))
	line = append(append(line, p.prefix...), b...)
	if _, err := p.w.Write(line); err != nil {
		return 0, err
	}
	return len(b), nil
}

// priorityWriter is a zerolog.LevelWriter that starts each JSON line with its Priority.
type priorityWriter struct{ w io.Writer }

// Write writes a line without a level, at info priority.
func (p priorityWriter) Write(b []byte) (int, error) { return p.WriteLevel(zerolog.NoLevel, b) }

// WriteLevel writes the line b of level l, after its priority prefix.
func (p priorityWriter) WriteLevel(l zerolog.Level, b []byte) (int, error) {
	return prefixed{p.w, Priority(l)}.Write(b)
}

// consolePriority is the console format with the priority prefix at the start of each line.
type consolePriority struct {
	cw zerolog.ConsoleWriter // its Out is replaced for each line
	w  io.Writer
}

// Write writes a line without a level, at info priority.
func (c consolePriority) Write(b []byte) (int, error) { return c.WriteLevel(zerolog.NoLevel, b) }

// WriteLevel formats the JSON line b of level l and writes it after its priority prefix (the
// console writer writes each formatted line in one Write).
func (c consolePriority) WriteLevel(l zerolog.Level, b []byte) (int, error) {
	cw := c.cw
	cw.Out = prefixed{c.w, Priority(l)}
	return cw.Write(b)
}
