package server_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cairn-dev/cairn/api"
	"github.com/cairn-dev/cairn/internal/daemon"
	"github.com/cairn-dev/cairn/internal/testdb"
	"github.com/cairn-dev/cairn/internal/testrepo"
	"github.com/cairn-dev/cairn/server"
	"github.com/cairn-dev/cairn/tufrepo"
)

// Attack tests for slow clients and connection floods (SECURITY.md "What is tested against
// a real attacker"): a real cairnd on loopback, raw TCP attackers, real uploads beside them.

func limitsRepo(t *testing.T, tweak func(*daemon.Config)) *testrepo.Repo {
	t.Helper()
	u, drop, err := testdb.Create("server_" + t.Name())
	if err != nil {
		t.Fatal(err)
	}
	r := testrepo.Boot(t, u, tweak)
	t.Cleanup(drop)
	return r
}

// rawResponse reads one HTTP answer from c.
func rawResponse(c net.Conn, br *bufio.Reader) (*http.Response, []byte, error) {
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		return nil, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp, b, err
}

// waitClosed reads from c until the server closes it, and says how long that took from start.
func waitClosed(c net.Conn, br *bufio.Reader, start time.Time, limit time.Duration) (time.Duration, error) {
	_ = c.SetReadDeadline(start.Add(limit))
	_, err := io.Copy(io.Discard, br)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return time.Since(start), fmt.Errorf("still open after %s", limit)
	}
	return time.Since(start), nil
}

// slowly writes one small piece to c every gap until stop closes or a write fails.
func slowly(c net.Conn, piece []byte, gap time.Duration, stop <-chan struct{}) {
	t := time.NewTicker(gap)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case <-t.C:
		}
		_ = c.SetWriteDeadline(time.Now().Add(time.Second))
		if _, err := c.Write(piece); err != nil {
			return
		}
	}
}

func digestOf(b []byte) string {
	s := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(s[:])
}

// pacedReader gives chunk bytes, then pauses for gap: an honest client on a modest link.
type pacedReader struct {
	data  []byte
	chunk int
	gap   time.Duration
	left  int // of the current chunk
	begun bool
}

func (p *pacedReader) Read(b []byte) (int, error) {
	if len(p.data) == 0 {
		return 0, io.EOF
	}
	if p.left == 0 {
		if p.begun {
			time.Sleep(p.gap)
		}
		p.left, p.begun = p.chunk, true
	}
	n := min(len(b), p.left, len(p.data))
	copy(b, p.data[:n])
	p.data, p.left = p.data[n:], p.left-n
	return n, nil
}

