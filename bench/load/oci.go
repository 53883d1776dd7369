package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// OCI push and pull throughput, the same requests against any Distribution API server
// (cairnd, the CNCF distribution registry), as raw HTTP so that the client library's own
// cost does not blur the comparison:
//
//   - small: -n artifacts of one -blob-size layer each: HEAD the layer, POST + PUT it
//     (monolithic upload), PUT the manifest by tag; then GET each manifest by tag and its
//     layer. -concurrency clients.
//
// Large blobs are measured by runOCILarge, against both servers at once.
//
// CPU time of the server process trees (-pids, and -pg-pid for PostgreSQL) is sampled
// around every measured step.
func runOCI(ctx context.Context, o *options) error {
	if o.largeMiB > 0 && o.refServer != "" {
		return runOCILarge(ctx, o)
	}
	c := &ociClient{base: strings.TrimRight(o.server, "/"), token: o.token, hc: &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 256}}}
	// Pulls are anonymous (cairnd's default allows them), as against the reference registry,
	// which runs without authentication; pushes carry the token.
	anon := &ociClient{base: c.base, hc: &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 256}}}
	repo := o.prefix + "/oci-bench"
	cfg := []byte("{}")
	cfgDigest := digestOf(cfg)
	if err := c.pushBlob(ctx, repo, cfgDigest, cfg); err != nil {
		return fmt.Errorf("pushing the config blob: %w", err)
	}
	pids := parsePIDs(o.pids)
	cpu := func() cpuSample {
		s := cpuSample{self: selfCPU(), at: time.Now(), pg: treeCPU(o.pgPID)}
		for _, p := range pids {
			s.server += treeCPU(p)
		}
		return s
	}

	// Small artifacts.
	layers := make([][]byte, o.n)
	for i := range layers {
		layers[i] = make([]byte, o.blobSize)
		_, _ = rand.Read(layers[i])
	}
	manifest := func(i int) []byte {
		d := digestOf(layers[i])
		return fmt.Appendf(nil, `{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","artifactType":"application/vnd.cairn.bench.v1","config":{"mediaType":"application/vnd.oci.empty.v1+json","digest":"%s","size":2},"layers":[{"mediaType":"application/octet-stream","digest":"%s","size":%d}]}`, cfgDigest, d, len(layers[i]))
	}
	step := func(name string, fn func(i int) error) error {
		lat := make([]time.Duration, o.n)
		var next atomic.Int64
		var wg sync.WaitGroup
		errs := make(chan error, o.concurrency)
		c0 := cpu()
		start := time.Now()
		for range o.concurrency {
			wg.Go(func() {
				for {
					i := int(next.Add(1)) - 1
					if i >= o.n {
						return
					}
					t := time.Now()
					if err := fn(i); err != nil {
						errs <- fmt.Errorf("%s artifact %d: %w", name, i, err)
						return
					}
					lat[i] = time.Since(t)
				}
			})
		}
		wg.Wait()
		took := time.Since(start)
		d := cpu().sub(c0)
		close(errs)
		if err := <-errs; err != nil {
			return err
		}
		slices.Sort(lat)
		r := map[string]any{"kind": "oci", "name": o.name, "step": name, "n": o.n, "concurrency": o.concurrency, "bytes": o.blobSize,
			"seconds": took.Seconds(), "per_s": float64(o.n) / took.Seconds(), "p50_ms": ms(lat[len(lat)/2]), "p99_ms": ms(lat[len(lat)*99/100]),
			"cpu_ms_per_op": 1000 * (d.server + d.pg) / float64(o.n)}
		d.into(r)
		emit(o, r)
		fmt.Printf("%s %s: %d in %s = %.0f/s, p50 %.1f ms, p99 %.1f ms, server CPU %.2fs + pg %.2fs\n", o.name, name, o.n, took.Round(time.Millisecond), float64(o.n)/took.Seconds(), ms(lat[len(lat)/2]), ms(lat[len(lat)*99/100]), d.server, d.pg)
		return nil
	}
	if err := step("push-small", func(i int) error {
		d := digestOf(layers[i])
		if ok, err := c.headBlob(ctx, repo, d); err != nil || ok {
			return fmt.Errorf("HEAD of a new blob: exists=%v %v", ok, err)
		}
		if err := c.pushBlob(ctx, repo, d, layers[i]); err != nil {
			return err
		}
		return c.putManifest(ctx, repo, fmt.Sprintf("a%d", i), manifest(i))
	}); err != nil {
		return err
	}
	if err := step("pull-small", func(i int) error {
		m, err := anon.get(ctx, "/v2/"+repo+"/manifests/"+fmt.Sprintf("a%d", i), "application/vnd.oci.image.manifest.v1+json")
		if err != nil {
			return err
		}
		if !bytes.Equal(m, manifest(i)) {
			return fmt.Errorf("manifest differs")
		}
		b, err := anon.get(ctx, "/v2/"+repo+"/blobs/"+digestOf(layers[i]), "")
		if err != nil {
			return err
		}
		if !bytes.Equal(b, layers[i]) {
			return fmt.Errorf("layer differs")
		}
		return nil
	}); err != nil {
		return err
	}

	return nil
}

