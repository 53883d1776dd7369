package cli

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/cairn-dev/cairn/api"
	"github.com/cairn-dev/cairn/client"
	"github.com/cairn-dev/cairn/mirror"
	"github.com/cairn-dev/cairn/tlog"
	"github.com/spf13/cobra"
)

// bundleLimitFlags are the bounds on reading a bundle, shared by verify and import.
type bundleLimitFlags struct {
	maxMembers  int
	maxFile     int64
	maxBundle   int64
	maxStale    time.Duration
	rootFile    string
	output      string
	staticDir   string
	stagingRoot string
	logKeyFile  string
	logOrigin   string
}

func (f *bundleLimitFlags) add(cmd *cobra.Command) {
	d := mirror.DefaultLimits()
	cmd.Flags().IntVar(&f.maxMembers, "max-members", d.MaxMembers, "refuse a bundle with more tar members than this")
	cmd.Flags().Int64Var(&f.maxFile, "max-file-size", d.MaxMemberBytes, "refuse a bundle with a member larger than this many bytes")
	cmd.Flags().Int64Var(&f.maxBundle, "max-bundle-size", d.MaxTotalBytes, "refuse a bundle larger than this many bytes")
	cmd.Flags().StringVar(&f.logKeyFile, "log-key", "", "the transparency log's public key (PEM `FILE`): also verify that the log signed the checkpoints of the bundle's log entries")
	cmd.Flags().StringVar(&f.logOrigin, "log-origin", "", "the transparency log's checkpoint origin (default: as the checkpoint names it)")
	cmd.Flags().DurationVar(&f.maxStale, "max-staleness", client.DefaultMaxStaleness, "refuse a bundle exported longer ago than this; expiry is evaluated as of its export time (SECURITY.md, \"Air-gapped mirrors\")")
}

// logKey reads --log-key; nil when it is not given.
func (f *bundleLimitFlags) logKey() (*tlog.LogKey, error) {
	if f.logKeyFile == "" {
		if f.logOrigin != "" {
			return nil, api.Errorf(api.CodeBadRequest, "--log-origin needs --log-key")
		}
		return nil, nil
	}
	b, err := os.ReadFile(f.logKeyFile)
	if err != nil {
		return nil, api.Wrap(api.CodeBadRequest, err, "cannot read --log-key %s", f.logKeyFile)
	}
	pub, err := tlog.ParsePublicKey(b)
	if err != nil {
		return nil, api.Wrap(api.CodeInvalidKey, err, "--log-key %s is not a PEM public key", f.logKeyFile)
	}
	return &tlog.LogKey{Key: pub, Origin: f.logOrigin}, nil
}

func (f *bundleLimitFlags) limits() mirror.Limits {
	return mirror.Limits{MaxMembers: f.maxMembers, MaxMemberBytes: f.maxFile, MaxTotalBytes: f.maxBundle}
}

// readBundle reads a bundle file into a fresh staging directory, which the returned
// cleanup removes.
func readBundle(path string, lim mirror.Limits) (*mirror.Bundle, func(), error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, nil, api.Wrap(api.CodeBadRequest, err, "cannot open bundle %s", path)
	}
	defer f.Close()
	staging, err := os.MkdirTemp("", "cairn-bundle-")
	if err != nil {
		return nil, nil, fmt.Errorf("creating a staging directory: %w", err)
	}
	cleanup := func() { os.RemoveAll(staging) }
	b, err := mirror.Read(bufio.NewReaderSize(f, 1<<20), staging, lim)
	if err != nil {
		cleanup()
		return nil, nil, fmt.Errorf("reading bundle %s: %w", path, err)
	}
	return b, cleanup, nil
}

