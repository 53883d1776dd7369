package readme

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cairn-dev/cairn/internal/testdb"
	"github.com/cairn-dev/cairn/internal/testenv"
)

// What README.md's commands name that a test run must change: the address `make run`
// listens on and the database it uses by default. The test's server listens on a free
// port and uses a fresh database; commands get the test's values, and the output has the
// address put back before it is compared.
const (
	readmeAddr  = "127.0.0.1:8080"
	readmeDBURL = "postgres://postgres@127.0.0.1:5432/cairn_dev?sslmode=disable"
)

// Bounds: the first `make run` in a fresh copy compiles cairnd and cairn (about a minute
// warm, several cold); the walkthrough itself takes well under a minute, plus ~40 s if
// oras must be built.
const (
	serverStartLimit = 6 * time.Minute
	sessionLimit     = 8 * time.Minute
)

// TestReadme runs every console block of README.md, in order, in one bash session, in a
// fresh copy of the repository (its files as git sees them, committed in a new git
// repository, as a fresh clone is) whose `make run` serves a fresh database, and compares
// each command's output with README.md's by shape. It fails at the first command that
// exits non-zero or whose output has another shape, naming the README line.
func TestReadme(t *testing.T) {
	for _, tool := range []string{"bash", "make", "git", "go"} {
		if _, err := exec.LookPath(tool); err != nil {
			testenv.MissingTool(t, fmt.Sprintf("%s is not on PATH: the README walkthrough needs it (install it)", tool))
		}
	}
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	text, err := os.ReadFile(filepath.Join(root, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	blocks, err := parse(string(text))
	if err != nil {
		t.Fatal(err)
	}
	var run []command
	for _, b := range blocks {
		if b.skip != "" {
			t.Logf("not run: README.md:%d (%s block, %d command(s)): %s", b.line, b.info, len(b.cmds), b.skip)
			continue
		}
		run = append(run, b.cmds...)
	}
	if len(run) == 0 {
		t.Fatal("README.md has no console block to run")
	}

	tmp := t.TempDir()
	repo := filepath.Join(tmp, "cairn")
	home := filepath.Join(tmp, "home")
	out := filepath.Join(tmp, "out")
	for _, d := range []string{home, out} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	freshClone(t, root, repo)
	env := sessionEnv(t, home)

	dbURL, drop, err := testdb.Create("readme")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(drop)
	addr := freeAddr(t)
	startMakeRun(t, repo, env, dbURL, addr, filepath.Join(tmp, "make-run.log"))

	// The session: each command in a brace group (the current shell, so that export and
	// cd carry over) with stdout and stderr into one file, its status into another; the
	// session stops at the first failure.
	var script strings.Builder
	fmt.Fprintf(&script, "cd %q || exit 1\n", repo)
	for i, c := range run {
		cmd := strings.ReplaceAll(c.text, readmeDBURL, dbURL)
		cmd = strings.ReplaceAll(cmd, readmeAddr, addr)
		fmt.Fprintf(&script, "{\n%s\n} >%q 2>&1 </dev/null\necho $? >%q\n[ \"$(cat %q)\" = 0 ] || exit 0\n",
			cmd, filepath.Join(out, strconv.Itoa(i)+".out"), filepath.Join(out, strconv.Itoa(i)+".rc"), filepath.Join(out, strconv.Itoa(i)+".rc"))
	}
	ctx, cancel := context.WithTimeout(context.Background(), sessionLimit)
	defer cancel()
	bash := exec.CommandContext(ctx, "bash", "--noprofile", "--norc")
	bash.Dir = repo
	bash.Env = env
	bash.Stdin = strings.NewReader(script.String())
	// A command still running at the deadline is killed with everything it started (an
	// installer, a client), and the pipes are not waited on for ever.
	bash.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	bash.Cancel = func() error { return syscall.Kill(-bash.Process.Pid, syscall.SIGKILL) }
	bash.WaitDelay = 10 * time.Second
	sessionOut, sessionErr := bash.CombinedOutput()

	for i, c := range run {
		rc, err := os.ReadFile(filepath.Join(out, strconv.Itoa(i)+".rc"))
		if errors.Is(err, os.ErrNotExist) {
			if _, err := os.Stat(filepath.Join(out, strconv.Itoa(i)+".out")); err == nil {
				t.Fatalf("README.md:%d: `%s` did not finish within %s (the session: %v)\n%s", c.line, c.text, sessionLimit, sessionErr, sessionOut)
			}
			t.Fatalf("README.md:%d: `%s` did not run: the session ended before it (%v)\n%s", c.line, c.text, sessionErr, sessionOut)
		} else if err != nil {
			t.Fatal(err)
		}
		b, err := os.ReadFile(filepath.Join(out, strconv.Itoa(i)+".out"))
		if err != nil {
			t.Fatal(err)
		}
		got := strings.ReplaceAll(string(b), addr, readmeAddr)
		got = strings.ReplaceAll(got, home, "~")
		if s := strings.TrimSpace(string(rc)); s != "0" {
			t.Fatalf("README.md:%d: `%s` exited %s (a command meant to fail shows `; echo \"exit $?\"`); its output:\n%s", c.line, c.text, s, got)
		}
		want := make([]outLine, len(c.want))
		for k, w := range c.want {
			w.text = strings.ReplaceAll(w.text, "/root/", "~/")
			want[k] = w
		}
		if m := compare(want, strings.Split(strings.TrimRight(got, "\n"), "\n")); m != nil {
			where := fmt.Sprintf("README.md:%d", c.line)
			t.Fatalf("%s: the output of `%s` is not what README.md shows: %s\nits whole output:\n%s", where, c.text, m, got)
		}
	}
	t.Logf("ran %d commands of README.md against make run on %s", len(run), addr)
}

// freshClone copies the repository's files at root, as git sees them (tracked or new,
// not ignored: no bin/, .data/ or .cache/), to dir and commits them in a new git
// repository there, so that builds there are those of a fresh clone of the working tree.
func freshClone(t *testing.T, root, dir string) {
	t.Helper()
	files, err := exec.Command("git", "-C", root, "ls-files", "-z", "--cached", "--others", "--exclude-standard").Output()
	if err != nil {
		t.Fatalf("listing the repository's files: %v", err)
	}
	for _, f := range strings.Split(strings.TrimRight(string(files), "\x00"), "\x00") {
		src := filepath.Join(root, f)
		fi, err := os.Lstat(src)
		if errors.Is(err, os.ErrNotExist) {
			continue // deleted in the working tree, not yet in git
		} else if err != nil {
			t.Fatal(err)
		}
		if !fi.Mode().IsRegular() {
			continue
		}
		if err := copyFile(src, filepath.Join(dir, f), fi.Mode().Perm()); err != nil {
			t.Fatal(err)
		}
	}
	for _, args := range [][]string{
		{"init", "-q"},
		{"add", "-A"},
		{"-c", "user.name=test/readme", "-c", "user.email=readme@cairn.invalid", "-c", "commit.gpgsign=false", "commit", "-q", "-m", "the working tree, for test/readme"},
	} {
		cmd := exec.Command("git", args...)
		cmd.Dir = dir
		if b, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("git %s in the copy: %v\n%s", strings.Join(args, " "), err, b)
		}
	}
}

func copyFile(src, dst string, perm os.FileMode) error {
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return fmt.Errorf("copying %s: %w", src, err)
	}
	in, err := os.Open(src)
	if err != nil {
		return fmt.Errorf("copying %s: %w", src, err)
	}
	defer in.Close()
	o, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, perm)
	if err != nil {
		return fmt.Errorf("copying %s: %w", src, err)
	}
	if _, err := io.Copy(o, in); err != nil {
		o.Close()
		return fmt.Errorf("copying %s: %w", src, err)
	}
	return o.Close()
}

