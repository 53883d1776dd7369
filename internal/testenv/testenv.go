// Package testenv decides what a test does when a tool it needs (helm, Rekor, an OCI
// client, Node.js, Chromium) is missing. Outside CI it skips, saying what to run, and
// records the skip where `make test` lists skips at the end (CAIRN_SKIP_LOG), so that a
// green run does not hide what it did not test. Under CI (CI=true, as CI services set
// it) a missing tool fails the test: a CI run that skips passes without testing.
package testenv

import (
	"fmt"
	"os"
	"strings"
	"testing"
)

// InCI reports whether the tests run in CI: CI is set to anything but "", "0" or "false".
func InCI() bool {
	switch strings.ToLower(os.Getenv("CI")) {
	case "", "0", "false":
		return false
	}
	return true
}

// MissingTool ends t because a tool it needs is missing: reason says which and how to get
// it. Under CI it fails; elsewhere it skips and records the skip.
func MissingTool(t testing.TB, reason string) {
	t.Helper()
	if InCI() {
		t.Fatalf("%s (CI is set: a missing tool fails the test instead of skipping it)", reason)
	}
	record(t, reason)
	t.Skip(reason)
}

// OptIn skips t, which needs something `make test` does not provide and that is run by
// its own target (cosign, ~15 min to build): reason says which. It never fails, in CI
// either, and records the skip.
func OptIn(t testing.TB, reason string) {
	t.Helper()
	record(t, reason)
	t.Skip(reason)
}

// record appends "<test>: <reason>" to $CAIRN_SKIP_LOG, if set. Appends of one short line
// are atomic, so parallel test binaries can share the file.
func record(t testing.TB, reason string) {
	p := os.Getenv("CAIRN_SKIP_LOG")
	if p == "" {
		return
	}
	f, err := os.OpenFile(p, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		t.Logf("recording the skip in CAIRN_SKIP_LOG=%s: %v", p, err)
		return
	}
	defer f.Close()
	wd, _ := os.Getwd()
	pkg := wd
	if i := strings.LastIndex(wd, "/"); i >= 0 {
		pkg = wd[i+1:]
	}
	if _, err := fmt.Fprintf(f, "  %s %s: %s\n", pkg, t.Name(), strings.ReplaceAll(reason, "\n", " ")); err != nil {
		t.Logf("recording the skip in CAIRN_SKIP_LOG=%s: %v", p, err)
	}
}
