// Package daemon is cairnd: its configuration, commands and the wiring of the server. It
// lives outside cmd/ so that end-to-end tests can boot the real server in-process.
package daemon

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/cairn-dev/cairn/internal/strictjson"
	"github.com/cairn-dev/cairn/server"
	"github.com/cairn-dev/cairn/store"
	"github.com/cairn-dev/cairn/tufrepo"
	"github.com/spf13/pflag"
)

// Config is cairnd's configuration: defaults, then the config file, then CAIRN_*
// environment variables, then flags, each overriding the one before.
type Config struct {
	Listen              string        `json:"listen"`
	DatabaseURL         string        `json:"database_url"`
	BlobDir             string        `json:"blob_dir"`
	TimestampKey        string        `json:"timestamp_key"`
	SnapshotKey         string        `json:"snapshot_key"`
	RecentlyClaimedKey  string        `json:"recently_claimed_key"`
	StandbyKeys         []string      `json:"standby_key"`
	NoMigrate           bool          `json:"no_migrate"`
	NoPublisher         bool          `json:"no_publisher"`
	MaxBlobSize         int64         `json:"max_blob_size"`
	PublishInterval     time.Duration `json:"publish_interval"`
	ShardCapacity       int           `json:"shard_capacity"`
	SnapshotRetention   time.Duration `json:"snapshot_retention"`
	MetadataFileMin     int           `json:"metadata_file_min"`
	MaxStaleness        time.Duration `json:"max_staleness"`
	PublishTimeout      time.Duration `json:"publish_timeout"`
	PublishBatch        int           `json:"publish_batch"`
	PublishGather       time.Duration `json:"publish_gather"`
	DBIdleTimeout       time.Duration `json:"db_idle_timeout"`
	DBKeepalive         time.Duration `json:"db_keepalive"`
	RekorURL            string        `json:"rekor_url"`
	RekorKey            string        `json:"rekor_key"`
	RekorOrigin         string        `json:"rekor_origin"`
	RekorTimeout        time.Duration `json:"rekor_timeout"`
	RekorRetryMax       time.Duration `json:"rekor_retry_max"`
	LogLevel            string        `json:"log_level"`
	Dev                 bool          `json:"dev"`
	DataDir             string        `json:"data_dir"`
	OCIAnonymousPull    bool          `json:"oci_anonymous_pull"`
	ExternalURL         string        `json:"external_url"`
	BlobS3Bucket        string        `json:"blob_s3_bucket"`
	BlobS3Endpoint      string        `json:"blob_s3_endpoint"`
	BlobS3Region        string        `json:"blob_s3_region"`
	BlobS3Prefix        string        `json:"blob_s3_prefix"`
	BlobS3PathStyle     bool          `json:"blob_s3_path_style"`
	BlobS3AccessKey     string        `json:"blob_s3_access_key"`
	BlobS3SecretKey     string        `json:"blob_s3_secret_key"`
	DevAllowPublic      bool          `json:"dev_allow_public"`
	HeaderReadTimeout   time.Duration `json:"header_read_timeout"`
	BodyReadTimeout     time.Duration `json:"body_read_timeout"`
	MinUploadRate       int64         `json:"min_upload_rate"`
	MaxConnections      int           `json:"max_connections"`
	MaxInflight         int           `json:"max_inflight"`
	StaticDir           string        `json:"static_dir"`
	Mirror              bool          `json:"mirror"`
	MirrorDir           string        `json:"mirror_dir"`
	SigstoreTrustedRoot string        `json:"sigstore_trusted_root"`
}

// MaxPublishGather bounds --publish-gather: it adds up to its length to every concurrent
// upload's wait, and a second is already far past any gain (BENCHMARKS.md run 20).
const MaxPublishGather = time.Second

// DefaultDatabaseURL is the local PostgreSQL of a development machine.
const DefaultDatabaseURL = "postgres://postgres@127.0.0.1:5432/cairn?sslmode=disable"

