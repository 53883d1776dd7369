package daemon

import (
	"bytes"
	"context"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/spf13/cobra"
)

func runMain(args ...string) (int, string, string) {
	var out, errb bytes.Buffer
	code := Main(context.Background(), args, &out, &errb, func(string) string { return "" })
	return code, out.String(), errb.String()
}

// The help of a command other than serve lists its own flags and the configuration it
// reads, not all of serve's; every command shows -h, --help and boolean flags plainly.
func TestHelpListsOwnFlags(t *testing.T) {
	table := configFlagsShown()
	var walk func(path []string, c *cobra.Command)
	walk = func(path []string, c *cobra.Command) {
		for _, sub := range c.Commands() {
			walk(append(slices.Clone(path), sub.Name()), sub)
		}
		code, help, errs := runMain(append(path, "--help")...)
		name := strings.Join(append([]string{"cairnd"}, path...), " ")
		if code != 0 {
			t.Fatalf("%s --help: exit %d, %s", name, code, errs)
		}
		if !strings.Contains(help, "  -h, --help ") || strings.Contains(help, "[=true|false]") {
			t.Errorf("%s --help:\n%s", name, help)
		}
		if c.Flags().Lookup("config") == nil || name == "cairnd serve" {
			return
		}
		// A command that takes the configuration must say which of it it reads.
		if _, ok := table[name]; !ok {
			t.Errorf("%s takes the configuration flags but configFlagsShown has no entry for it", name)
		}
		for _, serveOnly := range []string{"--listen", "--max-inflight", "--rekor-url", "--external-url", "--publish-interval"} {
			if strings.Contains(help, serveOnly+" ") {
				t.Errorf("%s --help lists %s, a flag only serve reads:\n%s", name, serveOnly, help)
			}
		}
		for _, want := range []string{"--database-url", "--config", "--log-level"} {
			if !strings.Contains(help, want+" ") {
				t.Errorf("%s --help does not list %s:\n%s", name, want, help)
			}
		}
	}
	walk(nil, newRoot(io.Discard, io.Discard, func(string) string { return "" }))

	for _, tt := range []struct{ cmd, want string }{
		{"token", "--name "}, {"token", "--can-create "}, {"keys", "--timestamp-key "}, {"gc", "--blob-dir "}, {"bootstrap", "--metadata DIR"},
	} {
		args := map[string][]string{"token": {"token", "create"}, "keys": {"keys", "check"}, "gc": {"gc"}, "bootstrap": {"bootstrap"}}[tt.cmd]
		if _, help, _ := runMain(append(args, "--help")...); !strings.Contains(help, tt.want) {
			t.Errorf("cairnd %v --help does not list %s:\n%s", args, tt.want, help)
		}
	}
	if _, help, _ := runMain("serve", "--help"); !strings.Contains(help, "--listen ") || !strings.Contains(help, "--oci-anonymous-pull ") {
		t.Errorf("cairnd serve --help lost its flags:\n%s", help)
	}
}

// Hidden from help, serve's flags are still accepted by every command, on the command
// line and in the config file, so one configuration serves them all.
func TestHiddenConfigFlagsStillAccepted(t *testing.T) {
	cfg := filepath.Join(t.TempDir(), "cairnd.json")
	if err := os.WriteFile(cfg, []byte(`{"listen": "127.0.0.1:9999", "max_inflight": 7, "database_url": "postgres://127.0.0.1:1/none?connect_timeout=1"}`), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{
		{"migrate", "--listen", "127.0.0.1:9999", "--database-url", "postgres://127.0.0.1:1/none?connect_timeout=1"},
		{"token", "list", "--config", cfg},
		{"token", "list", "--config", cfg, "--oci-anonymous-pull=false"},
	} {
		code, _, errs := runMain(args...)
		if code == 0 || strings.Contains(errs, "unknown flag") || strings.Contains(errs, "unknown key") {
			t.Errorf("cairnd %v: exit %d, %s; want a database error, not a flag error", args, code, errs)
		}
	}
	// A flag no command has is still refused.
	if code, _, errs := runMain("migrate", "--no-such-flag"); code == 0 || !strings.Contains(errs, "unknown flag: --no-such-flag") {
		t.Errorf("cairnd migrate --no-such-flag: exit %d, %s", code, errs)
	}
}

func TestCompletionScript(t *testing.T) {
	code, out, errs := runMain("completion", "bash")
	if code != 0 || !strings.Contains(out, "__start_cairnd") {
		t.Errorf("cairnd completion bash: exit %d, %d bytes on stdout, stderr %q", code, len(out), errs)
	}
}
