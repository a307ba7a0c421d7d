package control

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"github.com/rs/zerolog"

	"github.com/gatewayd/gatewayd/internal/unixsock"
)

// Handler answers the requests; the daemon implements it.
type Handler interface {
	// Status returns the daemon's status now, without waiting for the module.
	Status() Status
	// AT sends line to the module (CheckAT has passed it, or force is set and it is not
	// always refused) and returns its answer.
	AT(ctx context.Context, line string) (ATResult, error)
	// Resolve asks the module's DNS for host's addresses.
	Resolve(ctx context.Context, host string) ([]string, error)
}

// Server serves the control socket.
type Server struct {
	ln   net.Listener
	path string
	h    Handler
	log  zerolog.Logger
	// clientIndex is the MQTT client index the daemon drives, which CheckAT protects.
	clientIndex int
	slots       chan struct{}
	wg          sync.WaitGroup
	ioTimeout   time.Duration // IOTimeout; shorter in tests
}

// Listen creates the socket at path (mode 0660, owned by group when it is not ""), replacing a
// stale socket file but never a live socket or another kind of file. clientIndex is the daemon's
// MQTT client index.
func Listen(path, group string, clientIndex int, h Handler, log zerolog.Logger) (*Server, error) {
	if path == "" {
		return nil, errors.New("control: no socket path")
	}
	gid := -1
	if group != "" {
		g, err := user.LookupGroup(group)
		if err != nil {
			return nil, fmt.Errorf("control: group %q: %w", group, err)
		}
		if gid, err = strconv.Atoi(g.Gid); err != nil {
			return nil, fmt.Errorf("control: group %q has gid %q: %w", group, g.Gid, err)
		}
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o750); err != nil {
		return nil, fmt.Errorf("control: %w", err)
	}
	ln, err := unixsock.Listen(path, 0o660)
	if err != nil {
		return nil, fmt.Errorf("control: %w", err)
	}
	if gid >= 0 {
		if err := os.Chown(path, -1, gid); err != nil {
			ln.Close()
			return nil, fmt.Errorf("control: giving %s to group %s: %w", path, group, err)
		}
	}
	return &Server{ln: ln, path: path, h: h, log: log.With().Str("component", "control").Logger(),
		clientIndex: clientIndex, slots: make(chan struct{}, MaxConns), ioTimeout: IOTimeout}, nil
}

// Path is the socket's path.
func (s *Server) Path() string { return s.path }

// Serve answers requests until ctx ends, then closes the socket (removing its file) and waits
// for the requests in progress, which end within IOTimeout and the AT timeout. It returns nil
// then; an error when accepting failed for another reason, having closed the socket all the
// same (a new Listen may take its place).
func (s *Server) Serve(ctx context.Context) error {
	stop := context.AfterFunc(ctx, func() { s.ln.Close() })
	defer stop()
	defer s.wg.Wait()
	defer os.Remove(s.path)
	defer s.ln.Close() // when Accept failed: the socket is not left half alive
	for {
		c, err := s.ln.Accept()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			return fmt.Errorf("control: %w", err)
		}
		select {
		case s.slots <- struct{}{}:
		default:
			s.log.Warn().Int("max", MaxConns).Msg("control socket: too many requests at once; refused one")
			s.reply(c, Response{Version: Version, Error: fmt.Sprintf("busy: %d requests in progress", MaxConns)})
			c.Close()
			continue
		}
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			defer func() { <-s.slots }()
			defer c.Close()
			s.serve(ctx, c)
		}()
	}
}

// serve answers the one request on c.
func (s *Server) serve(ctx context.Context, c net.Conn) {
	_ = c.SetReadDeadline(time.Now().Add(s.ioTimeout))
	line, err := bufio.NewReaderSize(io.LimitReader(c, MaxRequest+1), MaxRequest+1).ReadSlice('\n')
	if err != nil {
		msg := fmt.Sprintf("reading the request: %v", err)
		if errors.Is(err, bufio.ErrBufferFull) || len(line) > MaxRequest {
			msg = fmt.Sprintf("request longer than %d bytes", MaxRequest)
		}
		s.reply(c, Response{Version: Version, Error: msg})
		return
	}
	var req Request
	if err := json.Unmarshal(line, &req); err != nil {
		s.reply(c, Response{Version: Version, Error: fmt.Sprintf("request is not JSON: %v", err)})
		return
	}
	s.reply(c, s.answer(ctx, req))
}