// TestSlowlorisOnHeadersAndBodiesIsCutOff runs some hundreds of slow clients at once:
// slow headers, unauthenticated slow bodies on the REST API and the OCI registry (each
// reconnecting as soon as it is cut off), authenticated uploads that trickle, and uploads
// that stall. Throughout, /healthz answers promptly on fresh connections, an honest
// upload at a modest pace completes, and a project role is uploaded and published.
func TestSlowlorisOnHeadersAndBodiesIsCutOff(t *testing.T) {
	const (
		headerTimeout = time.Second
		bodyTimeout   = time.Second
		minRate       = 32 << 10
		attack        = 4 * time.Second
	)
	r := limitsRepo(t, func(c *daemon.Config) {
		c.HeaderReadTimeout, c.BodyReadTimeout, c.MinUploadRate = headerTimeout, bodyTimeout, minRate
		c.MaxConnections = 2000
	})
	addr := r.Addr
	hexDigest := strings.Repeat("ab", 32)

	type result struct {
		kind   string
		held   time.Duration
		status int
		code   string
		close  bool
		err    error
	}
	results := make(chan result, 100000)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	// attacker runs one kind of slow client in a loop until the attack ends.
	attacker := func(kind string, once func() result) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				res := once()
				res.kind = kind
				results <- res
			}
		}()
	}
	dial := func() (net.Conn, *bufio.Reader, error) {
		c, err := net.DialTimeout("tcp", addr, 5*time.Second)
		if err != nil {
			return nil, nil, err
		}
		return c, bufio.NewReader(c), nil
	}
	// Slow headers: one header line every 300 ms, never the blank line.
	slowHeaders := func() result {
		c, br, err := dial()
		if err != nil {
			return result{err: err}
		}
		defer c.Close()
		start := time.Now()
		_, _ = io.WriteString(c, "GET /healthz HTTP/1.1\r\nHost: cairn\r\n")
		done := make(chan struct{})
		defer close(done)
		go slowly(c, []byte("X-Slow: 1\r\n"), 300*time.Millisecond, done)
		held, err := waitClosed(c, br, start, headerTimeout+5*time.Second)
		return result{held: held, err: err}
	}
	// Slow body, no credentials: the 401 comes at once, with Connection: close, and the
	// server stops reading.
	slowBody := func(head string) func() result {
		return func() result {
			c, br, err := dial()
			if err != nil {
				return result{err: err}
			}
			defer c.Close()
			start := time.Now()
			_, _ = io.WriteString(c, head+"Host: cairn\r\nContent-Type: application/octet-stream\r\nContent-Length: 100000\r\n\r\nx")
			done := make(chan struct{})
			defer close(done)
			go slowly(c, []byte("x"), 300*time.Millisecond, done)
			_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
			resp, _, err := rawResponse(c, br)
			if err != nil {
				return result{err: fmt.Errorf("no answer: %w", err), held: time.Since(start)}
			}
			held, err := waitClosed(c, br, start, 5*time.Second)
			return result{held: held, status: resp.StatusCode, close: resp.Close, err: err}
		}
	}
	// An authenticated upload that trickles 10 bytes every 100 ms, or sends 50 KiB at once
	// and then stalls: cut off with 408 too_slow.
	authUpload := func(first []byte, piece []byte) func() result {
		return func() result {
			c, br, err := dial()
			if err != nil {
				return result{err: err}
			}
			defer c.Close()
			start := time.Now()
			fmt.Fprintf(c, "PUT /api/v1/blobs/sha256:%s HTTP/1.1\r\nHost: cairn\r\nAuthorization: Bearer %s\r\nContent-Type: application/octet-stream\r\nContent-Length: 10000000\r\n\r\n", hexDigest, r.AdminToken)
			_, _ = c.Write(first)
			done := make(chan struct{})
			defer close(done)
			if piece != nil {
				go slowly(c, piece, 100*time.Millisecond, done)
			}
			_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
			resp, body, err := rawResponse(c, br)
			if err != nil {
				return result{err: fmt.Errorf("no answer: %w", err), held: time.Since(start)}
			}
			held, err := waitClosed(c, br, start, 10*time.Second)
			var p api.Problem
			_ = json.Unmarshal(body, &p)
			return result{held: held, status: resp.StatusCode, code: string(p.Code), close: resp.Close, err: err}
		}
	}
	for range 100 {
		attacker("slow headers", slowHeaders)
	}
	for range 80 {
		attacker("slow unauthenticated REST body", slowBody("PUT /api/v1/blobs/sha256:"+hexDigest+" HTTP/1.1\r\n"))
	}
	for range 40 {
		attacker("slow unauthenticated OCI body", slowBody("POST /v2/demo/app/blobs/uploads/?digest=sha256:"+hexDigest+" HTTP/1.1\r\n"))
	}
	for range 20 {
		attacker("trickling upload", authUpload([]byte("x"), bytes.Repeat([]byte("x"), 10)))
	}
	for range 10 {
		attacker("stalled upload", authUpload(bytes.Repeat([]byte("x"), 50<<10), nil))
	}

	// Meanwhile: /healthz on a fresh connection every 100 ms, an honest upload at 512 KiB/s
	// with pauses, and a project role upload naming it.
	probe := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 10 * time.Second}
	var worst time.Duration
	probes, failed := 0, 0
	probesDone := make(chan struct{})
	go func() {
		defer close(probesDone)
		for deadline := time.Now().Add(attack); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
			start := time.Now()
			resp, err := probe.Get(r.URL + "/healthz")
			took := time.Since(start)
			probes++
			if err != nil || resp.StatusCode != 200 {
				failed++
			}
			if err == nil {
				resp.Body.Close()
			}
			worst = max(worst, took)
		}
	}()
	time.Sleep(500 * time.Millisecond)                             // the attack is in full swing
	honest := bytes.Repeat([]byte("honest release bytes "), 60000) // ~1.2 MiB
	req, _ := http.NewRequest(http.MethodPut, r.URL+"/api/v1/blobs/"+digestOf(honest), &pacedReader{data: honest, chunk: 64 << 10, gap: 125 * time.Millisecond})
	req.ContentLength = int64(len(honest))
	req.Header.Set("Authorization", "Bearer "+r.AdminToken)
	uploadStart := time.Now()
	resp, err := probe.Do(req)
	if err != nil {
		t.Fatalf("honest paced upload: %v", err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("honest paced upload: %d %s", resp.StatusCode, body)
	}
	uploadTook := time.Since(uploadStart)
	alice := testrepo.NewKey(t, tufrepo.KeyEd25519)
	r.CreateProject(t, r.AdminToken, "demo", 1, []*testrepo.Key{alice}, alice)
	f := testrepo.File{Path: "demo/1.0/demo.tgz", Content: honest}
	if resp := r.Submit(t, r.AdminToken, "demo", testrepo.Sign(t, testrepo.Role(2, time.Now().Add(30*24*time.Hour), f), alice)); resp.Status != http.StatusCreated {
		t.Fatalf("role upload during the attack: %d %s", resp.Status, resp.Body)
	}
	<-probesDone
	close(stop)
	wg.Wait()
	close(results)

	type summary struct {
		n, errs  int
		worst    time.Duration
		statuses map[string]int
		firstErr error
	}
	byKind := map[string]*summary{}
	for res := range results {
		s := byKind[res.kind]
		if s == nil {
			s = &summary{statuses: map[string]int{}}
			byKind[res.kind] = s
		}
		s.n++
		s.worst = max(s.worst, res.held)
		if res.err != nil {
			s.errs++
			if s.firstErr == nil {
				s.firstErr = res.err
			}
			continue
		}
		key := strings.Join(strings.Fields(fmt.Sprintf("%d %s close=%v", res.status, res.code, res.close)), " ")
		if res.status == 0 {
			key = "closed"
		}
		s.statuses[key]++
	}
	t.Logf("healthz: %d probes, %d failed, slowest %s; honest 1.2 MiB upload at 512 KiB/s took %s", probes, failed, worst.Truncate(time.Millisecond), uploadTook.Truncate(time.Millisecond))
	for kind, s := range byKind {
		t.Logf("%s: %d connections, held at most %s, answers %v, errors %d (%v)", kind, s.n, s.worst.Truncate(time.Millisecond), s.statuses, s.errs, s.firstErr)
	}
	if failed > 0 || worst > 2*time.Second {
		t.Errorf("/healthz under attack: %d of %d probes failed, slowest %s (want all answered within 2s)", failed, probes, worst)
	}
	tests := []struct {
		kind   string
		answer string        // the only answer seen ("closed": none, the server just closed)
		within time.Duration // every connection closed by then
	}{
		{"slow headers", "closed", headerTimeout + 2*time.Second},
		{"slow unauthenticated REST body", "401 close=true", 2 * time.Second},
		{"slow unauthenticated OCI body", "401 close=true", 2 * time.Second},
		{"trickling upload", "408 too_slow close=true", bodyTimeout + 3*time.Second},
		{"stalled upload", "408 too_slow close=true", bodyTimeout + 3*time.Second},
	}
	for _, tt := range tests {
		s := byKind[tt.kind]
		switch {
		case s == nil || s.n == 0:
			t.Errorf("%s: no connection completed", tt.kind)
		case s.errs > 0:
			t.Errorf("%s: %d of %d connections not cut off as expected: %v", tt.kind, s.errs, s.n, s.firstErr)
		case len(s.statuses) != 1 || s.statuses[tt.answer] == 0:
			t.Errorf("%s: answers %v, want only %q", tt.kind, s.statuses, tt.answer)
		case s.worst > tt.within:
			t.Errorf("%s: a connection was held %s, want at most %s", tt.kind, s.worst, tt.within)
		}
	}
	metrics := string(r.Do(t, "GET", "/metrics", "", "", nil).Body)
	for _, want := range []string{`cairn_http_body_timeouts_total{reason="rate"}`, `cairn_http_body_timeouts_total{reason="idle"}`, "cairn_http_connections_open "} {
		if !strings.Contains(metrics, want) {
			t.Errorf("/metrics lacks %s", want)
		}
		if strings.HasSuffix(want, "}") && strings.Contains(metrics, want+" 0\n") {
			t.Errorf("/metrics has %s at 0 (the series exists from the start; the event must count)", want)
		}
	}
}

