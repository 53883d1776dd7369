package client

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptrace"
	"path"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Timeouts bound each phase of every HTTP request the client makes, so that a server (or
// anything between it and the client) that stops sending cannot hold a download forever:
// TUF's slow-retrieval attack (TUF specification, "Slow retrieval attacks"), where an
// attacker keeps a client on old metadata by feeding it a byte at a time or nothing at all.
// A zero duration disables that limit.
type Timeouts struct {
	// Connect bounds the TCP connection and the TLS handshake, each.
	Connect time.Duration
	// Response bounds the wait for the response headers once the request is sent. For REST
	// calls that ask the server to wait (?wait=), the server's wait is added, and for
	// uploads one second per MiB of the body (the server stores it before answering).
	Response time.Duration
	// Read bounds the wait for the next bytes of a response body: the longest the server
	// may send nothing. It is not a limit on the whole download, which may take as long as
	// the data keeps coming.
	Read time.Duration
}

// DefaultTimeouts are the limits when none are given: connect 10 s, response headers
// 30 s, 30 s without a byte of a body. tuf-js, for comparison, gives up a request after
// 100 s in all.
func DefaultTimeouts() Timeouts {
	return Timeouts{Connect: 10 * time.Second, Response: 30 * time.Second, Read: 30 * time.Second}
}

// Timeout phases, as TimeoutError.Phase.
const (
	PhaseConnect  = "connect"
	PhaseResponse = "response"
	PhaseRead     = "read"
)

// TimeoutError is a request that a Timeouts limit ended. It names the file (the last
// element of the URL path for metadata and targets, else the path) and the server.
type TimeoutError struct {
	Method string
	URL    string
	Phase  string // PhaseConnect, PhaseResponse or PhaseRead
	Limit  time.Duration
}

func (e *TimeoutError) Error() string {
	what, server := e.URL, ""
	if i := strings.Index(e.URL, "://"); i >= 0 {
		if j := strings.IndexByte(e.URL[i+3:], '/'); j >= 0 {
			server, what = e.URL[:i+3+j], e.URL[i+3+j:]
		}
	}
	if strings.Contains(what, "/metadata/") || strings.Contains(what, "/targets/") || strings.Contains(what, "/blobs/") || strings.Contains(what, "/manifests/") {
		what = path.Base(what)
	}
	verb := "fetching " + what + " from " + server
	if e.Method != "" && e.Method != http.MethodGet && e.Method != http.MethodHead {
		verb = e.Method + " " + what + " on " + server
	}
	switch e.Phase {
	case PhaseConnect:
		return fmt.Sprintf("%s: could not connect within %s (connect timeout; raise --connect-timeout if the server is slow to reach)", verb, e.Limit)
	case PhaseResponse:
		return fmt.Sprintf("%s: no response within %s of sending the request (response timeout; slow-retrieval protection, raise --response-timeout if the server is slow)", verb, e.Limit)
	default:
		return fmt.Sprintf("%s: no data for %s (read timeout; slow-retrieval protection, raise --read-timeout if the server is slow)", verb, e.Limit)
	}
}

// Timeout reports true, as net.Error does for timeouts.
func (e *TimeoutError) Timeout() bool { return true }

// NewHTTPClient returns an HTTP client that enforces t on every request: the transport of
// http.DefaultTransport (proxies from the environment, HTTP/2, keep-alive) with a dial and
// TLS handshake limit, and a round tripper that bounds the wait for headers and for each
// read of the body, and turns any of these into a *TimeoutError. It has no overall
// Timeout: a large download that keeps coming is never cut.
func NewHTTPClient(t Timeouts) *http.Client {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	d := &net.Dialer{Timeout: t.Connect, KeepAlive: 30 * time.Second}
	tr.DialContext = d.DialContext
	tr.TLSHandshakeTimeout = t.Connect
	return &http.Client{Transport: &timeoutTransport{base: tr, t: t}}
}

// serverWaitKey carries, in a request's context, how long the server was asked to hold its
// answer (REST ?wait=), which the response timeout allows on top.
type serverWaitKey struct{}

func withServerWait(ctx context.Context, d time.Duration) context.Context {
	if d <= 0 {
		return ctx
	}
	return context.WithValue(ctx, serverWaitKey{}, d)
}

// timeoutTransport enforces the response and read limits and names the phase that timed
// out. The connect limit is the dialer's and the TLS handshake's.
type timeoutTransport struct {
	base http.RoundTripper
	t    Timeouts
}

func (tt *timeoutTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	ctx, cancel := context.WithCancelCause(req.Context())
	fail := func(phase string, d time.Duration) *TimeoutError {
		return &TimeoutError{Method: req.Method, URL: req.URL.Redacted(), Phase: phase, Limit: d}
	}
	var (
		mu          sync.Mutex
		connected   bool
		headerTimer *time.Timer
		done        bool
	)
	respLimit := tt.t.Response
	if w, ok := req.Context().Value(serverWaitKey{}).(time.Duration); ok && respLimit > 0 {
		respLimit += w
	}
	if respLimit > 0 && req.ContentLength > 0 {
		// The server may store what it received before it answers (a blob copied to S3,
		// fsynced): allow it one second per MiB sent, on top.
		respLimit += time.Duration(req.ContentLength>>20) * time.Second
	}
	trace := &httptrace.ClientTrace{
		GotConn: func(httptrace.GotConnInfo) {
			mu.Lock()
			connected = true
			mu.Unlock()
		},
		// Like http.Transport's ResponseHeaderTimeout, the wait for headers starts once
		// the request (and its body: an upload may take long) is written.
		WroteRequest: func(httptrace.WroteRequestInfo) {
			mu.Lock()
			defer mu.Unlock()
			if respLimit > 0 && !done && headerTimer == nil {
				headerTimer = time.AfterFunc(respLimit, func() { cancel(fail(PhaseResponse, respLimit)) })
			}
		},
	}
	resp, err := tt.base.RoundTrip(req.WithContext(httptrace.WithClientTrace(ctx, trace)))
	mu.Lock()
	done = true
	if headerTimer != nil {
		headerTimer.Stop()
	}
	wasConnected := connected
	mu.Unlock()
	if err != nil {
		var te *TimeoutError
		if errors.As(context.Cause(ctx), &te) {
			err = te
		} else if req.Context().Err() == nil && isTimeout(err) && !wasConnected {
			err = fail(PhaseConnect, tt.t.Connect)
		} else if !wasConnected {
			err = unreachable(req, err)
		}
		cancel(nil)
		return nil, err
	}
	if tt.t.Read > 0 {
		resp.Body = newIdleReader(ctx, resp.Body, tt.t.Read, cancel, fail(PhaseRead, tt.t.Read))
	} else {
		resp.Body = &cancelOnClose{ReadCloser: resp.Body, cancel: cancel}
	}
	return resp, nil
}

// isTimeout reports a dial or TLS handshake timeout.
func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// idleReader ends the request when one Read waits longer than limit for data: the timer
// runs only while the caller is inside Read, so a slow consumer is not mistaken for a slow
// server.
type idleReader struct {
	ctx    context.Context
	body   io.ReadCloser
	cancel context.CancelCauseFunc
	timer  *time.Timer
	limit  time.Duration
}

func newIdleReader(ctx context.Context, body io.ReadCloser, limit time.Duration, cancel context.CancelCauseFunc, timeout *TimeoutError) *idleReader {
	r := &idleReader{ctx: ctx, body: body, cancel: cancel, limit: limit}
	// Cancelling the request's context makes the transport end the Read that waits.
	r.timer = time.AfterFunc(limit, func() { cancel(timeout) })
	r.timer.Stop()
	return r
}

func (r *idleReader) Read(p []byte) (int, error) {
	r.timer.Reset(r.limit)
	n, err := r.body.Read(p)
	r.timer.Stop()
	if err != nil && err != io.EOF {
		var te *TimeoutError
		if errors.As(context.Cause(r.ctx), &te) {
			return n, te
		}
	}
	return n, err
}

// Close closes the body and releases the request's context, which is the transport's.
func (r *idleReader) Close() error {
	r.timer.Stop()
	err := r.body.Close()
	r.cancel(nil)
	return err
}

// cancelOnClose releases the request's context when the body is closed.
type cancelOnClose struct {
	io.ReadCloser
	cancel context.CancelCauseFunc
}

func (c *cancelOnClose) Close() error {
	err := c.ReadCloser.Close()
	c.cancel(nil)
	return err
}

// asTimeout returns the *TimeoutError or *UnreachableError inside err (http.Client wraps
// transport errors in a *url.Error, whose text would repeat the URL), else nil: either
// already names the request and the server, and says what to do.
func asTimeout(err error) error {
	var te *TimeoutError
	if errors.As(err, &te) {
		return te
	}
	var ue *UnreachableError
	if errors.As(err, &ue) {
		return ue
	}
	return nil
}

// UnreachableError is a request that found no server: nothing listening at the address
// (connection refused) or a host name that does not resolve. The usual cause is a wrong
// or stale server URL, or a server that is not running: the message says which URL and
// where it came from, without assuming the user runs the server.
type UnreachableError struct {
	URL    string
	Reason string // "nothing is listening there (connection refused)", …
	Err    error
}

func (e *UnreachableError) Error() string {
	server := e.URL
	if i := strings.Index(server, "://"); i >= 0 {
		if j := strings.IndexByte(server[i+3:], '/'); j >= 0 {
			server = server[:i+3+j]
		}
	}
	return fmt.Sprintf("cannot reach the Cairn server at %s: %s. Check the server URL (--server, $CAIRN_SERVER, or the one 'cairn init' saved) and that the server is up; if it is someone else's, ask its operator", server, e.Reason)
}

func (e *UnreachableError) Unwrap() error { return e.Err }

// unreachable recognises a transport error that means no server answered at all.
func unreachable(req *http.Request, err error) error {
	var dnsErr *net.DNSError
	switch {
	case errors.Is(err, syscall.ECONNREFUSED):
		return &UnreachableError{URL: req.URL.Redacted(), Reason: "nothing is listening there (connection refused)", Err: err}
	case errors.As(err, &dnsErr) && dnsErr.IsNotFound:
		return &UnreachableError{URL: req.URL.Redacted(), Reason: fmt.Sprintf("the host name %q does not resolve", dnsErr.Name), Err: err}
	}
	return err
}