// answer handles one request.
func (s *Server) answer(ctx context.Context, req Request) Response {
	if req.Version != Version {
		return Response{Version: Version, Error: fmt.Sprintf("protocol version %d; this gatewayd speaks %d", req.Version, Version)}
	}
	switch req.Command {
	case CmdStatus:
		st := s.h.Status()
		return Response{Version: Version, OK: true, Status: &st}
	case CmdAT:
		if err := CheckAT(req.Line, s.clientIndex, req.Force); err != nil {
			s.log.Warn().Str("event", "operator_at_refused").Str("command", Redact(req.Line)).Err(err).
				Msg("AT command from the control socket refused")
			return Response{Version: Version, Error: err.Error()}
		}
		timeout := 10 * time.Second
		if req.TimeoutMS > 0 {
			timeout = min(time.Duration(req.TimeoutMS)*time.Millisecond, time.Minute)
		}
		s.log.Warn().Str("event", "operator_at").Str("command", Redact(req.Line)).Bool("force", req.Force).
			Msg("AT command from the control socket")
		actx, cancel := context.WithTimeout(ctx, timeout)
		defer cancel()
		res, err := s.h.AT(actx, req.Line)
		if err != nil {
			return Response{Version: Version, Error: err.Error()}
		}
		return Response{Version: Version, OK: true, AT: &res}
	case CmdResolve:
		if err := checkHost(req.Host); err != nil {
			return Response{Version: Version, Error: err.Error()}
		}
		timeout := time.Minute
		if req.TimeoutMS > 0 {
			timeout = min(time.Duration(req.TimeoutMS)*time.Millisecond, time.Minute)
		}
		rctx, cancel := context.WithTimeout(ctx, timeout)
		defer cancel()
		addrs, err := s.h.Resolve(rctx, req.Host)
		if err != nil {
			return Response{Version: Version, Error: err.Error()}
		}
		return Response{Version: Version, OK: true, Addresses: addrs}
	}
	return Response{Version: Version, Error: fmt.Sprintf("unknown command %q (want %s, %s or %s)", req.Command, CmdStatus, CmdAT, CmdResolve)}
}

// checkHost accepts a host name or address to resolve: 1 to 255 bytes, none of them a quote, a
// space or a control byte.
func checkHost(h string) error {
	if h == "" || len(h) > 255 {
		return fmt.Errorf("%w: host name of %d bytes", ErrRefused, len(h))
	}
	for i := 0; i < len(h); i++ {
		if b := h[i]; b <= ' ' || b == '"' || b == 0x7F {
			return fmt.Errorf("%w: host name byte 0x%02X at offset %d", ErrRefused, b, i)
		}
	}
	return nil
}

// reply writes r as one line, giving up after the I/O timeout.
func (s *Server) reply(c net.Conn, r Response) {
	b, err := json.Marshal(r)
	if err != nil {
		b, _ = json.Marshal(Response{Version: Version, Error: "encoding the answer: " + err.Error()})
	}
	_ = c.SetWriteDeadline(time.Now().Add(s.ioTimeout))
	_, _ = c.Write(append(b, '\n'))
}

// maxAnswer bounds the answer Ask reads.
const maxAnswer = 1 << 20

// Ask sends req to the daemon listening at path and returns its answer. ctx bounds the whole
// exchange.
func Ask(ctx context.Context, path string, req Request) (Response, error) {
	req.Version = Version
	var d net.Dialer
	c, err := d.DialContext(ctx, "unix", path)
	if err != nil {
		return Response{}, fmt.Errorf("cannot reach gatewayd at %s: %w", path, err)
	}
	defer c.Close()
	if dl, ok := ctx.Deadline(); ok {
		_ = c.SetDeadline(dl)
	}
	stop := context.AfterFunc(ctx, func() { c.SetDeadline(time.Now()) })
	defer stop()
	b, err := json.Marshal(req)
	if err != nil {
		return Response{}, err
	}
	_, werr := c.Write(append(b, '\n'))
	// A busy server answers and closes before reading: its answer may be there even when the
	// write failed.
	line, err := bufio.NewReader(io.LimitReader(c, maxAnswer)).ReadBytes('\n')
	switch {
	case err != nil && werr != nil:
		return Response{}, fmt.Errorf("control socket %s: %w", path, werr)
	case err != nil:
		return Response{}, fmt.Errorf("control socket %s: reading the answer: %w", path, err)
	}
	var resp Response
	if err := json.Unmarshal(line, &resp); err != nil {
		return Response{}, fmt.Errorf("control socket %s: the answer is not JSON: %w", path, err)
	}
	if resp.Version != Version {
		return resp, fmt.Errorf("control socket %s speaks protocol version %d, this gatewayd %d", path, resp.Version, Version)
	}
	return resp, nil
}
