package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cairn-dev/cairn/api"
	"github.com/prometheus/client_golang/prometheus"
)

// Connection and request limits (SECURITY.md "Slow clients and connection floods").
//
// A client that is slow on purpose must not hold a connection, a file descriptor or a
// handler for long:
//   - headers: Limits.HeaderReadTimeout (net/http's ReadHeaderTimeout);
//   - bodies: every request body is read under a connection read deadline that moves
//     with progress: no byte for BodyReadTimeout ends it, and after the first
//     BodyReadTimeout the body must average at least MinUploadRate bytes a second, so a
//     1 GiB upload at a real speed completes and a trickle does not;
//   - an answer written before the body was read to its end (401, 403, 413, a blob that
//     is already stored, …) carries Connection: close and stops reading at once: net/http
//     would otherwise read up to 256 KiB of the unread body, at the sender's pace, before
//     it answers and again before it closes;
//   - MaxConnections open connections at most (the rest are answered 503 and closed, after
//     idle keep-alive connections were closed to make room); a few more connections are
//     kept for /healthz, /readyz and /metrics alone, so that probes and scrapes still get
//     through a flood;
//   - MaxInflight requests handled at once; beyond it 503 with Retry-After, except for
//     /healthz, /readyz and /metrics.

// Limits bounds what one client can hold. Zero values take the defaults of DefaultLimits;
// negative values turn a limit off (not recommended).
type Limits struct {
	// HeaderReadTimeout bounds reading a request's headers.
	HeaderReadTimeout time.Duration
	// IdleTimeout closes a keep-alive connection that sends no new request for this long.
	IdleTimeout time.Duration
	// BodyReadTimeout ends a request whose body sends no byte for this long; it is also
	// the grace period before MinUploadRate applies.
	BodyReadTimeout time.Duration
	// MinUploadRate is the least average rate, in bytes a second from the start of the
	// body, once BodyReadTimeout has passed.
	MinUploadRate int64
	// MaxConnections bounds the open connections of this replica (0: derived from the
	// process's open-file limit, see DefaultMaxConnections).
	MaxConnections int
	// MaxInflight bounds the requests handled at once, health and metrics excepted.
	MaxInflight int
}

// ProbeConnections is how many connections beyond MaxConnections are kept for /healthz,
// /readyz and /metrics: each gets one request, which must arrive within probeDeadline.
const ProbeConnections = 8

// probeDeadline bounds everything on a probe connection: reading the request, answering.
const probeDeadline = 5 * time.Second

// DefaultLimits returns the defaults: headers in 10 s, no byte of a body for 30 s or less
// than 4 KiB/s on average after that ends a request, 512 requests handled at once.
func DefaultLimits() Limits {
	return Limits{
		HeaderReadTimeout: 10 * time.Second,
		IdleTimeout:       120 * time.Second,
		BodyReadTimeout:   30 * time.Second,
		MinUploadRate:     4096,
		MaxInflight:       512,
	}
}

// DefaultMaxConnections derives a connection cap from the open-file limit nofile: every
// connection may hold a second descriptor (a blob being written or served), and 128 stay
// for the database pool, the listener, logs and the probe connections. 256 descriptors
// give 64 connections; the result is between 16 and 16,384.
func DefaultMaxConnections(nofile uint64) int {
	if nofile <= 128+32 {
		return 16
	}
	return int(min((nofile-128)/2, 16384))
}

// withDefaults fills zero fields from DefaultLimits.
func (l Limits) withDefaults(nofile uint64) Limits {
	d := DefaultLimits()
	pick := func(v, def time.Duration) time.Duration {
		switch {
		case v == 0:
			return def
		case v < 0:
			return 0
		}
		return v
	}
	l.HeaderReadTimeout = pick(l.HeaderReadTimeout, d.HeaderReadTimeout)
	l.IdleTimeout = pick(l.IdleTimeout, d.IdleTimeout)
	l.BodyReadTimeout = pick(l.BodyReadTimeout, d.BodyReadTimeout)
	switch {
	case l.MinUploadRate == 0:
		l.MinUploadRate = d.MinUploadRate
	case l.MinUploadRate < 0:
		l.MinUploadRate = 0
	}
	switch {
	case l.MaxConnections == 0:
		l.MaxConnections = DefaultMaxConnections(nofile)
	case l.MaxConnections < 0:
		l.MaxConnections = 0
	}
	switch {
	case l.MaxInflight == 0:
		l.MaxInflight = d.MaxInflight
	case l.MaxInflight < 0:
		l.MaxInflight = 0
	}
	return l
}

// Limits returns the limits in force (defaults filled in).
func (s *Server) Limits() Limits { return s.limits }

