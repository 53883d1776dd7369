package daemon

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/cairn-dev/cairn/store"
	"github.com/cairn-dev/cairn/store/blobstore"
	"github.com/cairn-dev/cairn/tufrepo"
	"github.com/spf13/cobra"
	"github.com/theupdateframework/go-tuf/v2/metadata"
)

// Doctor check statuses; a "problem" makes `cairnd doctor` exit 1.
const (
	DoctorOK      = "ok"
	DoctorProblem = "problem"
	DoctorInfo    = "info"
)

// DoctorCheck is one finding of `cairnd doctor`.
type DoctorCheck struct {
	Check  string `json:"check"`
	Status string `json:"status"`
	Detail string `json:"detail"`
	Fix    string `json:"fix,omitempty"`
}

// DoctorReport is what `cairnd doctor --output json` prints.
type DoctorReport struct {
	Problems int           `json:"problems"`
	Checks   []DoctorCheck `json:"checks"`
}

func (r *DoctorReport) add(c DoctorCheck) {
	if c.Status == DoctorProblem {
		r.Problems++
	}
	r.Checks = append(r.Checks, c)
}

// DoctorOptions are the thresholds of the checks.
type DoctorOptions struct {
	// OfflineWarning: an offline role (root, targets, claimed) expiring within this is a
	// problem: the admins must re-sign it.
	OfflineWarning time.Duration
	// MaxSkew: the largest difference between this machine's clock and PostgreSQL's.
	MaxSkew time.Duration
	// MinFreeBytes and MinFreePercent: less free space than either in the blob directory
	// is a problem.
	MinFreeBytes   int64
	MinFreePercent float64
	// TlogStall: a version waiting longer than this for its transparency log entry.
	TlogStall time.Duration
	Now       func() time.Time
}

func doctorCmd(stdout io.Writer, getenv func(string) string) *cobra.Command {
	var output string
	o := DoctorOptions{OfflineWarning: 30 * 24 * time.Hour, MaxSkew: 5 * time.Second, MinFreePercent: 5, TlogStall: time.Hour, Now: time.Now}
	cmd := &cobra.Command{
		Use:   "doctor",
		Short: "Check the database, migrations, blob store space, online keys, role expiry, transparency log backlog, clock and S3 bucket",
		Long: `doctor reads the same configuration as serve and checks, with a fix for each problem:
the database answers and its migrations are all applied; the blob directory has free
space; every online key signs and is the one root and targets delegate to (as 'cairnd keys
check'); the expiry of every online and offline role (every node of both delegation trees
included); the transparency log backlog; this machine's clock against PostgreSQL's; and the
S3 bucket, when one is configured. It changes nothing (no migration, no key, no file).
Exits 1 when any problem is found.`,
		Args: cobra.NoArgs,
	}
	cmd.Flags().StringVarP(&output, "output", "o", "text", "output format: text or json")
	cmd.Flags().DurationVar(&o.OfflineWarning, "expiry-warning", o.OfflineWarning, "report offline roles that expire within this")
	cmd.Flags().DurationVar(&o.MaxSkew, "max-skew", o.MaxSkew, "largest clock difference from PostgreSQL that is not a problem")
	cmd.Flags().Int64Var(&o.MinFreeBytes, "min-free-bytes", 0, "less free space than this in the blob directory is a problem (0: twice --max-blob-size)")
	return withConfig(cmd, getenv, func(ctx context.Context, c *Config) error {
		if output != "text" && output != "json" {
			return fmt.Errorf("--output must be text or json, not %q", output)
		}
		if o.MaxSkew <= 0 || o.OfflineWarning < 0 || o.MinFreeBytes < 0 {
			return errors.New("--max-skew must be more than 0, --expiry-warning and --min-free-bytes 0 or more")
		}
		if o.MinFreeBytes == 0 {
			o.MinFreeBytes = 2 * c.MaxBlobSize
		}
		rep := Doctor(ctx, c, getenv, o)
		if output == "json" {
			enc := json.NewEncoder(stdout)
			enc.SetIndent("", "  ")
			if err := enc.Encode(rep); err != nil {
				return err
			}
		} else {
			printDoctor(stdout, rep)
		}
		if rep.Problems > 0 {
			return fmt.Errorf("%d problem(s) found; each has a fix above", rep.Problems)
		}
		return nil
	})
}

