package cli

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cairn-dev/cairn/client/clienttest"
	"github.com/cairn-dev/cairn/internal/testdb"
	"github.com/cairn-dev/cairn/internal/testenv"
	"github.com/cairn-dev/cairn/internal/testrepo"
	"github.com/cairn-dev/cairn/store"
)

// TestMain lets a test run this test binary as the cairn program: with
// CAIRN_CLI_TEST_AS_CAIRN=1 it does exactly what cmd/cairn's main does. Tests that must
// look at a real cairn process (its command line in /proc, a D-Bus session of its own)
// exec it so.
func TestMain(m *testing.M) {
	if os.Getenv("CAIRN_CLI_TEST_AS_CAIRN") == "1" {
		os.Exit(Main(os.Args[1:], os.Stdin, os.Stdout, os.Stderr, os.Getenv))
	}
	os.Exit(m.Run())
}

// runIn runs cairn in-process with stdin.
func (c *cli) runIn(stdin string, args ...string) result {
	c.t.Helper()
	var out, errb bytes.Buffer
	code := Main(args, strings.NewReader(stdin), &out, &errb, func(k string) string { return c.vars[k] })
	return result{code, out.String(), errb.String()}
}

// cairnCmd is cairn as a process of its own (TestMain), with c's environment only.
func (c *cli) cairnCmd(args ...string) *exec.Cmd {
	cmd := exec.Command(os.Args[0], args...)
	cmd.Env = []string{"CAIRN_CLI_TEST_AS_CAIRN=1", "PATH=" + os.Getenv("PATH")}
	for k, v := range c.vars {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	return cmd
}

// loggedOutMaintainer is a maintainer with a pinned root and a key, and no token.
func loggedOutMaintainer(t *testing.T) (*clienttest.Server, *cli) {
	t.Helper()
	srv := clienttest.New(t)
	c := newCLI(t)
	c.ok("init", "--server", srv.URL, "--root", writeFile(t, t.TempDir(), "root.json", string(srv.Root())))
	c.ok("key", "generate", "--name", "alice")
	return srv, c
}

// Without an OS keyring (no D-Bus session bus, as on a server or in CI) login stores the
// token in a 0600 file, every write finds it there, and logout removes it.
func TestLoginWithoutKeyringUsesPrivateFile(t *testing.T) {
	srv, c := loggedOutMaintainer(t)
	creds := filepath.Join(c.home, "credentials.json")

	c.fails(10, "run 'cairn login'", "project", "create", "widget", "--key", "alice")

	// Bad input is refused and stores nothing.
	for _, tt := range []struct {
		stdin string
		args  []string
		want  string
	}{
		{"", []string{"login", "--token", srv.Token}, "does not take --token"},
		{srv.Token, []string{"login"}, "--token-stdin"}, // stdin is not a terminal to prompt on
		{"\n", []string{"login", "--token-stdin"}, "the token is empty"},
		{"cairn_a cairn_b\n", []string{"login", "--token-stdin"}, "one token, on one line"},
		{strings.Repeat("x", maxToken+1), []string{"login", "--token-stdin"}, "not an API token"},
		{srv.Token, []string{"login", "--token-stdin", "ftp://x"}, "ftp"},
	} {
		if r := c.runIn(tt.stdin, tt.args...); r.code != 10 || !strings.Contains(r.stderr, tt.want) {
			t.Errorf("cairn %s: exit %d, stderr %q; want exit 10 mentioning %q", strings.Join(tt.args, " "), r.code, r.stderr, tt.want)
		}
		if _, err := os.Stat(creds); !os.IsNotExist(err) {
			t.Fatalf("after the refused cairn %s: %s exists (%v)", strings.Join(tt.args, " "), creds, err)
		}
	}

	r := c.runIn(srv.Token+"\n", "login", "--token-stdin")
	if r.code != 0 || !strings.Contains(r.stdout, "Stored the API token for "+srv.URL+" in "+creds+" (mode 0600)") {
		t.Fatalf("login: exit %d\nstdout: %s\nstderr: %s", r.code, r.stdout, r.stderr)
	}
	st, err := os.Stat(creds)
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("credentials file: %v, mode %v; want 0600", err, st.Mode())
	}
	// Another server's token sits beside it and is not sent to this one.
	c.runIn("cairn_other\n", "login", "--token-stdin", "https://other.example.org")
	c.ok("project", "create", "widget", "--key", "alice")

	// An explicit token wins over the stored one, and a refusal names its source.
	c.vars["CAIRN_TOKEN"] = "cairn_not-the-token"
	c.fails(20, "the token came from $CAIRN_TOKEN", "project", "create", "gadget", "--key", "alice")
	delete(c.vars, "CAIRN_TOKEN")

	// A wrong (or revoked) stored token: the server's refusal, exit 20, and where it came from.
	c.runIn("cairn_wrong\n", "login", "--token-stdin")
	r = c.fails(20, "the token came from 'cairn login "+srv.URL+"' (stored in "+creds+")", "project", "create", "gadget", "--key", "alice")
	if !strings.Contains(r.stderr, "unauthorized") && !strings.Contains(r.stderr, "token") {
		t.Errorf("stderr = %q", r.stderr)
	}
	if !strings.Contains(r.stderr, "run 'cairn login' again") {
		t.Errorf("a refused stored token does not say what to do: %q", r.stderr)
	}
	c.runIn(srv.Token+"\n", "login", "--token-stdin")

	// A token file others may read is refused, and left as it is.
	if err := os.Chmod(creds, 0o644); err != nil {
		t.Fatal(err)
	}
	before, _ := os.ReadFile(creds)
	c.fails(10, "chmod 600", "project", "create", "gadget", "--key", "alice")
	if after, _ := os.ReadFile(creds); !bytes.Equal(before, after) {
		t.Errorf("the refused credentials file changed:\n%s\n%s", before, after)
	}
	if err := os.Chmod(creds, 0o600); err != nil {
		t.Fatal(err)
	}

	if out := c.ok("logout"); !strings.Contains(out, "Removed the API token for "+srv.URL+" from "+creds) {
		t.Errorf("logout = %q", out)
	}
	if out := c.ok("logout"); !strings.Contains(out, "No token was stored for "+srv.URL) {
		t.Errorf("second logout = %q", out)
	}
	c.fails(10, "run 'cairn login'", "project", "create", "gadget", "--key", "alice")
	if out := c.ok("logout", "https://other.example.org"); !strings.Contains(out, "Removed") {
		t.Errorf("logout of the other server = %q", out)
	}
	if _, err := os.Stat(creds); !os.IsNotExist(err) {
		t.Errorf("with no token left, %s remains (%v)", creds, err)
	}

	c.vars["CAIRN_CREDENTIAL_STORE"] = "vault"
	c.fails(10, "want auto, keyring or file", "logout")
	c.vars["CAIRN_CREDENTIAL_STORE"] = "keyring"
	if r := c.runIn(srv.Token, "login", "--token-stdin"); r.code != 10 || !strings.Contains(r.stderr, "no OS keyring") {
		t.Errorf("login with CAIRN_CREDENTIAL_STORE=keyring and no keyring: exit %d, %q", r.code, r.stderr)
	}
}