// HTTPServer returns the http.Server for this replica: the handler, the header and idle
// timeouts, and the hooks the connection limit needs. Serve it on s.Listen(ln).
func (s *Server) HTTPServer(errorLog *log.Logger) *http.Server {
	return &http.Server{
		Handler:           s.Handler(),
		ReadHeaderTimeout: s.limits.HeaderReadTimeout,
		IdleTimeout:       s.limits.IdleTimeout,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          errorLog,
		ConnState:         s.conns.connState,
		ConnContext: func(ctx context.Context, c net.Conn) context.Context {
			if lc, ok := c.(*limitedConn); ok && lc.probe {
				return context.WithValue(ctx, probeConnKey{}, true)
			}
			return ctx
		},
	}
}

// Listen wraps ln with the connection limit (a no-op wrapper when there is none).
func (s *Server) Listen(ln net.Listener) net.Listener {
	s.conns.max = s.limits.MaxConnections
	return &limitListener{Listener: ln, l: s.conns}
}

type probeConnKey struct{}

// exempt reports whether path is a probe or scrape, which the request limit never sheds.
func exempt(path string) bool {
	return path == "/healthz" || path == "/readyz" || path == "/metrics"
}

// limitRequests is the outermost middleware (the first the router runs): it sheds
// requests beyond MaxInflight, serves only probes on probe connections, and puts request
// bodies under their read deadlines.
func (s *Server) limitRequests(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Context().Value(probeConnKey{}) != nil {
			// A connection admitted beyond MaxConnections: one probe, then closed.
			w.Header().Set("Connection", "close")
			if !exempt(r.URL.Path) {
				s.shed(w, r, "max_connections", fmt.Sprintf("this replica has %d connections open, its limit (--max-connections)", s.limits.MaxConnections))
				return
			}
		} else if s.limits.MaxInflight > 0 && !exempt(r.URL.Path) {
			n := s.inflight.Add(1)
			defer s.inflight.Add(-1)
			if n > int64(s.limits.MaxInflight) {
				s.shed(w, r, "max_inflight", fmt.Sprintf("this replica is handling %d requests, its limit (--max-inflight)", s.limits.MaxInflight))
				return
			}
		}
		if r.Body == nil || r.Body == http.NoBody || r.ContentLength == 0 {
			// No body: no read deadline, which would also end the background read
			// net/http keeps on the connection (and so the request's context) while a
			// long download is written.
			next.ServeHTTP(w, r)
			return
		}
		b := &deadlineBody{
			body: r.Body, rc: http.NewResponseController(w), start: time.Now(),
			idle: s.limits.BodyReadTimeout, rate: s.limits.MinUploadRate, timedOut: s.metrics.bodyTimeouts,
		}
		r.Body = b
		ew := &earlyAnswerWriter{ResponseWriter: w, body: b}
		defer ew.finish()
		next.ServeHTTP(ew, r)
	})
}

// shed answers 503 with Retry-After and closes the connection, without reading the body.
func (s *Server) shed(w http.ResponseWriter, r *http.Request, reason, why string) {
	s.metrics.shed.WithLabelValues(reason).Inc()
	if r.ContentLength != 0 {
		_ = http.NewResponseController(w).SetReadDeadline(time.Now().Add(drainGrace)) // see stopReading
	}
	w.Header().Set("Connection", "close")
	w.Header().Set("Retry-After", "1")
	s.writeError(w, r, api.Errorf(api.CodeUnavailable, "%s: retry after a second, or another replica", why))
}

// deadlineBody is a request body read under a connection read deadline that moves with
// progress (Limits.BodyReadTimeout, Limits.MinUploadRate).
type deadlineBody struct {
	body     io.ReadCloser
	rc       *http.ResponseController
	start    time.Time
	idle     time.Duration
	rate     int64
	timedOut *prometheus.CounterVec

	mu  sync.Mutex
	n   int64
	eof bool
	err error // sticky: a timeout, or the answer was written early
}

