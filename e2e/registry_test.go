package e2e

import (
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/cairn-dev/cairn/internal/testenv"
)

// startDistribution starts the CNCF distribution registry ($CAIRN_REGISTRY_BIN, built by
// `make registry`) on a free loopback port with its own storage, for the test; it returns
// its host:port. It has no referrers API: referrers pushed to it live in the referrers
// tag schema.
func startDistribution(t *testing.T) string {
	t.Helper()
	bin := os.Getenv("CAIRN_REGISTRY_BIN")
	if bin == "" {
		testenv.MissingTool(t, "CAIRN_REGISTRY_BIN is not set: `make registry` builds the distribution registry v3.1.2, and `make test` passes it")
	}
	if _, err := os.Stat(bin); err != nil {
		t.Fatalf("CAIRN_REGISTRY_BIN=%s: %v (run `make registry`)", bin, err)
	}
	dir := t.TempDir()
	addr := freeAddr(t)
	config := "version: 0.1\nlog:\n  level: error\n  accesslog:\n    disabled: true\nstorage:\n  filesystem:\n    rootdirectory: " + filepath.Join(dir, "data") + "\nhttp:\n  addr: " + addr + "\n"
	cfg := filepath.Join(dir, "config.yml")
	if err := os.WriteFile(cfg, []byte(config), 0o600); err != nil {
		t.Fatal(err)
	}
	log := &syncBuffer{}
	cmd := exec.Command(bin, "serve", cfg)
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting the distribution registry: %v", err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-done
		if t.Failed() {
			t.Logf("distribution registry log:\n%s", log.String())
		}
	})
	for deadline := time.Now().Add(30 * time.Second); ; {
		select {
		case err := <-done:
			done <- err
			t.Fatalf("the distribution registry exited while starting: %v\n%s", err, log.String())
		default:
		}
		if resp, err := http.Get("http://" + addr + "/v2/"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return addr
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("the distribution registry does not answer at %s after 30 s\n%s", addr, log.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}
