package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"time"

	"github.com/cairn-dev/cairn/api"
	"github.com/cairn-dev/cairn/internal/tufjs"
	"github.com/theupdateframework/go-tuf/v2/metadata/config"
	"github.com/theupdateframework/go-tuf/v2/metadata/updater"
)

// runWire measures the bytes that real clients move to fetch one release: a fresh go-tuf
// v2 updater, a fresh tuf-js (test/tufjs) and a fresh `cairn get` (-cairn BIN), then the
// same clients refreshing from their caches after one upload to another project. Every
// client talks to -server through a counting proxy on loopback, so the figures are what
// crossed the wire (after Content-Encoding, HTTP headers counted separately), split into
// metadata and target bytes. The repository is whatever -server holds: fill it first
// (-mode projects or -mode bulk).
func runWire(ctx context.Context, o *options) error {
	c := newClient(o, 2)
	up, err := url.Parse(o.server)
	if err != nil {
		return fmt.Errorf("wire: -server: %w", err)
	}
	px, err := startCountingProxy(up)
	if err != nil {
		return err
	}
	defer px.close()

	// The release every client fetches, and a second project whose upload moves the
	// snapshot between the fresh runs and the refreshes.
	target, err := wireRelease(ctx, c, o.prefix+"-wire")
	if err != nil {
		return err
	}
	other, err := newProject(o.prefix + "-wire-other")
	if err != nil {
		return err
	}
	if _, err := c.createProject(ctx, other, "60s"); err != nil {
		return fmt.Errorf("wire: creating %s: %w", other.name, err)
	}
	st, rootRaw, err := c.do(ctx, http.MethodGet, "/metadata/1.root.json", "", nil)
	if err != nil || st != http.StatusOK {
		return fmt.Errorf("wire: fetching 1.root.json: status %d: %v", st, err)
	}
	work, err := os.MkdirTemp("", "cairn-wire-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(work)
	rootFile := filepath.Join(work, "root.json")
	if err := os.WriteFile(rootFile, rootRaw, 0o600); err != nil {
		return err
	}
	name, version := target.name, target.version

	type clientRun struct {
		name string
		run  func(ctx context.Context) error
	}
	clients := []clientRun{{"go-tuf v2", func(ctx context.Context) error {
		return wireGoTUF(px.url, filepath.Join(work, "gotuf"), rootRaw, target.path)
	}}}
	if _, err := exec.LookPath("node"); err == nil && !o.noTUFJS {
		dir, err := tufjs.Ensure(ctx)
		if err != nil {
			return fmt.Errorf("wire: tuf-js: %w", err)
		}
		clients = append(clients, clientRun{"tuf-js", func(ctx context.Context) error {
			_, err := tufjs.Get(ctx, tufjs.Options{
				MetadataURL: px.url + "/metadata", TargetsURL: px.url + "/targets", Root: rootFile,
				CacheDir: filepath.Join(work, "tufjs"), OutDir: filepath.Join(work, "tufjs-out"),
				Targets: []string{target.path}, Dir: dir,
			})
			return err
		}})
	} else {
		fmt.Println("wire: tuf-js not measured (no node, or -no-tufjs)")
	}
	if o.cairnBin != "" {
		home := filepath.Join(work, "cairn-home")
		env := append(os.Environ(), "CAIRN_HOME="+home)
		if out, err := runCmd(ctx, env, o.cairnBin, "init", "--server", px.url, "--root", rootFile); err != nil {
			return fmt.Errorf("wire: cairn init: %w: %s", err, out)
		}
		// init refreshes once to check the server: drop what it cached, so that the first
		// `cairn get` is as fresh as the other clients' first run.
		if err := os.RemoveAll(filepath.Join(home, "metadata")); err != nil {
			return err
		}
		clients = append(clients, clientRun{"cairn get", func(ctx context.Context) error {
			out, err := runCmd(ctx, env, o.cairnBin, "get", name+"@"+version, "--output-dir", filepath.Join(work, "cairn-out"))
			if err != nil {
				return fmt.Errorf("%w: %s", err, out)
			}
			return nil
		}})
		// The same CLI through the classic snapshot (--classic-snapshot), with a cache of
		// its own: what the Merkle snapshot saves (DESIGN.md "Merkle snapshot").
		classicHome := filepath.Join(work, "cairn-classic-home")
		classicEnv := append(os.Environ(), "CAIRN_HOME="+classicHome)
		if out, err := runCmd(ctx, classicEnv, o.cairnBin, "init", "--server", px.url, "--root", rootFile); err != nil {
			return fmt.Errorf("wire: cairn init: %w: %s", err, out)
		}
		if err := os.RemoveAll(filepath.Join(classicHome, "metadata")); err != nil {
			return err
		}
		clients = append(clients, clientRun{"cairn get --classic-snapshot", func(ctx context.Context) error {
			out, err := runCmd(ctx, classicEnv, o.cairnBin, "--classic-snapshot", "get", name+"@"+version, "--output-dir", filepath.Join(work, "cairn-classic-out"))
			if err != nil {
				return fmt.Errorf("%w: %s", err, out)
			}
			return nil
		}})
	} else {
		fmt.Println("wire: cairn get not measured (no -cairn BIN)")
	}

	measure := func(phase, client string, run func(context.Context) error) error {
		px.reset()
		t := time.Now()
		rctx, cancel := context.WithTimeout(ctx, o.clientTimeout)
		err := run(rctx)
		cancel()
		timedOut := err != nil && rctx.Err() != nil
		if err != nil && !timedOut {
			return fmt.Errorf("wire: %s %s: %w", client, phase, err)
		}
		m := px.snapshot()
		r := map[string]any{
			"kind": "wire", "client": client, "phase": phase, "seconds": time.Since(t).Seconds(),
			"requests": m.requests, "metadata_bytes": m.metadata, "target_bytes": m.targets,
			"header_bytes": m.wire - m.metadata - m.targets - m.other, "wire_bytes": m.wire,
			// Merkle snapshot inclusion proofs (GET /api/v1/merkle/…): metadata too, for
			// cairn get; counted apart so metadata_bytes keeps its meaning (TUF files).
			"merkle_proofs": m.proofs, "merkle_proof_bytes": m.merkle,
		}
		if timedOut {
			// tuf-js 5.0.1 parses a snapshot in time quadratic in its roles (BENCHMARKS.md):
			// say so rather than wait for hours.
			r["timed_out"] = true
			fmt.Printf("%-10s %-8s did not finish within -client-timeout %s\n", client, phase, o.clientTimeout)
		}
		emit(o, r)
		fmt.Printf("%-10s %-8s %3d requests, metadata %9d B, proofs %6d B (%d), targets %7d B, on the wire %9d B\n",
			client, phase, m.requests, m.metadata, m.merkle, m.proofs, m.targets, m.wire)
		return nil
	}
	for _, cl := range clients {
		if err := measure("fresh", cl.name, cl.run); err != nil {
			return err
		}
	}
	// One upload to another project: a new snapshot, the target's chain unchanged.
	md, raw, err := other.next("", 0)
	if err != nil {
		return err
	}
	if res, err := c.submit(ctx, other, raw, "60s"); err != nil || res.Status != api.StatusPublished {
		return fmt.Errorf("wire: upload to %s: %+v %v", other.name, res, err)
	}
	other.role = md
	for _, cl := range clients {
		if err := measure("refresh", cl.name, cl.run); err != nil {
			return err
		}
	}
	return nil
}

type wireTarget struct{ name, version, path string }

// wireRelease creates project name with one release of one 1 KiB file.
func wireRelease(ctx context.Context, c *client, name string) (wireTarget, error) {
	p, err := newProject(name)
	if err != nil {
		return wireTarget{}, err
	}
	if _, err := c.createProject(ctx, p, "60s"); err != nil {
		return wireTarget{}, fmt.Errorf("wire: creating %s: %w", name, err)
	}
	content := make([]byte, 1024)
	copy(content, name)
	sum, err := c.putBlob(ctx, content)
	if err != nil {
		return wireTarget{}, err
	}
	md, raw, err := p.next(strings.TrimPrefix(sum, "sha256:"), int64(len(content)))
	if err != nil {
		return wireTarget{}, err
	}
	if res, err := c.submit(ctx, p, raw, "60s"); err != nil || res.Status != api.StatusPublished {
		return wireTarget{}, fmt.Errorf("wire: release of %s: %+v %v", name, res, err)
	}
	for path := range md.Signed.Targets {
		return wireTarget{name: name, version: fmt.Sprintf("1.0.%d", p.nextRel), path: path}, nil
	}
	return wireTarget{}, errors.New("wire: the release has no target")
}

// wireGoTUF is a plain go-tuf v2 client, as an integrator would write one: the default
// fetcher (Go's transport asks for gzip), consistent-snapshot target paths.
func wireGoTUF(base, dir string, root []byte, target string) error {
	cfg, err := config.New(base+"/metadata", root)
	if err != nil {
		return err
	}
	cfg.LocalMetadataDir = dir
	cfg.LocalTargetsDir = filepath.Join(dir, "targets")
	cfg.RemoteTargetsURL = base + "/targets"
	cfg.PrefixTargetsWithHash = true
	if err := os.MkdirAll(cfg.LocalTargetsDir, 0o700); err != nil {
		return err
	}
	up, err := updater.New(cfg)
	if err != nil {
		return err
	}
	if err := up.Refresh(); err != nil {
		return err
	}
	ti, err := up.GetTargetInfo(target)
	if err != nil {
		return err
	}
	// A refresh finds the file in its cache and downloads no target bytes.
	if p, _, err := up.FindCachedTarget(ti, ""); err == nil && p != "" {
		return nil
	}
	_, _, err = up.DownloadTarget(ti, "", "")
	return err
}

func runCmd(ctx context.Context, env []string, bin string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = env
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// countingProxy forwards to the server and counts what it sends back: every byte written
// to client connections (wire), and response body bytes by kind.
type countingProxy struct {
	url                                      string
	srv                                      *http.Server
	wire, metadata, targets, other, requests atomic.Int64
	// merkle and proofs count Merkle proof bytes and requests (also in other).
	merkle, proofs atomic.Int64
}

type wireCounts struct{ wire, metadata, targets, other, requests, merkle, proofs int64 }

func startCountingProxy(upstream *url.URL) (*countingProxy, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("wire: proxy listen: %w", err)
	}
	px := &countingProxy{url: "http://" + ln.Addr().String()}
	rp := httputil.NewSingleHostReverseProxy(upstream)
	// Pass Accept-Encoding through untouched and never decompress: the client gets the
	// bytes the server sent.
	rp.Transport = &http.Transport{DisableCompression: true, MaxIdleConnsPerHost: 16}
	px.srv = &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			px.requests.Add(1)
			ctr := &px.other
			var w2 http.ResponseWriter = w
			if strings.HasPrefix(r.URL.Path, "/api/v1/merkle/") {
				px.proofs.Add(1)
				w2 = &countingWriter{ResponseWriter: w, n: &px.merkle}
			}
			switch {
			case strings.HasPrefix(r.URL.Path, "/metadata/"):
				ctr = &px.metadata
			case strings.HasPrefix(r.URL.Path, "/targets/"):
				ctr = &px.targets
			}
			rp.ServeHTTP(&countingWriter{ResponseWriter: w2, n: ctr}, r)
		}),
		ReadHeaderTimeout: 10 * time.Second,
	}
	go func() { _ = px.srv.Serve(&countingListener{Listener: ln, n: &px.wire}) }()
	return px, nil
}

