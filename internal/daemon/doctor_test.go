package daemon_test

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/cairn-dev/cairn/internal/daemon"
	"github.com/cairn-dev/cairn/internal/testdb"
	"github.com/cairn-dev/cairn/internal/testrepo"
)

func TestDoctor(t *testing.T) {
	u, drop, err := testdb.Create("daemon_doctor")
	if err != nil {
		t.Fatal(err)
	}
	r := testrepo.Boot(t, u, nil)
	t.Cleanup(drop)
	base := []string{"doctor", "--dev", "--data-dir", r.Dir, "--database-url", u, "--output", "json"}

	run := func(args ...string) (int, daemon.DoctorReport, string) {
		t.Helper()
		var out, errb bytes.Buffer
		code := daemon.Main(context.Background(), append(append([]string{}, base...), args...), &out, &errb, func(string) string { return "" })
		var rep daemon.DoctorReport
		if err := json.Unmarshal(out.Bytes(), &rep); err != nil {
			t.Fatalf("doctor %v: %v\nstdout %s\nstderr %s", args, err, out.String(), errb.String())
		}
		return code, rep, errb.String()
	}
	status := func(rep daemon.DoctorReport, check string) (daemon.DoctorCheck, bool) {
		for _, c := range rep.Checks {
			if c.Check == check {
				return c, true
			}
		}
		return daemon.DoctorCheck{}, false
	}

	code, rep, stderr := run()
	if code != 0 || rep.Problems != 0 {
		t.Fatalf("healthy repository: exit %d (%s), %+v", code, stderr, rep.Checks)
	}
	for check, want := range map[string]string{
		"database": daemon.DoctorOK, "migrations": daemon.DoctorOK, "clock": daemon.DoctorOK, "blob store": daemon.DoctorOK,
		"key timestamp": daemon.DoctorOK, "key snapshot": daemon.DoctorOK, "key recently-claimed": daemon.DoctorOK,
		"expiry root": daemon.DoctorOK, "expiry targets": daemon.DoctorOK, "expiry claimed": daemon.DoctorOK, "expiry recently-claimed": daemon.DoctorOK,
		"expiry snapshot": daemon.DoctorOK, "expiry timestamp": daemon.DoctorOK, "transparency log": daemon.DoctorInfo, "s3 bucket": daemon.DoctorInfo,
	} {
		if c, ok := status(rep, check); !ok || c.Status != want {
			t.Errorf("%s: %+v (found %v), want %s", check, c, ok, want)
		}
	}
	var text bytes.Buffer
	if code := daemon.Main(context.Background(), base[:len(base)-2], &text, &bytes.Buffer{}, func(string) string { return "" }); code != 0 || !strings.Contains(text.String(), "No problems found.") {
		t.Errorf("text: exit %d\n%s", code, text.String())
	}

	cases := []struct {
		name         string
		args         []string
		setup        func(t *testing.T) func()
		check, fix   string
		detailSubstr string
	}{
		{name: "offline roles near expiry", args: []string{"--expiry-warning", "9000h"}, check: "expiry root", fix: "cairn admin root rotate", detailSubstr: "offline, version 1"},
		{name: "bad key URI", args: []string{"--timestamp-key", "file:///nonexistent/key.json"}, check: "key timestamp", fix: "fix the key URI", detailSubstr: "FAILED"},
		{name: "missing blob dir", args: []string{"--blob-dir", "/nonexistent/blobs"}, check: "blob store", fix: "create /nonexistent/blobs", detailSubstr: "no such file"},
		{name: "disk space", args: []string{"--min-free-bytes", "9223372036854775807"}, check: "blob store", fix: "cairnd gc", detailSubstr: "free of"},
		{name: "database down", args: []string{"--database-url", "postgres://postgres@127.0.0.1:1/none?sslmode=disable&connect_timeout=2"}, check: "database", fix: "check --database-url", detailSubstr: "unreachable"},
		{name: "pending migration", setup: func(t *testing.T) func() {
			var v int64
			if err := r.DB.Pool.QueryRow(context.Background(), `DELETE FROM goose_db_version WHERE version_id = (SELECT max(version_id) FROM goose_db_version) RETURNING version_id`).Scan(&v); err != nil {
				t.Fatal(err)
			}
			return func() {
				if _, err := r.DB.Pool.Exec(context.Background(), `INSERT INTO goose_db_version (version_id, is_applied) VALUES ($1, true)`, v); err != nil {
					t.Fatal(err)
				}
			}
		}, check: "migrations", fix: "cairnd migrate", detailSubstr: "1 pending"},
	}
	for _, tt := range cases {
		t.Run(tt.name, func(t *testing.T) {
			if tt.setup != nil {
				defer tt.setup(t)()
			}
			code, rep, stderr := run(tt.args...)
			c, _ := status(rep, tt.check)
			if code != 1 || c.Status != daemon.DoctorProblem || !strings.Contains(c.Fix, tt.fix) || !strings.Contains(c.Detail, tt.detailSubstr) || !strings.Contains(stderr, "problem(s) found") {
				t.Fatalf("exit %d (%s); %s = %+v; want a problem with %q and fix %q\n%+v", code, stderr, tt.check, c, tt.detailSubstr, tt.fix, rep.Checks)
			}
		})
	}

	// Twenty days on, the timestamp and snapshot have expired: Doctor with a chosen clock.
	c := daemon.Config{Dev: true, DataDir: r.Dir, DatabaseURL: u, MaxBlobSize: 1 << 20}
	later := daemon.Doctor(context.Background(), &c, os.Getenv, daemon.DoctorOptions{OfflineWarning: time.Hour, MaxSkew: time.Minute, Now: func() time.Time { return time.Now().Add(20 * 24 * time.Hour) }})
	for _, role := range []string{"timestamp", "snapshot"} {
		if ch, _ := status(*later, "expiry "+role); ch.Status != daemon.DoctorProblem || !strings.Contains(ch.Detail, "EXPIRED") || !strings.Contains(ch.Fix, "publisher") {
			t.Errorf("%s twenty days on: %+v", role, ch)
		}
	}
	if ch, _ := status(*later, "expiry recently-claimed"); ch.Status != daemon.DoctorOK {
		t.Errorf("recently-claimed twenty days on (10 of 30 days left): %+v", ch)
	}

	// Doctor writes nothing: on an empty dev data directory it creates no key, no file.
	empty := t.TempDir()
	var out bytes.Buffer
	daemon.Main(context.Background(), []string{"doctor", "--dev", "--data-dir", empty, "--database-url", u}, &out, &bytes.Buffer{}, func(string) string { return "" })
	if entries, _ := os.ReadDir(empty); len(entries) != 0 {
		t.Errorf("doctor created %v in an empty data dir", entries)
	}
	if !strings.Contains(out.String(), "key timestamp") || !strings.Contains(out.String(), "no URI configured") {
		t.Errorf("doctor without keys:\n%s", out.String())
	}

	var errb bytes.Buffer
	if code := daemon.Main(context.Background(), append(base[:len(base)-2], "--output", "yaml"), &bytes.Buffer{}, &errb, func(string) string { return "" }); code != 1 || !strings.Contains(errb.String(), "--output must be text or json") {
		t.Errorf("--output yaml: exit %d, %s", code, errb.String())
	}
}
