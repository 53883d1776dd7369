package e2e

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	cairnclient "github.com/cairn-dev/cairn/client"
)

// Modes of the stalling proxy, for requests whose path matches its target.
const (
	passThrough     int32 = iota
	stallBody             // headers and the first 15 bytes, then nothing
	stallHeaders          // nothing at all, not even headers
	trickle               // the whole body, in five pieces 0.8 s apart
	stallEverything       // every request, not only the target, gets nothing
)

// stallingProxy is an HTTP proxy on loopback in front of a real cairnd that forwards
// everything, except that, depending on its mode, it holds back the answer for files
// whose path ends in target: the slow-retrieval attacker of the TUF specification, who
// sits on the network path and keeps a client waiting.
type stallingProxy struct {
	URL    string
	mode   atomic.Int32
	target string
}

func newStallingProxy(t *testing.T, upstream, target string) *stallingProxy {
	t.Helper()
	p := &stallingProxy{target: target}
	up := &http.Client{Timeout: 30 * time.Second}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mode := p.mode.Load()
		if mode != stallEverything && !strings.HasSuffix(r.URL.Path, p.target) {
			mode = passThrough
		}
		if mode == stallHeaders || mode == stallEverything {
			<-r.Context().Done() // until the client gives up
			return
		}
		req, err := http.NewRequestWithContext(r.Context(), r.Method, upstream+r.URL.RequestURI(), r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		req.Header = r.Header.Clone()
		req.Header.Del("Accept-Encoding") // keep the bytes as they are, to count them
		resp, err := up.Do(req)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		for k, v := range resp.Header {
			w.Header()[k] = v
		}
		w.WriteHeader(resp.StatusCode)
		switch mode {
		case stallBody:
			_, _ = w.Write(body[:min(15, len(body))])
			w.(http.Flusher).Flush()
			<-r.Context().Done()
		case trickle:
			for i := range 5 {
				_, _ = w.Write(body[i*len(body)/5 : (i+1)*len(body)/5])
				w.(http.Flusher).Flush()
				if i < 4 {
					time.Sleep(800 * time.Millisecond)
				}
			}
		default:
			_, _ = w.Write(body)
		}
	})}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	p.URL = "http://" + ln.Addr().String()
	return p
}

