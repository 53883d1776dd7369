// Package faults tells failures of what a replica depends on — the database unreachable
// or restarting, a disk full, a read-only or unwritable blob directory — from bugs. The
// server answers them 503 `unavailable` with Retry-After, since the request is fine and
// will succeed once an operator (or a failover) fixes the cause, and logs each cause once
// rather than once per request: during an outage every request fails the same way.
package faults

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
)

// Fault is a failure of a dependency.
type Fault struct {
	// Cause names the failure for operators and is the key logs are limited by:
	// "database unreachable", "blob store: disk full".
	Cause string
	// Detail is what the client is told: what is unavailable, never paths or addresses.
	Detail string
	// RetryAfter is the Retry-After the answer carries.
	RetryAfter time.Duration
}

// Retry-After values. A database failover or restart takes seconds; a full disk or a
// permission needs an operator, and clients retrying every second only add load.
const (
	retryDatabase = 5 * time.Second
	retryStorage  = 30 * time.Second
)

// Classify reports whether err is a dependency failure, and which. Errors of requests
// the client abandoned (context.Canceled) are not: nobody is waiting for the answer.
func Classify(err error) (Fault, bool) {
	if err == nil || errors.Is(err, context.Canceled) {
		return Fault{}, false
	}
	db := func(cause string) (Fault, bool) { return databaseFault(cause), true }
	// Checked first: a refused connection may carry the server's reason as a PgError
	// (55000 not accepting connections, 57P03 starting up, 53300 too many clients).
	var ce *pgconn.ConnectError
	if errors.As(err, &ce) {
		return db("unreachable")
	}
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		switch code := pe.Code; {
		case strings.HasPrefix(code, "08"): // connection exception
			return db("connection failed")
		case code == "57P01", code == "57P02", code == "57P03": // admin/crash shutdown, cannot connect now
			return db("shutting down or starting")
		case code == "53100":
			return db("disk full")
		case strings.HasPrefix(code, "53"): // insufficient resources: memory, connections
			return db("out of resources (" + code + ")")
		case code == "25006": // read_only_sql_transaction: a standby, or a failover in progress
			return db("read-only (a standby?)")
		}
		return Fault{}, false // a SQL error: a bug, or a conflict the caller handles
	}
	// pgconn's transport errors (connection lost, closed, timed out) all say whether a
	// retry is safe; SQL errors and Cairn's own do not.
	var tr interface{ SafeToRetry() bool }
	if errors.As(err, &tr) {
		if pgconn.Timeout(err) {
			return db("not answering")
		}
		return db("connection lost")
	}
	storage := func(cause string) (Fault, bool) {
		return Fault{Cause: "storage: " + cause, Detail: "storage is unavailable (" + cause + "); try again later", RetryAfter: retryStorage}, true
	}
	var errno syscall.Errno
	if errors.As(err, &errno) {
		switch errno {
		case syscall.ENOSPC:
			return storage("disk full")
		case syscall.EDQUOT:
			return storage("disk quota exceeded")
		case syscall.EROFS:
			return storage("read-only file system")
		case syscall.EACCES, syscall.EPERM:
			return storage("permission denied")
		case syscall.ENOTDIR:
			return storage("a directory is missing or replaced by a file")
		case syscall.EIO:
			return storage("I/O error")
		}
	}
	// Another backend (the S3 content store) that cannot be reached.
	var oe *net.OpError
	if errors.As(err, &oe) && oe.Op == "dial" {
		return storage("backend unreachable")
	}
	return Fault{}, false
}

func databaseFault(cause string) Fault {
	return Fault{Cause: "database " + cause, Detail: "the database is unavailable (" + cause + "); try again later", RetryAfter: retryDatabase}
}

// Reporter tells dependency failures from bugs (Diagnose) and logs them once per cause
// per Interval, with how many were not logged.
type Reporter struct {
	log      *slog.Logger
	now      func() time.Time
	ping     func(context.Context) error
	interval time.Duration

	mu   sync.Mutex
	seen map[string]*seen
}

type seen struct {
	logged     time.Time
	suppressed int
}

// Interval is how often a fault that persists is logged again.
const Interval = time.Minute

// NewReporter returns a Reporter logging to log. ping checks the database (nil: never).
func NewReporter(log *slog.Logger, now func() time.Time, ping func(context.Context) error) *Reporter {
	return &Reporter{log: log, now: now, ping: ping, interval: Interval, seen: map[string]*seen{}}
}

// pingTimeout bounds the database check of Diagnose: it delays only answers that would
// otherwise be 500.
const pingTimeout = time.Second

// Diagnose is Classify, and for an error that only says a connection ended (a bare
// io.ErrUnexpectedEOF or io.EOF, or a read on a socket that failed: what pgx returns when
// the database's connection drops in the middle of a query, but also what a truncated
// file or a client that went away give) it asks the database: if the database cannot be
// reached now, that is the fault. A database that answers leaves the error a bug (500).
func (r *Reporter) Diagnose(ctx context.Context, err error) (Fault, bool) {
	if f, ok := Classify(err); ok || err == nil || r.ping == nil || ctx.Err() != nil {
		return f, ok
	}
	var oe *net.OpError
	if !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, io.EOF) && !errors.As(err, &oe) {
		return Fault{}, false
	}
	ctx, cancel := context.WithTimeout(ctx, pingTimeout)
	defer cancel()
	perr := r.ping(ctx)
	if perr == nil {
		return Fault{}, false
	}
	if f, ok := Classify(perr); ok {
		return f, true
	}
	if errors.Is(perr, context.DeadlineExceeded) {
		return databaseFault("not answering"), true
	}
	return databaseFault("connection lost"), true // the ping failed too: the database's fault
}

// Report logs f (err is its cause, attrs say where it was met) unless the same cause was
// logged less than Interval ago; then it only counts it, for the next line.
func (r *Reporter) Report(f Fault, err error, attrs ...any) {
	now := r.now()
	r.mu.Lock()
	s, ok := r.seen[f.Cause]
	if ok && now.Sub(s.logged) < r.interval {
		s.suppressed++
		r.mu.Unlock()
		return
	}
	if !ok {
		s = &seen{}
		r.seen[f.Cause] = s
	}
	suppressed := s.suppressed
	s.logged, s.suppressed = now, 0
	r.mu.Unlock()
	args := append([]any{"cause", f.Cause, "err", err, "retry_after", f.RetryAfter.String()}, attrs...)
	if ok {
		args = append(args, "not_logged_since_last", suppressed)
	}
	r.log.Error("dependency failing: answering 503 unavailable with Retry-After (logged once a minute per cause)", args...)
}

// RetryAfterHeader renders d as Retry-After seconds (at least 1).
func RetryAfterHeader(d time.Duration) string {
	s := int((d + time.Second - 1) / time.Second)
	return strconv.Itoa(max(s, 1))
}
