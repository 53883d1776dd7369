package cli

import (
	"context"
	"encoding/json"
	"io"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"

	"github.com/cairn-dev/cairn/client"
	"github.com/cairn-dev/cairn/internal/buildinfo"
	"github.com/cairn-dev/cairn/internal/testrepo"
	"github.com/cairn-dev/cairn/tufrepo"
	"github.com/spf13/cobra"
)

func TestVersion(t *testing.T) {
	c := newCLI(t)
	text := c.ok("version")
	if !strings.HasPrefix(text, "cairn ") || !strings.Contains(text, runtime.Version()) || strings.Contains(text, "dev\n") {
		t.Errorf("cairn version = %q", text)
	}
	for _, args := range [][]string{{"version", "--output", "json"}, {"version", "-o", "json"}} {
		var info buildinfo.Info
		if err := json.Unmarshal([]byte(c.ok(args...)), &info); err != nil {
			t.Fatalf("cairn %v: %v", args, err)
		}
		if info.Program != "cairn" || info.GoVersion != runtime.Version() || info.Version == "" || info.Platform != runtime.GOOS+"/"+runtime.GOARCH {
			t.Errorf("cairn %v = %+v", args, info)
		}
	}
	c.fails(10, `--output must be text or json, not "yaml"`, "version", "--output", "yaml")
	c.fails(10, "unknown command", "version", "extra")
}

// walkCommands calls f with the arguments that name each command of the tree.
func walkCommands(t *testing.T, f func(path []string, cmd *cobra.Command)) {
	t.Helper()
	var walk func(path []string, c *cobra.Command)
	walk = func(path []string, c *cobra.Command) {
		f(path, c)
		for _, sub := range c.Commands() {
			walk(append(slices.Clone(path), sub.Name()), sub)
		}
	}
	a := &app{ctx: context.Background(), stdout: io.Discard, stderr: io.Discard, env: func(string) string { return "" }}
	walk(nil, a.rootCommand())
}

// Every command's help shows -h, --help and its boolean flags plainly, as cosign's,
// oras's and helm's do (pflag v1.1.0 alone prints "--help[=true|false]").
func TestHelpFlagsArePlain(t *testing.T) {
	c := newCLI(t)
	n := 0
	walkCommands(t, func(path []string, cmd *cobra.Command) {
		n++
		help := c.ok(append(path, "--help")...)
		if !strings.Contains(help, "  -h, --help ") || strings.Contains(help, "[=true|false]") || strings.Contains(help, "--help[") {
			t.Errorf("cairn %s --help:\n%s", strings.Join(path, " "), help)
		}
		if short := c.ok(append(path, "-h")...); short != help {
			t.Errorf("cairn %s -h differs from --help", strings.Join(path, " "))
		}
	})
	if n < 20 {
		t.Fatalf("walked %d commands", n)
	}
	if help := c.ok("help", "sign"); !strings.Contains(help, "  -y, --yes ") {
		t.Errorf("cairn help sign:\n%s", help)
	}
}

// Shown plainly, a boolean flag still parses every way it did.
func TestPlainBoolFlagsStillParse(t *testing.T) {
	for _, tt := range []struct {
		args []string
		want bool
	}{
		{nil, false}, {[]string{"--yes"}, true}, {[]string{"-y"}, true}, {[]string{"--yes=false"}, false},
		{[]string{"--yes=true"}, true}, {[]string{"-y=false"}, false},
	} {
		var sign *cobra.Command
		walkCommands(t, func(path []string, cmd *cobra.Command) {
			if strings.Join(path, " ") == "sign" {
				sign = cmd
			}
		})
		if err := sign.ParseFlags(tt.args); err != nil {
			t.Fatalf("%v: %v", tt.args, err)
		}
		if got, err := sign.Flags().GetBool("yes"); err != nil || got != tt.want {
			t.Errorf("%v: yes = %v, %v; want %v", tt.args, got, err, tt.want)
		}
	}
	c := newCLI(t)
	c.fails(10, `invalid argument "maybe" for "-y, --yes"`, "sign", "p", "--key", "k", "--yes=maybe")
}