// The token a command uses is on no command line and in no environment of the cairn
// process or of anything it starts: the test looks at /proc while the server holds the
// request that carries the token.
func TestStoredTokenNeverInArgvOrEnvironment(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("reads /proc")
	}
	srv, c := loggedOutMaintainer(t)
	const token = "cairn_secret-4f1e9a"
	// A proxy in front of the server inspects the cairn process during the request.
	target, _ := url.Parse(srv.URL)
	proxy := httputil.NewSingleHostReverseProxy(target)
	var (
		mu       sync.Mutex
		pid      int
		sawToken bool
		leaks    []string
	)
	front := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") == "Bearer "+token {
			mu.Lock()
			sawToken = true
			leaks = append(leaks, procLeaks(t, pid, token)...)
			mu.Unlock()
			r.Header.Set("Authorization", "Bearer "+srv.Token)
		}
		proxy.ServeHTTP(w, r)
	}))
	t.Cleanup(front.Close)
	c.ok("init", "--server", front.URL, "--root", writeFile(t, t.TempDir(), "root.json", string(srv.Root())))

	login := c.cairnCmd("login", "--token-stdin")
	login.Stdin = strings.NewReader(token + "\n")
	if out, err := login.CombinedOutput(); err != nil {
		t.Fatalf("cairn login: %v\n%s", err, out)
	}
	create := c.cairnCmd("project", "create", "widget", "--key", "alice")
	var out bytes.Buffer
	create.Stdout, create.Stderr = &out, &out
	mu.Lock()
	if err := create.Start(); err != nil {
		mu.Unlock()
		t.Fatal(err)
	}
	pid = create.Process.Pid
	mu.Unlock()
	if err := create.Wait(); err != nil {
		t.Fatalf("cairn project create: %v\n%s", err, out.String())
	}
	mu.Lock()
	defer mu.Unlock()
	if !sawToken {
		t.Fatalf("no request carried the stored token: the test checked nothing\n%s", out.String())
	}
	for _, l := range leaks {
		t.Error(l)
	}
}

