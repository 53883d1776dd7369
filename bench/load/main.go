// Command load is Cairn's load harness. It drives a running cairnd over HTTP the way
// maintainers and TUF clients do, measures throughput, latency and the CPU time of the
// server processes (from /proc), and prints one "RESULT {json}" line per measurement so
// that bench/run.sh can collect them (mode report turns them into markdown tables).
//
//	go run ./bench/load -mode projects -server URL -token T -n 1000 -concurrency 32
//	go run ./bench/load -mode bulk -server URL -token T -database-url DBURL -n 1000000
//	go run ./bench/load -mode uploads  -server URL -token T -concurrency 8 -duration 20s \
//	    -server-pid PID -pg-pid POSTMASTER_PID
//	go run ./bench/load -mode publish  -server URL -token T -n 20
//	go run ./bench/load -mode get -url URL/metadata/timestamp.json -pids PID -name cairnd \
//	    -duration 20s -connections 50 -wrk "taskset -c 1 wrk"
//	go run ./bench/load -mode oci -name cairnd -server URL -token T -n 2000 -concurrency 8 \
//	    -blob-size 1024 -pids PID -pg-pid POSTMASTER_PID
//	go run ./bench/load -mode oci -name cairnd -server URL -token T -large-mib 100 \
//	    -ref-server REGISTRY_URL -pids PID -ref-pids PID -pg-pid POSTMASTER_PID \
//	    [-ref2-server ZOT_URL -ref2-name zot -ref2-pids PID]
//	go run ./bench/load -mode report < results.jsonl
//
// Maintainer keys are ed25519 and every project role is signed here, client side, with
// go-tuf's Sign and ToBytes, as the cairn CLI does.
package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cairn-dev/cairn/api"
	"github.com/cairn-dev/cairn/tufrepo"
	"github.com/sigstore/sigstore/pkg/signature"
	"github.com/theupdateframework/go-tuf/v2/metadata"
)

type options struct {
	mode        string
	server      string
	token       string
	n           int
	concurrency int
	duration    time.Duration
	warmup      time.Duration
	perUploader int
	blobSize    int
	prefix      string
	serverPID   int
	pgPID       int
	label       string
	// get
	url         string
	pids        string
	name        string
	connections int
	wrk         string
	out         string
	// oci
	largeMiB int
	// largePushes is how many blobs each server receives in the -large-mib comparison.
	largePushes int
	refServer   string
	refName     string
	refPIDs     string
	// A second reference registry (zot) in the same interleaved -large-mib comparison.
	ref2Server string
	ref2Name   string
	ref2PIDs   string
	// bulk
	databaseURL string
	// publish
	create bool
	// wire
	cairnBin      string
	noTUFJS       bool
	clientTimeout time.Duration
	settleTimeout time.Duration
	// search
	files    int
	requests int
}

