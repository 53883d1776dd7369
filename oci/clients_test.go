package oci_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// The real OCI clients (crane, oras, notation, cosign) are tested against cairnd in
// e2e/ociclients_test.go. This package only needs oras, to pull a release; it comes from
// the shared client cache, installed there by test/ociclients/install.sh (pinned version,
// one installer at a time) when missing.
func client(t *testing.T, name string) string {
	t.Helper()
	dir := os.Getenv("CAIRN_OCI_CLIENTS")
	if dir == "" {
		cache, err := os.UserCacheDir()
		if err != nil {
			t.Fatal(err)
		}
		dir = filepath.Join(cache, "cairn", "ociclients")
	}
	bin := filepath.Join(dir, name)
	if _, err := os.Stat(bin); err == nil {
		return bin
	}
	cmd := exec.Command("bash", filepath.Join("..", "test", "ociclients", "install.sh"), "-d", dir, name)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("installing %s: %v\n%s", name, err, out)
	}
	return bin
}
