// Package s3test starts a real S3-compatible server for tests: versitygw (Apache-2.0), its
// POSIX backend in a temporary directory, on a loopback port. `make s3` builds it; the
// tests find it through CAIRN_S3_BIN.
package s3test

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

// Server is a running versitygw.
type Server struct {
	Endpoint, AccessKey, SecretKey, Bucket string
	// Root is the POSIX backend's directory: object "k" of the bucket is Root/Bucket/k.
	Root string
}

// Start runs versitygw until the test ends, with one bucket. Without CAIRN_S3_BIN it fails
// the test with what to run.
func Start(t testing.TB) *Server {
	t.Helper()
	bin := os.Getenv("CAIRN_S3_BIN")
	if bin == "" {
		t.Fatal("CAIRN_S3_BIN is not set: run the tests with `make test` (which builds versitygw with `make s3`)")
	}
	if _, err := os.Stat(bin); err != nil {
		t.Fatalf("CAIRN_S3_BIN: %v: run `make s3`", err)
	}
	root := t.TempDir()
	s := &Server{AccessKey: "cairn-test", SecretKey: "cairn-test-secret", Bucket: "blobs", Root: root}
	if err := os.Mkdir(filepath.Join(root, s.Bucket), 0o755); err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	s.Endpoint = "http://" + addr
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, bin, "--access", s.AccessKey, "--secret", s.SecretKey, "--port", addr, "--quiet", "posix", root)
	out, err := os.Create(filepath.Join(t.TempDir(), "versitygw.log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		cancel()
		t.Fatalf("starting versitygw: %v", err)
	}
	t.Cleanup(func() { cancel(); _ = cmd.Wait(); out.Close() })
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		resp, err := http.Get(s.Endpoint + "/")
		if err == nil {
			resp.Body.Close()
			return s
		}
		if time.Now().After(deadline) {
			b, _ := os.ReadFile(out.Name())
			t.Fatalf("versitygw did not answer on %s: %v\n%s", addr, err, b)
		}
	}
}

// String names the server in messages.
func (s *Server) String() string { return fmt.Sprintf("versitygw at %s", s.Endpoint) }
