package e2e

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/cairn-dev/cairn/api"
	"github.com/cairn-dev/cairn/internal/daemon"
	"github.com/cairn-dev/cairn/internal/testdb"
	"github.com/cairn-dev/cairn/internal/testrepo"
	"github.com/jackc/pgx/v5"
)

// cutRelay forwards TCP connections to PostgreSQL until cut: then it closes every
// connection and refuses new ones, as a database host that went down does.
type cutRelay struct {
	url   string
	ln    net.Listener
	mu    sync.Mutex
	conns []net.Conn
}

func newCutRelay(t *testing.T, dbURL string) *cutRelay {
	t.Helper()
	pu, err := url.Parse(dbURL)
	if err != nil {
		t.Fatal(err)
	}
	target := pu.Host
	if pu.Port() == "" {
		target = net.JoinHostPort(pu.Hostname(), "5432")
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	r := &cutRelay{ln: ln}
	t.Cleanup(r.cut)
	ru := *pu
	ru.Host = ln.Addr().String()
	r.url = ru.String()
	go func() {
		for {
			in, err := ln.Accept()
			if err != nil {
				return
			}
			out, err := net.Dial("tcp", target)
			if err != nil {
				_ = in.Close()
				continue
			}
			r.mu.Lock()
			r.conns = append(r.conns, in, out)
			r.mu.Unlock()
			go func() { _, _ = io.Copy(out, in); out.Close() }()
			go func() { _, _ = io.Copy(in, out); in.Close() }()
		}
	}()
	return r
}

func (r *cutRelay) cut() {
	_ = r.ln.Close()
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, c := range r.conns {
		_ = c.Close()
	}
	r.conns = nil
}

// syncBuffer is a log destination that tests read while the server writes.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

// faultLines returns the "dependency failing" log lines, by cause.
func (s *syncBuffer) faultLines(t *testing.T) map[string]int {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	out := map[string]int{}
	sc := bufio.NewScanner(bytes.NewReader(s.b.Bytes()))
	for sc.Scan() {
		var line struct{ Msg, Cause string }
		if json.Unmarshal(sc.Bytes(), &line) == nil && strings.HasPrefix(line.Msg, "dependency failing") {
			out[line.Cause]++
		}
	}
	return out
}

// bootLogged starts cairnd (dev mode) on dbURL with its log in a buffer.
func bootLogged(t *testing.T, dbURL string) (*testrepo.Repo, *syncBuffer) {
	t.Helper()
	dir := t.TempDir()
	logs := &syncBuffer{}
	c := daemon.Config{Listen: "127.0.0.1:0", DatabaseURL: dbURL, Dev: true, DataDir: dir, MaxBlobSize: 1 << 30, PublishInterval: time.Hour, LogLevel: "warn"}
	r, err := daemon.Start(context.Background(), c, os.Getenv, io.Discard, slog.New(slog.NewJSONHandler(logs, nil)))
	if err != nil {
		t.Fatalf("starting cairnd: %v", err)
	}
	t.Cleanup(func() { _ = r.Close() })
	tok, err := os.ReadFile(filepath.Join(dir, "admin.token"))
	if err != nil {
		t.Fatal(err)
	}
	return &testrepo.Repo{Running: r, Dir: dir, AdminToken: strings.TrimSpace(string(tok))}, logs
}

// putBlob uploads content and returns the status, the problem's code and Retry-After.
func putBlob(t *testing.T, r *testrepo.Repo, content []byte) (int, api.Code, string) {
	t.Helper()
	sum := sha256.Sum256(content)
	req, err := http.NewRequest(http.MethodPut, r.URL+"/api/v1/blobs/sha256:"+hex.EncodeToString(sum[:]), bytes.NewReader(content))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+r.AdminToken)
	req.Header.Set("Content-Type", "application/octet-stream")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var p api.Problem
	_ = json.NewDecoder(resp.Body).Decode(&p)
	return resp.StatusCode, p.Code, resp.Header.Get("Retry-After")
}

