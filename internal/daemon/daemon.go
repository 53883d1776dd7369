package daemon

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/cairn-dev/cairn/attest"
	"github.com/cairn-dev/cairn/internal/buildinfo"
	"github.com/cairn-dev/cairn/server"
	"github.com/cairn-dev/cairn/store"
	"github.com/cairn-dev/cairn/store/blobstore"
	"github.com/cairn-dev/cairn/tufrepo"
	"github.com/cairn-dev/cairn/tufrepo/keyuri"
	"github.com/sigstore/sigstore/pkg/signature"
	"github.com/spf13/cobra"
)

// Main runs cairnd with args and returns the exit code.
func Main(ctx context.Context, args []string, stdout, stderr io.Writer, getenv func(string) string) int {
	cmd := newRoot(stdout, stderr, getenv)
	cmd.SetArgs(args)
	cmd.SetOut(stdout)
	cmd.SetErr(stderr)
	if err := cmd.ExecuteContext(ctx); err != nil {
		fmt.Fprintln(stderr, "cairnd:", err)
		return 1
	}
	return 0
}

func newRoot(stdout, stderr io.Writer, getenv func(string) string) *cobra.Command {
	root := &cobra.Command{
		Use:           "cairnd",
		Short:         "Cairn: a TUF repository server for developer-signed releases",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.AddCommand(serveCmd(stdout, stderr, getenv), migrateCmd(stderr, getenv), bootstrapCmd(stdout, stderr, getenv), tokenCmd(stdout, stderr, getenv), keysCmd(stdout, getenv), gcCmd(stdout, stderr, getenv), publishCmd(stdout, stderr, getenv), versionCmd(stdout), doctorCmd(stdout, getenv), mirrorCmd(stdout, stderr, getenv))
	return tidyHelp(root, stdout, stderr)
}

// withConfig adds the configuration flags to cmd and resolves them before run.
func withConfig(cmd *cobra.Command, getenv func(string) string, run func(ctx context.Context, c *Config) error) *cobra.Command {
	c := defaultConfig()
	var file string
	bindFlags(cmd.Flags(), &c, &file)
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		if err := resolve(cmd.Flags(), file, getenv); err != nil {
			return err
		}
		if cmd.Annotations[annotationDatabase] != "optional" || strings.TrimSpace(c.DatabaseURL) != "" {
			if err := checkDatabaseURL(c.DatabaseURL); err != nil {
				return err
			}
		}
		return run(cmd.Context(), &c)
	}
	return cmd
}

// annotationDatabase set to "optional" on a command lets it run with an empty
// --database-url (it then skips what needs the database) instead of refusing.
const annotationDatabase = "cairnd-database"

// checkDatabaseURL refuses a database URL that would leave the choice of database to
// libpq's defaults (PGHOST, PGDATABASE, the user's name, a local socket): an empty
// --database-url "$CAIRN_DATABASE_URL" with the variable unset once migrated, and wrote
// tokens into, an unrelated database.
func checkDatabaseURL(raw string) error {
	s := strings.TrimSpace(raw)
	if s == "" {
		return fmt.Errorf("--database-url is empty (is $CAIRN_DATABASE_URL unset?): cairnd will not guess a database. Give the PostgreSQL URL of Cairn's database, e.g. --database-url %s, or leave the flag out to use that default", DefaultDatabaseURL)
	}
	if u, err := url.Parse(s); err == nil && (u.Scheme == "postgres" || u.Scheme == "postgresql") {
		if strings.Trim(u.Path, "/") == "" {
			return fmt.Errorf("--database-url %s names no database, so PostgreSQL would pick one by default (the user's name): add the database, e.g. %s://%s/cairn", (&url.URL{Scheme: u.Scheme, Host: u.Host}).String(), u.Scheme, u.Host)
		}
	} else if err == nil && u.Scheme == "" && strings.Contains(s, "=") && !strings.Contains(s, "dbname=") {
		return errors.New("--database-url names no database (no dbname=…), so PostgreSQL would pick one by default: add dbname=cairn or give a URL, postgres://user@host:5432/cairn")
	}
	return nil
}

