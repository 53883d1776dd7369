package server

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"runtime"
	"sync/atomic"
	"testing"
	"time"
)

// fileConn counts the bytes net/http hands to the connection's ReadFrom from a file:
// sendfile(2) on Linux.
type fileConn struct {
	*net.TCPConn
	files *atomic.Int64
}

func (c fileConn) ReadFrom(src io.Reader) (int64, error) {
	file := false
	if lr, ok := src.(*io.LimitedReader); ok {
		_, file = lr.R.(*os.File)
	}
	n, err := c.TCPConn.ReadFrom(src)
	if file {
		c.files.Add(n)
	}
	return n, err
}

type fileListener struct {
	net.Listener
	files atomic.Int64
}

func (l *fileListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return fileConn{TCPConn: c.(*net.TCPConn), files: &l.files}, nil
}

// TestMetadataSendfile serves the head over real HTTP and checks which responses went by
// sendfile from the memfd, and that every one carries exactly the version's bytes.
func TestMetadataSendfile(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("memfds are Linux's")
	}
	s := benchServer(t)
	h := s.cache.Head()
	ln := &fileListener{Listener: mustListen(t)}
	srv := httptest.NewUnstartedServer(s.Handler())
	srv.Listener = ln
	srv.Start()
	defer srv.Close()
	client := &http.Client{Transport: &http.Transport{DisableCompression: true}}

	for _, tc := range []struct {
		name     string
		path     string
		header   http.Header
		code     int
		body     []byte
		sendfile bool
	}{
		{"snapshot", "/metadata/7.snapshot.json", nil, 200, h.snapshot.raw, true},
		{"snapshot again (a kept descriptor)", "/metadata/7.snapshot.json", nil, 200, h.snapshot.raw, true},
		{"timestamp.json stays in memory", "/metadata/timestamp.json", nil, 200, h.timestamp.raw, false},
		{"root.json is not immutable", "/metadata/root.json", nil, 200, h.root.raw, false},
		{"If-None-Match", "/metadata/7.snapshot.json", http.Header{"If-None-Match": {h.snapshot.etag}}, 304, nil, false},
		{"Range", "/metadata/7.snapshot.json", http.Header{"Range": {"bytes=10-19"}}, 206, h.snapshot.raw[10:20], false},
		{"gzip from memory", "/metadata/7.snapshot.json", http.Header{"Accept-Encoding": {"gzip"}}, 200, h.snapshot.gzipped().raw, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := ln.files.Load()
			req, _ := http.NewRequest(http.MethodGet, srv.URL+tc.path, nil)
			for k, v := range tc.header {
				req.Header[k] = v
			}
			resp, err := client.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			if err != nil {
				t.Fatal(err)
			}
			if resp.StatusCode != tc.code || !bytes.Equal(body, tc.body) {
				t.Fatalf("GET %s: %d with %d bytes, want %d with %d", tc.path, resp.StatusCode, len(body), tc.code, len(tc.body))
			}
			sent := ln.files.Load() - before
			if want := int64(0); tc.sendfile {
				want = int64(len(tc.body))
				if sent != want {
					t.Fatalf("%d bytes went by sendfile, want %d", sent, want)
				}
			} else if sent != 0 {
				t.Fatalf("%d bytes went by sendfile, want none", sent)
			}
		})
	}
}

// TestSendSourcesBounded makes more memfds than the bound: the oldest are retired (their
// descriptors closed), and a retired version is served again from a new memfd.
func TestSendSourcesBounded(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("memfds are Linux's")
	}
	var ss sendSources
	files := make([]*metaFile, sendSourcesMax+3)
	for i := range files {
		raw := []byte(fmt.Sprintf("%2048d", i))
		sum := sha256.Sum256(raw)
		files[i] = newMetaFile(raw, sum[:], int64(i+1), time.Now())
		if ss.source(files[i]) == nil {
			t.Fatalf("no memfd for version %d", i+1)
		}
	}
	if len(ss.live) != sendSourcesMax {
		t.Fatalf("%d memfds live, want %d", len(ss.live), sendSourcesMax)
	}
	for i, f := range files {
		if retired := f.send.Load() == nil; retired != (i < 3) {
			t.Fatalf("version %d retired: %v", i+1, retired)
		}
	}
	src := ss.source(files[0])
	d := src.take()
	if d == nil {
		t.Fatal("no descriptor from a new memfd")
	}
	got, err := io.ReadAll(&d.lr)
	if err != nil || !bytes.Equal(got, files[0].raw) {
		t.Fatalf("memfd holds %q (%v), want %q", got, err, files[0].raw)
	}
	src.give(d, true)
}

// TestSendSourceChecksBytes: a memfd is used only if it holds the bytes of the sha256.
func TestSendSourceChecksBytes(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("memfds are Linux's")
	}
	raw := bytes.Repeat([]byte("y"), 4096)
	other := sha256.Sum256([]byte("something else"))
	if _, err := newSendSource(raw, other[:]); err == nil {
		t.Fatal("a memfd was accepted for bytes of another sha256")
	}
	sum := sha256.Sum256(raw)
	src, err := newSendSource(raw, sum[:])
	if err != nil {
		t.Fatal(err)
	}
	// Sealed: the bytes served cannot change after the check.
	if _, err := src.memfd.WriteAt([]byte("z"), 0); err == nil {
		t.Fatal("a sealed memfd was written")
	}
	src.retire()
}

func mustListen(t *testing.T) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return ln
}
