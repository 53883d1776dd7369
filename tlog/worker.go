package tlog

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"regexp"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cairn-dev/cairn/api"
	"github.com/cairn-dev/cairn/tufrepo"
)

// Pending is a signed metadata version without a log entry.
type Pending struct {
	Role    string
	Version int64
	Length  int64
	SHA256  string // hex
	// Head is the start of the metadata file: online-signed files begin with their
	// signatures ({"signatures":[…],"signed":…}, tufrepo.Envelope), which name the key.
	Head     []byte
	Attempts int
}

// Store is the storage the worker needs (package store implements it).
type Store interface {
	// TlogPass runs fn while holding the transparency log worker's lock across replicas;
	// it returns false, without running fn, when another replica holds it.
	TlogPass(ctx context.Context, fn func(ctx context.Context) error) (bool, error)
	// TlogPending returns up to limit signed versions with no entry whose next attempt is
	// due at now, oldest first.
	TlogPending(ctx context.Context, now time.Time, limit int) ([]Pending, error)
	// TlogRecord stores an entry (and forgets failed attempts for its version). Storing
	// an entry for a version that already has one changes nothing.
	TlogRecord(ctx context.Context, e api.TransparencyLogEntry) error
	// TlogFailed records a failed attempt and when to try again.
	TlogFailed(ctx context.Context, role string, version int64, next time.Time, msg string) error
	// TlogBacklog counts signed versions with no entry.
	TlogBacklog(ctx context.Context) (int64, error)
}

// Config configures the worker.
type Config struct {
	// URL is the Rekor v2 base URL; empty turns the transparency log off.
	URL string
	// LogKey, if set, verifies every answer's checkpoint before it is stored.
	LogKey *LogKey
	// RequestTimeout bounds one submission (Rekor v2 answers once a checkpoint covers the
	// entry). Default 30 s.
	RequestTimeout time.Duration
	// MaxBackoff bounds the wait before retrying a version. Default 5 min.
	MaxBackoff time.Duration
	// PollInterval is how often the worker looks for work without a kick. Default 15 s, or
	// MaxBackoff if shorter.
	PollInterval time.Duration
	// Concurrency is how many submissions run at once. Default 4.
	Concurrency int
}

func (c Config) withDefaults() Config {
	if c.RequestTimeout <= 0 {
		c.RequestTimeout = 30 * time.Second
	}
	if c.MaxBackoff <= 0 {
		c.MaxBackoff = 5 * time.Minute
	}
	if c.PollInterval <= 0 {
		// Often enough that a retry is not held up much longer than its backoff.
		c.PollInterval = min(15*time.Second, c.MaxBackoff)
	}
	if c.Concurrency <= 0 {
		c.Concurrency = 4
	}
	return c
}

// Result is the outcome of one submission, for metrics.
type Result struct {
	Role    string
	Version int64
	// Attempt counts earlier failed attempts (0: first try).
	Attempt int
	Err     error
	// Reason classifies a failure: "no_key", "sign", "refused", "unavailable", "verify", "store".
	Reason string
}

// Worker submits signed versions to the log in the background. Publishing never waits on
// it: it reads what the publisher committed and runs on its own schedule.
type Worker struct {
	cfg     Config
	store   Store
	client  *Client
	signers tufrepo.Signers
	now     func() time.Time
	log     *slog.Logger
	// Observe, if set, is called after every submission attempt.
	Observe func(Result)

	kick    chan struct{}
	backlog atomic.Int64
}

// NewWorker builds a worker for cfg (cfg.URL must be set). signers are the server's online
// keys: each version is signed again (the statement) by the key that signed it.
func NewWorker(cfg Config, st Store, signers tufrepo.Signers, now func() time.Time, log *slog.Logger) *Worker {
	cfg = cfg.withDefaults()
	return &Worker{
		cfg: cfg, store: st, signers: signers, now: now, log: log,
		client: &Client{URL: cfg.URL, HTTP: &http.Client{Timeout: cfg.RequestTimeout + 5*time.Second}},
		kick:   make(chan struct{}, 1),
	}
}

// Config returns the worker's configuration (with defaults applied).
func (w *Worker) Config() Config { return w.cfg }

// Kick asks for a pass soon; it never blocks.
func (w *Worker) Kick() {
	select {
	case w.kick <- struct{}{}:
	default:
	}
}

// Backlog is the number of signed versions without an entry at the end of the last pass
// (-1 before the first).
func (w *Worker) Backlog() int64 { return w.backlog.Load() }