func main() {
	var o options
	flag.StringVar(&o.mode, "mode", "", "projects | bulk | uploads | publish | get | oci | wire | search | report")
	flag.StringVar(&o.server, "server", "http://127.0.0.1:8080", "cairnd base URL")
	flag.StringVar(&o.token, "token", "", "admin token (or @file to read it from a file)")
	flag.IntVar(&o.n, "n", 1000, "projects: how many to create; publish: how many publishes to time")
	flag.IntVar(&o.concurrency, "concurrency", 8, "concurrent clients")
	flag.DurationVar(&o.duration, "duration", 20*time.Second, "measured duration (uploads, get)")
	flag.DurationVar(&o.warmup, "warmup", 5*time.Second, "warm-up before measuring (uploads, get)")
	flag.IntVar(&o.perUploader, "projects-per-uploader", 1, "uploads: projects each uploader cycles through (bounds role growth)")
	flag.IntVar(&o.blobSize, "blob-size", 1024, "uploads: bytes per uploaded file")
	flag.StringVar(&o.prefix, "prefix", "", "project name prefix (default: random)")
	flag.IntVar(&o.serverPID, "server-pid", 0, "cairnd PID, for CPU accounting")
	flag.IntVar(&o.pgPID, "pg-pid", 0, "PostgreSQL postmaster PID, for CPU accounting (the cluster should serve only this benchmark)")
	flag.StringVar(&o.label, "label", "", "free text recorded with the result")
	flag.StringVar(&o.url, "url", "", "get: URL to load")
	flag.StringVar(&o.pids, "pids", "", "get: comma-separated PIDs whose process trees serve the URL")
	flag.StringVar(&o.name, "name", "", "get: name of the server under test")
	flag.IntVar(&o.connections, "connections", 50, "get: wrk connections")
	flag.StringVar(&o.wrk, "wrk", "wrk", "get: wrk command (e.g. \"taskset -c 1 wrk\")")
	flag.StringVar(&o.out, "out", "", "append RESULT lines to this file too")
	flag.IntVar(&o.largeMiB, "large-mib", 0, "oci: with -ref-server, compare pushes and pulls of blobs of this many MiB")
	flag.IntVar(&o.largePushes, "large-pushes", 3, "oci: with -large-mib, blobs pushed to each server (the servers taking turns at going first); pulls use the first three")
	flag.StringVar(&o.refServer, "ref-server", "", "oci: the reference registry's base URL, for -large-mib")
	flag.StringVar(&o.refName, "ref-name", "registry", "oci: the reference registry's name in the results")
	flag.StringVar(&o.refPIDs, "ref-pids", "", "oci: the reference registry's PIDs, for CPU accounting")
	flag.StringVar(&o.ref2Server, "ref2-server", "", "oci: a second reference registry's base URL (e.g. zot), compared too with -large-mib")
	flag.StringVar(&o.ref2Name, "ref2-name", "zot", "oci: the second reference registry's name in the results")
	flag.StringVar(&o.ref2PIDs, "ref2-pids", "", "oci: the second reference registry's PIDs, for CPU accounting")
	flag.StringVar(&o.databaseURL, "database-url", "", "bulk: the database of the running cairnd, written directly")
	flag.StringVar(&o.cairnBin, "cairn", "", "wire: the cairn CLI binary, to measure a fresh `cairn get` and its refresh")
	flag.DurationVar(&o.clientTimeout, "client-timeout", 5*time.Minute, "wire: give up on one client run after this long (recorded as timed_out)")
	flag.DurationVar(&o.settleTimeout, "settle-timeout", 10*time.Minute, "projects, bulk, publish: how long to wait for what was staged to be published")
	flag.BoolVar(&o.noTUFJS, "no-tufjs", false, "wire: skip tuf-js (needs node and test/tufjs)")
	flag.BoolVar(&o.create, "create", false, "publish: each timed publish creates a new project (a shard role re-signed) instead of adding a version")
	flag.IntVar(&o.files, "files", 0, "search: release files to load with -n projects (-n 0: query what is there)")
	flag.IntVar(&o.requests, "requests", 500, "search: timed requests per query shape")
	flag.Parse()
	if strings.HasPrefix(o.token, "@") {
		b, err := os.ReadFile(o.token[1:])
		if err != nil {
			fatal(err)
		}
		o.token = strings.TrimSpace(string(b))
	}
	if o.prefix == "" {
		b := make([]byte, 3)
		_, _ = rand.Read(b)
		o.prefix = "b" + hex.EncodeToString(b)
	}
	ctx := context.Background()
	var err error
	switch o.mode {
	case "projects":
		err = runProjects(ctx, &o)
	case "bulk":
		err = runBulk(ctx, &o)
	case "uploads":
		err = runUploads(ctx, &o)
	case "publish":
		err = runPublish(ctx, &o)
	case "get":
		err = runGet(ctx, &o)
	case "oci":
		err = runOCI(ctx, &o)
	case "wire":
		err = runWire(ctx, &o)
	case "search":
		err = runSearch(ctx, &o)
	case "report":
		err = runReport(os.Stdin, os.Stdout)
	default:
		err = fmt.Errorf("unknown -mode %q", o.mode)
	}
	if err != nil {
		fatal(err)
	}
}

func fatal(err error) {
	fmt.Fprintln(os.Stderr, "load:", err)
	os.Exit(1)
}