// runOCILarge compares 100 MiB (-large-mib) pushes and pulls between -server (cairnd) and
// -ref-server (the reference registry), and -ref2-server (a second one, zot) if given, in
// one process, interleaved: three blobs (-large-pushes) pushed to each, the servers taking
// turns at going first, then nine rounds of pulls, taking turns again. Interleaving matters here: a server that does not fsync (the registry) leaves its
// write-back to land on whatever runs next, and measuring one server's whole sequence
// after the other's favoured whichever went first.
func runOCILarge(ctx context.Context, o *options) error {
	type side struct {
		name      string
		push, get *ociClient
		pids      []int
		digests   []string
	}
	mk := func(name, url, token, pids string) *side {
		hc := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 16}}
		base := strings.TrimRight(url, "/")
		return &side{name: name, push: &ociClient{base: base, token: token, hc: hc}, get: &ociClient{base: base, hc: hc}, pids: parsePIDs(pids)}
	}
	sides := []*side{mk(o.name, o.server, o.token, o.pids), mk(o.refName, o.refServer, "", o.refPIDs)}
	if o.ref2Server != "" {
		sides = append(sides, mk(o.ref2Name, o.ref2Server, "", o.ref2PIDs))
	}
	repo := o.prefix + "/oci-large"
	datas := make([][]byte, 3)
	for i := range datas {
		datas[i] = make([]byte, o.largeMiB<<20)
		_, _ = rand.Read(datas[i])
	}
	measure := func(sd *side, step string, round int, fn func() error) error {
		c0 := cpuSample{self: selfCPU(), at: time.Now()}
		for _, p := range sd.pids {
			c0.server += treeCPU(p)
		}
		if sd == sides[0] {
			c0.pg = treeCPU(o.pgPID)
		}
		t := time.Now()
		if err := fn(); err != nil {
			return fmt.Errorf("%s %s #%d: %w", sd.name, step, round, err)
		}
		took := time.Since(t)
		c1 := cpuSample{self: selfCPU(), at: time.Now()}
		for _, p := range sd.pids {
			c1.server += treeCPU(p)
		}
		if sd == sides[0] {
			c1.pg = treeCPU(o.pgPID)
		}
		r := map[string]any{"kind": "oci", "name": sd.name, "step": step, "round": round, "bytes": o.largeMiB << 20, "seconds": took.Seconds(),
			"mib_per_s": float64(o.largeMiB) / took.Seconds()}
		c1.sub(c0).into(r)
		emit(o, r)
		fmt.Printf("%s %s #%d: %d MiB in %s = %.0f MiB/s\n", sd.name, step, round, o.largeMiB, took.Round(time.Millisecond), float64(o.largeMiB)/took.Seconds())
		return nil
	}
	// order rotates the servers so that each goes first equally often (with two servers:
	// alternating, as before zot was added).
	order := func(i int) []*side {
		k := i % len(sides)
		return append(append([]*side(nil), sides[k:]...), sides[:k]...)
	}
	// Pushes beyond the three kept for the pulls send fresh random bytes each.
	var extra []byte
	for i := range max(o.largePushes, 1) {
		data := extra
		if i < len(datas) {
			data = datas[i]
		} else {
			if extra == nil {
				extra = make([]byte, o.largeMiB<<20)
			}
			_, _ = rand.Read(extra)
			data = extra
		}
		d := digestOf(data)
		for _, sd := range order(i) {
			if err := measure(sd, "push-large", i+1, func() error { return sd.push.pushBlob(ctx, repo, d, data) }); err != nil {
				return err
			}
			if i < len(datas) {
				sd.digests = append(sd.digests, d)
			}
		}
	}
	for round := 1; round <= 9; round++ {
		i := (round - 1) % len(datas)
		for _, sd := range order(round) {
			var got []byte
			// Into memory, checked after the clock stops: hashing 100 MiB in the client
			// would otherwise dominate the measurement.
			err := measure(sd, "pull-large", round, func() (err error) {
				got, err = sd.get.getInto(ctx, "/v2/"+repo+"/blobs/"+sd.digests[i], len(datas[i]))
				return err
			})
			if err != nil {
				return err
			}
			if !bytes.Equal(got, datas[i]) {
				return fmt.Errorf("%s pull-large #%d: the pulled bytes differ from the pushed ones", sd.name, round)
			}
		}
	}
	return nil
}