// -o is --output, the format, on every command but get, where it is still the directory
// (deprecated, with a warning on stderr that keeps stdout a clean result).
func TestOutputShorthand(t *testing.T) {
	_, c := maintainer(t)
	dist := t.TempDir()
	c.ok("upload", "widget", "1.0", writeFile(t, dist, "widget-1.0.tar.gz", "source"), "--key", "alice", "-o", "json")
	var list releaseList
	if err := json.Unmarshal([]byte(c.ok("releases", "widget", "-o", "json")), &list); err != nil || len(list.Releases) != 1 {
		t.Fatalf("releases -o json: %+v, %v", list, err)
	}
	var keys []keyInfo
	if err := json.Unmarshal([]byte(c.ok("key", "list", "-o", "json")), &keys); err != nil || len(keys) != 2 {
		t.Fatalf("key list -o json: %+v, %v", keys, err)
	}
	c.fails(10, `--output must be text or json, not "DIR"`, "releases", "widget", "-o", "DIR")

	const warning = "'cairn get -o DIR' is deprecated: use --output-dir DIR"
	tests := []struct {
		name    string
		args    func(dir string) []string
		warned  bool
		jsonOut bool
	}{
		{"--output-dir", func(dir string) []string { return []string{"get", "widget", "--output-dir", dir} }, false, false},
		{"-o DIR", func(dir string) []string { return []string{"get", "widget", "-o", dir} }, true, false},
		{"-o DIR with --output json", func(dir string) []string { return []string{"get", "widget@1.0", "-o", dir, "--output", "json"} }, true, true},
		{"-oDIR", func(dir string) []string { return []string{"get", "widget", "-o" + dir} }, true, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "dl")
			r := c.run(tt.args(dir)...)
			if r.code != 0 {
				t.Fatalf("exit %d: %s", r.code, r.stderr)
			}
			if b, err := os.ReadFile(filepath.Join(dir, "widget-1.0.tar.gz")); err != nil || string(b) != "source" {
				t.Fatalf("download into %s: %q, %v", dir, b, err)
			}
			if strings.Contains(r.stderr, warning) != tt.warned || strings.Contains(r.stdout, "deprecated") {
				t.Errorf("stderr %q, stdout %q; want the deprecation warning on stderr: %v", r.stderr, r.stdout, tt.warned)
			}
			if tt.jsonOut {
				var files []client.DownloadedFile
				if err := json.Unmarshal([]byte(r.stdout), &files); err != nil || len(files) != 1 {
					t.Errorf("stdout is not the JSON result: %q, %v", r.stdout, err)
				}
			}
		})
	}
	// Both forms at once is ambiguous: refused, and nothing is written.
	a, b := filepath.Join(t.TempDir(), "a"), filepath.Join(t.TempDir(), "b")
	c.fails(10, "give only --output-dir DIR", "get", "widget", "-o", a, "--output-dir", b)
	for _, d := range []string{a, b} {
		if _, err := os.Stat(d); !os.IsNotExist(err) {
			t.Errorf("%s exists after a refused get", d)
		}
	}
	if help := c.ok("get", "--help"); !strings.Contains(help, "--output-dir DIR") || strings.Contains(help, "deprecated-o") || !strings.Contains(help, "-o DIR still names the directory") {
		t.Errorf("get --help:\n%s", help)
	}
}

// completions runs 'cairn __complete ARGS…' (what the shell scripts call) and returns the
// candidates and the directive.
func completions(t *testing.T, c *cli, args ...string) ([]string, string) {
	t.Helper()
	r := c.run(append([]string{"__complete"}, args...)...)
	if r.code != 0 {
		t.Fatalf("cairn __complete %v: exit %d, %s", args, r.code, r.stderr)
	}
	lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
	last := lines[len(lines)-1]
	if !strings.HasPrefix(last, ":") {
		t.Fatalf("cairn __complete %v: no directive in %q", args, r.stdout)
	}
	return lines[:len(lines)-1], last
}

func TestCompletionScripts(t *testing.T) {
	c := newCLI(t)
	for _, tt := range []struct{ shell, want string }{
		{"bash", "__start_cairn"}, {"zsh", "#compdef cairn"}, {"fish", "complete -c cairn"}, {"powershell", "Register-ArgumentCompleter"},
	} {
		if out := c.ok("completion", tt.shell); !strings.Contains(out, tt.want) {
			t.Errorf("cairn completion %s lacks %q", tt.shell, tt.want)
		}
	}
	c.fails(10, `unknown shell "tcsh"`, "completion", "tcsh")
}