// emit prints a result as one JSON line.
func emit(o *options, r map[string]any) {
	r["label"] = o.label
	r["time"] = time.Now().UTC().Format(time.RFC3339)
	// The 1-minute load average at the end: other work on the machine skews every number.
	if b, err := os.ReadFile("/proc/loadavg"); err == nil {
		r["loadavg"] = strings.Fields(string(b))[0]
	}
	b, _ := json.Marshal(r)
	fmt.Println("RESULT " + string(b))
	if o.out != "" {
		f, err := os.OpenFile(o.out, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
		if err == nil {
			fmt.Fprintln(f, string(b))
			f.Close()
		}
	}
}

// ---- HTTP client -------------------------------------------------------------------

type client struct {
	base  string
	token string
	hc    *http.Client
}

func newClient(o *options, conns int) *client {
	tr := &http.Transport{MaxIdleConns: conns * 2, MaxIdleConnsPerHost: conns * 2, MaxConnsPerHost: 0, IdleConnTimeout: time.Minute}
	return &client{base: strings.TrimRight(o.server, "/"), token: o.token, hc: &http.Client{Transport: tr, Timeout: 2 * time.Minute}}
}

func (c *client) do(ctx context.Context, method, path, ct string, body []byte) (int, []byte, error) {
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, bytes.NewReader(body))
	if err != nil {
		return 0, nil, err
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	if ct != "" {
		req.Header.Set("Content-Type", ct)
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, b, err
}

func (c *client) putBlob(ctx context.Context, content []byte) (string, error) {
	sum := sha256.Sum256(content)
	h := hex.EncodeToString(sum[:])
	st, b, err := c.do(ctx, http.MethodPut, "/api/v1/blobs/sha256:"+h, "application/octet-stream", content)
	if err != nil {
		return "", err
	}
	if st != http.StatusCreated && st != http.StatusOK {
		return "", fmt.Errorf("PUT blob: %d %s", st, b)
	}
	return h, nil
}

func decodeSubmit(st int, b []byte) (api.SubmitResult, error) {
	var res api.SubmitResult
	if st != http.StatusCreated && st != http.StatusAccepted {
		return res, fmt.Errorf("status %d: %s", st, bytes.TrimSpace(b))
	}
	if err := json.Unmarshal(b, &res); err != nil {
		return res, fmt.Errorf("decoding submit result: %w (%s)", err, b)
	}
	return res, nil
}

// ---- maintainer side: keys and project roles ---------------------------------------

type project struct {
	name    string
	signer  signature.Signer
	key     api.Key
	role    *metadata.Metadata[metadata.TargetsType]
	nextRel int
}

func newProject(name string) (*project, error) {
	priv, err := tufrepo.GenerateKey(tufrepo.KeyEd25519)
	if err != nil {
		return nil, err
	}
	s, err := tufrepo.NewSigner(priv)
	if err != nil {
		return nil, err
	}
	o, err := tufrepo.NewOnlineSigner(context.Background(), s)
	if err != nil {
		return nil, err
	}
	return &project{name: name, signer: s, key: tufrepo.KeyToAPI(o.Key)}, nil
}

func roleExpiry() time.Time {
	return time.Now().Add(tufrepo.ProjectRoleExpiry).UTC().Truncate(time.Second)
}

// sign signs md as the CLI does (go-tuf Sign, then ToBytes) and returns the file bytes.
func (p *project) sign(md *metadata.Metadata[metadata.TargetsType]) ([]byte, error) {
	md.Signatures = nil
	if _, err := md.Sign(p.signer); err != nil {
		return nil, err
	}
	return md.ToBytes(false)
}

// createRequest builds the create request with version 1 of the role (no files).
func (p *project) createRequest() ([]byte, error) {
	md := metadata.Targets(roleExpiry())
	md.Signed.SpecVersion = tufrepo.SpecVersion
	md.Signed.Version = 1
	raw, err := p.sign(md)
	if err != nil {
		return nil, err
	}
	p.role = md
	return json.Marshal(api.CreateProjectRequest{Name: p.name, Keys: []api.Key{p.key}, Threshold: 1, Metadata: raw})
}

// next builds and signs the next role version, adding one file if sum is not empty.
func (p *project) next(sum string, length int64) (*metadata.Metadata[metadata.TargetsType], []byte, error) {
	md := metadata.Targets(roleExpiry())
	md.Signed.SpecVersion = tufrepo.SpecVersion
	md.Signed.Version = p.role.Signed.Version + 1
	for k, v := range p.role.Signed.Targets {
		md.Signed.Targets[k] = v
	}
	if sum != "" {
		b, _ := hex.DecodeString(sum)
		tf := metadata.TargetFile()
		tf.Path = fmt.Sprintf("%s/1.0.%d/file.bin", p.name, p.nextRel)
		tf.Length = length
		tf.Hashes = metadata.Hashes{"sha256": b}
		md.Signed.Targets[tf.Path] = tf
	}
	raw, err := p.sign(md)
	return md, raw, err
}

func (c *client) createProject(ctx context.Context, p *project, wait string) (api.SubmitResult, error) {
	body, err := p.createRequest()
	if err != nil {
		return api.SubmitResult{}, err
	}
	st, b, err := c.do(ctx, http.MethodPost, "/api/v1/projects?wait="+wait, api.MediaJSON, body)
	if err != nil {
		return api.SubmitResult{}, err
	}
	return decodeSubmit(st, b)
}

func (c *client) submit(ctx context.Context, p *project, raw []byte, wait string) (api.SubmitResult, error) {
	st, b, err := c.do(ctx, http.MethodPost, "/api/v1/projects/"+p.name+"/roles?wait="+wait, api.MediaJSON, raw)
	if err != nil {
		return api.SubmitResult{}, err
	}
	return decodeSubmit(st, b)
}

// createMany creates projects with names prefix-00000… using conc clients. wait is the
// ?wait= of each request ("0s" returns once staged).
func createMany(ctx context.Context, c *client, names []string, conc int, wait string) ([]*project, time.Duration, error) {
	ps := make([]*project, len(names))
	var next atomic.Int64
	var firstErr error
	var mu sync.Mutex
	start := time.Now()
	var wg sync.WaitGroup
	for range conc {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= len(names) {
					return
				}
				p, err := newProject(names[i])
				if err == nil {
					_, err = c.createProject(ctx, p, wait)
				}
				if err != nil {
					mu.Lock()
					if firstErr == nil {
						firstErr = fmt.Errorf("creating %s: %w", names[i], err)
					}
					mu.Unlock()
					next.Store(int64(len(names)))
					return
				}
				ps[i] = p
			}
		}()
	}
	wg.Wait()
	return ps, time.Since(start), firstErr
}