// sessionEnv is the environment of a new user's shell: this one's, without any Cairn
// setting, with HOME a fresh directory (cairn's keys and configuration, oras's and
// notation's logins go there), and the Go caches and the OCI clients' cache of this
// machine, so that nothing is built twice.
func sessionEnv(t *testing.T, home string) []string {
	t.Helper()
	goenv, err := exec.Command("go", "env", "GOCACHE", "GOMODCACHE", "GOPATH").Output()
	if err != nil {
		t.Fatalf("go env: %v", err)
	}
	g := strings.Split(strings.TrimSpace(string(goenv)), "\n")
	if len(g) != 3 {
		t.Fatalf("go env GOCACHE GOMODCACHE GOPATH printed %q", goenv)
	}
	clients := os.Getenv("CAIRN_OCI_CLIENTS")
	if clients == "" {
		c, err := os.UserCacheDir()
		if err != nil {
			t.Fatalf("finding the OCI clients' cache: %v (set CAIRN_OCI_CLIENTS)", err)
		}
		clients = filepath.Join(c, "cairn", "ociclients")
	}
	// README.md installs oras into ~/.cache/cairn/ociclients: there, links to the clients
	// this machine has built. Links, not the directory itself: install.sh holds a lock on
	// its directory while it builds, and a cosign build elsewhere takes 15 minutes.
	mine := filepath.Join(home, ".cache", "cairn", "ociclients")
	if err := os.MkdirAll(mine, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, c := range []string{"crane", "oras", "notation"} {
		if _, err := os.Stat(filepath.Join(clients, c)); err == nil {
			if err := os.Symlink(filepath.Join(clients, c), filepath.Join(mine, c)); err != nil {
				t.Fatal(err)
			}
		}
	}
	var env []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		switch {
		case strings.HasPrefix(k, "CAIRN_"), strings.HasPrefix(k, "XDG_"), strings.HasPrefix(k, "NOTATION_"),
			k == "HOME", k == "DOCKER_CONFIG", k == "DBUS_SESSION_BUS_ADDRESS", k == "GOCACHE", k == "GOMODCACHE", k == "GOPATH", k == "MAKEFLAGS", k == "MAKELEVEL":
			continue
		}
		env = append(env, kv)
	}
	return append(env, "HOME="+home, "GOCACHE="+g[0], "GOMODCACHE="+g[1], "GOPATH="+g[2], "GOTOOLCHAIN=local")
}

