// Package server is Cairn's HTTP surface: TUF metadata and targets, the REST API, health
// and metrics, and the background work of a replica (publisher, cache refresh).
package server

import (
	"cmp"
	"context"
	"log/slog"
	"net/http"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/cairn-dev/cairn/attest"
	"github.com/cairn-dev/cairn/internal/faults"
	"github.com/cairn-dev/cairn/oci"
	"github.com/cairn-dev/cairn/store"
	"github.com/cairn-dev/cairn/store/blobstore"
	"github.com/cairn-dev/cairn/tlog"
	"github.com/cairn-dev/cairn/tufrepo"
	"github.com/go-chi/chi/v5"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Config holds the server's limits and behaviour.
type Config struct {
	// MaxBlobSize bounds one uploaded file.
	MaxBlobSize int64
	// MaxSubmitWait bounds how long a write waits for its publish (?wait=).
	MaxSubmitWait time.Duration
	// PublishInterval is how often the publisher checks expiries without a kick.
	PublishInterval time.Duration
	// CacheBytes bounds the in-memory cache of immutable metadata versions.
	CacheBytes int64
	// RunPublisher is false on replicas that should only serve.
	RunPublisher bool
	// TransparencyLog configures the Rekor log every signed version goes to (off if URL is empty).
	TransparencyLog tlog.Config
	// OCINoAnonymousPull makes the OCI registry (/v2/) require a token for pulls too.
	OCINoAnonymousPull bool
	// ExternalURL is the server's public base URL, where OCI clients are sent for tokens.
	ExternalURL string
	// ShardCapacity is the most delegations one recently-claimed node holds before the
	// publisher splits it (0: tufrepo.ShardCapacity).
	ShardCapacity int
	// SnapshotRetention is how long after a timestamp stops being current the snapshot it
	// names is still kept (store.DB.PruneSnapshots); 0 keeps every snapshot.
	SnapshotRetention time.Duration
	// MaxStaleness is how long a replica that cannot confirm its head against the
	// database keeps serving timestamp.json (and stays ready); after it, 503 (DESIGN.md
	// "A replica cut off from PostgreSQL"). 0 serves the last head for ever.
	MaxStaleness time.Duration
	// PublishTimeout bounds one publish (tufrepo.Publisher.PublishTimeout).
	PublishTimeout time.Duration
	// PublishBatch bounds the staged project role versions one publish takes
	// (tufrepo.Publisher.MaxStagedPerPublish; 0: no bound).
	PublishBatch int
	// PublishGather is the publisher's gather window under concurrent uploads
	// (tufrepo.Publisher.GatherWindow; 0: publish at once on every upload).
	PublishGather time.Duration
	// Limits bounds slow clients, connections and requests in flight (limits.go).
	Limits Limits
	// ListenURL is http://<the address this replica listens on>: the OCI token realm when
	// ExternalURL is empty. The realm is never taken from a request's Host header, which
	// anyone can set and so send clients' credentials to a host of their choice.
	ListenURL string
	// StaticDir, if set, is kept as a copy of every published metadata version and target
	// under cairnd's URL paths, for nginx or a CDN to serve (static.go); empty: off.
	StaticDir string
	// SigstoreTrustedRoot is the Sigstore trusted root attestations are verified against
	// (attestations.go); nil: the
	// repository takes no attestations.
	SigstoreTrustedRoot *attest.TrustedRoot
}

// DefaultConfig returns working defaults.
func DefaultConfig() Config {
	return Config{
		MaxBlobSize:     1 << 30,
		MaxSubmitWait:   60 * time.Second,
		PublishInterval: time.Minute,
		CacheBytes:      256 << 20,
		RunPublisher:    true,
		// Clients fetch the snapshot right after the timestamp that names it; an hour
		// covers slow clients and caches many times over.
		SnapshotRetention: time.Hour,
		MaxStaleness:      10 * time.Second,
		PublishTimeout:    time.Minute,
		PublishBatch:      tufrepo.DefaultMaxStagedPerPublish,
		PublishGather:     tufrepo.DefaultGatherWindow,
		Limits:            DefaultLimits(),
	}
}

// Server is one Cairn replica.
type Server struct {
	// bg counts the background work Start began (Wait).
	bg sync.WaitGroup

	cfg       Config
	db        Store
	blobs     *blobstore.Store
	cache     *metaCache
	merkle    *merkleTrees
	publisher *tufrepo.Publisher
	metrics   *metrics
	signing   *signerHealth
	log       *slog.Logger
	faults    *faults.Reporter // dependency failures, logged once per cause (writeError)
	now       func() time.Time
	handler   http.Handler
	limits    Limits
	conns     *connLimiter
	inflight  atomic.Int64

	// staticFailing and staticTimestamp describe the static export (static.go) for
	// /metrics: whether its last pass failed, and the timestamp version in its directory.
	staticFailing   atomic.Bool
	staticTimestamp atomic.Int64

	mu          sync.Mutex
	lastPublish error
	tlog        *tlogState
}

// New builds a server. Run must be called to start its background work.
func New(cfg Config, db *store.DB, blobs *blobstore.Store, signers tufrepo.Signers, log *slog.Logger, now func() time.Time) *Server {
	s := &Server{cfg: cfg, db: db, blobs: blobs, cache: newMetaCache(db, cfg.CacheBytes), log: log, faults: faults.NewReporter(log, now, pinger(db)), now: now, limits: cfg.Limits.withDefaults(openFileLimit())}
	s.merkle = newMerkleTrees(db, cfg.SnapshotRetention, now)
	reg := prometheus.NewRegistry()
	s.signing, signers = newSignerHealth(reg, signers, now)
	s.publisher = tufrepo.NewPublisher(db, signers, now, log)
	s.publisher.ShardCapacity = cfg.ShardCapacity
	s.publisher.PublishTimeout = cfg.PublishTimeout
	s.publisher.MaxStagedPerPublish = cfg.PublishBatch
	s.publisher.GatherWindow = max(0, cfg.PublishGather)
	s.metrics = newMetrics(reg, s)
	s.conns = newConnLimiter(s.metrics.connsRefused)
	s.newTlog(reg, db, signers)
	s.publisher.Observe = s.observePublish
	r := chi.NewRouter()
	r.Use(s.limitRequests, s.instrument)
	r.Get("/healthz", s.healthz)
	r.Get("/readyz", s.readyz)
	r.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}))
	s.routeTUF(r)
	s.routeWeb(r, db)
	r.Mount("/v2", oci.New(oci.Config{AnonymousPull: !cfg.OCINoAnonymousPull, MaxBlobSize: cfg.MaxBlobSize, ExternalURL: cmp.Or(cfg.ExternalURL, cfg.ListenURL), Faults: s.faults}, db, blobs, log, now))
	r.Route("/api/v1", func(r chi.Router) {
		s.routeBlobs(r)
		s.routeProjects(r)
		s.routeMaintainers(r)
		s.routeClaims(r)
		s.routeLog(r)
		s.routeTlog(r)
		s.routeMerkle(r)
		s.routeSearch(r)
		s.routeAttestations(r)
	})
	r.NotFound(func(w http.ResponseWriter, r *http.Request) {
		s.writeError(w, r, errNotFound(r.URL.Path))
	})
	r.MethodNotAllowed(func(w http.ResponseWriter, r *http.Request) {
		s.writeError(w, r, errMethod(r.Method, r.URL.Path))
	})
	s.handler = leanRouter{Router: r, s: s}
	return s
}

