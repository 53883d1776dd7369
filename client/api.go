package client

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/cairn-dev/cairn/api"
)

// API is a client for Cairn's REST API (/api/v1) and for raw metadata files. Methods take
// a context first and return *api.Error (wrapped with what was being done) when the server
// answers with a problem document. An API is safe for concurrent use.
type API struct {
	base  *url.URL
	token string
	hc    *http.Client
	ua    string
}

// Option configures an API.
type Option func(*API)

// WithToken sets the bearer token sent with write requests.
func WithToken(token string) Option { return func(a *API) { a.token = token } }

// WithHTTPClient sets the HTTP client (default NewHTTPClient(DefaultTimeouts())). Uploads
// can be large, so prefer per-request contexts and Timeouts over a client-wide Timeout.
func WithHTTPClient(hc *http.Client) Option {
	return func(a *API) {
		if hc != nil {
			a.hc = hc
		}
	}
}

// WithTimeouts makes every request use NewHTTPClient(t): connect, response and idle-read
// limits (slow-retrieval protection).
func WithTimeouts(t Timeouts) Option { return WithHTTPClient(NewHTTPClient(t)) }

// WithUserAgent sets the User-Agent header.
func WithUserAgent(ua string) Option { return func(a *API) { a.ua = ua } }

// maxErrorBody bounds how much of an error response is read: a problem document is small,
// and a misbehaving server must not make the client buffer without limit.
const maxErrorBody = 64 << 10

// maxJSONBody bounds a successful JSON response (a page of projects, releases or log).
const maxJSONBody = 32 << 20

// NewAPI returns a client for the Cairn server at server, e.g. "https://cairn.example".
// The URL must be absolute http or https; a trailing slash is ignored.
func NewAPI(server string, opts ...Option) (*API, error) {
	u, err := ParseServerURL(server)
	if err != nil {
		return nil, err
	}
	a := &API{base: u, ua: "cairn-client"}
	for _, o := range opts {
		o(a)
	}
	if a.hc == nil {
		a.hc = NewHTTPClient(DefaultTimeouts())
	}
	return a, nil
}

// ParseServerURL checks that s is an absolute http(s) URL without query or fragment and
// returns it without a trailing slash.
func ParseServerURL(s string) (*url.URL, error) {
	u, err := url.Parse(strings.TrimRight(strings.TrimSpace(s), "/"))
	if err != nil {
		return nil, api.Errorf(api.CodeBadRequest, "server URL %q does not parse: %v", s, err)
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, api.Errorf(api.CodeBadRequest, "server URL %q must be an absolute http:// or https:// URL", s)
	}
	if u.RawQuery != "" || u.Fragment != "" || u.User != nil {
		return nil, api.Errorf(api.CodeBadRequest, "server URL %q must not carry credentials, a query or a fragment", s)
	}
	return u, nil
}

// Server returns the server's base URL, without a trailing slash.
func (a *API) Server() string { return a.base.String() }

// HasToken reports whether a bearer token is configured.
func (a *API) HasToken() bool { return a.token != "" }

// endpoint joins escaped path segments onto the base URL.
func (a *API) endpoint(query url.Values, segments ...string) string {
	u := *a.base
	esc := make([]string, len(segments))
	for i, s := range segments {
		esc[i] = url.PathEscape(s)
	}
	// Path holds the decoded form and RawPath the escaped one, so that a segment keeps
	// its escapes (a "/" inside a segment stays %2F) without being escaped twice.
	u.RawPath = strings.TrimRight(a.base.EscapedPath(), "/") + "/" + strings.Join(esc, "/")
	u.Path = strings.TrimRight(a.base.Path, "/") + "/" + strings.Join(segments, "/")
	if len(query) > 0 {
		u.RawQuery = query.Encode()
	}
	return u.String()
}

// request describes one REST call.
type request struct {
	method      string
	url         string
	body        io.Reader
	size        int64 // Content-Length of body; -1 if unknown
	contentType string
	auth        bool // send the bearer token
	out         any  // JSON-decode a 2xx body into out, if non-nil
	// retryAfter, if non-nil, receives the answer's Retry-After (in seconds) when it has one.
	retryAfter *time.Duration
}