func (a *app) mirrorCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "mirror",
		Short: "Carry verified releases into an air-gapped site: export, verify and import bundles",
		Long: `A mirror bundle is one OCI image-layout tar holding the exact signed TUF metadata
(the whole root chain, one timestamp, its snapshot, targets, the delegating roles and the
selected projects' roles), the selected releases' files, the audit-log and
transparency-log entries of that metadata and its Merkle snapshot proofs. It verifies on
its own, with no network, from a pinned root. It also carries the exported projects' OCI
artifacts (/v2/: tags, manifests with their referrers such as signatures and SBOMs, and
blobs), which 'cairnd serve --mirror' serves read-only.

  cairn mirror export --project hello -o bundle.tar    on the connected side
  cairn mirror verify bundle.tar --root root.json      anywhere, offline
  cairn mirror import bundle.tar --static DIR          lay out DIR for nginx
  cairnd mirror import bundle.tar                      or load a 'cairnd serve --mirror'

Expiry is evaluated as of the bundle's export time, for bundles exported within
--max-staleness (SECURITY.md, "Air-gapped mirrors").`,
	}
	cmd.AddCommand(a.mirrorExportCommand(), a.mirrorVerifyCommand(), a.mirrorImportCommand())
	return cmd
}

func (a *app) mirrorExportCommand() *cobra.Command {
	var (
		projects []string
		all      bool
		since    int64
		out      string
		output   string
		maxFiles int
		maxBytes int64
		ociRepos []string
	)
	cmd := &cobra.Command{
		Use:   "export [--project P]... [--all] [--since SNAPSHOT] -o bundle.tar",
		Short: "Write a self-verifying bundle of projects' releases and their signed metadata",
		Long: `export downloads, through the TUF updater from the pinned root, the current signed
metadata and every release file of the selected projects, and their OCI repositories
(each project's own, and those named with --oci-repo: every tag, the manifests the tags
and the referrers API reach, their blobs), checks the assembled bundle as
'cairn mirror verify' will, and only then writes it. With --since SNAPSHOT it writes an
incremental bundle for a mirror that imported the bundle of that snapshot (or a later
one): the projects that changed since, with only their new files. The same server state
and export second give the same bytes.`,
		Args: cobra.NoArgs,
		RunE: run(func(cmd *cobra.Command, args []string) error {
			if out == "" {
				return api.Errorf(api.CodeBadRequest, "name the bundle file with -o FILE")
			}
			repo, err := a.repo()
			if err != nil {
				return err
			}
			ac, err := a.apiClient()
			if err != nil {
				return err
			}
			staging, err := os.MkdirTemp(filepath.Dir(out), ".cairn-export-")
			if err != nil {
				return fmt.Errorf("creating a staging directory next to %s: %w", out, err)
			}
			defer os.RemoveAll(staging)
			b, res, err := repo.ExportBundle(a.ctx, ac, client.ExportOptions{Projects: projects, All: all, Since: since,
				StagingDir: staging, MaxFiles: maxFiles, MaxBytes: maxBytes, OCIRepos: ociRepos})
			if err != nil {
				return err
			}
			tmp, err := os.CreateTemp(filepath.Dir(out), ".bundle-*.tar")
			if err != nil {
				return fmt.Errorf("writing %s: %w", out, err)
			}
			defer os.Remove(tmp.Name())
			w := bufio.NewWriterSize(tmp, 1<<20)
			if err := mirror.Write(w, b); err != nil {
				tmp.Close()
				return err
			}
			if err := w.Flush(); err != nil {
				tmp.Close()
				return fmt.Errorf("writing %s: %w", out, err)
			}
			if err := tmp.Close(); err != nil {
				return fmt.Errorf("writing %s: %w", out, err)
			}
			if err := os.Rename(tmp.Name(), out); err != nil {
				return fmt.Errorf("writing %s: %w", out, err)
			}
			if output == "json" {
				return a.printJSON(res)
			}
			a.printBundle("Exported", res)
			a.printf("Wrote %s.\n", out)
			return nil
		}),
	}
	cmd.Flags().StringArrayVar(&projects, "project", nil, "export this project (repeatable)")
	cmd.Flags().BoolVar(&all, "all", false, "export every project the snapshot lists")
	cmd.Flags().Int64Var(&since, "since", 0, "write an incremental bundle on top of the bundle of this snapshot version")
	cmd.Flags().StringVarP(&out, "out", "o", "", "write the bundle to `FILE`")
	cmd.Flags().IntVar(&maxFiles, "max-files", 1_000_000, "refuse to export more release files than this")
	cmd.Flags().Int64Var(&maxBytes, "max-bundle-size", 1<<40, "refuse to export more bytes of release files and OCI blobs than this")
	cmd.Flags().StringArrayVar(&ociRepos, "oci-repo", nil, "also carry the nested OCI repository `PROJECT/NAME` of an exported project (repeatable; each project's own repository is always carried)")
	addOutputFlag(cmd, &output)
	return cmd
}