func (p *countingProxy) reset() {
	for _, c := range []*atomic.Int64{&p.wire, &p.metadata, &p.targets, &p.other, &p.requests, &p.merkle, &p.proofs} {
		c.Store(0)
	}
}

func (p *countingProxy) snapshot() wireCounts {
	// The response's last bytes may still be in flight to the client's socket when it
	// returns: let the server's writes settle.
	time.Sleep(50 * time.Millisecond)
	return wireCounts{p.wire.Load(), p.metadata.Load(), p.targets.Load(), p.other.Load(), p.requests.Load(), p.merkle.Load(), p.proofs.Load()}
}

func (p *countingProxy) close() { _ = p.srv.Close() }

type countingWriter struct {
	http.ResponseWriter
	n *atomic.Int64
}

func (w *countingWriter) Write(b []byte) (int, error) {
	n, err := w.ResponseWriter.Write(b)
	w.n.Add(int64(n))
	return n, err
}

func (w *countingWriter) Flush() {
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

type countingListener struct {
	net.Listener
	n *atomic.Int64
}

func (l *countingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &countingConn{Conn: c, n: l.n}, nil
}

type countingConn struct {
	net.Conn
	n *atomic.Int64
}

func (c *countingConn) Write(b []byte) (int, error) {
	n, err := c.Conn.Write(b)
	c.n.Add(int64(n))
	return n, err
}