func printDoctor(w io.Writer, rep *DoctorReport) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "CHECK\tSTATUS\tDETAIL")
	var fixes []string
	for _, c := range rep.Checks {
		st := c.Status
		if st == DoctorProblem {
			st = "PROBLEM"
			fixes = append(fixes, "  "+c.Check+": "+c.Fix)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\n", c.Check, st, c.Detail)
	}
	tw.Flush()
	if len(fixes) > 0 {
		fmt.Fprintf(w, "\nTo fix:\n%s\n", strings.Join(fixes, "\n"))
	} else {
		fmt.Fprintln(w, "\nNo problems found.")
	}
}

// devKeyURIs points the online key URIs and the blob directory at a dev data directory's
// files, as devSetup does, but creates nothing: doctor only reads.
func devKeyURIs(c *Config) {
	if !c.Dev || c.DataDir == "" {
		return
	}
	dir, err := filepath.Abs(c.DataDir)
	if err != nil {
		return
	}
	keys := filepath.Join(dir, "keys")
	pass := filepath.Join(keys, "passphrase")
	uri := func(role string) string {
		p := filepath.Join(keys, role+".json")
		if _, err := os.Stat(p); err != nil {
			return ""
		}
		return (&url.URL{Scheme: "file", Path: p, RawQuery: "passphrase-file=" + url.QueryEscape(pass)}).String()
	}
	c.TimestampKey = orDefault(c.TimestampKey, uri(tufrepo.RoleTimestamp))
	c.SnapshotKey = orDefault(c.SnapshotKey, uri(tufrepo.RoleSnapshot))
	c.RecentlyClaimedKey = orDefault(c.RecentlyClaimedKey, uri(tufrepo.RoleRecentlyClaimed))
	c.BlobDir = orDefault(c.BlobDir, filepath.Join(dir, "blobs"))
}

// Doctor runs every check of `cairnd doctor` against configuration c. It writes nothing.
func Doctor(ctx context.Context, c *Config, getenv func(string) string, o DoctorOptions) *DoctorReport {
	rep := &DoctorReport{Checks: []DoctorCheck{}}
	cfg := *c
	devKeyURIs(&cfg)
	c = &cfg
	now := o.Now()

	var db *store.DB
	dctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	// openDB with migrate=false and without dev mode's CREATE DATABASE: doctor changes nothing.
	nodev := *c
	nodev.Dev = false
	d, err := openDB(dctx, &nodev, false, newLogger(io.Discard, "error"))
	if err == nil {
		err = d.Ping(dctx)
		if err != nil {
			d.Close()
		}
	}
	if err != nil {
		rep.add(DoctorCheck{Check: "database", Status: DoctorProblem, Detail: "unreachable: " + err.Error(), Fix: "check --database-url (" + redactURL(c.DatabaseURL) + "), that PostgreSQL runs and accepts this host and user"})
	} else {
		db = d
		defer db.Close()
		v, verr := db.ServerVersion(dctx)
		if verr != nil {
			v = "version unknown"
		}
		rep.add(DoctorCheck{Check: "database", Status: DoctorOK, Detail: "PostgreSQL " + v + " at " + redactURL(c.DatabaseURL)})
	}

	if db != nil {
		st, err := db.Migrations(dctx)
		switch {
		case err != nil:
			rep.add(DoctorCheck{Check: "migrations", Status: DoctorProblem, Detail: err.Error(), Fix: "check that the database user may read the goose_db_version table"})
		case len(st.Pending) > 0:
			rep.add(DoctorCheck{Check: "migrations", Status: DoctorProblem, Detail: fmt.Sprintf("%d applied, %d pending: %s", st.Applied, len(st.Pending), strings.Join(st.Pending, ", ")), Fix: "run 'cairnd migrate' (or start cairnd serve without --no-migrate)"})
		default:
			rep.add(DoctorCheck{Check: "migrations", Status: DoctorOK, Detail: fmt.Sprintf("all %d applied (latest %s)", st.Applied, st.Latest)})
		}
		dbNow, err := db.Clock(dctx)
		local := o.Now()
		if err != nil {
			rep.add(DoctorCheck{Check: "clock", Status: DoctorProblem, Detail: err.Error(), Fix: "check the database connection"})
		} else {
			skew := local.Sub(dbNow)
			c := DoctorCheck{Check: "clock", Status: DoctorOK, Detail: fmt.Sprintf("this machine and PostgreSQL differ by %s", skew.Abs().Round(time.Millisecond))}
			if skew.Abs() > o.MaxSkew {
				c.Status, c.Fix = DoctorProblem, "synchronise the clocks of this machine and the database host (NTP): expiry of signed metadata is computed from this clock, staleness and proposals from the database's"
			}
			rep.add(c)
		}
	}

	doctorBlobs(ctx, c, o, rep)

	// Keys, as `cairnd keys check`, against the published root and targets.
	var root *metadata.Metadata[metadata.RootType]
	var targets *metadata.Metadata[metadata.TargetsType]
	if db != nil {
		var err error
		if root, targets, err = publishedTopLevel(dctx, db); err != nil {
			rep.add(DoctorCheck{Check: "published metadata", Status: DoctorProblem, Detail: err.Error(), Fix: "see the error; 'cairnd keys check' reads the same"})
		} else if root == nil {
			rep.add(DoctorCheck{Check: "published metadata", Status: DoctorProblem, Detail: "the repository is not bootstrapped", Fix: "run 'cairnd bootstrap --metadata DIR' with the output of 'cairn admin init'"})
		}
	}
	for _, k := range CheckKeys(ctx, c, getenv, root, targets) {
		ch := DoctorCheck{Check: "key " + k.Signer, Status: DoctorOK, Detail: fmt.Sprintf("%s key %s: probe %s; %s", k.URI, short(k.KeyID), k.Probe, k.Delegation)}
		if !k.OK {
			ch.Status = DoctorProblem
			ch.Fix = "fix the key URI or the KMS/HSM access; 'cairnd keys check' shows the same; cairnd serve refuses to start like this"
			if strings.HasPrefix(k.Signer, "standby") {
				ch.Fix = "fix or remove --standby-key " + k.URI
			}
		}
		rep.add(ch)
	}

	if db != nil && root != nil {
		doctorExpiry(dctx, db, o, now, rep)
		doctorTlog(dctx, c, db, o, now, rep)
	}
	return rep
}

