package server

import (
	"context"
	"net/http"
	"strconv"

	"github.com/cairn-dev/cairn/api"
	"github.com/cairn-dev/cairn/store"
	"github.com/cairn-dev/cairn/tlog"
	"github.com/cairn-dev/cairn/tufrepo"
	"github.com/go-chi/chi/v5"
	"github.com/prometheus/client_golang/prometheus"
)

// The transparency log: a tlog.Worker submits every online-signed version to Rekor in the
// background (never in the publish path), and these routes serve the stored entries.

type tlogState struct {
	worker *tlog.Worker
	info   api.TransparencyLogInfo

	logged   prometheus.Counter
	failures *prometheus.CounterVec
	retries  prometheus.Counter
}

// newTlog builds the worker and registers its metrics when a log is configured.
func (s *Server) newTlog(reg *prometheus.Registry, db *store.DB, signers tufrepo.Signers) {
	cfg := s.cfg.TransparencyLog
	if cfg.URL == "" || db == nil {
		return
	}
	w := tlog.NewWorker(cfg, db, signers, s.now, s.log.With("component", "tlog"))
	t := &tlogState{
		worker: w,
		info:   api.TransparencyLogInfo{URL: cfg.URL},
		logged: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "cairn_tlog_entries_total", Help: "Signed metadata versions logged to the transparency log.",
		}),
		failures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "cairn_tlog_failures_total", Help: "Failed transparency log submissions, by reason (retried with backoff).",
		}, []string{"reason"}),
		retries: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "cairn_tlog_retries_total", Help: "Transparency log submissions of a version whose earlier attempt failed.",
		}),
	}
	if cfg.LogKey != nil {
		t.info.PublicKey, _ = tlog.MarshalPublicKey(cfg.LogKey.Key)
		t.info.Origin = cfg.LogKey.Origin
	}
	backlog := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "cairn_tlog_backlog", Help: "Signed metadata versions without a transparency log entry, at the end of the last pass (-1 before it).",
	}, func() float64 { return float64(w.Backlog()) })
	reg.MustRegister(t.logged, t.failures, t.retries, backlog)
	w.Observe = func(r tlog.Result) {
		if r.Attempt > 0 {
			t.retries.Inc()
		}
		if r.Err != nil {
			t.failures.WithLabelValues(r.Reason).Inc()
			return
		}
		t.logged.Inc()
	}
	s.tlog = t
}

// startTlog runs the worker until ctx ends (on every replica: one at a time works, under a
// PostgreSQL advisory lock).
func (s *Server) startTlog(ctx context.Context) {
	if s.tlog != nil {
		s.bg.Go(func() { s.tlog.worker.Run(ctx) })
	}
}

// kickTlog wakes the worker after a publish; it never blocks.
func (s *Server) kickTlog() {
	if s.tlog != nil {
		s.tlog.worker.Kick()
	}
}

func (s *Server) routeTlog(r chi.Router) {
	r.Get("/log/transparency", s.getTlog)
	r.Get("/log/transparency/{role}/{version}", s.getTlogEntry)
}

// getTlog pages through the stored entries: ?after=<seq>&limit=<n>.
func (s *Server) getTlog(w http.ResponseWriter, r *http.Request) {
	limit, err := pageLimit(r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	after, err := pageAfter(r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	// The backlog is counted before the entries are read, so that a backlog of 0 means
	// every version signed so far is among the entries (the worker may store one between
	// the two reads).
	var page api.TransparencyLogPage
	if s.tlog != nil {
		info := s.tlog.info
		if info.Backlog, err = s.db.TlogBacklog(r.Context()); err != nil {
			s.writeError(w, r, err)
			return
		}
		page.Log = &info
	}
	entries, err := s.db.TlogEntries(r.Context(), after, limit)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	page.Entries = entries
	if page.Entries == nil {
		page.Entries = []api.TransparencyLogEntry{}
	}
	if len(entries) == limit {
		page.Next = strconv.FormatInt(entries[len(entries)-1].Seq, 10)
	}
	writeJSON(w, http.StatusOK, page)
}

func (s *Server) getTlogEntry(w http.ResponseWriter, r *http.Request) {
	role := chi.URLParam(r, "role")
	if role != tufrepo.RoleTimestamp && role != tufrepo.RoleSnapshot && !tufrepo.SignedWithRecentlyClaimedKey(role) {
		s.writeError(w, r, api.Errorf(api.CodeBadRequest, "role %q is not logged: only the online roles timestamp, snapshot, the recently-claimed tree's nodes and the attestation index roles are", role))
		return
	}
	version, err := strconv.ParseInt(chi.URLParam(r, "version"), 10, 64)
	if err != nil || version < 1 {
		s.writeError(w, r, api.Errorf(api.CodeBadRequest, "version must be a positive integer, got %q", chi.URLParam(r, "version")))
		return
	}
	e, err := s.db.TlogEntry(r.Context(), role, version)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, e)
}
