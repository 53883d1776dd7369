package cli

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestDoctorLive(t *testing.T) {
	_, c := liveMaintainer(t, "cli_doctor")
	dist := t.TempDir()
	c.ok("upload", "widget", "1.0", writeFile(t, dist, "widget.tar.gz", "one"), "--key", "alice")
	c.ok("project", "resign", "widget", "--key", "alice", "--key", "bob")
	c.ok("project", "threshold", "widget", "2", "--key", "alice")
	// 2.0 waits for bob's signature.
	c.run("upload", "widget", "2.0", writeFile(t, dist, "widget-2.tar.gz", "two"), "--key", "alice")

	report := func(args ...string) (int, DoctorReport, string) {
		t.Helper()
		r := c.run(append([]string{"doctor", "--output", "json"}, args...)...)
		var rep DoctorReport
		if err := json.Unmarshal([]byte(r.stdout), &rep); err != nil {
			t.Fatalf("doctor json: %v\n%s\n%s", err, r.stdout, r.stderr)
		}
		return r.code, rep, r.stderr
	}
	find := func(rep DoctorReport, check, status string) *DoctorCheck {
		for i, ch := range rep.Checks {
			if ch.Check == check && ch.Status == status {
				return &rep.Checks[i]
			}
		}
		return nil
	}

	before := snapshotTree(t, c.home)
	code, rep, _ := report()
	if code != 0 || rep.Problems != 0 {
		t.Fatalf("healthy setup: exit %d, report %+v", code, rep)
	}
	for _, want := range []struct{ check, status string }{
		{"pinned root", StatusOK}, {"server", StatusOK}, {"clock", StatusOK}, {"timestamp", StatusOK}, {"key store", StatusOK},
		{"policy file", StatusInfo}, {"project widget", StatusOK}, {"tls", StatusInfo}, {"api token", StatusOK},
	} {
		if find(rep, want.check, want.status) == nil {
			t.Errorf("no %s check with status %s in %+v", want.check, want.status, rep.Checks)
		}
	}
	todo := find(rep, "project widget proposals", StatusTodo)
	if todo == nil || !strings.Contains(todo.Fix, "cairn sign widget --key bob --kind role --version 4") {
		t.Errorf("pending proposal for bob: %+v", todo)
	}
	if text := c.ok("doctor"); !strings.Contains(text, "No problems found.") || !strings.Contains(text, "not configured") {
		t.Errorf("doctor text:\n%s", text)
	}
	if after := snapshotTree(t, c.home); after != before {
		t.Errorf("doctor wrote to the home:\n%s\n%s", before, after)
	}

	keyFile := filepath.Join(c.home, "keys", "alice.json")
	cases := []struct {
		name   string
		setup  func() func()
		args   []string
		check  string
		detail string
		fix    string
	}{
		{"key file 0644", func() func() {
			must(t, os.Chmod(keyFile, 0o644))
			return func() { must(t, os.Chmod(keyFile, 0o600)) }
		}, nil, "key alice", "mode 0644", "chmod 600 " + keyFile},
		{"near expiry", func() func() { return func() {} }, []string{"--expiry-warning", "9000h"}, "project widget", "expires soon", "cairn project resign widget --key alice --key bob"},
		{"wrong passphrase", func() func() {
			old := c.vars["CAIRN_KEY_PASSPHRASE"]
			c.vars["CAIRN_KEY_PASSPHRASE"] = "wrong"
			return func() { c.vars["CAIRN_KEY_PASSPHRASE"] = old }
		}, nil, "key alice", "$CAIRN_KEY_PASSPHRASE does not open it", "CAIRN_KEY_PASSPHRASE_ALICE"},
		{"wrong per-key passphrase file", func() func() { return func() {} }, []string{"--passphrase-file", "bob=" + writeFile(t, t.TempDir(), "pass", "nope\n")}, "key bob", "--passphrase-file bob=", "CAIRN_KEY_PASSPHRASE_BOB"},
		{"damaged key file", func() func() {
			b, err := os.ReadFile(keyFile)
			must(t, err)
			must(t, os.WriteFile(keyFile, []byte("{not json"), 0o600))
			return func() { must(t, os.WriteFile(keyFile, b, 0o600)) }
		}, nil, "key alice", "damaged", "restore"},
		{"unreadable key store", func() func() {
			dir := filepath.Join(c.home, "keys")
			moved := dir + ".moved"
			must(t, os.Rename(dir, moved))
			must(t, os.WriteFile(dir, []byte("not a directory"), 0o600))
			return func() { must(t, os.Remove(dir)); must(t, os.Rename(moved, dir)) }
		}, nil, "key store", "unreadable", "chmod 700"},
		{"token file others may read", func() func() {
			old := c.vars["CAIRN_TOKEN"]
			delete(c.vars, "CAIRN_TOKEN")
			must(t, os.WriteFile(filepath.Join(c.home, "credentials.json"), []byte(`{"tokens":{}}`), 0o644))
			return func() { c.vars["CAIRN_TOKEN"] = old; must(t, os.Remove(filepath.Join(c.home, "credentials.json"))) }
		}, nil, "api token", "other users may read it", "cairn login"},
		{"policy file that does not parse", func() func() {
			f := filepath.Join(c.home, "policy.yaml")
			must(t, os.WriteFile(f, []byte("global:\n  require_identities: -1\n"), 0o600))
			return func() { must(t, os.Remove(f)) }
		}, nil, "policy file", "policy.yaml", "cairn policy check"},
		{"no configuration", func() func() {
			old := c.vars["CAIRN_HOME"]
			c.vars["CAIRN_HOME"] = filepath.Join(t.TempDir(), "empty")
			return func() { c.vars["CAIRN_HOME"] = old }
		}, nil, "configuration", "no server configured", "cairn init"},
	}
	for _, tt := range cases {
		t.Run(tt.name, func(t *testing.T) {
			undo := tt.setup()
			defer undo()
			code, rep, stderr := report(tt.args...)
			ch := find(rep, tt.check, StatusProblem)
			if code != 4 || ch == nil || !strings.Contains(ch.Detail, tt.detail) || !strings.Contains(ch.Fix, tt.fix) {
				t.Fatalf("exit %d (stderr %q), %s problem %+v; want exit 4 and a problem mentioning %q with fix %q\n%+v", code, stderr, tt.check, ch, tt.detail, tt.fix, rep.Checks)
			}
		})
	}
	// A policy that parses is reported with what it trusts.
	policy := filepath.Join(c.home, "policy.yaml")
	must(t, os.WriteFile(policy, []byte("global:\n  trusted_identities:\n    - san: alice@example.com\n      issuer: https://issuer.example\n  require_identities: 1\n"), 0o600))
	if _, rep, _ := report(); find(rep, "policy file", StatusOK) == nil || !strings.Contains(find(rep, "policy file", StatusOK).Detail, "1 trusted identities") {
		t.Errorf("doctor with a valid policy: %+v", rep.Checks)
	}
	must(t, os.Remove(policy))
	c.fails(10, "--output must be text or json", "doctor", "--output", "yaml")
	c.fails(10, "--max-skew", "doctor", "--max-skew", "0s")
	c.fails(10, "unknown command", "doctor", "extra")
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