func short(id string) string {
	if len(id) > 16 {
		return id[:16]
	}
	if id == "" {
		return "-"
	}
	return id
}

// redactURL drops the password from a database URL.
func redactURL(s string) string {
	u, err := url.Parse(s)
	if err != nil {
		return "(unparseable URL)"
	}
	return u.Redacted()
}

// doctorBlobs checks the blob directory's free space, and the S3 bucket when configured.
func doctorBlobs(ctx context.Context, c *Config, o DoctorOptions, rep *DoctorReport) {
	if c.BlobDir == "" {
		rep.add(DoctorCheck{Check: "blob store", Status: DoctorProblem, Detail: "no blob directory configured", Fix: "set --blob-dir or CAIRN_BLOB_DIR"})
	} else {
		var fs syscall.Statfs_t
		if err := syscall.Statfs(c.BlobDir, &fs); err != nil {
			rep.add(DoctorCheck{Check: "blob store", Status: DoctorProblem, Detail: err.Error(), Fix: "create " + c.BlobDir + " (writable by cairnd) or fix --blob-dir"})
		} else {
			free := int64(fs.Bavail) * int64(fs.Bsize)
			total := int64(fs.Blocks) * int64(fs.Bsize)
			pct := 100 * float64(free) / float64(max(total, 1))
			ch := DoctorCheck{Check: "blob store", Status: DoctorOK, Detail: fmt.Sprintf("%s: %s free of %s (%.1f%%)", c.BlobDir, bytesText(free), bytesText(total), pct)}
			if free < o.MinFreeBytes || pct < o.MinFreePercent {
				ch.Status = DoctorProblem
				ch.Fix = fmt.Sprintf("free space on %s (want at least %s and %.0f%%): 'cairnd gc' removes unreferenced OCI blobs; grow the volume; or keep finished blobs in S3 (--blob-s3-bucket)", c.BlobDir, bytesText(o.MinFreeBytes), o.MinFreePercent)
			}
			rep.add(ch)
		}
	}
	if c.BlobS3Bucket == "" {
		rep.add(DoctorCheck{Check: "s3 bucket", Status: DoctorInfo, Detail: "not configured (finished blobs stay in the blob directory)"})
		return
	}
	sctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	// Only looks: nothing is sent, so the temporary directory is never used.
	remote, err := blobstore.NewS3(sctx, *s3Config(c), nil)
	if err == nil {
		// A digest no blob has: "not found" proves the bucket answers and lets us look.
		_, err = remote.Stat(sctx, "sha256:"+strings.Repeat("0", 64))
		if errors.Is(err, os.ErrNotExist) {
			err = nil
		}
	}
	if err != nil {
		rep.add(DoctorCheck{Check: "s3 bucket", Status: DoctorProblem, Detail: err.Error(), Fix: "check --blob-s3-bucket, --blob-s3-endpoint, the region and the credentials (the key needs s3:GetObject, PutObject, DeleteObject, ListBucket)"})
		return
	}
	rep.add(DoctorCheck{Check: "s3 bucket", Status: DoctorOK, Detail: "bucket " + c.BlobS3Bucket + " answers"})
}