// Handler returns the HTTP handler.
func (s *Server) Handler() http.Handler { return s.handler }

// Publisher exposes the publisher (for tools and tests that publish synchronously).
func (s *Server) Publisher() *tufrepo.Publisher { return s.publisher }

// Start loads the published head and starts the replica's background work, which stops
// when ctx ends. It fails if the head cannot be loaded.
func (s *Server) Start(ctx context.Context) error {
	if err := s.cache.Refresh(ctx); err != nil {
		return err
	}
	s.bg.Go(func() { s.cache.gzipHead(ctx) })
	s.bg.Go(func() { s.followMerkle(ctx) })
	s.bg.Go(func() { s.listen(ctx) })
	s.bg.Go(func() { s.pollHead(ctx) })
	if s.cfg.StaticDir != "" {
		if err := prepareStaticDir(s.cfg.StaticDir); err != nil {
			return err
		}
		s.bg.Go(func() { s.exportStatic(ctx) })
	}
	if err := s.publishTrustedRoot(ctx); err != nil {
		return err
	}
	if s.cfg.RunPublisher {
		s.bg.Go(func() { s.publisher.Run(ctx, s.cfg.PublishInterval) })
		if s.cfg.SnapshotRetention > 0 {
			s.bg.Go(func() { s.pruneSnapshots(ctx) })
		}
	}
	s.startTlog(ctx)
	return nil
}