// settle makes sure everything staged before now is published: it submits one more role
// version on a probe project and waits for it; a publish that includes it read every row
// committed before it.
func settle(ctx context.Context, c *client, prefix string, limit time.Duration) (time.Duration, error) {
	start := time.Now()
	p, err := newProject(prefix + "-settle")
	if err != nil {
		return 0, err
	}
	res, err := c.createProject(ctx, p, "60s")
	if err != nil {
		return 0, err
	}
	for res.Status != api.StatusPublished {
		if time.Since(start) > limit {
			return 0, fmt.Errorf("projects were not published within %s (-settle-timeout)", limit)
		}
		st, b, err := c.do(ctx, http.MethodGet, fmt.Sprintf("/api/v1/projects/%s/roles/1", p.name), "", nil)
		if err != nil {
			return 0, err
		}
		if st != http.StatusOK {
			return 0, fmt.Errorf("role status: %d %s", st, b)
		}
		_ = json.Unmarshal(b, &res)
		if res.Status != api.StatusPublished {
			time.Sleep(200 * time.Millisecond)
		}
	}
	return time.Since(start), nil
}

func runProjects(ctx context.Context, o *options) error {
	c := newClient(o, o.concurrency)
	names := make([]string, o.n)
	for i := range names {
		names[i] = fmt.Sprintf("%s-%06d", o.prefix, i)
	}
	cpu0 := sampleCPU(o)
	_, took, err := createMany(ctx, c, names, o.concurrency, "0s")
	if err != nil {
		return err
	}
	settleTook, err := settle(ctx, c, o.prefix, o.settleTimeout)
	if err != nil {
		return err
	}
	cpu := sampleCPU(o).sub(cpu0)
	r := map[string]any{
		"kind": "projects", "n": o.n, "concurrency": o.concurrency,
		"create_seconds": took.Seconds(), "creates_per_second": float64(o.n) / took.Seconds(),
		"settle_seconds": settleTook.Seconds(),
	}
	cpu.into(r)
	emit(o, r)
	fmt.Printf("created %d projects in %.1fs (%.0f/s), all published %.1fs later\n", o.n, took.Seconds(), float64(o.n)/took.Seconds(), settleTook.Seconds())
	return nil
}

// ---- uploads ------------------------------------------------------------------------

type sample struct {
	at      time.Time // when the upload started
	total   time.Duration
	put     time.Duration
	sign    time.Duration
	submit  time.Duration
	targets int
}