type ociClient struct {
	base, token string
	hc          *http.Client
}

func digestOf(b []byte) string {
	s := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(s[:])
}

func (c *ociClient) do(ctx context.Context, method, url, contentType string, body []byte, accept string) (*http.Response, error) {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	if !strings.HasPrefix(url, "http") {
		url = c.base + url
	}
	req, err := http.NewRequestWithContext(ctx, method, url, rd)
	if err != nil {
		return nil, err
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	if accept != "" {
		req.Header.Set("Accept", accept)
	}
	if c.token != "" {
		req.SetBasicAuth("bench", c.token)
	}
	return c.hc.Do(req)
}

// call sends a request and checks its status.
func (c *ociClient) call(ctx context.Context, want int, method, url, contentType string, body []byte, accept string) (*http.Response, error) {
	resp, err := c.do(ctx, method, url, contentType, body, accept)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != want {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 1024))
		resp.Body.Close()
		return nil, fmt.Errorf("%s %s: %d, want %d: %s", resp.Request.Method, resp.Request.URL.Path, resp.StatusCode, want, b)
	}
	return resp, nil
}

func (c *ociClient) headBlob(ctx context.Context, repo, d string) (bool, error) {
	resp, err := c.do(ctx, http.MethodHead, "/v2/"+repo+"/blobs/"+d, "", nil, "")
	if err != nil {
		return false, err
	}
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK, nil
}

func (c *ociClient) pushBlob(ctx context.Context, repo, d string, b []byte) error {
	resp, err := c.call(ctx, http.StatusAccepted, http.MethodPost, "/v2/"+repo+"/blobs/uploads/", "", nil, "")
	if err != nil {
		return err
	}
	resp.Body.Close()
	loc := resp.Header.Get("Location")
	sep := "?"
	if strings.Contains(loc, "?") {
		sep = "&"
	}
	resp, err = c.call(ctx, http.StatusCreated, http.MethodPut, loc+sep+"digest="+d, "application/octet-stream", b, "")
	if err != nil {
		return err
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return nil
}

func (c *ociClient) putManifest(ctx context.Context, repo, tag string, m []byte) error {
	resp, err := c.call(ctx, http.StatusCreated, http.MethodPut, "/v2/"+repo+"/manifests/"+tag, "application/vnd.oci.image.manifest.v1+json", m, "")
	if err != nil {
		return err
	}
	resp.Body.Close()
	return nil
}

func (c *ociClient) get(ctx context.Context, path, accept string) ([]byte, error) {
	resp, err := c.call(ctx, http.StatusOK, http.MethodGet, path, "", nil, accept)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	return io.ReadAll(resp.Body)
}

// getInto reads a blob into a buffer of the expected size.
func (c *ociClient) getInto(ctx context.Context, path string, size int) ([]byte, error) {
	resp, err := c.call(ctx, http.StatusOK, http.MethodGet, path, "", nil, "")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	buf := bytes.NewBuffer(make([]byte, 0, size))
	if _, err := buf.ReadFrom(resp.Body); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

func parsePIDs(s string) []int {
	var out []int
	for _, f := range strings.Split(s, ",") {
		var p int
		if _, err := fmt.Sscanf(strings.TrimSpace(f), "%d", &p); err == nil && p > 0 {
			out = append(out, p)
		}
	}
	return out
}