func (a *app) mirrorVerifyCommand() *cobra.Command {
	var f bundleLimitFlags
	cmd := &cobra.Command{
		Use:   "verify bundle.tar --root ROOT",
		Short: "Check a bundle offline: the TUF chain from a pinned root, every file hash, the audit log",
		Long: `verify reads the bundle with no network and checks it as a TUF client checks a
server: every root from the pinned one on, the timestamp, the snapshot it names, targets
and each delegated role by its delegator (signatures, thresholds, versions, expiry as of
the export time, lengths and hashes), every release file against the signed role that
lists it, each audit-log entry's hash against the metadata bytes, and the OCI artifacts
(every manifest and blob at its digest and complete by reference; release tags as the
signed roles imply them). It names the first
thing that fails and exits with the usual codes: 1 hash mismatch, 2 signature invalid,
3 key not trusted (another repository's root), 4 policy (expired, too stale, rollback,
a file dropped or added), 10 malformed bundle.`,
		Args: cobra.ExactArgs(1),
		RunE: run(func(cmd *cobra.Command, args []string) error {
			root, err := a.rootForBundle(f.rootFile)
			if err != nil {
				return err
			}
			lk, err := f.logKey()
			if err != nil {
				return err
			}
			b, cleanup, err := readBundle(args[0], f.limits())
			if err != nil {
				return err
			}
			defer cleanup()
			res, err := client.VerifyBundle(b, root, client.BundleVerifyOptions{MaxStaleness: f.maxStale, LogKey: lk})
			if err != nil {
				return err
			}
			if f.output == "json" {
				return a.printJSON(res)
			}
			a.printBundle("Verified", res)
			return nil
		}),
	}
	cmd.Flags().StringVar(&f.rootFile, "root", "", "the trusted root `FILE` (default: the root pinned by 'cairn init')")
	f.add(cmd)
	addOutputFlag(cmd, &f.output)
	return cmd
}

func (a *app) mirrorImportCommand() *cobra.Command {
	var f bundleLimitFlags
	cmd := &cobra.Command{
		Use:   "import bundle.tar --static DIR [--root ROOT]",
		Short: "Verify a bundle and lay it out in a directory any static web server can serve",
		Long: `import verifies the bundle (as 'cairn mirror verify' does) against the mirror
directory DIR and writes it there: DIR/metadata/… and DIR/targets/… under the same paths
as cairnd, so a TUF client pointed at https://HOST/metadata and https://HOST/targets
verifies as usual; deploy/nginx/cairn-static.conf serves it. The first import trusts
--root; later ones trust the root DIR holds, so a bundle whose root chain does not
extend it is refused, as is an older snapshot than DIR holds (rollback). Nothing in DIR
changes when an import is refused; timestamp.json is written last.`,
		Args: cobra.ExactArgs(1),
		RunE: run(func(cmd *cobra.Command, args []string) error {
			if f.staticDir == "" {
				return api.Errorf(api.CodeBadRequest, "name the directory to lay out with --static DIR (a 'cairnd serve --mirror' imports with 'cairnd mirror import')")
			}
			var root []byte
			if f.rootFile != "" {
				b, err := os.ReadFile(f.rootFile)
				if err != nil {
					return api.Wrap(api.CodeBadRequest, err, "cannot read --root %s", f.rootFile)
				}
				root = b
			}
			lk, err := f.logKey()
			if err != nil {
				return err
			}
			b, cleanup, err := readBundle(args[0], f.limits())
			if err != nil {
				return err
			}
			defer cleanup()
			d, err := mirror.OpenDir(f.staticDir)
			if err != nil {
				return err
			}
			res, err := client.ImportBundle(b, d, client.ImportOptions{Root: root, MaxStaleness: f.maxStale, LogKey: lk})
			if err != nil {
				return err
			}
			if f.output == "json" {
				return a.printJSON(res)
			}
			a.printBundle("Imported", res.BundleVerification)
			if res.Written == 0 {
				a.printf("%s already holds timestamp %d: nothing written.\n", f.staticDir, res.TimestampVersion)
			} else {
				a.printf("Wrote %d files into %s (timestamp %d → %d).\n", res.Written, f.staticDir, res.PreviousTimestamp, res.TimestampVersion)
			}
			return nil
		}),
	}
	cmd.Flags().StringVar(&f.staticDir, "static", "", "the mirror `DIR` to lay out")
	cmd.Flags().StringVar(&f.rootFile, "root", "", "the trusted root `FILE` for the first import into an empty DIR")
	f.add(cmd)
	addOutputFlag(cmd, &f.output)
	return cmd
}