func runUploads(ctx context.Context, o *options) error {
	c := newClient(o, o.concurrency)
	nproj := o.concurrency * o.perUploader
	names := make([]string, nproj)
	for i := range names {
		names[i] = fmt.Sprintf("%s-up-%04d", o.prefix, i)
	}
	ps, _, err := createMany(ctx, c, names, min(o.concurrency, 32), "30s")
	if err != nil {
		return err
	}
	if _, err := settle(ctx, c, o.prefix, o.settleTimeout); err != nil {
		return err
	}
	start := time.Now()
	measureFrom := start.Add(o.warmup)
	stop := measureFrom.Add(o.duration)
	// CPU and the publisher's metrics are sampled at the edges of the measured window.
	var cpu0 cpuSample
	var before scraped
	var beforeErr error
	edge := make(chan struct{})
	time.AfterFunc(o.warmup, func() {
		cpu0 = sampleCPU(o)
		before, beforeErr = scrape(ctx, c)
		close(edge)
	})
	results := make([][]sample, o.concurrency)
	errs := make([]error, o.concurrency)
	var staged atomic.Int64
	var wg sync.WaitGroup
	for w := range o.concurrency {
		wg.Add(1)
		go func() {
			defer wg.Done()
			mine := ps[w*o.perUploader : (w+1)*o.perUploader]
			blob := make([]byte, o.blobSize)
			for i := 0; time.Now().Before(stop); i++ {
				p := mine[i%len(mine)]
				_, _ = rand.Read(blob)
				var s sample
				s.at = time.Now()
				sum, err := c.putBlob(ctx, blob)
				if err != nil {
					errs[w] = err
					return
				}
				t1 := time.Now()
				p.nextRel++
				md, raw, err := p.next(sum, int64(len(blob)))
				if err != nil {
					errs[w] = err
					return
				}
				t2 := time.Now()
				res, err := c.submit(ctx, p, raw, "30s")
				if err != nil {
					errs[w] = fmt.Errorf("%s version %d: %w", p.name, md.Signed.Version, err)
					return
				}
				t3 := time.Now()
				p.role = md
				if res.Status != api.StatusPublished {
					staged.Add(1)
					continue
				}
				s.put, s.sign, s.submit, s.total = t1.Sub(s.at), t2.Sub(t1), t3.Sub(t2), t3.Sub(s.at)
				s.targets = len(md.Signed.Targets)
				results[w] = append(results[w], s)
			}
		}()
	}
	time.Sleep(time.Until(stop))
	cpu1 := sampleCPU(o)
	after, err := scrape(ctx, c)
	if err != nil {
		return err
	}
	<-edge
	if beforeErr != nil {
		return beforeErr
	}
	wg.Wait()
	for _, e := range errs {
		if e != nil {
			return e
		}
	}
	var all []sample
	maxTargets := 0
	for _, rs := range results {
		for _, s := range rs {
			// Count an upload in the window if it completed inside it.
			end := s.at.Add(s.total)
			if end.After(measureFrom) && !end.After(stop) {
				all = append(all, s)
				maxTargets = max(maxTargets, s.targets)
			}
		}
	}
	if len(all) == 0 {
		return errors.New("no upload was published in the measured window")
	}
	pick := func(f func(sample) time.Duration) []time.Duration {
		out := make([]time.Duration, len(all))
		for i, s := range all {
			out[i] = f(s)
		}
		slices.Sort(out)
		return out
	}
	tot := pick(func(s sample) time.Duration { return s.total })
	sub := pick(func(s sample) time.Duration { return s.submit })
	put := pick(func(s sample) time.Duration { return s.put })
	sgn := pick(func(s sample) time.Duration { return s.sign })
	cpu := cpu1.sub(cpu0)
	d := publishDelta(before, after)
	r := map[string]any{
		"kind": "uploads", "concurrency": o.concurrency, "projects_per_uploader": o.perUploader, "blob_bytes": o.blobSize,
		"duration_s": o.duration.Seconds(), "published": len(all), "uploads_per_s": float64(len(all)) / o.duration.Seconds(),
		"not_published_in_wait": staged.Load(),
		"p50_ms":                ms(pct(tot, 50)), "p95_ms": ms(pct(tot, 95)), "p99_ms": ms(pct(tot, 99)), "max_ms": ms(tot[len(tot)-1]),
		"submit_p50_ms": ms(pct(sub, 50)), "submit_p99_ms": ms(pct(sub, 99)),
		"put_p50_ms": ms(pct(put, 50)), "sign_p50_ms": ms(pct(sgn, 50)),
		"max_targets_per_role": maxTargets,
	}
	cpu.into(r)
	if n := float64(len(all)); n > 0 {
		r["server_cpu_ms_per_upload"] = 1000 * cpu.server / n
		r["pg_cpu_ms_per_upload"] = 1000 * cpu.pg / n
	}
	d.into(r)
	emit(o, r)
	fmt.Printf("c=%d: %d published in %s = %.1f/s; latency p50 %.1f ms p95 %.1f ms p99 %.1f ms; publishes %d, mean batch %.1f; cpu cairnd %.2fs pg %.2fs self %.2fs\n",
		o.concurrency, len(all), o.duration, float64(len(all))/o.duration.Seconds(), ms(pct(tot, 50)), ms(pct(tot, 95)), ms(pct(tot, 99)), int(d.count), d.meanBatch(), cpu.server, cpu.pg, cpu.self)
	return nil
}

