package logging

import (
	"bytes"
	"io"
	stdlog "log"

	"github.com/rs/zerolog"
)

// RouteStdlib sends what is printed through the standard library's log package to log (see
// StdlibWriter). The process's entry point calls it once: the standard logger is the process's.
func RouteStdlib(log zerolog.Logger) {
	stdlog.SetFlags(0)
	stdlog.SetOutput(StdlibWriter(log))
}

// StdlibWriter returns a writer for the standard library's log package (log.SetOutput, with
// log.SetFlags(0)): each line a library prints there, such as a metrics library's complaint that
// a /proc file could not be read, becomes a warning of log with component "stdlib", instead of
// a bare line of text among the JSON ones.
func StdlibWriter(log zerolog.Logger) io.Writer {
	return &stdlibWriter{log: log.With().Str("component", "stdlib").Logger()}
}

type stdlibWriter struct{ log zerolog.Logger }

// Write logs p, one line or several, without its final newline.
func (w *stdlibWriter) Write(p []byte) (int, error) {
	w.log.Warn().Msg(string(bytes.TrimSuffix(p, []byte("\n"))))
	return len(p), nil
}