// ociPush pushes content as a blob in one POST and returns the status, the first error
// code and Retry-After.
func ociPush(t *testing.T, r *testrepo.Repo, content []byte) (int, string, string) {
	t.Helper()
	sum := sha256.Sum256(content)
	req, err := http.NewRequest(http.MethodPost, r.URL+"/v2/demo/app/blobs/uploads/?digest=sha256:"+hex.EncodeToString(sum[:]), bytes.NewReader(content))
	if err != nil {
		t.Fatal(err)
	}
	req.SetBasicAuth("anyone", r.AdminToken)
	req.Header.Set("Content-Type", "application/octet-stream")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var doc struct{ Errors []struct{ Code string } }
	_ = json.NewDecoder(resp.Body).Decode(&doc)
	code := ""
	if len(doc.Errors) > 0 {
		code = doc.Errors[0].Code
	}
	return resp.StatusCode, code, resp.Header.Get("Retry-After")
}

func readyz(t *testing.T, r *testrepo.Repo) (int, api.Health) {
	t.Helper()
	resp, err := http.Get(r.URL + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var h api.Health
	if err := json.NewDecoder(resp.Body).Decode(&h); err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, h
}

// TestDependencyFailuresAnswerUnavailable: the database going away, the blob directory
// replaced by a file, a full disk and (when not root) a read-only blob directory are
// answered 503 `unavailable` with Retry-After — not 500 `internal` — and each cause is
// logged once however many requests meet it. /readyz says the blob store is not
// writable (degraded: downloads still work) and the database unreachable (unready).
//
// Run as root, chmod does not deny, so the read-only case runs only as another user;
// the full disk is a small tmpfs mounted as the blob directory, which needs root with
// CAP_SYS_ADMIN. Both say so in the test log when they cannot run.
func TestDependencyFailuresAnswerUnavailable(t *testing.T) {
	for _, tc := range []struct {
		name string
		// fault breaks the replica; it returns false (and logs why) if it cannot here.
		fault      func(t *testing.T, r *testrepo.Repo, relay *cutRelay) bool
		retryAfter string
		// readyz: the status and the check that must say what is wrong.
		readyStatus       int
		readyKey, readyIn string
	}{
		{
			name:       "database unreachable",
			fault:      func(t *testing.T, r *testrepo.Repo, relay *cutRelay) bool { relay.cut(); return true },
			retryAfter: "5", readyStatus: http.StatusServiceUnavailable, readyKey: "database", readyIn: "unreachable",
		},
		{
			// The database ends every connection (pg_terminate_backend) and accepts no new
			// ones, as during a restart or failover.
			name: "database terminates connections",
			fault: func(t *testing.T, r *testrepo.Repo, _ *cutRelay) bool {
				ctx := context.Background()
				name := strings.TrimPrefix(mustParseURL(t, r.Config.DatabaseURL).Path, "/")
				admin := mustParseURL(t, r.Config.DatabaseURL)
				admin.Path = "/postgres"
				conn, err := pgx.Connect(ctx, admin.String())
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() {
					_, _ = conn.Exec(ctx, `ALTER DATABASE "`+name+`" ALLOW_CONNECTIONS true`)
					conn.Close(ctx)
				})
				if _, err := conn.Exec(ctx, `ALTER DATABASE "`+name+`" ALLOW_CONNECTIONS false`); err != nil {
					t.Fatal(err)
				}
				if _, err := conn.Exec(ctx, `SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1`, name); err != nil {
					t.Fatal(err)
				}
				return true
			},
			retryAfter: "5", readyStatus: http.StatusServiceUnavailable, readyKey: "database", readyIn: "unreachable",
		},
		{
			name: "blob directory replaced by a file",
			fault: func(t *testing.T, r *testrepo.Repo, _ *cutRelay) bool {
				tmp := filepath.Join(r.Dir, "blobs", "tmp")
				if err := os.Rename(tmp, tmp+".moved"); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(tmp, []byte("not a directory"), 0o640); err != nil {
					t.Fatal(err)
				}
				return true
			},
			retryAfter: "30", readyStatus: http.StatusOK, readyKey: "blob_store", readyIn: "NOT WRITABLE",
		},
		{
			name: "disk full",
			fault: func(t *testing.T, r *testrepo.Repo, _ *cutRelay) bool {
				// The whole blob directory on one small file system, as in production.
				blobs := filepath.Join(r.Dir, "blobs")
				if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", blobs).CombinedOutput(); err != nil {
					t.Logf("cannot test a full disk here: mounting a 64 KiB tmpfs needs root with CAP_SYS_ADMIN: %v %s", err, out)
					return false
				}
				t.Cleanup(func() { _ = exec.Command("umount", blobs).Run() })
				tmp := filepath.Join(blobs, "tmp")
				for _, d := range []string{tmp, filepath.Join(blobs, "sha256")} {
					if err := os.Mkdir(d, 0o750); err != nil {
						t.Fatal(err)
					}
				}
				// Fill it: every write after this fails with ENOSPC.
				f, err := os.Create(filepath.Join(tmp, "filler"))
				if err != nil {
					t.Fatal(err)
				}
				defer f.Close()
				for {
					if _, err := f.Write(make([]byte, 4096)); err != nil {
						if !errors.Is(err, syscall.ENOSPC) {
							t.Fatalf("filling the tmpfs: %v", err)
						}
						return true
					}
				}
			},
			retryAfter: "30", readyStatus: http.StatusOK, readyKey: "blob_store", readyIn: "NOT WRITABLE",
		},
		{
			name: "read-only blob directory",
			fault: func(t *testing.T, r *testrepo.Repo, _ *cutRelay) bool {
				tmp := filepath.Join(r.Dir, "blobs", "tmp")
				if os.Geteuid() == 0 {
					// chmod does not deny root: a read-only file system does.
					if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "ro,size=64k", "tmpfs", tmp).CombinedOutput(); err != nil {
						t.Logf("cannot test a read-only blob directory here: as root chmod does not deny, and mounting a read-only tmpfs needs CAP_SYS_ADMIN: %v %s", err, out)
						return false
					}
					t.Cleanup(func() { _ = exec.Command("umount", tmp).Run() })
					return true
				}
				if err := os.Chmod(tmp, 0o500); err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { _ = os.Chmod(tmp, 0o750) })
				return true
			},
			retryAfter: "30", readyStatus: http.StatusOK, readyKey: "blob_store", readyIn: "NOT WRITABLE",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			u, drop, err := testdb.Create("e2e_" + t.Name())
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(drop)
			relay := newCutRelay(t, u)
			r, logs := bootLogged(t, relay.url)
			t.Cleanup(func() {
				if t.Failed() {
					logs.mu.Lock()
					t.Logf("cairnd log:\n%s", logs.b.String())
					logs.mu.Unlock()
				}
			})
			if st, code, _ := putBlob(t, r, []byte("before the fault")); st != http.StatusCreated {
				t.Fatalf("upload before the fault: %d %s", st, code)
			}
			if !tc.fault(t, r, relay) {
				return
			}
			const n = 5
			for i := range n {
				st, code, ra := putBlob(t, r, bytes.Repeat([]byte{byte(i)}, 200<<10))
				if st != http.StatusServiceUnavailable || code != api.CodeUnavailable || ra != tc.retryAfter {
					t.Errorf("upload %d: %d %q Retry-After %q, want 503 %q Retry-After %q", i, st, code, ra, api.CodeUnavailable, tc.retryAfter)
				}
			}
			// The OCI registry answers the same, in its own error format.
			if st, code, ra := ociPush(t, r, []byte("an OCI layer pushed during the fault")); st != http.StatusServiceUnavailable || code != "UNAVAILABLE" || ra != tc.retryAfter {
				t.Errorf("OCI monolithic push: %d %q Retry-After %q, want 503 UNAVAILABLE Retry-After %q", st, code, ra, tc.retryAfter)
			}
			lines := logs.faultLines(t)
			if len(lines) == 0 {
				t.Errorf("no dependency failure was logged")
			}
			for cause, k := range lines {
				if k != 1 {
					t.Errorf("cause %q logged %d times in %d requests, want once", cause, k, n)
				}
			}
			st, h := readyz(t, r)
			if st != tc.readyStatus || !strings.Contains(h.Checks[tc.readyKey], tc.readyIn) {
				t.Errorf("/readyz: %d %s %v, want %d and %s containing %q", st, h.Status, h.Checks, tc.readyStatus, tc.readyKey, tc.readyIn)
			}
			t.Logf("logged causes %v; /readyz %d %s: %s=%q", lines, st, h.Status, tc.readyKey, h.Checks[tc.readyKey])
		})
	}
}

func mustParseURL(t *testing.T, s string) *url.URL {
	t.Helper()
	u, err := url.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return u
}