func newLogger(w io.Writer, level string) *slog.Logger {
	var l slog.Level
	if err := l.UnmarshalText([]byte(level)); err != nil {
		l = slog.LevelInfo
	}
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: l}))
}

func openDB(ctx context.Context, c *Config, migrate bool, log *slog.Logger) (*store.DB, error) {
	if c.Dev {
		if err := store.EnsureDatabase(ctx, c.DatabaseURL); err != nil {
			return nil, err
		}
	}
	if c.DBIdleTimeout != 0 && c.DBIdleTimeout < 2*time.Second {
		return nil, fmt.Errorf("--db-idle-timeout %s: want 0 or at least 2s (a live publisher pings its transaction every second)", c.DBIdleTimeout)
	}
	sess := store.DefaultSessions()
	sess.IdleInTransaction, sess.Keepalive = max(0, c.DBIdleTimeout), max(0, c.DBKeepalive)
	db, err := store.OpenWith(ctx, c.DatabaseURL, sess)
	if err != nil {
		return nil, err
	}
	if migrate {
		if err := migrateDB(ctx, db, log); err != nil {
			db.Close()
			return nil, err
		}
	}
	return db, nil
}

func migrateDB(ctx context.Context, db *store.DB, log *slog.Logger) error {
	applied, err := db.Migrate(ctx)
	if err != nil {
		return err
	}
	for _, f := range applied {
		log.Info("applied migration", "file", f)
	}
	return nil
}

// openCurrentDB opens the database for a command that must not change its schema (token,
// keys, gc): it refuses, with what to run, a database whose schema is not exactly this
// cairnd's, so that a wrong --database-url is never migrated or written to.
func openCurrentDB(ctx context.Context, c *Config, log *slog.Logger) (*store.DB, error) {
	db, err := openDB(ctx, c, false, log)
	if err != nil {
		return nil, err
	}
	if err := db.CheckSchema(ctx); err != nil {
		db.Close()
		return nil, err
	}
	return db, nil
}

// openBlobs opens the blob store: dir, and the S3 bucket for finished blobs if configured.
func openBlobs(ctx context.Context, c *Config, dir string) (*blobstore.Store, error) {
	if c.BlobS3Bucket == "" {
		return blobstore.Open(ctx, dir, nil)
	}
	cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	return blobstore.Open(cctx, dir, s3Config(c))
}

// s3Config is the bucket of finished blobs the configuration names.
func s3Config(c *Config) *blobstore.S3Config {
	return &blobstore.S3Config{
		Endpoint: c.BlobS3Endpoint, Region: c.BlobS3Region, Bucket: c.BlobS3Bucket, Prefix: c.BlobS3Prefix,
		PathStyle: c.BlobS3PathStyle, AccessKey: c.BlobS3AccessKey, SecretKey: c.BlobS3SecretKey,
	}
}

func loadSigners(ctx context.Context, c *Config, getenv func(string) string) (tufrepo.Signers, error) {
	var s tufrepo.Signers
	for _, k := range []struct {
		role, uri string
		dst       **tufrepo.OnlineSigner
	}{{tufrepo.RoleTimestamp, c.TimestampKey, &s.Timestamp}, {tufrepo.RoleSnapshot, c.SnapshotKey, &s.Snapshot}, {tufrepo.RoleRecentlyClaimed, c.RecentlyClaimedKey, &s.RecentlyClaimed}} {
		if k.uri == "" {
			return s, fmt.Errorf("no %s key: set --%s-key or CAIRN_%s_KEY", k.role, k.role, strings.ToUpper(strings.ReplaceAll(k.role, "-", "_")))
		}
		sv, err := keyuri.Open(ctx, k.uri, getenv)
		if err != nil {
			return s, fmt.Errorf("%s key: %w", k.role, err)
		}
		if *k.dst, err = tufrepo.NewOnlineSigner(ctx, sv); err != nil {
			return s, fmt.Errorf("%s key: %w", k.role, err)
		}
		if err := (*k.dst).Probe(ctx); err != nil {
			return s, fmt.Errorf("%s key is not usable: %w", k.role, err)
		}
	}
	for i, uri := range c.StandbyKeys {
		sv, err := keyuri.Open(ctx, uri, getenv)
		if err != nil {
			return s, fmt.Errorf("standby key %d: %w", i+1, err)
		}
		o, err := tufrepo.NewOnlineSigner(ctx, sv)
		if err != nil {
			return s, fmt.Errorf("standby key %d: %w", i+1, err)
		}
		if err := o.Probe(ctx); err != nil {
			return s, fmt.Errorf("standby key %d is not usable: %w", i+1, err)
		}
		s.Standby = append(s.Standby, o)
	}
	return s, nil
}