func (b *deadlineBody) Read(p []byte) (int, error) {
	b.mu.Lock()
	if b.err != nil {
		b.mu.Unlock()
		return 0, b.err
	}
	// The deadline is set for each read from its start, so the server's own pauses between
	// reads (a disk flush) never count as the client's silence.
	now := time.Now()
	deadline, why := b.deadline(now)
	if b.idle > 0 || b.rate > 0 {
		_ = b.rc.SetReadDeadline(deadline)
	}
	b.mu.Unlock()

	n, err := b.body.Read(p)

	b.mu.Lock()
	defer b.mu.Unlock()
	b.n += int64(n)
	switch {
	case err == io.EOF:
		b.eof = true
		// net/http now reads in the background to notice a client that goes away; a
		// deadline left behind would end that read and cancel the request's context in
		// the middle of a long publish wait.
		_ = b.rc.SetReadDeadline(time.Time{})
	case err != nil && errors.Is(err, os.ErrDeadlineExceeded) && b.err == nil:
		elapsed := time.Since(b.start).Truncate(time.Millisecond)
		b.timedOut.WithLabelValues(why).Inc()
		if why == "rate" {
			b.err = api.Wrap(api.CodeTooSlow, err, "the request body arrived too slowly: %d bytes in %s, under the minimum of %d bytes/s after the first %s (--min-upload-rate): retry over a faster connection",
				b.n, elapsed, b.rate, b.idle)
		} else {
			b.err = api.Wrap(api.CodeTooSlow, err, "the request body stalled: no byte for %s after %d bytes (--body-read-timeout): retry", b.idle, b.n)
		}
		return n, b.err
	case err != nil && b.err != nil:
		return n, b.err
	}
	return n, err
}

// deadline is when the next read must have returned, and which rule sets it.
func (b *deadlineBody) deadline(now time.Time) (time.Time, string) {
	d, why := time.Time{}, ""
	if b.idle > 0 {
		d, why = now.Add(b.idle), "idle"
	}
	if b.rate > 0 {
		// At least rate bytes a second on average once the grace period is over: the
		// bytes read so far buy time beyond it.
		r := b.start.Add(b.idle + time.Duration(float64(b.n)/float64(b.rate)*float64(time.Second)))
		if d.IsZero() || r.Before(d) {
			d, why = r, "rate"
		}
	}
	return d, why
}

func (b *deadlineBody) Close() error { return b.body.Close() }

// stopReading ends reading the body for good: the answer is on its way without it.
func (b *deadlineBody) stopReading() {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.eof {
		return
	}
	if b.err != nil {
		return // timed out: the deadline has passed already
	}
	b.err = api.Errorf(api.CodeBadRequest, "the request was answered before its body was read")
	// With Connection: close net/http answers without reading the rest first; after the
	// answer it still reads up to 256 KiB of it, so that the close does not reset a
	// client that has sent its body and is reading the answer. That read gets drainGrace,
	// which bytes already sent need and a slow sender cannot stretch.
	_ = b.rc.SetReadDeadline(time.Now().Add(drainGrace))
}

// drainGrace is how long net/http may read the unread rest of a body after an early
// answer (as long as its own lingering close, rstAvoidanceDelay).
const drainGrace = 500 * time.Millisecond

func (b *deadlineBody) done() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.eof
}

// earlyAnswerWriter closes the connection when the answer starts before the request body
// was read to its end.
type earlyAnswerWriter struct {
	http.ResponseWriter
	body    *deadlineBody
	started bool
}

func (w *earlyAnswerWriter) answer() {
	if w.started {
		return
	}
	w.started = true
	if !w.body.done() {
		w.Header().Set("Connection", "close")
		w.body.stopReading()
	}
}

func (w *earlyAnswerWriter) WriteHeader(code int) {
	if code >= 200 {
		w.answer()
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *earlyAnswerWriter) Write(p []byte) (int, error) {
	w.answer()
	return w.ResponseWriter.Write(p)
}

func (w *earlyAnswerWriter) Flush() {
	w.answer()
	_ = http.NewResponseController(w.ResponseWriter).Flush()
}

func (w *earlyAnswerWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// finish runs after the handler: a handler that returned without reading the body or
// answering still closes the connection rather than wait for the rest of the body.
func (w *earlyAnswerWriter) finish() { w.answer() }

// connLimiter counts the open connections and closes idle keep-alive ones to make room.
type connLimiter struct {
	max      int // 0: no limit
	mu       sync.Mutex
	open     map[*limitedConn]struct{}
	probes   int
	refusing atomic.Int64
	refused  *prometheus.CounterVec
}

func newConnLimiter(refused *prometheus.CounterVec) *connLimiter {
	return &connLimiter{open: map[*limitedConn]struct{}{}, refused: refused}
}

func (l *connLimiter) count() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.open) + l.probes
}