func defaultConfig() Config {
	return Config{
		Listen:            "127.0.0.1:8080",
		DatabaseURL:       DefaultDatabaseURL,
		MaxBlobSize:       1 << 30,
		PublishInterval:   time.Minute,
		ShardCapacity:     tufrepo.ShardCapacity,
		SnapshotRetention: time.Hour,
		MetadataFileMin:   store.DefaultMetaFileMin,
		MaxStaleness:      10 * time.Second,
		PublishTimeout:    time.Minute,
		PublishBatch:      tufrepo.DefaultMaxStagedPerPublish,
		PublishGather:     tufrepo.DefaultGatherWindow,
		DBIdleTimeout:     store.DefaultSessions().IdleInTransaction,
		DBKeepalive:       store.DefaultSessions().Keepalive,
		LogLevel:          "info",
		OCIAnonymousPull:  true,
		HeaderReadTimeout: server.DefaultLimits().HeaderReadTimeout,
		BodyReadTimeout:   server.DefaultLimits().BodyReadTimeout,
		MinUploadRate:     server.DefaultLimits().MinUploadRate,
		MaxInflight:       server.DefaultLimits().MaxInflight,
	}
}

// bindFlags registers the flags of every configuration field on fs.
func bindFlags(fs *pflag.FlagSet, c *Config, configFile *string) {
	fs.StringVar(configFile, "config", "", "configuration file (JSON; keys as the flag names with _ for -)")
	fs.StringVar(&c.Listen, "listen", c.Listen, "address to serve HTTP on")
	fs.StringVar(&c.DatabaseURL, "database-url", c.DatabaseURL, "PostgreSQL URL")
	fs.StringVar(&c.BlobDir, "blob-dir", c.BlobDir, "directory of the content-addressed blob store")
	fs.StringVar(&c.TimestampKey, "timestamp-key", c.TimestampKey, "URI of the timestamp signing key")
	fs.StringVar(&c.SnapshotKey, "snapshot-key", c.SnapshotKey, "URI of the snapshot signing key")
	fs.StringVar(&c.RecentlyClaimedKey, "recently-claimed-key", c.RecentlyClaimedKey, "URI of the recently-claimed signing key")
	fs.StringSliceVar(&c.StandbyKeys, "standby-key", c.StandbyKeys, "URI of a standby online key (repeatable, or comma-separated): used for timestamp or snapshot as soon as a published root names it")
	fs.BoolVar(&c.NoMigrate, "no-migrate", c.NoMigrate, "do not apply database migrations on start")
	fs.BoolVar(&c.NoPublisher, "no-publisher", c.NoPublisher, "serve only; do not run the publisher on this replica")
	fs.Int64Var(&c.MaxBlobSize, "max-blob-size", c.MaxBlobSize, "largest release file accepted, in bytes")
	fs.DurationVar(&c.PublishInterval, "publish-interval", c.PublishInterval, "how often to check online role expiry without uploads")
	fs.DurationVar(&c.SnapshotRetention, "snapshot-retention", c.SnapshotRetention, "keep a snapshot's bytes this long after the last timestamp naming it was current (clients only ever fetch the snapshot a fresh timestamp names); 0 keeps every snapshot")
	fs.IntVar(&c.MetadataFileMin, "metadata-file-min", c.MetadataFileMin, "keep signed metadata of at least this many bytes (the snapshot) as files in the blob directory instead of PostgreSQL rows (0: 256 KiB; -1 keeps everything in rows)")
	fs.DurationVar(&c.MaxStaleness, "max-staleness", c.MaxStaleness, "a replica that has not confirmed its published head against PostgreSQL for this long answers 503 for timestamp.json and fails /readyz, so clients moving between replicas never see the timestamp go back for longer (0: serve the last head for ever)")
	fs.DurationVar(&c.PublishTimeout, "publish-timeout", c.PublishTimeout, "bound on one publish, waiting for the publisher lock included; uploads it carried are answered 503 (not stored)")
	fs.IntVar(&c.PublishBatch, "publish-batch", c.PublishBatch, "the most staged project role versions one publish takes; a larger backlog (a bulk import) is published by the publishes that follow at once (0: no bound)")
	fs.DurationVar(&c.PublishGather, "publish-gather", c.PublishGather, "while uploads arrive concurrently, a publish waits up to this long after the start of the last one for the uploaders it answered to come back, so that more uploads share one snapshot and timestamp (less CPU per upload; an upload waits at most this much longer); a lone uploader is never held back (0: publish at once)")
	fs.DurationVar(&c.DBIdleTimeout, "db-idle-timeout", c.DBIdleTimeout, "PostgreSQL ends a cairnd session idle inside a transaction this long (idle_in_transaction_session_timeout), so a frozen or cut-off replica frees the publisher lock; live publishers ping while they sign (0: the server's setting; else at least 2s)")
	fs.DurationVar(&c.DBKeepalive, "db-keepalive", c.DBKeepalive, "TCP keepalive interval on database connections, both ends; three missed probes end a connection (0: system default)")
	fs.IntVar(&c.ShardCapacity, "shard-capacity", c.ShardCapacity, "the most delegations one recently-claimed node holds before the publisher splits it (more: fewer, bigger nodes for clients to download)")
	fs.StringVar(&c.RekorURL, "rekor-url", c.RekorURL, "Rekor v2 transparency log to submit every online-signed metadata version to (off if empty)")
	fs.StringVar(&c.RekorKey, "rekor-key", c.RekorKey, "the Rekor log's public key (PEM file): verify each checkpoint before storing an entry")
	fs.StringVar(&c.RekorOrigin, "rekor-origin", c.RekorOrigin, "the Rekor log's checkpoint origin (its --hostname); default: as the checkpoint names it")
	fs.DurationVar(&c.RekorTimeout, "rekor-timeout", orDuration(c.RekorTimeout, 30*time.Second), "bound on one transparency log submission")
	fs.DurationVar(&c.RekorRetryMax, "rekor-retry-max", orDuration(c.RekorRetryMax, 5*time.Minute), "longest wait before retrying a failed transparency log submission")
	fs.StringVar(&c.LogLevel, "log-level", c.LogLevel, "debug, info, warn or error")
	fs.BoolVar(&c.Dev, "dev", c.Dev, "development mode: generate keys and bootstrap a repository in --data-dir")
	fs.StringVar(&c.DataDir, "data-dir", c.DataDir, "directory for the dev mode's keys, root.json, admin.token and blobs")
	fs.StringVar(&c.BlobS3Bucket, "blob-s3-bucket", c.BlobS3Bucket, "keep finished blobs (release files, OCI layers) in this S3 bucket instead of --blob-dir (which still receives uploads in progress)")
	fs.StringVar(&c.BlobS3Endpoint, "blob-s3-endpoint", c.BlobS3Endpoint, "S3-compatible endpoint URL (default: AWS)")
	fs.StringVar(&c.BlobS3Region, "blob-s3-region", c.BlobS3Region, "S3 region (default us-east-1)")
	fs.StringVar(&c.BlobS3Prefix, "blob-s3-prefix", c.BlobS3Prefix, "prefix of every object key, ending in /")
	fs.BoolVar(&c.BlobS3PathStyle, "blob-s3-path-style", c.BlobS3PathStyle, "path-style bucket addressing (most S3-compatible servers)")
	fs.StringVar(&c.BlobS3AccessKey, "blob-s3-access-key", c.BlobS3AccessKey, "S3 access key (default: the AWS SDK's credential chain)")
	fs.StringVar(&c.BlobS3SecretKey, "blob-s3-secret-key", c.BlobS3SecretKey, "S3 secret key; prefer CAIRN_BLOB_S3_SECRET_KEY or the config file to a flag")
	fs.StringVar(&c.ExternalURL, "external-url", c.ExternalURL, "public base URL of this server (https://…): OCI clients are sent to <url>/v2/token for tokens; required when --listen names no single address (0.0.0.0:…); default: http://<the --listen address>. Never taken from a request's Host")
	fs.BoolVar(&c.DevAllowPublic, "dev-allow-public", c.DevAllowPublic, "let --dev listen on a non-loopback address although its key passphrase and admin token lie in --data-dir (warned on every start)")
	fs.DurationVar(&c.HeaderReadTimeout, "header-read-timeout", c.HeaderReadTimeout, "a request's headers must arrive within this (0: 10s)")
	fs.DurationVar(&c.BodyReadTimeout, "body-read-timeout", c.BodyReadTimeout, "a request body that sends no byte for this long is cut off (408, connection closed); also the grace before --min-upload-rate applies (0: 30s; negative: off)")
	fs.Int64Var(&c.MinUploadRate, "min-upload-rate", c.MinUploadRate, "after the first --body-read-timeout, a request body must average at least this many bytes a second (0: 4096; negative: off)")
	fs.IntVar(&c.MaxConnections, "max-connections", c.MaxConnections, "open HTTP connections at most; beyond it idle keep-alive connections are closed, then 8 more connections serve only /healthz, /readyz and /metrics, then 503 (0: (open-file limit - 128) / 2, at most 16384; negative: no limit)")
	fs.IntVar(&c.MaxInflight, "max-inflight", c.MaxInflight, "requests handled at once, /healthz, /readyz and /metrics excepted; beyond it 503 with Retry-After: 1 (0: 512; negative: no limit)")
	fs.StringVar(&c.StaticDir, "static-dir", c.StaticDir, "keep a copy of every published metadata version and target in this directory, under the same URL paths (metadata/, targets/), for nginx or a CDN to serve (deploy/nginx/cairn-static.conf); off if empty")
	fs.BoolVar(&c.Mirror, "mirror", c.Mirror, "serve: run as a read-only mirror of an air-gapped site, serving --mirror-dir (filled by 'cairnd mirror import'); no database, no keys, every write refused")
	fs.StringVar(&c.MirrorDir, "mirror-dir", c.MirrorDir, "the mirror directory of --mirror and 'cairnd mirror import' (default: <data-dir>/mirror)")
	fs.StringVar(&c.SigstoreTrustedRoot, "sigstore-trusted-root", c.SigstoreTrustedRoot, "Sigstore trusted_root.json (Fulcio CA, Rekor key, optional TSA) that attestations are verified against, published to clients as the TUF target _cairn/sigstore/trusted_root.json; attestations are off if empty")
	fs.BoolVar(&c.OCIAnonymousPull, "oci-anonymous-pull", c.OCIAnonymousPull, "let the OCI registry (/v2/) serve pulls without a token (--oci-anonymous-pull=false requires one)")
}