// Running is a started server.
type Running struct {
	Addr    string
	URL     string
	Server  *server.Server
	DB      *store.DB
	Config  Config
	httpSrv *http.Server
	cancel  context.CancelFunc
	done    chan error
	close   sync.Once
	closed  error
}

// Close stops the server and waits for it. Later calls return the first call's result.
func (r *Running) Close() error {
	r.close.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		r.closed = r.httpSrv.Shutdown(ctx)
		r.cancel()
		<-r.done
		// The background work (publisher, static export, transparency log) stops with
		// the context; wait for it, so that nothing writes after Close returns.
		if r.Server != nil && !r.Server.Wait(10*time.Second) && r.closed == nil {
			r.closed = errors.New("stopping: background work still running after 10s")
		}
		if r.DB != nil { // nil for a mirror (StartMirror)
			r.DB.Close()
		}
	})
	return r.closed
}

// Start opens the database, prepares keys (dev mode), checks the online keys against the
// published root and targets, and starts serving on c.Listen. Used by `serve` and by tests.
func Start(ctx context.Context, c Config, getenv func(string) string, out io.Writer, log *slog.Logger) (*Running, error) {
	// Refusals that need nothing opened come first, so that they change nothing.
	if err := checkListen(&c, log); err != nil {
		return nil, fmt.Errorf("refusing to start: %w", err)
	}
	if err := checkDatabaseURL(c.DatabaseURL); err != nil {
		return nil, fmt.Errorf("refusing to start: %w", err)
	}
	// Bind the address before the slow work (keys from a KMS, migrations, the dev
	// ceremony): a busy port is the commonest first-run failure and should fail at once.
	// Without --external-url, the address bound is also the OCI token realm.
	ln, err := listen(c.Listen)
	if err != nil {
		return nil, err
	}
	var db *store.DB
	fail := func(err error) (*Running, error) {
		ln.Close()
		if db != nil {
			db.Close()
		}
		return nil, err
	}
	// A configuration mistake is reported before anything is set up or touched.
	if c.PublishGather < 0 || c.PublishGather > MaxPublishGather {
		return fail(fmt.Errorf("--publish-gather %s: want 0 (publish on every upload at once) to %s; every upload may wait this much longer for its publish", c.PublishGather, MaxPublishGather))
	}
	var trustedRoot *attest.TrustedRoot
	if c.SigstoreTrustedRoot != "" {
		raw, err := readBounded(c.SigstoreTrustedRoot, attest.MaxTrustedRootBytes)
		if err != nil {
			return fail(fmt.Errorf("--sigstore-trusted-root: %w", err))
		}
		if trustedRoot, err = attest.ParseTrustedRoot(raw); err != nil {
			return fail(fmt.Errorf("--sigstore-trusted-root %s: %w", c.SigstoreTrustedRoot, err))
		}
	}
	var offline map[string]*tufrepo.OnlineSigner
	if c.Dev {
		if offline, err = devSetup(ctx, &c); err != nil {
			return fail(err)
		}
	}
	if c.BlobDir == "" {
		return fail(errors.New("no blob directory: set --blob-dir or CAIRN_BLOB_DIR"))
	}
	signers, err := loadSigners(ctx, &c, getenv)
	if err != nil {
		return fail(err)
	}
	if getenv("CAIRN_FAILPOINT") == "slow-timestamp-sign" {
		// For the fault test (e2e/faults_test.go): every publish holds the publisher lock
		// for a second while it signs the timestamp, as over a slow KMS, so that the test
		// can freeze a replica in the middle of one.
		ts := *signers.Timestamp
		ts.Signer = slowSigner{ts.Signer}
		signers.Timestamp = &ts
	}
	if db, err = openDB(ctx, &c, false, log); err != nil {
		return fail(err)
	}
	if c.Dev {
		// Before migrating: a data dir of another database must not touch this one.
		if err := bindDataDir(ctx, c.DataDir, db); err != nil {
			return fail(fmt.Errorf("refusing to start: %w", err))
		}
	}
	if !c.NoMigrate {
		if err := migrateDB(ctx, db, log); err != nil {
			return fail(err)
		}
	}
	if c.Dev {
		if err := devBootstrap(ctx, &c, db, offline, signers, out); err != nil {
			return fail(err)
		}
	}
	root, err := db.LatestPublished(ctx, tufrepo.RoleRoot)
	if err != nil {
		return fail(err)
	}
	targets, err := db.LatestPublished(ctx, tufrepo.RoleTargets)
	if err != nil {
		return fail(err)
	}
	if err := tufrepo.CheckOnlineKeys(root.Raw, targets.Raw, signers); err != nil {
		return fail(fmt.Errorf("refusing to start: %w", err))
	}
	blobs, err := openBlobs(ctx, &c, c.BlobDir)
	if err != nil {
		return fail(err)
	}
	if c.MetadataFileMin >= 0 {
		var files store.MetaFiles = blobs.Meta
		if getenv("CAIRN_FAILPOINT") == "kill-after-metadata-file" {
			// For the crash test (e2e/crash_test.go): die as kill -9 would, after a publish
			// wrote a metadata file and before its transaction commits.
			files = killAfterWrite{blobs.Meta}
		}
		min := c.MetadataFileMin
		if min == 0 {
			min = store.DefaultMetaFileMin
		}
		db.StoreMetadataIn(files, min)
	}
	tcfg, err := tlogConfig(&c, log)
	if err != nil {
		return fail(err)
	}
	if err := checkLoggable(ctx, tcfg, signers); err != nil {
		return fail(fmt.Errorf("refusing to start: %w", err))
	}
	scfg := server.DefaultConfig()
	scfg.MaxBlobSize = c.MaxBlobSize
	scfg.PublishInterval = c.PublishInterval
	scfg.SnapshotRetention = c.SnapshotRetention
	scfg.MaxStaleness = max(0, c.MaxStaleness)
	scfg.PublishTimeout = max(0, c.PublishTimeout)
	scfg.StaticDir = c.StaticDir
	scfg.SigstoreTrustedRoot = trustedRoot
	if c.ShardCapacity != 0 && (c.ShardCapacity < 2 || c.ShardCapacity > tufrepo.MaxShardDelegations) {
		return fail(fmt.Errorf("--shard-capacity %d: want 2 to %d", c.ShardCapacity, tufrepo.MaxShardDelegations))
	}
	scfg.ShardCapacity = c.ShardCapacity
	scfg.PublishGather = c.PublishGather
	if c.PublishBatch < 0 {
		return fail(fmt.Errorf("--publish-batch %d: want the most staged role versions one publish takes, or 0 for no bound", c.PublishBatch))
	}
	scfg.PublishBatch = c.PublishBatch
	scfg.RunPublisher = !c.NoPublisher
	scfg.OCINoAnonymousPull = !c.OCIAnonymousPull
	scfg.ExternalURL = c.ExternalURL
	scfg.Limits = server.Limits{
		HeaderReadTimeout: c.HeaderReadTimeout, BodyReadTimeout: c.BodyReadTimeout, MinUploadRate: c.MinUploadRate,
		MaxConnections: c.MaxConnections, MaxInflight: c.MaxInflight,
	}
	scfg.TransparencyLog = tcfg
	scfg.ListenURL = "http://" + ln.Addr().String()
	srv := server.New(scfg, db, blobs, signers, log, time.Now)
	rctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	if err := srv.Start(rctx); err != nil {
		cancel()
		return fail(err)
	}
	hs := srv.HTTPServer(slog.NewLogLogger(log.Handler(), slog.LevelWarn))
	log.Info("connection limits", "limits", srv.Limits().String())
	ln = srv.Listen(ln)
	r := &Running{Addr: ln.Addr().String(), URL: "http://" + ln.Addr().String(), Server: srv, DB: db, Config: c, httpSrv: hs, cancel: cancel, done: make(chan error, 1)}
	go func() {
		err := hs.Serve(ln)
		if errors.Is(err, http.ErrServerClosed) {
			err = nil
		}
		r.done <- err
	}()
	return r, nil
}