// procLeaks returns where token shows in the command line or environment of process pid
// and its descendants.
func procLeaks(t *testing.T, pid int, token string) []string {
	var leaks []string
	seen := 0
	for _, p := range append([]int{pid}, descendants(pid)...) {
		for _, f := range []string{"cmdline", "environ"} {
			b, err := os.ReadFile(fmt.Sprintf("/proc/%d/%s", p, f))
			if err != nil {
				continue // it ended
			}
			seen++
			if bytes.Contains(b, []byte(token)) {
				leaks = append(leaks, fmt.Sprintf("the token is in /proc/%d/%s: %q", p, f, bytes.ReplaceAll(b, []byte{0}, []byte{' '})))
			}
		}
	}
	if seen == 0 {
		leaks = append(leaks, fmt.Sprintf("could not read /proc/%d: the cairn process was not inspected", pid))
	}
	return leaks
}

// descendants lists the processes started, directly or not, by pid.
func descendants(pid int) []int {
	entries, _ := os.ReadDir("/proc")
	children := map[int][]int{}
	for _, e := range entries {
		p, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		// pid (comm) state ppid …; comm may hold spaces and parentheses.
		rest := string(b[bytes.LastIndexByte(b, ')')+1:])
		if f := strings.Fields(rest); len(f) > 1 {
			if ppid, err := strconv.Atoi(f[1]); err == nil {
				children[ppid] = append(children[ppid], p)
			}
		}
	}
	var out []int
	for queue := children[pid]; len(queue) > 0; queue = queue[1:] {
		out = append(out, queue[0])
		queue = append(queue, children[queue[0]]...)
	}
	return out
}

// With a real Secret Service (GNOME Keyring on a D-Bus session bus of the test's own) the
// token goes into the keyring, no file is written, writes find it there, and logout
// removes it. With a session bus whose keyring cannot be used, login falls back to the
// file and says why.
func TestLoginUsesOSKeyring(t *testing.T) {
	for _, tool := range []string{"dbus-run-session", "gnome-keyring-daemon"} {
		if _, err := exec.LookPath(tool); err != nil {
			testenv.MissingTool(t, tool+" is not on PATH: the OS keyring test needs GNOME Keyring on a D-Bus session bus (make keyring)")
		}
	}
	srv, c := loggedOutMaintainer(t)
	creds := filepath.Join(c.home, "credentials.json")
	tokenFile := writeFile(t, t.TempDir(), "token", srv.Token+"\n")
	keyringHome := t.TempDir()

	// One D-Bus session: GNOME Keyring's login collection is created and unlocked, then
	// cairn runs in it.
	script := `set -e
echo keyring-test-password | gnome-keyring-daemon --unlock --components=secrets >/dev/null
"$0" login --token-stdin < "$1"
test ! -e "$2" || { echo "login wrote $2 although the keyring took the token"; exit 1; }
"$0" project create widget --key alice
"$0" logout
if "$0" project create gadget --key alice; then echo "a write worked after logout"; exit 1; fi
`
	cmd := c.cairnCmd()
	cmd.Path, _ = exec.LookPath("dbus-run-session")
	cmd.Args = []string{"dbus-run-session", "--", "sh", "-c", script, os.Args[0], tokenFile, creds}
	cmd.Env = append(cmd.Env, "HOME="+keyringHome, "XDG_DATA_HOME="+filepath.Join(keyringHome, "data"), "XDG_RUNTIME_DIR="+keyringHome)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("the keyring session failed: %v\n%s", err, out)
	}
	for _, want := range []string{
		"Stored the API token for " + srv.URL + " in the OS keyring.",
		"Created project widget",
		"Removed the API token for " + srv.URL + " from the OS keyring.",
		"run 'cairn login'",
	} {
		if !strings.Contains(string(out), want) {
			t.Errorf("the session's output lacks %q:\n%s", want, out)
		}
	}

	// A session bus that cannot be reached (a stale $DBUS_SESSION_BUS_ADDRESS, as over ssh).
	login := c.cairnCmd("login", "--token-stdin")
	login.Env = append(login.Env, "DBUS_SESSION_BUS_ADDRESS=unix:path="+filepath.Join(t.TempDir(), "no-bus"))
	login.Stdin = strings.NewReader(srv.Token)
	out, err = login.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "the OS keyring is not usable") || !strings.Contains(string(out), creds+" (mode 0600)") {
		t.Fatalf("login with an unreachable session bus: %v\n%s", err, out)
	}
	if st, err := os.Stat(creds); err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("credentials file: %v, %v; want mode 0600", err, st)
	}
}