func pct(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(float64(len(sorted))*p/100+0.5) - 1
	return sorted[max(0, min(i, len(sorted)-1))]
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// ---- publish latency ----------------------------------------------------------------

// runPublish times n publishes of one staged role each: sequential role versions of one
// project with no new files, each waited for. It reports the client-side latency and the
// server's cairn_publish_duration_seconds over the same publishes.
func runPublish(ctx context.Context, o *options) error {
	c := newClient(o, 2)
	p, err := newProject(o.prefix + "-pub")
	if err != nil {
		return err
	}
	if _, err := c.createProject(ctx, p, "60s"); err != nil {
		return err
	}
	// One untimed publish first (the publisher may need to load the snapshot).
	if md, raw, err := p.next("", 0); err != nil {
		return err
	} else if _, err := c.submit(ctx, p, raw, "60s"); err != nil {
		return err
	} else {
		p.role = md
	}
	before, err := scrape(ctx, c)
	if err != nil {
		return err
	}
	fmt.Printf("timing %d publishes (create=%v)\n", o.n, o.create)
	var lat []time.Duration
	for i := range o.n {
		if o.create {
			np, err := newProject(fmt.Sprintf("%s-new-%06d", o.prefix, i))
			if err != nil {
				return err
			}
			t := time.Now()
			res, err := c.createProject(ctx, np, "60s")
			if err != nil {
				return fmt.Errorf("creating %s: %w", np.name, err)
			}
			if res.Status != api.StatusPublished {
				return fmt.Errorf("project %s not published within 60s", np.name)
			}
			lat = append(lat, time.Since(t))
			continue
		}
		md, raw, err := p.next("", 0)
		if err != nil {
			return err
		}
		t := time.Now()
		res, err := c.submit(ctx, p, raw, "60s")
		if err != nil {
			return err
		}
		if res.Status != api.StatusPublished {
			return fmt.Errorf("version %d not published within 60s", md.Signed.Version)
		}
		lat = append(lat, time.Since(t))
		p.role = md
	}
	after, err := scrape(ctx, c)
	if err != nil {
		return err
	}
	slices.Sort(lat)
	d := publishDelta(before, after)
	st, snap, err := c.do(ctx, http.MethodGet, "/metadata/timestamp.json", "", nil)
	snapBytes := 0
	if err == nil && st == 200 {
		var ts struct {
			Signed struct {
				Meta map[string]struct {
					Length  int   `json:"length"`
					Version int64 `json:"version"`
				} `json:"meta"`
			} `json:"signed"`
		}
		if json.Unmarshal(snap, &ts) == nil {
			snapBytes = ts.Signed.Meta["snapshot.json"].Length
		}
	}
	r := map[string]any{
		"kind": "publish", "n": o.n, "snapshot_bytes": snapBytes, "create": o.create,
		"submit_p50_ms": ms(pct(lat, 50)), "submit_p95_ms": ms(pct(lat, 95)), "submit_p99_ms": ms(pct(lat, 99)), "submit_max_ms": ms(lat[len(lat)-1]),
	}
	d.into(r)
	emit(o, r)
	fmt.Printf("%d publishes (create=%v, snapshot %d bytes): upload→published p50 %.1f ms p95 %.1f ms p99 %.1f ms; server publish duration mean %.1f ms, p50≤%s p95≤%s\n",
		o.n, o.create, snapBytes, ms(pct(lat, 50)), ms(pct(lat, 95)), ms(pct(lat, 99)), 1000*d.meanDuration(), d.durQuantile(0.5), d.durQuantile(0.95))
	return nil
}

// ---- metrics scraping ---------------------------------------------------------------

type promSample struct {
	name   string
	labels string
	value  float64
}

type scraped []promSample

func scrape(ctx context.Context, c *client) (scraped, error) {
	st, b, err := c.do(ctx, http.MethodGet, "/metrics", "", nil)
	if err != nil {
		return nil, err
	}
	if st != 200 {
		return nil, fmt.Errorf("/metrics: %d", st)
	}
	var out scraped
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		sp := strings.LastIndexByte(line, ' ')
		if sp < 0 {
			continue
		}
		v, err := strconv.ParseFloat(line[sp+1:], 64)
		if err != nil {
			continue
		}
		key := line[:sp]
		name, labels := key, ""
		if i := strings.IndexByte(key, '{'); i >= 0 {
			name, labels = key[:i], key[i:]
		}
		out = append(out, promSample{name, labels, v})
	}
	return out, sc.Err()
}

func (s scraped) sum(name, labelPart string) float64 {
	t := 0.0
	for _, x := range s {
		if x.name == name && strings.Contains(x.labels, labelPart) {
			t += x.value
		}
	}
	return t
}

func (s scraped) buckets(name string) map[string]float64 {
	out := map[string]float64{}
	for _, x := range s {
		if x.name == name+"_bucket" {
			i := strings.Index(x.labels, `le="`)
			if i >= 0 {
				le := x.labels[i+4:]
				le = le[:strings.IndexByte(le, '"')]
				out[le] = x.value
			}
		}
	}
	return out
}

type pubDelta struct {
	count, ok, errors, roles, durSum float64
	batch, dur                       map[string]float64 // cumulative bucket deltas
}

