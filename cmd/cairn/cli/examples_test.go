package cli

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cairn-dev/cairn/internal/testdb"
	"github.com/cairn-dev/cairn/internal/testrepo"
)

// exampleLines returns the command lines of a command's examples, comments dropped.
func exampleLines(example string) []string {
	var lines []string
	for _, l := range strings.Split(example, "\n") {
		if l = strings.TrimSpace(l); l != "" && !strings.HasPrefix(l, "#") {
			lines = append(lines, l)
		}
	}
	return lines
}

// shellWords splits a command line as a POSIX shell would for the simple lines the
// examples use: words, "double-quoted" words, and one '> FILE' redirection.
func shellWords(t *testing.T, line string) (words []string, redirect string) {
	t.Helper()
	var cur strings.Builder
	inWord, quoted := false, false
	for _, r := range line {
		switch {
		case r == '"':
			quoted, inWord = !quoted, true
		case r == ' ' && !quoted:
			if inWord {
				words = append(words, cur.String())
				cur.Reset()
				inWord = false
			}
		default:
			cur.WriteRune(r)
			inWord = true
		}
	}
	if quoted {
		t.Fatalf("unbalanced quote in example %q", line)
	}
	if inWord {
		words = append(words, cur.String())
	}
	for i, w := range words {
		if w == ">" {
			if i != len(words)-2 {
				t.Fatalf("example %q: want '> FILE' at the end", line)
			}
			return words[:i], words[i+1]
		}
	}
	return words, ""
}

// The examples in the help of the commands used daily run as shown, in order, against a
// real server, and every one of them is run.
func TestExamplesRun(t *testing.T) {
	u, drop, err := testdb.Create("cli_examples")
	if err != nil {
		t.Fatal(err)
	}
	r := testrepo.Boot(t, u, nil)
	t.Cleanup(drop)
	c := newCLI(t)
	c.vars["CAIRN_TOKEN"] = r.AdminToken
	dir := t.TempDir()
	t.Chdir(dir)
	for name, body := range map[string]string{
		"root.json": string(r.RootJSON), "hello-1.0.0.tar.gz": "hello 1.0.0", "hello-1.1.0.tar.gz": "hello 1.1.0",
		"hello-1.1.0-py3-none-any.whl": "wheel 1.1.0", "duo-1.0.0.tar.gz": "duo 1.0.0",
	} {
		writeFile(t, dir, name, body)
	}

	examples := commandExamples()
	ran := map[string]int{}
	// example runs line i of path's examples; wantErr, if set, is the refusal expected.
	example := func(path string, i int, wantErr string) {
		t.Helper()
		lines := exampleLines(examples[path])
		if i >= len(lines) {
			t.Fatalf("%s has %d example lines, not %d", path, len(lines), i+1)
		}
		ran[path]++
		line := strings.ReplaceAll(lines[i], "https://cairn.example.org", r.URL)
		words, redirect := shellWords(t, line)
		if words[0] != "cairn" {
			t.Fatalf("example %q does not run cairn", lines[i])
		}
		res := c.run(words[1:]...)
		if wantErr != "" {
			if res.code == 0 || !strings.Contains(res.stderr, wantErr) {
				t.Fatalf("example %q: exit %d, stderr %q; want a refusal mentioning %q", lines[i], res.code, res.stderr, wantErr)
			}
			return
		}
		if res.code != 0 {
			t.Fatalf("example %q: exit %d\nstdout: %s\nstderr: %s", lines[i], res.code, res.stdout, res.stderr)
		}
		if redirect != "" {
			writeFile(t, dir, redirect, res.stdout)
		}
	}
	all := func(path string) {
		t.Helper()
		for i := range exampleLines(examples[path]) {
			example(path, i, "")
		}
	}

	all("init")
	all("key generate")
	c.ok("key", "generate", "--name", "bob") // bob is a co-maintainer, on his own machine
	all("key export")
	all("project create")
	all("upload")
	all("releases")
	all("get")
	for _, f := range []string{"hello-1.1.0.tar.gz", "hello-1.0.0/hello-1.0.0.tar.gz", "dist/hello-1.1.0.tar.gz", "from-oci/hello-1.1.0-py3-none-any.whl"} {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			t.Errorf("after the get examples: %v", err)
		}
	}
	all("yank")
	if out := c.ok("releases", "hello"); !strings.Contains(out, "hello 1.0.0 is yanked: broken build; use 1.1.0") {
		t.Errorf("after the yank example, releases = %s", out)
	}
	all("unyank")
	// duo's version 1 waits for bob. Without a terminal the first sign example shows the
	// proposal and stops short of asking; bob then signs it as a script would.
	example("sign", 0, "confirm on a terminal, or pass --yes")
	c.ok("sign", "duo", "--key", "bob", "--yes")
	c.ok("upload", "duo", "1.0.0", "duo-1.0.0.tar.gz", "--key", "alice") // role version 2, pending
	example("sign", 1, "")
	if out := c.ok("releases", "duo"); !strings.Contains(out, "duo-1.0.0.tar.gz") {
		t.Errorf("after the sign example, releases duo = %s", out)
	}
	all("search")
	all("mirror export")
	all("mirror verify")
	all("mirror import")
	if _, err := os.Stat(filepath.Join(dir, "mirror-www", "metadata", "timestamp.json")); err != nil {
		t.Errorf("after the mirror examples: %v", err)
	}
	all("version")

	for path, ex := range examples {
		if n := len(exampleLines(ex)); ran[path] != n {
			t.Errorf("%s: %d of its %d example lines ran", path, ran[path], n)
		}
		if help := c.ok(append(strings.Fields(path), "--help")...); !strings.Contains(help, "Examples:\n"+ex) {
			t.Errorf("cairn %s --help does not show its examples:\n%s", path, help)
		}
	}
	for _, daily := range []string{"init", "key generate", "project create", "upload", "releases", "get", "sign", "yank", "unyank"} {
		if examples[daily] == "" {
			t.Errorf("cairn %s has no examples", daily)
		}
	}
}
