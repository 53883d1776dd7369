package server_test

import (
	"bytes"
	"crypto/rand"
	"io"
	"net"
	"net/http"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/cairn-dev/cairn/internal/testrepo"
	"github.com/cairn-dev/cairn/tufrepo"
)

// readFromConn is a server connection that records what net/http hands to its ReadFrom:
// a target body reaches it (and *net.TCPConn's sendfile) only if no ResponseWriter wrapper
// on the way hides io.ReaderFrom.
type readFromConn struct {
	*net.TCPConn
	mu    *sync.Mutex
	files *int64 // bytes passed to ReadFrom from an *os.File
}

func (c readFromConn) ReadFrom(src io.Reader) (int64, error) {
	file := false
	switch s := src.(type) {
	case *os.File:
		file = true
	case *io.LimitedReader:
		_, file = s.R.(*os.File)
	}
	n, err := c.TCPConn.ReadFrom(src)
	if file {
		c.mu.Lock()
		*c.files += n
		c.mu.Unlock()
	}
	return n, err
}

type readFromListener struct {
	net.Listener
	mu    sync.Mutex
	files int64
}

func (l *readFromListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return readFromConn{TCPConn: c.(*net.TCPConn), mu: &l.mu, files: &l.files}, nil
}

// TestTargetDownloadUsesSendfile downloads a published target through the whole handler
// (router, metrics middleware) and checks that its bytes went from the blob file to the
// connection's ReadFrom, which is sendfile(2) on Linux, instead of through a copy buffer.
func TestTargetDownloadUsesSendfile(t *testing.T) {
	r := freshRepo(t)
	alice := testrepo.NewKey(t, tufrepo.KeyEd25519)
	r.CreateProject(t, r.AdminToken, "demo", 1, []*testrepo.Key{alice}, alice)
	content := make([]byte, 256<<10)
	_, _ = rand.Read(content)
	f := testrepo.File{Path: "demo/1.0/demo.tgz", Content: content}
	sum := r.PutBlob(t, r.AdminToken, f.Content)
	if resp := r.Submit(t, r.AdminToken, "demo", testrepo.Sign(t, testrepo.Role(2, time.Now().Add(24*time.Hour), f), alice)); resp.Status != http.StatusCreated {
		t.Fatalf("upload: %d %s", resp.Status, resp.Body)
	}
	inner, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ln := &readFromListener{Listener: inner}
	hs := &http.Server{Handler: r.Server.Handler()}
	go func() { _ = hs.Serve(ln) }()
	t.Cleanup(func() { _ = hs.Close() })

	for _, c := range []struct {
		name, rangeHeader string
		want              []byte
		status            int
	}{
		{"whole file", "", content, http.StatusOK},
		{"range", "bytes=1000-200999", content[1000:201000], http.StatusPartialContent},
	} {
		t.Run(c.name, func(t *testing.T) {
			ln.mu.Lock()
			before := ln.files
			ln.mu.Unlock()
			req, _ := http.NewRequest(http.MethodGet, "http://"+inner.Addr().String()+"/targets/demo/1.0/"+sum+".demo.tgz", nil)
			if c.rangeHeader != "" {
				req.Header.Set("Range", c.rangeHeader)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			if err != nil || resp.StatusCode != c.status || !bytes.Equal(body, c.want) {
				t.Fatalf("GET target: %d, %d bytes (%v); want %d with %d bytes", resp.StatusCode, len(body), err, c.status, len(c.want))
			}
			// net/http writes the first 512 bytes (its sniffing length) itself, then hands
			// the rest to ReadFrom. The counter is bumped when ReadFrom returns, which can be
			// after the client has read the last byte: wait for it (bounded), not for time.
			var sent int64
			for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(5 * time.Millisecond) {
				ln.mu.Lock()
				sent = ln.files - before
				ln.mu.Unlock()
				if sent >= int64(len(c.want)-512) || time.Now().After(deadline) {
					break
				}
			}
			if sent < int64(len(c.want)-512) {
				t.Errorf("%d of %d body bytes went from the blob file to the connection's ReadFrom (sendfile): a ResponseWriter wrapper hides io.ReaderFrom", sent, len(c.want))
			}
		})
	}
}