// listen follows the database's notifications until ctx ends.
func (s *Server) listen(ctx context.Context) {
	s.db.Listen(ctx, s.log, func(channel, payload string) {
		switch channel {
		case store.ChannelPublished:
			s.kickTlog()
			if err := s.cache.Refresh(ctx); err != nil && ctx.Err() == nil {
				s.log.Error("refreshing published metadata", "err", err)
			}
		case store.ChannelStaged:
			if s.cfg.RunPublisher {
				s.publisher.Kick()
			}
		case store.ChannelTokens:
			s.db.ForgetToken(payload)
		}
	}, store.ChannelPublished, store.ChannelStaged, store.ChannelTokens)
}

// Wait waits until the background work Start began has ended (after its ctx ended), at
// most timeout; it reports whether it all ended. Whoever closes the database after the
// server calls it first, so that nothing writes (the static directory, the database)
// after the server is said to be stopped.
func (s *Server) Wait(timeout time.Duration) bool {
	done := make(chan struct{})
	go func() { s.bg.Wait(); close(done) }()
	select {
	case <-done:
		return true
	case <-time.After(timeout):
		return false
	}
}

// headPoll is how often a replica confirms its head against the database: in case a
// notification was lost, and so that one cut off from PostgreSQL knows it (MaxStaleness).
// One single-row query a second per replica.
const headPoll = time.Second

func (s *Server) pollHead(ctx context.Context) {
	t := time.NewTicker(headPoll)
	defer t.Stop()
	failing := false
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		err := s.cache.Refresh(pctx)
		cancel()
		switch {
		case err != nil && ctx.Err() == nil && !failing:
			// Logged once per outage, not every second.
			s.log.Error("cannot confirm the published head; this replica serves its last head until --max-staleness has passed", "err", err, "max_staleness", s.cfg.MaxStaleness)
			failing = true
		case err == nil && failing:
			s.log.Info("published head confirmed again", "timestamp", s.cache.Head().timestamp.version)
			failing = false
		}
	}
}

// stale reports whether this replica has gone too long without confirming its head
// against the database to serve timestamp.json: another replica may serve a newer one,
// and a client that saw it would be refused an older one as a rollback.
func (s *Server) stale() (time.Duration, bool) {
	age := s.cache.Staleness()
	return age, s.cfg.MaxStaleness > 0 && age > s.cfg.MaxStaleness
}

// pruneSnapshots drops, every 30 seconds, the bytes of snapshots no client can still ask
// for (DESIGN.md "Snapshot and publish cost"). Replicas may run it at once: each version is
// pruned once, under its row lock.
func (s *Server) pruneSnapshots(ctx context.Context) {
	t := time.NewTicker(30 * time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		n, err := s.db.PruneSnapshots(ctx, s.cfg.SnapshotRetention, s.now())
		switch {
		case err != nil && ctx.Err() == nil:
			s.log.Error("pruning old snapshots", "err", err)
		case n > 0:
			s.log.Debug("pruned old snapshots", "versions", n)
		}
	}
}

func (s *Server) observePublish(res tufrepo.PublishResult, err error) {
	s.mu.Lock()
	s.lastPublish = err
	s.mu.Unlock()
	s.metrics.observePublish(res, err)
	if err == nil {
		for _, m := range res.Signed {
			s.cache.prime(m)
		}
	}
	if err == nil && res.Published {
		// Serve the new head before the uploads it published are answered, without waiting
		// for the notification to come back.
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		if rerr := s.cache.Refresh(ctx); rerr != nil {
			s.log.Error("refreshing published metadata", "err", rerr)
		}
		cancel()
		s.log.Debug("published", "snapshot", res.SnapshotVersion, "timestamp", res.TimestampVersion, "roles", res.Roles, "projects", res.NewProjects, "reason", res.Reason, "took", res.Duration)
	}
}

// openFileLimit is the process's open-file limit (Go raises the soft limit to the hard one
// at start), from which the default connection cap is derived.
func openFileLimit() uint64 {
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil || rl.Cur == 0 {
		return 1024
	}
	return rl.Cur
}
