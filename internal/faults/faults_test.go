package faults_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cairn-dev/cairn/internal/faults"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// devFull returns the error the kernel gives for a write to a full device.
func devFull(t *testing.T) error {
	t.Helper()
	err := os.WriteFile("/dev/full", []byte("x"), 0)
	if err == nil {
		t.Fatal("writing /dev/full succeeded")
	}
	return err
}

func TestClassify(t *testing.T) {
	ctx := context.Background()
	_, refused := pgx.Connect(ctx, "postgres://nobody@127.0.0.1:1/x?sslmode=disable&connect_timeout=2")
	notDir := func(t *testing.T) error {
		f := filepath.Join(t.TempDir(), "file")
		if err := os.WriteFile(f, nil, 0o600); err != nil {
			t.Fatal(err)
		}
		_, err := os.Create(filepath.Join(f, "x"))
		return err
	}
	for _, tc := range []struct {
		name  string
		err   func(t *testing.T) error
		cause string // "" when not a fault
	}{
		{"database refuses connections", func(*testing.T) error { return fmt.Errorf("looking up token: %w", refused) }, "database unreachable"},
		{"backend terminated", func(*testing.T) error { return &pgconn.PgError{Code: "57P01"} }, "database shutting down or starting"},
		{"database disk full", func(*testing.T) error { return &pgconn.PgError{Code: "53100"} }, "database disk full"},
		{"unique violation is not a fault", func(*testing.T) error { return &pgconn.PgError{Code: "23505"} }, ""},
		{"disk full", func(t *testing.T) error { return fmt.Errorf("receiving blob: %w", devFull(t)) }, "storage: disk full"},
		{"not a directory", notDir, "storage: a directory is missing or replaced by a file"},
		{"a bug", func(*testing.T) error { return errors.New("nil map") }, ""},
		{"a client gone", func(*testing.T) error { return fmt.Errorf("x: %w", context.Canceled) }, ""},
		{"bare EOF needs the database asked", func(*testing.T) error { return io.ErrUnexpectedEOF }, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.err(t)
			f, ok := faults.Classify(err)
			if ok != (tc.cause != "") || f.Cause != tc.cause {
				t.Fatalf("Classify(%v) = %q, %v; want %q", err, f.Cause, ok, tc.cause)
			}
			if ok && (f.RetryAfter <= 0 || f.Detail == "" || strings.Contains(f.Detail, "/")) {
				t.Errorf("fault %+v: want a Retry-After and a detail without paths", f)
			}
		})
	}
}

// TestDiagnoseAsksTheDatabase: an error that only says a connection ended is the
// database's fault if and only if the database does not answer now.
func TestDiagnoseAsksTheDatabase(t *testing.T) {
	for _, tc := range []struct {
		name  string
		ping  error
		cause string
	}{
		{"database answers: a bug", nil, ""},
		{"database gone", io.EOF, "database connection lost"},
		{"database silent", context.DeadlineExceeded, "database not answering"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := faults.NewReporter(slog.New(slog.DiscardHandler), time.Now, func(context.Context) error { return tc.ping })
			f, ok := r.Diagnose(context.Background(), fmt.Errorf("reading: %w", io.ErrUnexpectedEOF))
			if ok != (tc.cause != "") || f.Cause != tc.cause {
				t.Fatalf("Diagnose = %q, %v; want %q", f.Cause, ok, tc.cause)
			}
		})
	}
}

// TestReportLogsOncePerCause: a cause is logged once, then again after Interval with the
// count of what was not logged; another cause is logged at once.
func TestReportLogsOncePerCause(t *testing.T) {
	var buf bytes.Buffer
	now := time.Unix(1_000_000, 0)
	r := faults.NewReporter(slog.New(slog.NewTextHandler(&buf, nil)), func() time.Time { return now }, nil)
	db := faults.Fault{Cause: "database unreachable", RetryAfter: 5 * time.Second}
	disk := faults.Fault{Cause: "storage: disk full", RetryAfter: 30 * time.Second}
	for range 100 {
		r.Report(db, errors.New("refused"))
	}
	r.Report(disk, errors.New("ENOSPC"))
	now = now.Add(faults.Interval)
	r.Report(db, errors.New("refused"))
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 3 {
		t.Fatalf("%d log lines, want 3:\n%s", len(lines), buf.String())
	}
	if !strings.Contains(lines[2], "not_logged_since_last=99") {
		t.Errorf("the repeat line does not count what was not logged: %s", lines[2])
	}
	if got := faults.RetryAfterHeader(1500 * time.Millisecond); got != "2" {
		t.Errorf("Retry-After of 1.5 s = %q, want 2", got)
	}
}