// Run works until ctx ends: a pass at start, on every kick and every PollInterval.
func (w *Worker) Run(ctx context.Context) {
	w.backlog.Store(-1)
	t := time.NewTicker(w.cfg.PollInterval)
	defer t.Stop()
	for {
		if err := w.Pass(ctx); err != nil && ctx.Err() == nil {
			w.log.Error("transparency log pass", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-w.kick:
		case <-t.C:
		}
	}
}

// batch is how many pending versions one query takes.
const batch = 64

// Pass submits every due pending version, unless another replica is doing so, and then
// updates Backlog. It stops early when a whole batch failed (the log is down): the rest
// wait for the next pass.
func (w *Worker) Pass(ctx context.Context) error {
	_, err := w.store.TlogPass(ctx, func(ctx context.Context) error {
		for ctx.Err() == nil {
			pending, err := w.store.TlogPending(ctx, w.now(), batch)
			if err != nil {
				return err
			}
			if len(pending) == 0 {
				break
			}
			ok := w.submitAll(ctx, pending)
			if ok == 0 || len(pending) < batch {
				break
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	// Every replica reports the backlog, also when another one holds the lock.
	n, err := w.store.TlogBacklog(ctx)
	if err != nil {
		return err
	}
	w.backlog.Store(n)
	return nil
}

// submitAll submits pending versions, Concurrency at a time, and returns how many were
// logged.
func (w *Worker) submitAll(ctx context.Context, pending []Pending) int {
	var (
		wg  sync.WaitGroup
		ok  atomic.Int64
		sem = make(chan struct{}, w.cfg.Concurrency)
	)
	for _, p := range pending {
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			res := w.submit(ctx, p)
			if res.Err == nil {
				ok.Add(1)
			} else if ctx.Err() == nil {
				w.fail(ctx, p, res)
			}
			if w.Observe != nil {
				w.Observe(res)
			}
		}()
	}
	wg.Wait()
	return int(ok.Load())
}

func (w *Worker) fail(ctx context.Context, p Pending, res Result) {
	wait := time.Second << min(p.Attempts+1, 20)
	if wait > w.cfg.MaxBackoff || res.Reason == "no_key" {
		wait = w.cfg.MaxBackoff
	}
	w.log.Warn("transparency log submission failed", "role", p.Role, "version", p.Version, "attempt", p.Attempts+1, "reason", res.Reason, "retry_in", wait, "err", res.Err)
	if err := w.store.TlogFailed(ctx, p.Role, p.Version, w.now().Add(wait), res.Err.Error()); err != nil {
		w.log.Error("recording transparency log failure", "role", p.Role, "version", p.Version, "err", err)
	}
}

var keyIDRE = regexp.MustCompile(`"keyid"\s*:\s*"([0-9a-f]{64})"`)

// signatureKeyIDs returns the key IDs of the signatures at the start of a metadata file.
func signatureKeyIDs(head []byte) []string {
	if i := bytes.Index(head, []byte(`"signed"`)); i >= 0 {
		head = head[:i]
	}
	var ids []string
	for _, m := range keyIDRE.FindAllSubmatch(head, -1) {
		ids = append(ids, string(m[1]))
	}
	return ids
}

// signerFor finds the online signer (configured or standby) whose key signed the version.
func (w *Worker) signerFor(keyIDs []string) *tufrepo.OnlineSigner {
	all := append([]*tufrepo.OnlineSigner{w.signers.Timestamp, w.signers.Snapshot, w.signers.RecentlyClaimed}, w.signers.Standby...)
	for _, id := range keyIDs {
		for _, s := range all {
			if s != nil && s.KeyID == id {
				return s
			}
		}
	}
	return nil
}

func (w *Worker) submit(ctx context.Context, p Pending) Result {
	res := Result{Role: p.Role, Version: p.Version, Attempt: p.Attempts}
	fail := func(reason string, err error) Result {
		res.Reason, res.Err = reason, err
		return res
	}
	ids := signatureKeyIDs(p.Head)
	s := w.signerFor(ids)
	if s == nil {
		return fail("no_key", fmt.Errorf("%s version %d is signed by %v, and this server holds none of those keys (configure it as --standby-key to log it)", p.Role, p.Version, ids))
	}
	rctx, cancel := context.WithTimeout(ctx, w.cfg.RequestTimeout)
	defer cancel()
	m := Metadata{Role: p.Role, Version: p.Version, Length: p.Length, SHA256: p.SHA256, KeyID: s.KeyID}
	signed, err := Sign(rctx, s, m)
	if err != nil {
		return fail("sign", err)
	}
	entry, err := w.client.Submit(rctx, signed.Request)
	if err != nil {
		var le *Error
		if errors.As(err, &le) && le.Permanent() {
			return fail("refused", err)
		}
		return fail("unavailable", err)
	}
	if err := VerifyRekorEntry(*entry, signed.Envelope, s.Key, w.cfg.LogKey); err != nil {
		return fail("verify", fmt.Errorf("the log's answer for %s version %d does not verify: %w", p.Role, p.Version, err))
	}
	e := api.TransparencyLogEntry{
		Role: p.Role, Version: p.Version, Length: p.Length, SHA256: p.SHA256, KeyID: s.KeyID,
		Envelope: signed.Envelope, LogURL: w.cfg.URL, Rekor: *entry, LoggedAt: w.now().UTC(),
	}
	if err := w.store.TlogRecord(ctx, e); err != nil {
		return fail("store", err)
	}
	w.log.Debug("logged", "role", p.Role, "version", p.Version, "log_index", entry.LogIndex)
	return res
}
