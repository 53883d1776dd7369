// Command ociload measures OCI push and pull throughput of a registry over plain HTTP:
// many small artifacts (a blob, a config and a manifest each, pushed POST+PUT and by
// tag, then pulled), and one large blob (pushed POST, PATCH stream, PUT; pulled whole).
// bench/ociload/run.sh runs it against cairnd and the CNCF distribution registry.
package main

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"flag"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/url"
	"os"
	"sort"
	"sync"
	"sync/atomic"
	"time"
)

type client struct {
	base, user, pass string
	http             *http.Client
}

func (c *client) do(method, path string, body io.Reader, size int64, hdr map[string]string) (*http.Response, error) {
	u := path
	if len(path) > 0 && path[0] == '/' {
		u = c.base + path
	}
	req, err := http.NewRequest(method, u, body)
	if err != nil {
		return nil, err
	}
	if size >= 0 {
		req.ContentLength = size
	}
	if c.pass != "" {
		req.SetBasicAuth(c.user, c.pass)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	return c.http.Do(req)
}

func digest(b []byte) string {
	s := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(s[:])
}

func expect(resp *http.Response, err error, status int, what string) (*http.Response, error) {
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	if resp.StatusCode != status {
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		return nil, fmt.Errorf("%s: status %d: %s", what, resp.StatusCode, b)
	}
	return resp, nil
}

// call sends a request and checks its status.
func (c *client) call(method, path string, body io.Reader, size int64, hdr map[string]string, status int, what string) (*http.Response, error) {
	resp, err := c.do(method, path, body, size, hdr)
	return expect(resp, err, status, what)
}

func drain(resp *http.Response) int64 {
	n, _ := io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return n
}

// pushBlob pushes POST then PUT with the body (both registries support it).
func (c *client) pushBlob(repo string, b []byte) error {
	resp, err := c.call("POST", "/v2/"+repo+"/blobs/uploads/", nil, 0, nil, http.StatusAccepted, "blob POST")
	return c.finishBlob(resp, err, b)
}

func (c *client) finishBlob(resp *http.Response, err error, b []byte) error {
	if err != nil {
		return err
	}
	drain(resp)
	loc, err := url.Parse(resp.Header.Get("Location"))
	if err != nil {
		return err
	}
	q := loc.Query()
	q.Set("digest", digest(b))
	loc.RawQuery = q.Encode()
	target := loc.String()
	if !loc.IsAbs() {
		target = c.base + target
	}
	resp, err = c.call("PUT", target, bytes.NewReader(b), int64(len(b)), map[string]string{"Content-Type": "application/octet-stream"}, http.StatusCreated, "blob PUT")
	if err != nil {
		return err
	}
	drain(resp)
	return nil
}

func median(xs []float64) float64 {
	s := append([]float64(nil), xs...)
	sort.Float64s(s)
	return s[len(s)/2]
}

func main() {
	base := flag.String("url", "http://127.0.0.1:5000", "registry base URL")
	user := flag.String("user", "bench", "Basic auth user")
	pass := flag.String("pass", "", "Basic auth password (a Cairn token); empty for none")
	repo := flag.String("repo", "bench/load", "repository")
	n := flag.Int("n", 300, "small artifacts")
	conc := flag.Int("c", 8, "concurrent clients")
	bigMiB := flag.Int("big", 100, "large blob size in MiB")
	name := flag.String("name", "registry", "name in the output")
	reps := flag.Int("reps", 5, "large blob transfers (median reported)")
	flag.Parse()
	c := &client{base: *base, user: *user, pass: *pass, http: &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: *conc * 2}}}

	type art struct{ blob, config, manifest []byte }
	arts := make([]art, *n)
	for i := range arts {
		blob := make([]byte, 1024)
		_, _ = rand.Read(blob)
		config := []byte(fmt.Sprintf(`{"architecture":"amd64","os":"linux","n":%d}`, i))
		manifest := []byte(fmt.Sprintf(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"%s","size":%d},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"%s","size":%d}]}`,
			digest(config), len(config), digest(blob), len(blob)))
		arts[i] = art{blob, config, manifest}
	}
	parallel := func(fn func(i int) error) (time.Duration, error) {
		var next atomic.Int64
		var firstErr error
		var mu sync.Mutex
		var wg sync.WaitGroup
		start := time.Now()
		for range *conc {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for {
					i := int(next.Add(1)) - 1
					if i >= *n {
						return
					}
					if err := fn(i); err != nil {
						mu.Lock()
						if firstErr == nil {
							firstErr = err
						}
						mu.Unlock()
						return
					}
				}
			}()
		}
		wg.Wait()
		return time.Since(start), firstErr
	}
	fail := func(err error) {
		if err != nil {
			log.Fatal(err)
		}
	}
	d, err := parallel(func(i int) error {
		a := arts[i]
		if err := c.pushBlob(*repo, a.blob); err != nil {
			return err
		}
		if err := c.pushBlob(*repo, a.config); err != nil {
			return err
		}
		resp, err := c.call("PUT", fmt.Sprintf("/v2/%s/manifests/t%d", *repo, i), bytes.NewReader(a.manifest), int64(len(a.manifest)), map[string]string{"Content-Type": "application/vnd.oci.image.manifest.v1+json"}, http.StatusCreated, "manifest PUT")
		if err != nil {
			return err
		}
		drain(resp)
		return nil
	})
	fail(err)
	fmt.Printf("%s\tpush small\t%d artifacts\t%.1f artifacts/s\n", *name, *n, float64(*n)/d.Seconds())
	d, err = parallel(func(i int) error {
		resp, err := c.call("GET", fmt.Sprintf("/v2/%s/manifests/t%d", *repo, i), nil, -1, map[string]string{"Accept": "application/vnd.oci.image.manifest.v1+json"}, http.StatusOK, "manifest GET")
		if err != nil {
			return err
		}
		drain(resp)
		for _, b := range [][]byte{arts[i].config, arts[i].blob} {
			resp, err := c.call("GET", "/v2/"+*repo+"/blobs/"+digest(b), nil, -1, nil, http.StatusOK, "blob GET")
			if err != nil {
				return err
			}
			if drain(resp) != int64(len(b)) {
				return fmt.Errorf("short blob")
			}
		}
		return nil
	})
	fail(err)
	fmt.Printf("%s\tpull small\t%d artifacts\t%.1f artifacts/s\n", *name, *n, float64(*n)/d.Seconds())

	// The large blob, -reps times (distinct bytes each time); the median is reported, as
	// one 100 MiB transfer on a shared machine is noisy.
	big := make([]byte, *bigMiB<<20)
	_, _ = rand.Read(big)
	var pushes, pulls []float64
	for rep := range *reps {
		big[0], big[1] = byte(rep), byte(rep>>8)
		start := time.Now()
		resp, err := c.call("POST", "/v2/"+*repo+"/blobs/uploads/", nil, 0, nil, http.StatusAccepted, "POST")
		fail(err)
		drain(resp)
		loc := resp.Header.Get("Location")
		if u, _ := url.Parse(loc); !u.IsAbs() {
			loc = c.base + loc
		}
		resp, err = c.call("PATCH", loc, bytes.NewReader(big), -1, map[string]string{"Content-Type": "application/octet-stream"}, http.StatusAccepted, "PATCH")
		fail(err)
		drain(resp)
		loc2, _ := url.Parse(resp.Header.Get("Location"))
		q := loc2.Query()
		q.Set("digest", digest(big))
		loc2.RawQuery = q.Encode()
		target := loc2.String()
		if !loc2.IsAbs() {
			target = c.base + target
		}
		resp, err = c.call("PUT", target, nil, 0, nil, http.StatusCreated, "PUT")
		fail(err)
		drain(resp)
		pushes = append(pushes, float64(*bigMiB)/time.Since(start).Seconds())
		start = time.Now()
		resp, err = c.call("GET", "/v2/"+*repo+"/blobs/"+digest(big), nil, -1, nil, http.StatusOK, "GET big")
		fail(err)
		if drain(resp) != int64(len(big)) {
			log.Fatal("short big blob")
		}
		pulls = append(pulls, float64(*bigMiB)/time.Since(start).Seconds())
	}
	fmt.Printf("%s\tpush big\t%d MiB x%d\t%.1f MiB/s (median)\n", *name, *bigMiB, *reps, median(pushes))
	fmt.Printf("%s\tpull big\t%d MiB x%d\t%.1f MiB/s (median)\n", *name, *bigMiB, *reps, median(pulls))
	os.Exit(0)
}