// resolve applies the config file and the environment to every flag not set on the
// command line.
func resolve(fs *pflag.FlagSet, configFile string, getenv func(string) string) error {
	file := map[string]json.RawMessage{}
	if configFile == "" {
		configFile = getenv("CAIRN_CONFIG")
	}
	if configFile != "" {
		b, err := os.ReadFile(configFile)
		if err != nil {
			return fmt.Errorf("reading config file: %w", err)
		}
		// One reading: a key given twice would show the operator one value and give
		// cairnd another.
		if err := strictjson.Check(b, strictjson.FieldNames(), strictjson.AnyNumbers()); err != nil {
			return fmt.Errorf("parsing config file %s: %w", configFile, err)
		}
		if err := json.Unmarshal(b, &file); err != nil {
			return fmt.Errorf("parsing config file %s: %w", configFile, err)
		}
	}
	known := map[string]bool{}
	var ferr error
	fail := func(err error) {
		if ferr == nil {
			ferr = err
		}
	}
	fs.VisitAll(func(f *pflag.Flag) {
		key := strings.ReplaceAll(f.Name, "-", "_")
		if f.Name == "config" {
			return // not settable from the config file itself
		}
		known[key] = true
		if f.Changed {
			return
		}
		val, src, set := "", "", false
		if raw, ok := file[key]; ok {
			v, err := scalar(raw)
			if err != nil {
				fail(fmt.Errorf("config file %s: %q (--%s): %w", configFile, key, f.Name, err))
				return
			}
			val, src, set = v, fmt.Sprintf("config file %s key %q", configFile, key), true
		}
		env := "CAIRN_" + strings.ToUpper(key)
		if v := getenv(env); v != "" {
			val, src, set = v, "environment variable "+env, true
		}
		if set {
			if err := f.Value.Set(val); err != nil {
				fail(fmt.Errorf("--%s: bad value %q from %s: %w", f.Name, val, src, err))
			}
		}
	})
	for k := range file {
		if !known[k] {
			fail(fmt.Errorf("config file %s: unknown key %q", configFile, k))
		}
	}
	return ferr
}

// scalar turns a config file value into the text a flag parses: strings as they are,
// numbers exactly as written (so 1.5 is not rounded into an integer flag), booleans.
func scalar(raw json.RawMessage) (string, error) {
	d := json.NewDecoder(bytes.NewReader(raw))
	d.UseNumber()
	var v any
	if err := d.Decode(&v); err != nil {
		return "", err
	}
	switch x := v.(type) {
	case string:
		return x, nil
	case json.Number:
		return x.String(), nil
	case bool:
		return strconv.FormatBool(x), nil
	case nil:
		return "", errors.New("null is not a value: remove the key to use the default")
	default:
		return "", errors.New("want a string, number or boolean")
	}
}