// TestHonestSlowUploadCompletes: the minimum rate is an average after the grace period, so
// an upload that starts slowly and pauses (less than --body-read-timeout each time) but
// keeps a real pace is never cut off.
func TestHonestSlowUploadCompletes(t *testing.T) {
	r := limitsRepo(t, func(c *daemon.Config) { c.BodyReadTimeout, c.MinUploadRate = time.Second, 64<<10 })
	data := bytes.Repeat([]byte{7}, 1<<20)
	// 128 KiB every 700 ms: 183 KiB/s, three times the minimum, in bursts with pauses.
	req, _ := http.NewRequest(http.MethodPut, r.URL+"/api/v1/blobs/"+digestOf(data), &pacedReader{data: data, chunk: 128 << 10, gap: 700 * time.Millisecond})
	req.ContentLength = int64(len(data))
	req.Header.Set("Authorization", "Bearer "+r.AdminToken)
	start := time.Now()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("paced upload: %d %s", resp.StatusCode, b)
	}
	t.Logf("1 MiB at ~183 KiB/s in 128 KiB bursts: %s", time.Since(start).Truncate(time.Millisecond))
}

// TestConnectionCap fills --max-connections with connections that never finish their
// headers: probes still get through on the connections kept for them, anything else
// beyond the cap is answered 503 with Retry-After, and past the probe connections the
// answer is a bare 503 before any request is read. Idle keep-alive connections are closed
// to make room for new ones.
func TestConnectionCap(t *testing.T) {
	const max = 16
	r := limitsRepo(t, func(c *daemon.Config) { c.MaxConnections = max; c.HeaderReadTimeout = 20 * time.Second })
	dial := func(t *testing.T) (net.Conn, *bufio.Reader) {
		t.Helper()
		c, err := net.DialTimeout("tcp", r.Addr, 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c, bufio.NewReader(c)
	}
	get := func(t *testing.T, path string) (*http.Response, []byte) {
		t.Helper()
		c, br := dial(t)
		defer c.Close() // never left idle: it would count against the cap
		fmt.Fprintf(c, "GET %s HTTP/1.1\r\nHost: cairn\r\n\r\n", path)
		_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
		resp, body, err := rawResponse(c, br)
		if err != nil {
			t.Fatalf("GET %s: %v", path, err)
		}
		return resp, body
	}
	var holders []net.Conn
	for range max {
		c, _ := dial(t)
		_, _ = io.WriteString(c, "GET /api/v1/status HTTP/1.1\r\n") // and never more
		holders = append(holders, c)
	}
	time.Sleep(300 * time.Millisecond) // all accepted

	for _, path := range []string{"/healthz", "/readyz", "/metrics"} {
		start := time.Now()
		resp, body := get(t, path)
		if resp.StatusCode != 200 || !resp.Close {
			t.Errorf("GET %s at the cap: %d close=%v %.200s", path, resp.StatusCode, resp.Close, body)
		}
		if took := time.Since(start); took > 2*time.Second {
			t.Errorf("GET %s at the cap took %s", path, took)
		}
		if path == "/metrics" {
			// The holders and this one; earlier probe connections may not be closed yet
			// (net/http lingers half a second after Connection: close).
			var open int
			for _, line := range strings.Split(string(body), "\n") {
				if v, ok := strings.CutPrefix(line, "cairn_http_connections_open "); ok {
					fmt.Sscan(v, &open)
				}
			}
			if open < max+1 || open > max+server.ProbeConnections {
				t.Errorf("/metrics at the cap counts %d open connections; want %d to %d", open, max+1, max+server.ProbeConnections)
			}
		}
	}
	resp, body := get(t, "/api/v1/status")
	var p api.Problem
	_ = json.Unmarshal(body, &p)
	if resp.StatusCode != 503 || resp.Header.Get("Retry-After") != "1" || !resp.Close || p.Code != api.CodeUnavailable || !strings.Contains(p.Detail, "--max-connections") {
		t.Errorf("GET /api/v1/status at the cap: %d Retry-After %q close=%v %s", resp.StatusCode, resp.Header.Get("Retry-After"), resp.Close, body)
	}
	// Fill the probe connections too (some may still be held by the probes above, which
	// linger briefly): then a connection is answered before it says anything.
	type dialed struct {
		c  net.Conn
		br *bufio.Reader
	}
	var extra []dialed
	for range server.ProbeConnections + 2 {
		c, br := dial(t)
		holders = append(holders, c)
		extra = append(extra, dialed{c, br})
	}
	// Read every answer at once: a read past its deadline fails even with bytes waiting.
	type answer struct {
		resp *http.Response
		body []byte
		err  error
	}
	answers := make(chan answer, len(extra))
	for _, d := range extra {
		go func() {
			_ = d.c.SetReadDeadline(time.Now().Add(1500 * time.Millisecond))
			resp, body, err := rawResponse(d.c, d.br)
			answers <- answer{resp, body, err}
		}()
	}
	refused := 0
	for range extra {
		a := <-answers
		var ne net.Error
		if errors.As(a.err, &ne) && ne.Timeout() {
			continue // admitted as a probe connection: it holds its place
		}
		if a.err != nil || a.resp.StatusCode != 503 || a.resp.Header.Get("Retry-After") != "1" || !a.resp.Close {
			t.Fatalf("a connection beyond the cap and the probe connections: %v %v %s", a.err, a.resp, a.body)
		}
		refused++
	}
	if refused < 2 {
		t.Fatalf("%d connections beyond the cap of %d: %d refused, want at least 2", len(extra), max, refused)
	}

	// The holders leave; keep-alive clients fill the cap with idle connections; a new
	// client still gets in, and one idle connection is closed for it.
	for _, h := range holders {
		h.Close()
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		if resp, _ := get(t, "/api/v1/status"); resp.StatusCode == 200 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("connections were not released after their clients left")
		}
		time.Sleep(100 * time.Millisecond)
	}
	type idle struct {
		c  net.Conn
		br *bufio.Reader
	}
	var idles []idle
	for range max {
		c, br := dial(t)
		fmt.Fprintf(c, "GET /api/v1/status HTTP/1.1\r\nHost: cairn\r\n\r\n")
		_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
		if resp, body, err := rawResponse(c, br); err != nil || resp.StatusCode != 200 || resp.Close {
			t.Fatalf("keep-alive request: %v %v %s", err, resp, body)
		}
		idles = append(idles, idle{c, br})
	}
	time.Sleep(200 * time.Millisecond)
	if resp, body := get(t, "/api/v1/status"); resp.StatusCode != 200 {
		t.Fatalf("a new client with the cap full of idle keep-alive connections: %d %s", resp.StatusCode, body)
	}
	closed := 0
	for _, i := range idles {
		_ = i.c.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
		if _, err := i.br.ReadByte(); errors.Is(err, io.EOF) {
			closed++
		}
	}
	if closed != 1 {
		t.Errorf("%d idle keep-alive connections were closed to make room; want 1", closed)
	}
	metrics := string(r.Do(t, "GET", "/metrics", "", "", nil).Body)
	for _, want := range []string{`cairn_http_connections_limited_total{action="refused"}`, `cairn_http_connections_limited_total{action="probe_lane"}`, `cairn_http_connections_limited_total{action="idle_closed"} 1`, `cairn_http_requests_shed_total{limit="max_connections"}`} {
		if !strings.Contains(metrics, want) {
			t.Errorf("/metrics lacks %s", want)
		}
		if strings.HasSuffix(want, "}") && strings.Contains(metrics, want+" 0\n") {
			t.Errorf("/metrics has %s at 0 (the series exists from the start; the event must count)", want)
		}
	}
}

