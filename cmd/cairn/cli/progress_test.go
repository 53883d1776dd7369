package cli

import (
	"bytes"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// runTo runs cairn in-process with stderr going to w.
func (c *cli) runTo(stderr io.Writer, args ...string) (int, string) {
	c.t.Helper()
	var out bytes.Buffer
	code := Main(args, strings.NewReader(""), &out, stderr, func(k string) string { return c.vars[k] })
	return code, out.String()
}

// Terminal control: what a progress bar draws with (carriage returns, escape sequences).
func hasControl(s string) bool { return strings.ContainsAny(s, "\r\x1b") }

// Uploads and downloads of large files draw progress bars on a terminal, and nothing of
// them reaches stderr when it is not a terminal or with --no-progress.
func TestProgressBarsOnlyOnATerminal(t *testing.T) {
	_, c := maintainer(t)
	dist := t.TempDir()
	big := func(name string) string {
		return writeFile(t, dist, name, strings.Repeat(name+"\n", (progressMinSize+1<<20)/(len(name)+1)))
	}

	// Not a terminal: the same lines as ever, no control characters.
	var errb bytes.Buffer
	if code, out := c.runTo(&errb, "upload", "widget", "1.0", big("w-1.0.bin"), "--key", "alice"); code != 0 {
		t.Fatalf("upload: exit %d\n%s\n%s", code, out, errb.String())
	}
	if hasControl(errb.String()) || strings.Contains(errb.String(), "MiB") || !strings.Contains(errb.String(), "w-1.0.bin: uploaded") {
		t.Errorf("upload's stderr, not a terminal: %q", errb.String())
	}
	errb.Reset()
	if code, out := c.runTo(&errb, "get", "widget@1.0", "--output-dir", t.TempDir()); code != 0 {
		t.Fatalf("get: exit %d\n%s\n%s", code, out, errb.String())
	}
	if hasControl(errb.String()) || strings.Contains(errb.String(), "MiB") {
		t.Errorf("get's stderr, not a terminal: %q", errb.String())
	}

	// A terminal: a bar per large file, which ends full.
	tty, output := openPTY(t)
	if code, out := c.runTo(tty, "upload", "widget", "2.0", big("w-2.0.bin"), writeFile(t, dist, "small.txt", "small"), "--key", "alice"); code != 0 {
		t.Fatalf("upload on a terminal: exit %d\n%s\n%s", code, out, output())
	}
	if code, out := c.runTo(tty, "get", "widget@2.0", "--output-dir", t.TempDir()); code != 0 {
		t.Fatalf("get on a terminal: exit %d\n%s\n%s", code, out, output())
	}
	got := output()
	if n := strings.Count(got, "5.0 MiB / 5.0 MiB"); n < 2 || !hasControl(got) {
		t.Errorf("on a terminal, %d complete bars for the upload and the download of w-2.0.bin; the terminal showed:\n%q", n, got)
	}
	for _, line := range strings.Split(got, "\n") {
		if strings.Contains(line, "small.txt") && strings.Contains(line, " / ") {
			t.Errorf("a bar for a file under %d bytes: %q", progressMinSize, line)
		}
	}

	// --no-progress on a terminal.
	tty, output = openPTY(t)
	if code, out := c.runTo(tty, "get", "widget@2.0", "--no-progress", "--output-dir", t.TempDir()); code != 0 {
		t.Fatalf("get --no-progress: exit %d\n%s\n%s", code, out, output())
	}
	if got := output(); strings.Contains(got, "MiB") || strings.Contains(got, "\x1b[") {
		t.Errorf("get --no-progress drew a bar: %q", got)
	}
	if _, err := os.Stat(filepath.Join(dist, "w-2.0.bin")); err != nil {
		t.Fatal(err)
	}
}
