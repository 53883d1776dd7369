// Package rekortest runs a real Rekor v2 server (rekor-tiles v2.3.0, POSIX backend) on
// loopback for tests. The binary is built once with `go install` into
// <repo>/.cache/sigstore/bin (or $CAIRN_REKOR_BIN) and reused.
//
// The tests that need it run only when CAIRN_TEST_REKOR=1 (make test-rekor): a cold build
// downloads and compiles rekor-tiles (~1 min on 2 cores).
package rekortest

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/cairn-dev/cairn/internal/testenv"
)

// Version is the rekor-tiles release the tests run.
const Version = "v2.3.0"

// Enabled reports whether the Rekor tests should run.
func Enabled() bool { return os.Getenv("CAIRN_TEST_REKOR") == "1" }

// Require skips t unless CAIRN_TEST_REKOR=1, saying how to run it; under CI it fails t
// instead (testenv.MissingTool).
func Require(t testing.TB) {
	t.Helper()
	if !Enabled() {
		testenv.MissingTool(t, "needs a real Rekor v2 server: run `make test-rekor` or `make test` (CAIRN_TEST_REKOR=1)")
	}
}

// Rekor is a running log.
type Rekor struct {
	URL       string
	Origin    string
	PublicKey ed25519.PublicKey
	PublicPEM []byte

	t        testing.TB
	bin      string
	dir      string
	keyFile  string
	httpPort int
	mu       sync.Mutex
	cmd      *exec.Cmd
	done     chan struct{}
}

var buildOnce = sync.OnceValues(build)

func repoRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..")
}

// build installs rekor-server (posix) into the cache and returns its path.
func build() (string, error) {
	if b := os.Getenv("CAIRN_REKOR_BIN"); b != "" {
		return b, nil
	}
	dir := filepath.Join(repoRoot(), ".cache", "sigstore", "bin")
	bin := filepath.Join(dir, "posix")
	if _, err := os.Stat(bin); err == nil {
		return bin, nil
	}
	cmd := exec.Command("go", "install", "github.com/sigstore/rekor-tiles/v2/cmd/rekor-server/posix@"+Version)
	cmd.Env = append(os.Environ(), "GOBIN="+dir, "GOTOOLCHAIN=local", "GOFLAGS=-buildvcs=false")
	cmd.Dir = os.TempDir() // outside the module: go install pkg@version
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("building rekor-server %s: %v\n%s", Version, err, out)
	}
	return bin, nil
}

func freePort(t testing.TB) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// Start builds (once) and starts a fresh log in a temporary directory; it is stopped when
// the test ends.
func Start(t testing.TB) *Rekor {
	t.Helper()
	Require(t)
	bin, err := buildOnce()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	keyFile := filepath.Join(dir, "log-key.pem")
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	pder, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	r := &Rekor{
		Origin: "rekor.cairn.test", PublicKey: pub,
		PublicPEM: pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pder}),
		t:         t, bin: bin, dir: dir, keyFile: keyFile, httpPort: freePort(t),
	}
	r.URL = "http://127.0.0.1:" + strconv.Itoa(r.httpPort)
	r.startProcess()
	t.Cleanup(r.Stop)
	return r
}

func (r *Rekor) startProcess() {
	r.t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	logf, err := os.OpenFile(filepath.Join(r.dir, "rekor.log"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		r.t.Fatal(err)
	}
	cmd := exec.Command(r.bin, "serve",
		"--http-address=127.0.0.1", "--http-port="+strconv.Itoa(r.httpPort),
		"--grpc-address=127.0.0.1", "--grpc-port="+strconv.Itoa(freePort(r.t)),
		"--http-metrics-port="+strconv.Itoa(freePort(r.t)),
		"--hostname="+r.Origin,
		"--storage-dir="+filepath.Join(r.dir, "log"),
		"--signer-filepath="+r.keyFile,
		"--checkpoint-interval=200ms", "--batch-max-age=50ms",
	)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		r.t.Fatalf("starting rekor-server: %v", err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); logf.Close(); close(done) }()
	r.cmd, r.done = cmd, done
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for {
		res, err := http.Get(r.URL + "/healthz")
		if err == nil {
			res.Body.Close()
			if res.StatusCode == http.StatusOK {
				return
			}
		}
		select {
		case <-done:
			log, _ := os.ReadFile(filepath.Join(r.dir, "rekor.log"))
			r.t.Fatalf("rekor-server exited at start:\n%s", log)
		case <-ctx.Done():
			r.t.Fatalf("rekor-server did not become healthy on %s in 30 s", r.URL)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// Stop kills the log (its storage stays, so Restart continues the same log).
func (r *Rekor) Stop() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.cmd == nil {
		return
	}
	_ = r.cmd.Process.Kill()
	<-r.done
	r.cmd = nil
}

// Restart starts the stopped log again on the same port and storage.
func (r *Rekor) Restart() {
	r.t.Helper()
	r.Stop()
	r.startProcess()
}

// Log returns the server's log output, for failure messages.
func (r *Rekor) Log() string {
	b, _ := os.ReadFile(filepath.Join(r.dir, "rekor.log"))
	return string(b)
}