// TestInflightLimit: beyond --max-inflight requests in hand, requests are answered 503
// with Retry-After (and a request body is not read), while probes are still served.
func TestInflightLimit(t *testing.T) {
	r := limitsRepo(t, func(c *daemon.Config) { c.MaxInflight = 2; c.BodyReadTimeout = 20 * time.Second; c.MinUploadRate = -1 })
	var holders []net.Conn
	for range 2 {
		c, err := net.Dial("tcp", r.Addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		fmt.Fprintf(c, "PUT /api/v1/blobs/sha256:%s HTTP/1.1\r\nHost: cairn\r\nAuthorization: Bearer %s\r\nContent-Length: 1000\r\n\r\nsome", strings.Repeat("cd", 32), r.AdminToken)
		holders = append(holders, c)
	}
	// Wait until both uploads are in flight (the server has read their headers): from
	// then on other requests are shed. Requests before that are answered, not counted.
	resp := r.Do(t, "GET", "/api/v1/status", "", "", nil)
	for deadline := time.Now().Add(10 * time.Second); resp.Status == 200 && time.Now().Before(deadline); {
		time.Sleep(50 * time.Millisecond)
		resp = r.Do(t, "GET", "/api/v1/status", "", "", nil)
	}
	if resp := r.Do(t, "GET", "/healthz", "", "", nil); resp.Status != 200 {
		t.Errorf("/healthz at the in-flight limit: %d", resp.Status)
	}
	if resp.Status != 503 || resp.Header.Get("Retry-After") != "1" || resp.Problem().Code != api.CodeUnavailable || !strings.Contains(resp.Problem().Detail, "--max-inflight") {
		t.Errorf("GET /api/v1/status beyond the in-flight limit: %d Retry-After %q %s", resp.Status, resp.Header.Get("Retry-After"), resp.Body)
	}
	// An upload beyond the limit is refused without its body being read.
	c, err := net.Dial("tcp", r.Addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	fmt.Fprintf(c, "PUT /api/v1/blobs/sha256:%s HTTP/1.1\r\nHost: cairn\r\nAuthorization: Bearer %s\r\nContent-Length: 100000\r\n\r\nx", strings.Repeat("cd", 32), r.AdminToken)
	br := bufio.NewReader(c)
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if resp, body, err := rawResponse(c, br); err != nil || resp.StatusCode != 503 || !resp.Close {
		t.Errorf("upload beyond the in-flight limit: %v %v %s", err, resp, body)
	} else if _, err := waitClosed(c, br, time.Now(), 2*time.Second); err != nil {
		t.Errorf("upload beyond the in-flight limit: connection %v", err)
	}
	for _, h := range holders {
		h.Close()
	}
	// The server notices the closed uploads after a moment; requests shed meanwhile are
	// counted too.
	shed := 2
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		st := r.Do(t, "GET", "/api/v1/status", "", "", nil).Status
		if st == 200 {
			break
		}
		if st == 503 {
			shed++
		}
		if time.Now().After(deadline) {
			t.Fatal("requests still shed after the uploads in flight ended")
		}
	}
	want := fmt.Sprintf(`cairn_http_requests_shed_total{limit="max_inflight"} %d`, shed)
	if m := string(r.Do(t, "GET", "/metrics", "", "", nil).Body); !strings.Contains(m, want) {
		t.Errorf("/metrics does not count the %d requests shed for max_inflight (want %s)", shed, want)
	}
}

// TestDevModeOnPublicAddressRefused: --dev refuses a non-loopback listen address (before
// it writes any key), unless --dev-allow-public, which then warns on start; and a listen
// address that names no host needs --external-url, in dev mode or not.
func TestDevModeOnPublicAddressRefused(t *testing.T) {
	tests := []struct {
		name    string
		cfg     daemon.Config
		refused []string // every one in the error; nil: starts
		warns   bool
	}{
		{name: "dev on all interfaces", cfg: daemon.Config{Dev: true, Listen: "0.0.0.0:0"}, refused: []string{"not a loopback address", "--dev-allow-public", "127.0.0.1"}},
		{name: "dev on all IPv6 interfaces", cfg: daemon.Config{Dev: true, Listen: "[::]:0"}, refused: []string{"not a loopback address", "--dev-allow-public"}},
		{name: "dev on an empty host", cfg: daemon.Config{Dev: true, Listen: ":0"}, refused: []string{"not a loopback address"}},
		{name: "dev on a host name", cfg: daemon.Config{Dev: true, Listen: "cairn.example:0"}, refused: []string{"not a loopback address"}},
		{name: "dev allowed public without external URL", cfg: daemon.Config{Dev: true, DevAllowPublic: true, Listen: "0.0.0.0:0"}, refused: []string{"--external-url", "Host header"}},
		{name: "not dev on all interfaces without external URL", cfg: daemon.Config{Listen: "0.0.0.0:0", DatabaseURL: "postgres://nowhere.invalid/x"}, refused: []string{"--external-url", "names no single address"}},
		{name: "external URL with a path", cfg: daemon.Config{Listen: "127.0.0.1:0", ExternalURL: "https://registry.example/cairn"}, refused: []string{"--external-url"}},
		{name: "dev on loopback", cfg: daemon.Config{Dev: true, Listen: "127.0.0.1:0"}},
		{name: "dev on localhost", cfg: daemon.Config{Dev: true, Listen: "localhost:0"}},
		{name: "dev allowed public", cfg: daemon.Config{Dev: true, DevAllowPublic: true, Listen: "0.0.0.0:0", ExternalURL: "http://127.0.0.1:1"}, warns: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := tt.cfg
			c.DataDir = t.TempDir()
			if c.DatabaseURL == "" {
				u, drop, err := testdb.Create("server_devpublic")
				if err != nil {
					t.Fatal(err)
				}
				defer drop()
				c.DatabaseURL = u
			}
			var logs bytes.Buffer
			log := slog.New(slog.NewTextHandler(&logs, nil))
			run, err := daemon.Start(context.Background(), c, func(string) string { return "" }, io.Discard, log)
			if tt.refused != nil {
				if err == nil {
					run.Close()
					t.Fatalf("started; want a refusal mentioning %q", tt.refused)
				}
				for _, w := range tt.refused {
					if !strings.Contains(err.Error(), w) {
						t.Errorf("error %q does not mention %q", err, w)
					}
				}
				if left, _ := os.ReadDir(c.DataDir); len(left) != 0 {
					t.Errorf("refused, but wrote %v in the data directory", left)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			defer run.Close()
			warned := strings.Contains(logs.String(), "level=WARN") && strings.Contains(logs.String(), "--dev-allow-public")
			if warned != tt.warns {
				t.Errorf("warned %v, want %v; log:\n%s", warned, tt.warns, logs.String())
			}
			if _, err := os.Stat(filepath.Join(c.DataDir, "admin.token")); err != nil {
				t.Errorf("dev repository not set up: %v", err)
			}
		})
	}
}

// TestOCIRealmIgnoresSpoofedHost: without --external-url, the Bearer challenge names the
// address cairnd listens on, whatever Host and X-Forwarded-Proto the request carries, so
// nobody can have clients send their credentials elsewhere.
func TestOCIRealmIgnoresSpoofedHost(t *testing.T) {
	r := limitsRepo(t, nil)
	for _, host := range []string{"", "evil.example", "evil.example:443"} {
		req, _ := http.NewRequest(http.MethodPost, r.URL+"/v2/demo/app/blobs/uploads/", nil)
		if host != "" {
			req.Host = host
			req.Header.Set("X-Forwarded-Proto", "https")
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		want := fmt.Sprintf(`Bearer realm="%s/v2/token",service="cairn",scope="repository:demo/app:pull,push"`, r.URL)
		if got := resp.Header.Get("WWW-Authenticate"); resp.StatusCode != 401 || got != want {
			t.Errorf("Host %q: %d, challenge %q; want %q", host, resp.StatusCode, got, want)
		}
	}
}

func TestDefaultMaxConnections(t *testing.T) {
	for _, tt := range []struct {
		nofile uint64
		want   int
	}{{64, 16}, {256, 64}, {1024, 448}, {20000, 9936}, {1 << 20, 16384}} {
		if got := server.DefaultMaxConnections(tt.nofile); got != tt.want {
			t.Errorf("DefaultMaxConnections(%d) = %d, want %d", tt.nofile, got, tt.want)
		}
	}
}