// Against a real cairnd and PostgreSQL: a stored token works until the operators revoke
// it, then writes are refused with the server's own error ("not valid or was revoked"),
// exit 20, naming 'cairn login' as the source and saying what to do.
func TestLoginTokenRevokedOnRealServer(t *testing.T) {
	u, drop, err := testdb.Create("cli_login")
	if err != nil {
		t.Fatal(err)
	}
	r := testrepo.Boot(t, u, nil)
	t.Cleanup(drop)
	ctx := context.Background()
	db, err := store.Open(ctx, u)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(db.Close)
	token, rec, err := db.CreateToken(ctx, store.NewTokenSpec{Name: "laptop", Admin: true})
	if err != nil {
		t.Fatal(err)
	}

	c := newCLI(t)
	c.ok("init", "--server", r.URL, "--root", writeFile(t, t.TempDir(), "root.json", string(r.RootJSON)))
	c.ok("key", "generate", "--name", "alice")
	if res := c.runIn(token+"\n", "login", "--token-stdin"); res.code != 0 {
		t.Fatalf("login: exit %d: %s", res.code, res.stderr)
	}
	c.ok("project", "create", "hello", "--key", "alice")

	if err := db.RevokeToken(ctx, rec.ID); err != nil {
		t.Fatal(err)
	}
	// The server hears of the revocation by notification: a write or two may still pass.
	var res result
	for i := 0; i < 100; i++ {
		if res = c.run("project", "create", fmt.Sprintf("after-%d", i), "--key", "alice"); res.code != 0 {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	for _, want := range []string{"not valid or was revoked", "the token came from 'cairn login " + r.URL + "'", "run 'cairn login' again"} {
		if res.code != 20 || !strings.Contains(res.stderr, want) {
			t.Errorf("a write with the revoked stored token: exit %d, stderr %q; want exit 20 mentioning %q", res.code, res.stderr, want)
		}
	}
}

// A damaged token file is refused by login, logout and writes alike, with what to do, and
// is left as it is.
func TestDamagedCredentialsFileRefused(t *testing.T) {
	srv, c := loggedOutMaintainer(t)
	creds := filepath.Join(c.home, "credentials.json")
	for _, body := range []string{`{"tokens":`, `{"tokens":{"a":"x"},"Tokens":{}}`, `{"extra":1}`} {
		if err := os.WriteFile(creds, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		for _, args := range [][]string{{"login", "--token-stdin"}, {"logout"}, {"project", "create", "widget", "--key", "alice"}} {
			if r := c.runIn(srv.Token, args...); r.code != 10 || !strings.Contains(r.stderr, "run 'cairn login' again") {
				t.Errorf("cairn %s with credentials %s: exit %d, stderr %q; want exit 10 saying to log in again", strings.Join(args, " "), body, r.code, r.stderr)
			}
			if b, _ := os.ReadFile(creds); string(b) != body {
				t.Errorf("cairn %s changed the damaged file to %q", strings.Join(args, " "), b)
			}
		}
	}
}