// TestSlowRetrievalRefused (issue #9, item 4): a proxy between the client and a real
// cairnd that stops after 15 bytes of timestamp.json, or never sends its headers, or
// accepts a TLS connection and never answers. `cairn get`, the client package's Repo and
// its REST client each give up within their limit plus slack, with an error that names
// the file, the server and the limit (exit 20, a network failure); a server that is slow
// but keeps sending is not cut, and the same downloads work through the proxy when it
// forwards. Before, `cairn get` waited on http.DefaultClient without end.
func TestSlowRetrievalRefused(t *testing.T) {
	w := newWorld(t)
	proxy := newStallingProxy(t, w.r.URL, "timestamp.json")
	rootFile := filepath.Join(t.TempDir(), "root.json")
	if err := os.WriteFile(rootFile, w.r.RootJSON, 0o644); err != nil {
		t.Fatal(err)
	}
	cl := newCLI(t, "")
	cl.ok(t, "init", "--server", proxy.URL, "--root", rootFile)
	const slack = 5 * time.Second

	// The CLI, by flag and by environment.
	for _, c := range []struct {
		name  string
		mode  int32
		args  []string
		env   map[string]string
		limit time.Duration
		want  string
	}{
		{"body stalls after 15 bytes", stallBody, []string{"--read-timeout", "2s"}, nil, 2 * time.Second,
			"fetching timestamp.json from " + proxy.URL + ": no data for 2s (read timeout; slow-retrieval protection, raise --read-timeout"},
		{"body stalls, limit from the environment", stallBody, nil, map[string]string{"CAIRN_READ_TIMEOUT": "1500ms"}, 1500 * time.Millisecond,
			"fetching timestamp.json from " + proxy.URL + ": no data for 1.5s (read timeout"},
		{"no headers", stallHeaders, []string{"--response-timeout", "2s"}, nil, 2 * time.Second,
			"fetching timestamp.json from " + proxy.URL + ": no response within 2s of sending the request (response timeout; slow-retrieval protection, raise --response-timeout"},
	} {
		t.Run(c.name, func(t *testing.T) {
			proxy.mode.Store(c.mode)
			defer proxy.mode.Store(passThrough)
			for k, v := range c.env {
				cl.env[k] = v
				defer delete(cl.env, k)
			}
			start := time.Now()
			code, _, errs := cl.run(t, append([]string{"get", "demo@2.0.0", "-o", t.TempDir()}, c.args...)...)
			took := time.Since(start)
			t.Logf("exit %d after %s: %s", code, took.Round(time.Millisecond), strings.TrimSpace(errs))
			if code != int(cairnclient.ExitFailure) || !strings.Contains(errs, c.want) {
				t.Fatalf("cairn get: exit %d: %s\nwant exit 20 and %q", code, errs, c.want)
			}
			if took < c.limit || took > c.limit+slack {
				t.Fatalf("cairn get gave up after %s, want %s to %s", took, c.limit, c.limit+slack)
			}
		})
	}

	// Slow but steady: five pieces 0.8 s apart (3.2 s in all) under a 2 s read limit.
	t.Run("trickle is not cut", func(t *testing.T) {
		proxy.mode.Store(trickle)
		defer proxy.mode.Store(passThrough)
		start := time.Now()
		out := t.TempDir()
		cl.ok(t, "get", "demo@2.0.0", "-o", out, "--read-timeout", "2s")
		if took := time.Since(start); took < 3*time.Second {
			t.Fatalf("the trickle took %s: the proxy did not slow it down", took)
		}
		if got, err := os.ReadFile(filepath.Join(out, "demo-2.0.0.tar.gz")); err != nil || string(got) != string(w.f2.Content) {
			t.Fatalf("got %q, %v", got, err)
		}
	})

	// Bad settings are refused before any request.
	if code, _, errs := cl.run(t, "get", "demo@2.0.0", "--read-timeout", "-1s"); code != int(cairnclient.ExitMalformed) || !strings.Contains(errs, "--read-timeout is -1s") {
		t.Fatalf("a negative timeout: exit %d: %s", code, errs)
	}

	// The client package: Repo (TUF metadata) and API (REST), with Timeouts.
	t.Run("client package", func(t *testing.T) {
		lim := cairnclient.Timeouts{Connect: 2 * time.Second, Response: 2 * time.Second, Read: 2 * time.Second}
		repo, err := cairnclient.OpenRepo(cairnclient.RepoConfig{Server: proxy.URL, TrustedRoot: w.r.RootJSON, MetadataDir: t.TempDir(), Timeouts: &lim})
		if err != nil {
			t.Fatal(err)
		}
		for _, mode := range []int32{stallBody, stallHeaders} {
			proxy.mode.Store(mode)
			start := time.Now()
			err := repo.Refresh(context.Background())
			took := time.Since(start)
			var te *cairnclient.TimeoutError
			if !errors.As(err, &te) || !strings.HasSuffix(te.URL, "/metadata/timestamp.json") || took > lim.Read+slack {
				t.Fatalf("mode %d: Refresh after %s: %v (%T), want a TimeoutError for timestamp.json", mode, took, err, err)
			}
			if cairnclient.Classify(err) != cairnclient.ExitFailure {
				t.Fatalf("mode %d: %v classifies as %d", mode, err, cairnclient.Classify(err))
			}
		}
		proxy.mode.Store(passThrough)
		if err := repo.Refresh(context.Background()); err != nil {
			t.Fatalf("Refresh through the forwarding proxy: %v", err)
		}

		api, err := cairnclient.NewAPI(proxy.URL, cairnclient.WithTimeouts(lim))
		if err != nil {
			t.Fatal(err)
		}
		proxy.mode.Store(stallEverything)
		start := time.Now()
		_, err = api.Project(context.Background(), "demo")
		proxy.mode.Store(passThrough)
		var te *cairnclient.TimeoutError
		if !errors.As(err, &te) || te.Phase != cairnclient.PhaseResponse || time.Since(start) > lim.Response+slack {
			t.Fatalf("API.Project through a silent proxy: %v after %s", err, time.Since(start))
		}
		t.Logf("REST: %v", err)
		if _, err := api.Project(context.Background(), "demo"); err != nil {
			t.Fatalf("API.Project through the forwarding proxy: %v", err)
		}
	})

	// A TLS server that accepts the connection and never answers the handshake: the
	// connect limit.
	t.Run("TLS handshake never answered", func(t *testing.T) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		go func() {
			for {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				defer c.Close()
			}
		}()
		api, err := cairnclient.NewAPI("https://"+ln.Addr().String(), cairnclient.WithTimeouts(cairnclient.Timeouts{Connect: 1500 * time.Millisecond, Response: time.Minute, Read: time.Minute}))
		if err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		_, err = api.Project(context.Background(), "demo")
		var te *cairnclient.TimeoutError
		if !errors.As(err, &te) || te.Phase != cairnclient.PhaseConnect || time.Since(start) > 1500*time.Millisecond+slack {
			t.Fatalf("a TLS handshake never answered: %v after %s", err, time.Since(start))
		}
		t.Logf("connect: %v", err)
	})
}