// rootForBundle reads --root, else the root 'cairn init' pinned for the configured server.
func (a *app) rootForBundle(file string) ([]byte, error) {
	if file != "" {
		b, err := os.ReadFile(file)
		if err != nil {
			return nil, api.Wrap(api.CodeBadRequest, err, "cannot read --root %s", file)
		}
		return b, nil
	}
	home, err := a.home()
	if err != nil {
		return nil, err
	}
	cfg, err := LoadConfig(home)
	if err != nil {
		return nil, err
	}
	if cfg.Server != "" {
		if b, err := readPinnedRoot(home, cfg, cfg.Server); err == nil && b != nil {
			return b, nil
		}
	}
	return nil, api.Errorf(api.CodeBadRequest, "give the trusted root with --root FILE (no root is pinned by 'cairn init' here)")
}

func (a *app) printBundle(verb string, r *client.BundleVerification) {
	kind := "full"
	if r.Since > 0 {
		kind = fmt.Sprintf("incremental since snapshot %d", r.Since)
	}
	a.printf("%s a %s bundle of %s exported %s (expiry evaluated as of then).\n", verb, kind, r.Server, r.ExportedAt.Format(time.RFC3339))
	a.printf("  root chain 1..%d from pinned root %d; timestamp %d; snapshot %d\n", r.RootVersion, r.PinnedRoot, r.TimestampVersion, r.SnapshotVersion)
	a.printf("  %d metadata files verified; %d release files verified", r.Roles, r.Files)
	if r.FromBase > 0 {
		a.printf(", %d held by the mirror", r.FromBase)
	}
	if r.Missing > 0 {
		a.printf(", %d left to the earlier import", r.Missing)
	}
	a.printf("; %d audit-log entries", r.AuditEntries)
	if r.TlogEntries > 0 {
		how := "checkpoints not checked: give --log-key"
		if r.TlogCheckpoints {
			how = "checkpoints signed by the log key"
		}
		a.printf("; %d transparency-log entries (%s)", r.TlogEntries, how)
	}
	a.printf("\n")
	a.printf("  projects: %d", len(r.Projects))
	if r.OCIRepositories > 0 {
		a.printf("; OCI repositories: %d, manifests: %d (release tags as TUF signed them)", r.OCIRepositories, r.OCIManifests)
	}
	if r.Attestations > 0 {
		a.printf("; %d attestations (each as its signed index lists it, verified against the TUF-delivered Sigstore trusted root)", r.Attestations)
	}
	a.printf("\n")
}

// mirrorMaxStaleness is "mirror_max_staleness" from the configuration, else the default.
func (a *app) mirrorMaxStaleness() (time.Duration, error) {
	home, err := a.home()
	if err != nil {
		return 0, err
	}
	cfg, err := LoadConfig(home)
	if err != nil {
		return 0, err
	}
	if cfg.MirrorMaxStaleness == "" {
		return client.DefaultMaxStaleness, nil
	}
	d, err := time.ParseDuration(cfg.MirrorMaxStaleness)
	if err != nil || d <= 0 {
		return 0, api.Errorf(api.CodeBadRequest, "mirror_max_staleness %q in %s is not a positive duration: write it like 168h", cfg.MirrorMaxStaleness, configPath(home))
	}
	return d, nil
}