func serveCmd(stdout, stderr io.Writer, getenv func(string) string) *cobra.Command {
	cmd := &cobra.Command{Use: "serve", Short: "Serve the repository (migrates the database first unless --no-migrate)", Args: cobra.NoArgs}
	return withConfig(cmd, getenv, func(ctx context.Context, c *Config) error {
		log := newLogger(stderr, c.LogLevel)
		start := func() (*Running, error) { return Start(ctx, *c, getenv, stdout, log) }
		if c.Mirror {
			start = func() (*Running, error) { return StartMirror(ctx, *c, log) }
		}
		r, err := start()
		if err != nil {
			return err
		}
		log.Info("cairnd serving", "url", r.URL, "version", buildinfo.Read("cairnd").String())
		if c.Dev {
			dir := r.Config.DataDir
			fmt.Fprintf(stdout, `
Cairn dev repository at %s (data in %s)
Point the cairn CLI at it:
  cairn init --server %s --root %s
  cairn login --token-stdin < %s
`, r.URL, dir, r.URL, filepath.Join(dir, "root.json"), filepath.Join(dir, "admin.token"))
		}
		select {
		case <-ctx.Done():
		case err := <-r.done:
			r.done <- err
		}
		log.Info("cairnd stopping")
		return r.Close()
	})
}