// do performs r and returns the HTTP status of a 2xx answer. Any other status becomes an
// *api.Error built from the problem document (or from the status if there is none).
func (a *API) do(ctx context.Context, r request) (int, error) {
	req, err := http.NewRequestWithContext(ctx, r.method, r.url, r.body)
	if err != nil {
		return 0, fmt.Errorf("building request %s %s: %w", r.method, r.url, err)
	}
	if r.body != nil {
		req.ContentLength = r.size
	}
	if r.contentType != "" {
		req.Header.Set("Content-Type", r.contentType)
	}
	req.Header.Set("Accept", api.MediaJSON+", "+api.MediaProblem)
	req.Header.Set("User-Agent", a.ua)
	if r.auth {
		if a.token == "" {
			return 0, api.Errorf(api.CodeBadRequest, "%s %s needs a bearer token: run 'cairn login' or set CAIRN_TOKEN", r.method, req.URL.Path)
		}
		req.Header.Set("Authorization", "Bearer "+a.token)
	}
	// The server holds the answer up to ?wait= (a publish); the response timeout allows it.
	if w, err := time.ParseDuration(req.URL.Query().Get("wait")); err == nil {
		req = req.WithContext(withServerWait(ctx, w))
	}
	resp, err := a.hc.Do(req)
	if te := asTimeout(err); te != nil {
		return 0, te // it names the request and the server
	}
	if err != nil {
		return 0, fmt.Errorf("%s %s: %w", r.method, r.url, err)
	}
	defer resp.Body.Close()
	if r.retryAfter != nil {
		if secs, err := strconv.Atoi(resp.Header.Get("Retry-After")); err == nil && secs >= 0 {
			*r.retryAfter = time.Duration(min(secs, 3600)) * time.Second
		}
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return resp.StatusCode, responseError(resp)
	}
	if r.out != nil && r.method != http.MethodHead {
		dec := json.NewDecoder(io.LimitReader(resp.Body, maxJSONBody))
		if err := dec.Decode(r.out); err != nil {
			if te := asTimeout(err); te != nil {
				return resp.StatusCode, te
			}
			return resp.StatusCode, fmt.Errorf("%s %s: decoding the %d answer: %w", r.method, r.url, resp.StatusCode, err)
		}
	}
	return resp.StatusCode, nil
}

// responseError turns a non-2xx answer into an *api.Error, preferring the server's problem
// document so that its stable code and actionable detail reach the user unchanged.
func responseError(resp *http.Response) error {
	body, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
	mt, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type"))
	if mt == api.MediaProblem || mt == api.MediaJSON {
		var p api.Problem
		if json.Unmarshal(body, &p) == nil && p.Code != "" {
			return p.AsError()
		}
	}
	detail := strings.TrimSpace(string(body))
	if len(detail) > 200 {
		detail = detail[:200] + "…"
	}
	if detail == "" {
		detail = http.StatusText(resp.StatusCode)
	}
	return &api.Error{
		Code:   statusCode(resp.StatusCode),
		Detail: fmt.Sprintf("server answered %d %s for %s %s: %s", resp.StatusCode, http.StatusText(resp.StatusCode), resp.Request.Method, resp.Request.URL.Path, detail),
	}
}

// statusCode guesses a wire code for an answer without a problem document (e.g. from a
// proxy in front of the server).
func statusCode(status int) api.Code {
	switch {
	case status == http.StatusUnauthorized:
		return api.CodeUnauthorized
	case status == http.StatusForbidden:
		return api.CodeForbidden
	case status == http.StatusNotFound:
		return api.CodeNotFound
	case status == http.StatusConflict:
		return api.CodeVersionConflict
	case status == http.StatusRequestEntityTooLarge:
		return api.CodeTooLarge
	case status == http.StatusUnsupportedMediaType:
		return api.CodeUnsupported
	case status == http.StatusBadRequest:
		return api.CodeBadRequest
	case status >= 500 && status != http.StatusInternalServerError:
		return api.CodeUnavailable
	}
	return api.CodeInternal
}

// jsonBody encodes v for a request body.
func jsonBody(v any) (io.Reader, int64, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return nil, 0, err
	}
	return bytes.NewReader(b), int64(len(b)), nil
}

// IsNotFound reports whether err is a not_found answer from the server.
func IsNotFound(err error) bool {
	var ae *api.Error
	return errors.As(err, &ae) && ae.Code == api.CodeNotFound
}
