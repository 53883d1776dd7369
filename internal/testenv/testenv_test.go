package testenv_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cairn-dev/cairn/internal/testenv"
)

// TestHelperMissingTool is run by TestMissingTool in a child process.
func TestHelperMissingTool(t *testing.T) {
	switch os.Getenv("CAIRN_TESTENV_HELPER") {
	case "missing":
		testenv.MissingTool(t, "frobnicator is not installed: run `make frob`")
	case "optin":
		testenv.OptIn(t, "CAIRN_FROB is not set: make test-frob runs this")
	default:
		t.Skip("run by TestMissingTool")
	}
	t.Fatal("not ended")
}

// TestMissingTool: a missing tool skips the test, recorded in CAIRN_SKIP_LOG, unless CI
// is set, where it fails; an opt-in test skips in CI too.
func TestMissingTool(t *testing.T) {
	for _, tc := range []struct {
		helper, ci string
		wantFail   bool
		wantLog    string
	}{
		{"missing", "", false, "frobnicator is not installed"},
		{"missing", "false", false, "frobnicator is not installed"},
		{"missing", "true", true, ""},
		{"missing", "1", true, ""},
		{"optin", "true", false, "CAIRN_FROB is not set"},
	} {
		t.Run(tc.helper+" CI="+tc.ci, func(t *testing.T) {
			skips := filepath.Join(t.TempDir(), "skipped")
			cmd := exec.Command(os.Args[0], "-test.run=^TestHelperMissingTool$", "-test.v")
			cmd.Env = append(os.Environ(), "CAIRN_TESTENV_HELPER="+tc.helper, "CI="+tc.ci, "CAIRN_SKIP_LOG="+skips)
			out, err := cmd.CombinedOutput()
			if failed := err != nil; failed != tc.wantFail {
				t.Fatalf("failed=%v, want %v:\n%s", failed, tc.wantFail, out)
			}
			if !tc.wantFail && !strings.Contains(string(out), "--- SKIP") {
				t.Fatalf("not skipped:\n%s", out)
			}
			logged, _ := os.ReadFile(skips)
			if tc.wantLog == "" && len(logged) != 0 || !strings.Contains(string(logged), tc.wantLog) || tc.wantLog != "" && !strings.Contains(string(logged), "testenv TestHelperMissingTool: ") {
				t.Fatalf("CAIRN_SKIP_LOG holds %q, want a line naming the test and %q", logged, tc.wantLog)
			}
		})
	}
}