func migrateCmd(stderr io.Writer, getenv func(string) string) *cobra.Command {
	cmd := &cobra.Command{Use: "migrate", Short: "Apply the embedded database migrations", Args: cobra.NoArgs}
	return withConfig(cmd, getenv, func(ctx context.Context, c *Config) error {
		db, err := openDB(ctx, c, true, newLogger(stderr, c.LogLevel))
		if err != nil {
			return err
		}
		db.Close()
		return nil
	})
}

func bootstrapCmd(stdout, stderr io.Writer, getenv func(string) string) *cobra.Command {
	var dir string
	cmd := &cobra.Command{
		Use:   "bootstrap --metadata DIR",
		Short: "Load the output of `cairn admin init` (1.root.json, 1.targets.json, 1.claimed.json) into an empty database",
		Args:  cobra.NoArgs,
	}
	cmd.Flags().StringVar(&dir, "metadata", "", "`DIR` written by 'cairn admin init'")
	return withConfig(cmd, getenv, func(ctx context.Context, c *Config) error {
		if dir == "" {
			return errors.New("--metadata DIR is required")
		}
		var off tufrepo.OfflineMetadata
		for _, f := range []struct {
			name string
			dst  *[]byte
		}{{"1.root.json", &off.Root}, {"1.targets.json", &off.Targets}, {"1.claimed.json", &off.Claimed}} {
			b, err := os.ReadFile(filepath.Join(dir, f.name))
			if err != nil {
				return fmt.Errorf("reading offline metadata: %w", err)
			}
			*f.dst = b
		}
		if err := tufrepo.VerifyOffline(&off); err != nil {
			return err
		}
		signers, err := loadSigners(ctx, c, getenv)
		if err != nil {
			return err
		}
		if err := tufrepo.CheckOnlineKeys(off.Root, off.Targets, signers); err != nil {
			return err
		}
		db, err := openDB(ctx, c, !c.NoMigrate, newLogger(stderr, c.LogLevel))
		if err != nil {
			return err
		}
		defer db.Close()
		if err := bootstrap(ctx, db, &off, signers); err != nil {
			return err
		}
		fmt.Fprintln(stdout, "bootstrapped: root version 1 and the first snapshot and timestamp are published")
		return nil
	})
}