// admit decides the fate of a new connection: a regular one, a probe connection, or none.
func (l *connLimiter) admit(c net.Conn) (*limitedConn, bool) {
	lc := &limitedConn{Conn: c, l: l}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.max <= 0 || len(l.open) < l.max {
		l.open[lc] = struct{}{}
		return lc, true
	}
	// Full: an idle keep-alive connection costs its client only a reconnect.
	var oldest *limitedConn
	for o := range l.open {
		if o.state.Load() == int32(http.StateIdle) && (oldest == nil || o.idleSince.Load() < oldest.idleSince.Load()) {
			oldest = o
		}
	}
	if oldest != nil {
		delete(l.open, oldest)
		_ = oldest.Conn.Close()
		l.refused.WithLabelValues("idle_closed").Inc()
		l.open[lc] = struct{}{}
		return lc, true
	}
	if l.probes < ProbeConnections {
		l.probes++
		lc.probe = true
		lc.limit = time.Now().Add(probeDeadline)
		_ = c.SetDeadline(lc.limit)
		l.refused.WithLabelValues("probe_lane").Inc()
		return lc, true
	}
	l.refused.WithLabelValues("refused").Inc()
	return nil, false
}

func (l *connLimiter) release(c *limitedConn) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if c.probe {
		l.probes--
		return
	}
	delete(l.open, c)
}

func (l *connLimiter) connState(c net.Conn, st http.ConnState) {
	if lc, ok := c.(*limitedConn); ok {
		if st == http.StateIdle {
			lc.idleSince.Store(time.Now().UnixNano())
		}
		lc.state.Store(int32(st))
	}
}

// refuse answers a connection beyond every limit with a bare 503, without reading its
// request, and closes it. At most ProbeConnections refusals are written at once; beyond
// that a connection is closed unanswered.
func (l *connLimiter) refuse(c net.Conn) {
	if l.refusing.Add(1) > ProbeConnections {
		l.refusing.Add(-1)
		_ = c.Close()
		return
	}
	go func() {
		defer l.refusing.Add(-1)
		p := api.ProblemFor(api.Errorf(api.CodeUnavailable, "this replica has too many connections open (--max-connections): retry after a second, or another replica"))
		body, _ := json.Marshal(p)
		_ = c.SetDeadline(time.Now().Add(time.Second))
		_, _ = fmt.Fprintf(c, "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nRetry-After: 1\r\nConnection: close\r\nContent-Length: %d\r\n\r\n%s", p.Status, http.StatusText(p.Status), api.MediaProblem, len(body), body)
		// Half-close and drain a little, so the client reads the answer instead of a reset
		// for the request bytes it already sent.
		if tc, ok := c.(interface{ CloseWrite() error }); ok {
			_ = tc.CloseWrite()
			_, _ = io.CopyN(io.Discard, c, 64<<10)
		}
		_ = c.Close()
	}()
}

type limitListener struct {
	net.Listener
	l *connLimiter
}

func (ln *limitListener) Accept() (net.Conn, error) {
	for {
		c, err := ln.Listener.Accept()
		if err != nil {
			return nil, err
		}
		if lc, ok := ln.l.admit(c); ok {
			return lc, nil
		}
		ln.l.refuse(c)
	}
}

// limitedConn is an admitted connection. A probe connection's deadlines never go past
// its limit.
type limitedConn struct {
	net.Conn
	l         *connLimiter
	probe     bool
	limit     time.Time
	state     atomic.Int32
	idleSince atomic.Int64
	once      sync.Once
}

func (c *limitedConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(func() { c.l.release(c) })
	return err
}

// CloseWrite half-closes, as net/http does before it closes a connection it answered with
// Connection: close, so the client reads the answer rather than a reset.
func (c *limitedConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}

// ReadFrom keeps sendfile for downloads: net/http uses it when the connection has it.
func (c *limitedConn) ReadFrom(r io.Reader) (int64, error) {
	if rf, ok := c.Conn.(io.ReaderFrom); ok {
		return rf.ReadFrom(r)
	}
	return io.Copy(struct{ io.Writer }{c.Conn}, r)
}

func (c *limitedConn) clamp(t time.Time) time.Time {
	if c.probe && (t.IsZero() || t.After(c.limit)) {
		return c.limit
	}
	return t
}

func (c *limitedConn) SetDeadline(t time.Time) error { return c.Conn.SetDeadline(c.clamp(t)) }
func (c *limitedConn) SetReadDeadline(t time.Time) error {
	return c.Conn.SetReadDeadline(c.clamp(t))
}
func (c *limitedConn) SetWriteDeadline(t time.Time) error {
	return c.Conn.SetWriteDeadline(c.clamp(t))
}

// String names the limits for the start-up log.
func (l Limits) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "headers %s, body idle %s, min upload rate %d B/s, connections %d (+%d for probes), in-flight %d",
		l.HeaderReadTimeout, l.BodyReadTimeout, l.MinUploadRate, l.MaxConnections, ProbeConnections, l.MaxInflight)
	return b.String()
}
