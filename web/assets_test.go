package web_test

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/cairn-dev/cairn/internal/testenv"
)

// TestAssetsMatchSources rebuilds web/static/app.js from web/ui with the locked esbuild
// and fails if the committed file differs: the embedded bundle is always what its sources
// and package-lock.json build. `make web-assets` rebuilds it.
func TestAssetsMatchSources(t *testing.T) {
	node, err := exec.LookPath("node")
	if err == nil {
		_, err = os.Stat(filepath.Join("ui", "node_modules", "esbuild"))
	}
	if err != nil {
		testenv.MissingTool(t, fmt.Sprintf("node and web/ui/node_modules are needed to check the built assets: run `make npm` (%v)", err))
	}
	cmd := exec.Command(node, "build.mjs", "--check")
	cmd.Dir = "ui"
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s\n%v", out, err)
	}
}