func publishDelta(a, b scraped) pubDelta {
	d := pubDelta{
		count:  b.sum("cairn_publish_batch_roles_count", "") - a.sum("cairn_publish_batch_roles_count", ""),
		roles:  b.sum("cairn_publish_batch_roles_sum", "") - a.sum("cairn_publish_batch_roles_sum", ""),
		durSum: b.sum("cairn_publish_duration_seconds_sum", "") - a.sum("cairn_publish_duration_seconds_sum", ""),
		ok:     b.sum("cairn_publishes_total", `result="ok"`) - a.sum("cairn_publishes_total", `result="ok"`),
		errors: b.sum("cairn_publishes_total", `result="error"`) - a.sum("cairn_publishes_total", `result="error"`),
		batch:  map[string]float64{}, dur: map[string]float64{},
	}
	for k, v := range b.buckets("cairn_publish_batch_roles") {
		d.batch[k] = v - a.buckets("cairn_publish_batch_roles")[k]
	}
	for k, v := range b.buckets("cairn_publish_duration_seconds") {
		d.dur[k] = v - a.buckets("cairn_publish_duration_seconds")[k]
	}
	return d
}

func (d pubDelta) meanBatch() float64 {
	if d.count == 0 {
		return 0
	}
	return d.roles / d.count
}

func (d pubDelta) meanDuration() float64 {
	if d.count == 0 {
		return 0
	}
	return d.durSum / d.count
}

// quantile returns the upper bound of the histogram bucket that holds quantile q.
func quantile(b map[string]float64, q float64) string {
	type kv struct {
		le float64
		s  string
		n  float64
	}
	var xs []kv
	total := 0.0
	for k, v := range b {
		f, err := strconv.ParseFloat(k, 64)
		if err != nil {
			continue
		}
		xs = append(xs, kv{f, k, v})
		if k == "+Inf" {
			total = v
		}
	}
	slices.SortFunc(xs, func(a, b kv) int {
		switch {
		case a.le < b.le:
			return -1
		case a.le > b.le:
			return 1
		}
		return 0
	})
	if total == 0 {
		return "-"
	}
	for _, x := range xs {
		if x.n >= q*total {
			return x.s
		}
	}
	return "+Inf"
}

func (d pubDelta) durQuantile(q float64) string { return quantile(d.dur, q) }

// batchHistogram renders the non-empty batch-size buckets as "≤1:12 ≤2:3 …".
func (d pubDelta) batchHistogram() string {
	type kv struct {
		le float64
		n  float64
	}
	var xs []kv
	for k, v := range d.batch {
		f, _ := strconv.ParseFloat(k, 64)
		xs = append(xs, kv{f, v})
	}
	slices.SortFunc(xs, func(a, b kv) int {
		switch {
		case a.le < b.le:
			return -1
		case a.le > b.le:
			return 1
		}
		return 0
	})
	var parts []string
	prev := 0.0
	for _, x := range xs {
		if n := x.n - prev; n > 0 {
			parts = append(parts, fmt.Sprintf("≤%g:%g", x.le, n))
		}
		prev = x.n
	}
	return strings.Join(parts, " ")
}

func (d pubDelta) into(r map[string]any) {
	r["publishes"] = d.count
	r["publishes_ok"] = d.ok
	r["publish_errors"] = d.errors
	r["mean_batch_roles"] = d.meanBatch()
	r["batch_hist"] = d.batchHistogram()
	r["batch_p50"] = quantile(d.batch, 0.5)
	r["batch_p95"] = quantile(d.batch, 0.95)
	r["publish_mean_ms"] = 1000 * d.meanDuration()
	r["publish_p50_le_s"] = d.durQuantile(0.5)
	r["publish_p95_le_s"] = d.durQuantile(0.95)
}

// ---- CPU accounting from /proc ------------------------------------------------------

const clkTck = 100.0 // USER_HZ on Linux

// procTimes returns utime+stime and cutime+cstime of pid, in seconds, and its parent.
func procTimes(pid int) (self, children float64, ppid int, ok bool) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, 0, 0, false
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, 0, 0, false
	}
	f := strings.Fields(s[i+1:])
	// f[0] is field 3 (state): utime is field 14 → f[11].
	if len(f) < 15 {
		return 0, 0, 0, false
	}
	num := func(j int) float64 { v, _ := strconv.ParseFloat(f[j], 64); return v }
	pp, _ := strconv.Atoi(f[1])
	return (num(11) + num(12)) / clkTck, (num(13) + num(14)) / clkTck, pp, true
}

// treeCPU is the CPU time of pid and every live descendant, plus the reaped children's
// time that the kernel adds to their parents: a process tree's total, which only grows.
func treeCPU(root int) float64 {
	if root <= 0 {
		return 0
	}
	ents, _ := os.ReadDir("/proc")
	type pinfo struct {
		self, ch float64
		ppid     int
	}
	procs := map[int]pinfo{}
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		s, c, pp, ok := procTimes(pid)
		if ok {
			procs[pid] = pinfo{s, c, pp}
		}
	}
	in := map[int]bool{root: true}
	for changed := true; changed; {
		changed = false
		for pid, p := range procs {
			if !in[pid] && in[p.ppid] {
				in[pid] = true
				changed = true
			}
		}
	}
	t := 0.0
	for pid := range in {
		if p, ok := procs[pid]; ok {
			t += p.self + p.ch
		}
	}
	return t
}