// freeAddr is a loopback address nothing listens on right now.
func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// startMakeRun runs `make run` in repo, as README.md says, with the test's database and
// address, and waits until the server is ready. It is stopped when the test ends.
func startMakeRun(t *testing.T, repo string, env []string, dbURL, addr, logPath string) {
	t.Helper()
	logf, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { logf.Close() })
	cmd := exec.Command("make", "run", "CAIRN_DATABASE_URL="+dbURL, "LISTEN="+addr)
	cmd.Dir = repo
	cmd.Env = env
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true} // make and its cairnd, stopped together
	if err := cmd.Start(); err != nil {
		t.Fatalf("make run: %v", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(30 * time.Second):
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-exited
		}
	})
	logTail := func() string {
		b, _ := os.ReadFile(logPath)
		var lines []string
		sc := bufio.NewScanner(strings.NewReader(string(b)))
		for sc.Scan() {
			lines = append(lines, sc.Text())
		}
		if len(lines) > 40 {
			lines = lines[len(lines)-40:]
		}
		return strings.Join(lines, "\n")
	}
	deadline := time.Now().Add(serverStartLimit)
	hc := &http.Client{Timeout: 2 * time.Second}
	for {
		select {
		case err := <-exited:
			exited <- err
			t.Fatalf("make run exited (%v) before serving:\n%s", err, logTail())
		default:
		}
		if resp, err := hc.Get("http://" + addr + "/readyz"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				if _, err := os.Stat(filepath.Join(repo, ".data", "dev", "admin.token")); err == nil {
					return
				}
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("make run did not serve on %s within %s:\n%s", addr, serverStartLimit, logTail())
		}
		time.Sleep(500 * time.Millisecond)
	}
}
