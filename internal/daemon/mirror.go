package daemon

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/cairn-dev/cairn/client"
	"github.com/cairn-dev/cairn/mirror"
	"github.com/cairn-dev/cairn/server"
	"github.com/cairn-dev/cairn/tlog"
	"github.com/spf13/cobra"
)

// mirrorDir is --mirror-dir, else <data-dir>/mirror.
func mirrorDir(c *Config) (string, error) {
	if c.MirrorDir != "" {
		return c.MirrorDir, nil
	}
	if c.DataDir != "" {
		return filepath.Join(c.DataDir, "mirror"), nil
	}
	return "", errors.New("no mirror directory: set --mirror-dir (or CAIRN_MIRROR_DIR, or \"mirror_dir\" in the config file)")
}

// StartMirror serves the mirror directory read-only on c.Listen (cairnd serve --mirror):
// no database, no keys, no publisher. The directory changes only through 'cairnd mirror
// import', which writes timestamp.json last, so the running mirror never serves a
// timestamp whose files are not there yet.
func StartMirror(ctx context.Context, c Config, log *slog.Logger) (*Running, error) {
	if c.Dev {
		return nil, errors.New("refusing to start: --mirror and --dev cannot be combined (a mirror has no keys and no database)")
	}
	if err := checkListen(&c, log); err != nil {
		return nil, fmt.Errorf("refusing to start: %w", err)
	}
	dir, err := mirrorDir(&c)
	if err != nil {
		return nil, err
	}
	if _, err := mirror.OpenDir(dir); err != nil {
		return nil, err
	}
	ln, err := listen(c.Listen)
	if err != nil {
		return nil, err
	}
	if _, err := os.Stat(filepath.Join(dir, "metadata", "timestamp.json")); err != nil {
		log.Warn("the mirror directory holds no bundle yet: /readyz answers 503 until 'cairnd mirror import' loads one", "dir", dir)
	}
	hs := &http.Server{Handler: server.NewMirror(dir, log), ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 2 * time.Minute,
		ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelWarn)}
	_, cancel := context.WithCancel(context.WithoutCancel(ctx))
	r := &Running{Addr: ln.Addr().String(), URL: "http://" + ln.Addr().String(), Config: c, httpSrv: hs, cancel: cancel, done: make(chan error, 1)}
	go func() {
		err := hs.Serve(ln)
		if errors.Is(err, http.ErrServerClosed) {
			err = nil
		}
		r.done <- err
	}()
	return r, nil
}

func mirrorCmd(stdout, stderr io.Writer, getenv func(string) string) *cobra.Command {
	cmd := &cobra.Command{Use: "mirror", Short: "Load bundles into a read-only mirror ('cairnd serve --mirror')"}
	var (
		rootFile string
		output   string
		stale    time.Duration
		lim      = mirror.DefaultLimits()
	)
	imp := &cobra.Command{
		Use:   "import bundle.tar",
		Short: "Verify a bundle from 'cairn mirror export' and load it into --mirror-dir",
		Long: `import verifies the bundle offline, as 'cairn mirror verify' does, against the mirror
directory (--mirror-dir, the one 'cairnd serve --mirror' serves) and writes it there. The
first import trusts --root; later ones trust the newest root the mirror holds, so a root
chain that does not extend it is refused, as is a bundle older than the mirror's snapshot
(rollback) and an incremental bundle whose base the mirror does not hold. Nothing
changes on refusal; the running mirror serves the new timestamp as soon as it is written
(last). With --rekor-key (and --rekor-origin), the checkpoints of the bundle's
transparency-log entries are verified with the log's key. Expiry is evaluated as of the bundle's export time, within --bundle-max-staleness.`,
		Args: cobra.ExactArgs(1),
	}
	imp.Annotations = map[string]string{annotationDatabase: "optional"}
	imp.Flags().StringVar(&rootFile, "root", "", "the trusted root `FILE` for the first import into an empty mirror")
	imp.Flags().StringVarP(&output, "output", "o", "text", "output format: text or json")
	imp.Flags().DurationVar(&stale, "bundle-max-staleness", client.DefaultMaxStaleness, "refuse a bundle exported longer ago than this (cairn's --max-staleness; cairnd's --max-staleness is about replicas)")
	imp.Flags().Int64Var(&lim.MaxMemberBytes, "max-file-size", lim.MaxMemberBytes, "refuse a bundle with a member larger than this many bytes")
	imp.Flags().Int64Var(&lim.MaxTotalBytes, "max-bundle-size", lim.MaxTotalBytes, "refuse a bundle larger than this many bytes")
	cmd.AddCommand(withConfig(imp, getenv, func(ctx context.Context, c *Config) error {
		if output != "text" && output != "json" {
			return fmt.Errorf("--output must be text or json, not %q", output)
		}
		dir, err := mirrorDir(c)
		if err != nil {
			return err
		}
		var root []byte
		if rootFile != "" {
			if root, err = os.ReadFile(rootFile); err != nil {
				return fmt.Errorf("reading --root: %w", err)
			}
		}
		bundle := imp.Flags().Arg(0)
		f, err := os.Open(bundle)
		if err != nil {
			return fmt.Errorf("opening the bundle: %w", err)
		}
		defer f.Close()
		staging, err := os.MkdirTemp("", "cairnd-bundle-")
		if err != nil {
			return fmt.Errorf("creating a staging directory: %w", err)
		}
		defer os.RemoveAll(staging)
		b, err := mirror.Read(bufio.NewReaderSize(f, 1<<20), staging, lim)
		if err != nil {
			return fmt.Errorf("reading bundle %s: %w", bundle, err)
		}
		d, err := mirror.OpenDir(dir)
		if err != nil {
			return err
		}
		var lk *tlog.LogKey
		if c.RekorKey != "" {
			pemb, err := os.ReadFile(c.RekorKey)
			if err != nil {
				return fmt.Errorf("reading --rekor-key: %w", err)
			}
			pub, err := tlog.ParsePublicKey(pemb)
			if err != nil {
				return fmt.Errorf("--rekor-key %s: %w", c.RekorKey, err)
			}
			lk = &tlog.LogKey{Key: pub, Origin: c.RekorOrigin}
		}
		res, err := client.ImportBundle(b, d, client.ImportOptions{Root: root, MaxStaleness: stale, LogKey: lk})
		if err != nil {
			return err
		}
		if output == "json" {
			enc := json.NewEncoder(stdout)
			enc.SetIndent("", "  ")
			return enc.Encode(res)
		}
		if res.Written == 0 {
			fmt.Fprintf(stdout, "The mirror %s already holds timestamp %d: nothing written.\n", dir, res.TimestampVersion)
			return nil
		}
		fmt.Fprintf(stdout, "Imported the bundle of %s exported %s into %s: timestamp %d → %d, snapshot %d, %d projects, %d files written.\n",
			res.Server, res.ExportedAt.Format(time.RFC3339), dir, res.PreviousTimestamp, res.TimestampVersion, res.SnapshotVersion, len(res.Projects), res.Written)
		return nil
	}))
	return cmd
}