type cpuSample struct {
	server, pg, self float64
	at               time.Time
}

func selfCPU() float64 {
	s, _, _, _ := procTimes(os.Getpid())
	return s
}

func sampleCPU(o *options) cpuSample {
	return cpuSample{server: treeCPU(o.serverPID), pg: treeCPU(o.pgPID), self: selfCPU(), at: time.Now()}
}

func (a cpuSample) sub(b cpuSample) cpuSample {
	return cpuSample{server: a.server - b.server, pg: a.pg - b.pg, self: a.self - b.self, at: b.at}
}

func (c cpuSample) into(r map[string]any) {
	r["cpu_server_s"] = c.server
	r["cpu_pg_s"] = c.pg
	r["cpu_harness_s"] = c.self
}

// ---- GET load with wrk --------------------------------------------------------------

func runGet(ctx context.Context, o *options) error {
	if o.url == "" {
		return errors.New("-url is required")
	}
	var pids []int
	for _, s := range strings.Split(o.pids, ",") {
		if s = strings.TrimSpace(s); s != "" {
			p, err := strconv.Atoi(s)
			if err != nil {
				return fmt.Errorf("-pids: %w", err)
			}
			pids = append(pids, p)
		}
	}
	resp, err := http.Get(o.url)
	if err != nil {
		return err
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 {
		return fmt.Errorf("GET %s: %d", o.url, resp.StatusCode)
	}
	hdr := []string{}
	for _, h := range []string{"Content-Type", "Cache-Control", "ETag", "Last-Modified", "Accept-Ranges"} {
		if v := resp.Header.Get(h); v != "" {
			hdr = append(hdr, h+": "+v)
		}
	}
	wrkArgs := strings.Fields(o.wrk)
	run := func(d time.Duration) (string, float64, error) {
		args := append(wrkArgs[1:], "-t1", fmt.Sprintf("-c%d", o.connections), fmt.Sprintf("-d%ds", int(d.Seconds())), "--latency", o.url)
		cmd := exec.CommandContext(ctx, wrkArgs[0], args...)
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		err := cmd.Run()
		var cpu float64
		if cmd.ProcessState != nil {
			cpu = (cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()).Seconds()
		}
		if err != nil {
			return out.String(), cpu, fmt.Errorf("wrk: %w: %s", err, out.String())
		}
		return out.String(), cpu, nil
	}
	if o.warmup > 0 {
		if _, _, err := run(max(o.warmup, time.Second)); err != nil {
			return err
		}
	}
	tree := func() float64 {
		t := 0.0
		for _, p := range pids {
			t += treeCPU(p)
		}
		return t
	}
	c0 := tree()
	out, wrkCPU, err := run(o.duration)
	if err != nil {
		return err
	}
	cpu := tree() - c0
	var reqs, non2xx float64
	var rps float64
	var p50, p99 string
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		switch {
		case len(f) >= 2 && f[0] == "Requests/sec:":
			rps, _ = strconv.ParseFloat(f[1], 64)
		case len(f) >= 4 && f[1] == "requests" && f[2] == "in":
			reqs, _ = strconv.ParseFloat(f[0], 64)
		case len(f) >= 2 && f[0] == "50%":
			p50 = f[1]
		case len(f) >= 2 && f[0] == "99%":
			p99 = f[1]
		case strings.HasPrefix(strings.TrimSpace(line), "Non-2xx"):
			non2xx, _ = strconv.ParseFloat(f[len(f)-1], 64)
		}
	}
	if reqs == 0 || cpu <= 0 {
		return fmt.Errorf("no measurement (requests %v, cpu %v): %s", reqs, cpu, out)
	}
	r := map[string]any{
		"kind": "get", "name": o.name, "url": o.url, "bytes": len(body), "headers": strings.Join(hdr, "; "),
		"connections": o.connections, "duration_s": o.duration.Seconds(),
		"requests": reqs, "rps": rps, "non2xx": non2xx, "cpu_server_s": cpu, "req_per_cpu_s": reqs / cpu,
		"cpu_wrk_s": wrkCPU, "lat_p50": p50, "lat_p99": p99,
	}
	emit(o, r)
	fmt.Printf("%-8s %-40s %7d B: %9.0f req/s, %8.0f req per server CPU-s (server CPU %.2fs, wrk %.2fs), p50 %s p99 %s\n",
		o.name, filepath.Base(o.url), len(body), rps, reqs/cpu, cpu, wrkCPU, p50, p99)
	return nil
}
