// Package tufjs runs an independent TUF client, tuf-js from npm (test/tufjs/get.mjs), so
// that end-to-end tests can check that what a Cairn server publishes downloads and
// verifies in a client that shares no code with Cairn or go-tuf.
//
// Ensure installs the pinned npm packages once (npm ci, guarded by a file lock so that
// parallel test binaries do not race); Get runs one client invocation.
package tufjs

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// Exit codes of get.mjs, carried by *Failure.
const (
	ExitHashMismatch = 1  // target or metadata length/hash mismatch
	ExitSignature    = 2  // signature or threshold failure (UnsignedMetadataError)
	ExitPolicy       = 4  // rollback, expired or bad version
	ExitNotFound     = 5  // target path in no trusted targets metadata
	ExitUsage        = 10 // bad arguments or unreadable root
	ExitOther        = 20 // anything else (HTTP errors, malformed metadata, ...)
)

// Options is one client run. All fields but Dir and Timeout are required.
type Options struct {
	MetadataURL string   // base URL of the metadata (…/<N>.root.json, …/timestamp.json)
	TargetsURL  string   // base URL of the targets (…/<dir>/<sha256>.<name>)
	Root        string   // file holding the trusted root.json; copied into CacheDir if absent there
	CacheDir    string   // tuf-js metadata cache; reuse it across calls to test rollback protection
	OutDir      string   // verified targets are written here as <basename>
	Targets     []string // target paths, e.g. "demo/1.0/demo.tar.gz"

	Dir     string        // test/tufjs directory; empty means call Ensure
	Timeout time.Duration // per-request fetch timeout inside tuf-js; 0 means 30s
}

// Target is one verified and written target.
type Target struct {
	Path   string `json:"path"`
	Length int64  `json:"length"`
	SHA256 string `json:"sha256"`
	File   string `json:"file"`
}

// Result holds the targets verified and written, in the order asked for. After a
// *Failure it holds those that succeeded before the failing one.
type Result struct {
	Targets []Target
}

// Failure is a run of get.mjs that exited non-zero.
type Failure struct {
	ExitCode int    // one of the Exit* constants
	Class    string // tuf-js error class, e.g. "LengthOrHashMismatchError"
	Message  string
	Stderr   string
}

func (f *Failure) Error() string {
	s := fmt.Sprintf("tuf-js client exited %d: %s: %s", f.ExitCode, f.Class, f.Message)
	if st := strings.TrimSpace(f.Stderr); st != "" {
		s += " (stderr: " + st + ")"
	}
	return s
}

// Ensure returns the test/tufjs directory of the repository containing the working
// directory, after installing its npm packages with `npm ci` if node_modules is missing
// or older than package-lock.json.
func Ensure(ctx context.Context) (string, error) {
	for _, tool := range []string{"node", "npm"} {
		if _, err := exec.LookPath(tool); err != nil {
			return "", fmt.Errorf("tufjs: %s not found in PATH: Node.js 20.17+ and npm are needed to run the tuf-js client: %w", tool, err)
		}
	}
	dir, err := findDir()
	if err != nil {
		return "", err
	}
	unlock, err := lock(ctx, filepath.Join(dir, ".npm-ci.lock"))
	if err != nil {
		return "", err
	}
	defer unlock()

	if installed(dir) {
		return dir, nil
	}
	cmd := exec.CommandContext(ctx, "npm", "ci", "--no-audit", "--no-fund")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "NO_UPDATE_NOTIFIER=1")
	cmd.WaitDelay = 5 * time.Second
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("tufjs: npm ci in %s: %w\n%s", dir, err, out)
	}
	if !installed(dir) {
		return "", fmt.Errorf("tufjs: npm ci in %s left no node_modules/.package-lock.json", dir)
	}
	return dir, nil
}

// findDir walks up from the working directory to go.mod and returns <root>/test/tufjs.
func findDir() (string, error) {
	wd, err := os.Getwd()
	if err != nil {
		return "", fmt.Errorf("tufjs: %w", err)
	}
	for d := wd; ; {
		if _, err := os.Stat(filepath.Join(d, "go.mod")); err == nil {
			dir := filepath.Join(d, "test", "tufjs")
			if _, err := os.Stat(filepath.Join(dir, "package-lock.json")); err != nil {
				return "", fmt.Errorf("tufjs: %s has no package-lock.json: %w", dir, err)
			}
			return dir, nil
		}
		parent := filepath.Dir(d)
		if parent == d {
			return "", fmt.Errorf("tufjs: no go.mod in %s or any parent", wd)
		}
		d = parent
	}
}