func tokenCmd(stdout, stderr io.Writer, getenv func(string) string) *cobra.Command {
	cmd := &cobra.Command{Use: "token", Short: "Create, list and revoke API tokens"}
	var spec store.NewTokenSpec
	create := &cobra.Command{Use: "create --name N [--admin|--can-create] [--project P…]", Short: "Create a token and print it (shown once)", Args: cobra.NoArgs}
	create.Flags().StringVar(&spec.Name, "name", "", "a name for the token (shown in logs)")
	create.Flags().BoolVar(&spec.Admin, "admin", false, "may create projects and write to every project")
	create.Flags().BoolVar(&spec.CanCreate, "can-create", false, "may create projects (and then write to those it created)")
	create.Flags().StringSliceVar(&spec.Projects, "project", nil, "project the token may write to (repeatable); it must exist unless --allow-missing-project")
	var allowMissing bool
	create.Flags().BoolVar(&allowMissing, "allow-missing-project", false, "let --project name a project that does not exist yet (an OCI-only namespace, or one another token will create)")
	cmd.AddCommand(withConfig(create, getenv, func(ctx context.Context, c *Config) error {
		if spec.Name == "" {
			return errors.New("--name is required")
		}
		for _, p := range spec.Projects {
			if err := tufrepo.ValidateProjectName(p); err != nil {
				return err
			}
		}
		db, err := openCurrentDB(ctx, c, newLogger(stderr, c.LogLevel))
		if err != nil {
			return err
		}
		defer db.Close()
		if !allowMissing {
			missing, err := db.MissingProjects(ctx, spec.Projects)
			if err != nil {
				return err
			}
			if len(missing) > 0 {
				return fmt.Errorf("no project named %s in %s; no token was created. Create the project first (`cairn project create`, with an --admin or --can-create token), check the name, or add --allow-missing-project to scope the token to a project (or OCI namespace) that does not exist yet", quoteList(missing), db.Describe())
			}
		}
		secret, t, err := db.CreateToken(ctx, spec)
		if err != nil {
			return err
		}
		fmt.Fprintf(stderr, "created token %s (%s); it is shown once:\n", t.ID, t.Name)
		fmt.Fprintln(stdout, secret)
		return nil
	}))
	list := &cobra.Command{Use: "list", Short: "List tokens (never their secrets)", Args: cobra.NoArgs}
	cmd.AddCommand(withConfig(list, getenv, func(ctx context.Context, c *Config) error {
		db, err := openCurrentDB(ctx, c, newLogger(stderr, c.LogLevel))
		if err != nil {
			return err
		}
		defer db.Close()
		ts, err := db.ListTokens(ctx)
		if err != nil {
			return err
		}
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(ts)
	}))
	revoke := &cobra.Command{Use: "revoke ID", Short: "Revoke a token", Args: cobra.ExactArgs(1)}
	cmd.AddCommand(withConfig(revoke, getenv, func(ctx context.Context, c *Config) error {
		db, err := openCurrentDB(ctx, c, newLogger(stderr, c.LogLevel))
		if err != nil {
			return err
		}
		defer db.Close()
		if err := db.RevokeToken(ctx, revoke.Flags().Arg(0)); err != nil {
			return err
		}
		fmt.Fprintln(stdout, "revoked", revoke.Flags().Arg(0))
		return nil
	}))
	return cmd
}

func keysCmd(stdout io.Writer, getenv func(string) string) *cobra.Command {
	cmd := &cobra.Command{Use: "keys", Short: "Online keys"}
	var uri string
	pub := &cobra.Command{Use: "public --key URI", Short: "Print the TUF public key of an online key URI (for `cairn admin init`)", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			s, err := keyuri.Open(cmd.Context(), uri, getenv)
			if err != nil {
				return err
			}
			o, err := tufrepo.NewOnlineSigner(cmd.Context(), s)
			if err != nil {
				return err
			}
			return json.NewEncoder(stdout).Encode(tufrepo.KeyToAPI(o.Key))
		}}
	pub.Flags().StringVar(&uri, "key", "", "key URI")
	cmd.AddCommand(pub, keysCheckCmd(stdout, getenv))
	return cmd
}