// Project names come from the configured server, key names from the local key store.
func TestCompletionOfProjectsAndKeys(t *testing.T) {
	r, c := devAdmin(t)
	k := testrepo.NewKey(t, tufrepo.KeyEd25519)
	for _, name := range []string{"alpha", "alpine", "beta", "b-side"} {
		r.CreateProject(t, r.AdminToken, name, 1, []*testrepo.Key{k}, k)
	}
	tests := []struct {
		args []string
		want []string
	}{
		{[]string{"get", "al"}, []string{"alpha", "alpine"}},
		{[]string{"get", "b"}, []string{"b-side", "beta"}},
		{[]string{"releases", ""}, []string{"alpha", "alpine", "b-side", "beta"}},
		{[]string{"yank", "bet"}, []string{"beta"}},
		{[]string{"maintainer", "list", "alp"}, []string{"alpha", "alpine"}},
		{[]string{"upload", "gamma"}, nil},
		{[]string{"admin", "claim", "--project", "alph"}, []string{"alpha"}},
		// Later arguments are not projects.
		{[]string{"upload", "alpha", "a"}, nil},
		// Key names, from the key store devAdmin filled.
		{[]string{"upload", "alpha", "1.0", "f", "--key", ""}, []string{"claimed", "root", "targets", "timestamp"}},
		{[]string{"sign", "alpha", "--key", "t"}, []string{"targets", "timestamp"}},
		{[]string{"admin", "root", "rotate", "--new-root-key", "r"}, []string{"root"}},
		{[]string{"key", "export", "cl"}, []string{"claimed"}},
		{[]string{"project", "create", "new", "--maintainer", "ro"}, []string{"root"}},
	}
	for _, tt := range tests {
		got, _ := completions(t, c, tt.args...)
		if !slices.Equal(got, tt.want) {
			t.Errorf("completing %q: %q, want %q", tt.args, got, tt.want)
		}
	}
	if _, directive := completions(t, c, "project", "create", "new", "--maintainer", "ro"); directive != ":0" {
		t.Errorf("--maintainer completion directive %s: want :0, which lets the shell offer files too", directive)
	}
	if _, directive := completions(t, c, "get", "al"); directive != ":4" {
		t.Errorf("project completion directive %s: want :4 (no files)", directive)
	}
}

// A server that is not configured, refuses, or never answers yields no candidates and
// no error, promptly: completion runs on every Tab.
func TestCompletionFailsSilently(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	// Accepts connections and never answers; --response-timeout 0 lifts the CLI's own
	// limit, so only the completion bound can end the request.
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			defer conn.Close()
		}
	}()
	closed, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	refusing := "http://" + closed.Addr().String()
	closed.Close()

	c := newCLI(t) // no 'cairn init': no server configured
	for _, args := range [][]string{
		{"get", ""},
		{"--server", refusing, "get", ""},
		{"--server", "http://" + ln.Addr().String(), "--response-timeout", "0", "--connect-timeout", "0", "get", ""},
		{"--server", "not a url", "get", ""},
		{"upload", "p", "v", "f", "--key", ""}, // no key store yet
	} {
		r := c.run(append([]string{"__complete"}, args...)...)
		if r.code != 0 || strings.TrimSpace(r.stdout) != ":4" || strings.Contains(r.stderr, "error") {
			t.Errorf("cairn __complete %q: exit %d, stdout %q, stderr %q; want no candidates and no error", args, r.code, r.stdout, r.stderr)
		}
	}
}

func TestProjectCursor(t *testing.T) {
	for _, tt := range []struct{ prefix, want string }{
		{"", ""}, {"b", "a~"}, {"ab", "aa~"}, {"a", "`~"}, {"a-", "a,~"}, {"x0", "x/~"},
	} {
		got := projectCursor(tt.prefix)
		if got != tt.want {
			t.Errorf("projectCursor(%q) = %q, want %q", tt.prefix, got, tt.want)
		}
		// The cursor sorts below the prefix (byte order, as "C" collation).
		if tt.prefix != "" && got >= tt.prefix {
			t.Errorf("projectCursor(%q) = %q does not sort below it", tt.prefix, got)
		}
	}
}