// installed reports whether npm's hidden lock file (written at the end of an install) is
// newer than package-lock.json.
func installed(dir string) bool {
	lockInfo, err := os.Stat(filepath.Join(dir, "package-lock.json"))
	if err != nil {
		return false
	}
	mod, err := os.Stat(filepath.Join(dir, "node_modules", ".package-lock.json"))
	if err != nil {
		return false
	}
	if _, err := os.Stat(filepath.Join(dir, "node_modules", "tuf-js", "package.json")); err != nil {
		return false
	}
	return !mod.ModTime().Before(lockInfo.ModTime())
}

// lock takes an exclusive flock on path, polling so that ctx can cancel the wait.
func lock(ctx context.Context, path string) (func(), error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, fmt.Errorf("tufjs: %w", err)
	}
	for {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			break
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) && !errors.Is(err, syscall.EINTR) {
			f.Close()
			return nil, fmt.Errorf("tufjs: flock %s: %w", path, err)
		}
		select {
		case <-ctx.Done():
			f.Close()
			return nil, fmt.Errorf("tufjs: waiting for %s: %w", path, ctx.Err())
		case <-time.After(100 * time.Millisecond):
		}
	}
	return func() {
		syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
		f.Close()
	}, nil
}

// Get runs get.mjs once. A client-side verification failure returns a *Failure (use
// errors.As) together with the targets written before it; other errors (node missing,
// unparsable output) are plain.
func Get(ctx context.Context, opts Options) (Result, error) {
	dir := opts.Dir
	if dir == "" {
		var err error
		if dir, err = Ensure(ctx); err != nil {
			return Result{}, err
		}
	}
	timeout := opts.Timeout
	if timeout <= 0 {
		timeout = 30 * time.Second
	}
	args := []string{
		filepath.Join(dir, "get.mjs"),
		"--metadata-url", opts.MetadataURL,
		"--targets-url", opts.TargetsURL,
		"--root", opts.Root,
		"--cache", opts.CacheDir,
		"--out", opts.OutDir,
		"--timeout-ms", fmt.Sprint(timeout.Milliseconds()),
		"--",
	}
	args = append(args, opts.Targets...)

	var stdout, stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, "node", args...)
	cmd.Dir = dir
	cmd.Stdout = &stdout
	cmd.Stderr = &stderr
	cmd.WaitDelay = 5 * time.Second
	runErr := cmd.Run()

	var res Result
	var fail *Failure
	sc := bufio.NewScanner(&stdout)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := bytes.TrimSpace(sc.Bytes())
		if len(line) == 0 {
			continue
		}
		var rec struct {
			Target
			Error   *string `json:"error"`
			Message string  `json:"message"`
		}
		if err := json.Unmarshal(line, &rec); err != nil {
			return res, fmt.Errorf("tufjs: unparsable output line %q: %w (stderr: %s)", line, err, stderr.String())
		}
		if rec.Error != nil {
			fail = &Failure{Class: *rec.Error, Message: rec.Message, Stderr: stderr.String()}
			continue
		}
		res.Targets = append(res.Targets, rec.Target)
	}

	var exitErr *exec.ExitError
	switch {
	case runErr == nil:
		if fail != nil || len(res.Targets) != len(opts.Targets) {
			return res, fmt.Errorf("tufjs: client exited 0 but reported %d of %d targets (stdout: %s, stderr: %s)",
				len(res.Targets), len(opts.Targets), stdout.String(), stderr.String())
		}
		return res, nil
	case ctx.Err() != nil:
		return res, fmt.Errorf("tufjs: %w", ctx.Err())
	case errors.As(runErr, &exitErr) && exitErr.ExitCode() > 0:
		if fail == nil {
			fail = &Failure{Class: "unknown", Message: "no error line on stdout", Stderr: stderr.String()}
		}
		fail.ExitCode = exitErr.ExitCode()
		return res, fail
	default:
		return res, fmt.Errorf("tufjs: running node %s: %w (stderr: %s)", args[0], runErr, stderr.String())
	}
}