// listen binds addr, and says what to do when another process holds it.
func listen(addr string) (net.Listener, error) {
	ln, err := net.Listen("tcp", addr)
	if errors.Is(err, syscall.EADDRINUSE) {
		return nil, fmt.Errorf("cannot listen on %s: the address is already in use (another cairnd, or another program, is serving there; `ss -ltnp` shows which). Stop it, or choose another address: --listen 127.0.0.1:8081, CAIRN_LISTEN=127.0.0.1:8081, or `make run LISTEN=127.0.0.1:8081`", addr)
	}
	if err != nil {
		return nil, fmt.Errorf("cannot listen on %s (--listen / CAIRN_LISTEN): %w", addr, err)
	}
	return ln, nil
}

// checkListen refuses a dev repository on a public address unless --dev-allow-public
// (and then warns), and a listen address that names no host without --external-url: the
// OCI token realm must come from configuration, never from a request's Host header.
func checkListen(c *Config, log *slog.Logger) error {
	host, _, err := net.SplitHostPort(c.Listen)
	if err != nil {
		return fmt.Errorf("--listen %q: want host:port (127.0.0.1:8080): %w", c.Listen, err)
	}
	ip := net.ParseIP(host)
	loopback := host == "localhost" || (ip != nil && ip.IsLoopback())
	if c.Dev && !loopback {
		if !c.DevAllowPublic {
			return fmt.Errorf("--dev on --listen %s, which is not a loopback address: a dev repository keeps its key passphrase (<data-dir>/keys/passphrase) beside its keys and an admin token in <data-dir>/admin.token, so anyone who can reach it could take it over. Listen on 127.0.0.1:<port> (or localhost), or add --dev-allow-public if this network is yours alone", c.Listen)
		}
		log.Warn("DEV MODE ON A NON-LOOPBACK ADDRESS (--dev-allow-public): the key passphrase and an admin token lie in --data-dir; anyone who can reach this address and that directory can sign as this repository. Never do this on a shared or public network", "listen", c.Listen, "data_dir", c.DataDir)
	}
	if c.ExternalURL != "" {
		u, err := url.Parse(c.ExternalURL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" || u.User != nil {
			return fmt.Errorf("--external-url %q: want the server's base URL, http(s)://host[:port]", c.ExternalURL)
		}
		return nil
	}
	if host == "" || (ip != nil && ip.IsUnspecified()) {
		return fmt.Errorf("--listen %s names no single address, so it cannot be the URL OCI clients are sent to for tokens: set --external-url to the URL clients use (https://registry.example); cairnd no longer takes it from a request's Host header, which anyone can set", c.Listen)
	}
	return nil
}

// quoteList quotes names for a message: "a", "b".
func quoteList(names []string) string {
	q := make([]string, len(names))
	for i, n := range names {
		q[i] = strconv.Quote(n)
	}
	return strings.Join(q, ", ")
}

// slowSigner takes a second to sign: a failpoint, enabled only by CAIRN_FAILPOINT.
type slowSigner struct{ signature.Signer }

func (s slowSigner) SignMessage(r io.Reader, opts ...signature.SignOption) ([]byte, error) {
	time.Sleep(time.Second)
	return s.Signer.SignMessage(r, opts...)
}

// killAfterWrite is a store.MetaFiles that kills the process with SIGKILL once a file is
// written: the crash test's failpoint, enabled only by CAIRN_FAILPOINT.
type killAfterWrite struct{ store.MetaFiles }

func (k killAfterWrite) WriteMeta(ctx context.Context, sum, raw []byte, durable bool) error {
	if err := k.MetaFiles.WriteMeta(ctx, sum, raw, durable); err != nil {
		return err
	}
	_ = syscall.Kill(os.Getpid(), syscall.SIGKILL)
	select {}
}

// readBounded reads a file of at most max bytes.
func readBounded(path string, max int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	raw, err := io.ReadAll(io.LimitReader(f, max+1))
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", path, err)
	}
	if int64(len(raw)) > max {
		return nil, fmt.Errorf("%s is larger than %d bytes", path, max)
	}
	return raw, nil
}