func bytesText(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}

// doctorExpiry checks every published top-level role and node of both delegation trees:
// an offline role within o.OfflineWarning of its expiry, an online one past a quarter of
// its lifetime (the publisher re-signs it at half), and any expired role, are problems.
func doctorExpiry(ctx context.Context, db *store.DB, o DoctorOptions, now time.Time, rep *DoctorReport) {
	roles, err := db.PublishedRepositoryRoles(ctx)
	if err != nil {
		rep.add(DoctorCheck{Check: "role expiry", Status: DoctorProblem, Detail: err.Error(), Fix: "check the database connection"})
		return
	}
	for _, r := range roles {
		life, online := onlineLifetime(r.Role)
		kind := "offline"
		if online {
			kind = "online"
		}
		left := r.Expires.Sub(now)
		ch := DoctorCheck{Check: "expiry " + r.Role, Status: DoctorOK, Detail: fmt.Sprintf("%s, version %d, expires %s (in %s)", kind, r.Version, r.Expires.Format(time.RFC3339), humanLeft(left))}
		switch {
		case left <= 0:
			ch.Status, ch.Detail = DoctorProblem, fmt.Sprintf("%s, version %d, EXPIRED at %s: clients refuse the repository", kind, r.Version, r.Expires.Format(time.RFC3339))
		case !online && left < o.OfflineWarning:
			ch.Status = DoctorProblem
		case online && left < life/4:
			ch.Status = DoctorProblem
		}
		if ch.Status == DoctorProblem {
			if online {
				ch.Fix = "the publisher has not re-signed it: check that a replica runs the publisher (not --no-publisher), its logs and /readyz, and the online key (above)"
			} else {
				ch.Fix = "the admins must re-sign it offline: " + resignHint(r.Role)
			}
		}
		rep.add(ch)
	}
}

func onlineLifetime(role string) (time.Duration, bool) {
	switch role {
	case tufrepo.RoleTimestamp:
		return tufrepo.TimestampExpiry, true
	case tufrepo.RoleSnapshot:
		return tufrepo.SnapshotExpiry, true
	}
	if tufrepo.SignedWithRecentlyClaimedKey(role) {
		return tufrepo.RecentlyClaimedExpiry, true
	}
	return 0, false
}

func resignHint(role string) string {
	switch role {
	case tufrepo.RoleRoot:
		return "cairn admin root rotate (a renewal keeps the keys)"
	case tufrepo.RoleTargets:
		return "cairn admin targets resign"
	}
	return "cairn admin claim (re-signs the claimed tree)"
}

func humanLeft(d time.Duration) string {
	if d >= 48*time.Hour {
		return fmt.Sprintf("%d days", int(d.Hours()/24))
	}
	return d.Truncate(time.Minute).String()
}

// doctorTlog reports the transparency log backlog: versions signed but not yet logged.
func doctorTlog(ctx context.Context, c *Config, db *store.DB, o DoctorOptions, now time.Time, rep *DoctorReport) {
	n, err := db.TlogBacklog(ctx)
	if err != nil {
		rep.add(DoctorCheck{Check: "transparency log", Status: DoctorProblem, Detail: err.Error(), Fix: "check the database connection"})
		return
	}
	if c.RekorURL == "" {
		ch := DoctorCheck{Check: "transparency log", Status: DoctorInfo, Detail: "not configured (--rekor-url)"}
		if n > 0 {
			ch.Detail += fmt.Sprintf("; %d signed version(s) have no log entry", n)
		}
		rep.add(ch)
		return
	}
	ch := DoctorCheck{Check: "transparency log", Status: DoctorOK, Detail: fmt.Sprintf("%s: backlog %d version(s)", c.RekorURL, n)}
	if n > 0 {
		list, err := db.TlogPendingList(ctx, 1)
		if err == nil && len(list) > 0 && list[0].Attempts > 0 {
			p := list[0]
			ch.Detail += fmt.Sprintf("; oldest %s version %d, %d failed attempt(s): %s", p.Role, p.Version, p.Attempts, p.LastError)
			if p.Attempts >= 3 {
				ch.Status, ch.Fix = DoctorProblem, "check that the Rekor log at --rekor-url answers and accepts entries (its logs), and --rekor-key/--rekor-origin"
			}
		}
	}
	rep.add(ch)
}
