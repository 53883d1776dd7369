package cli

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/cairn-dev/cairn/api"
	"github.com/cairn-dev/cairn/client"
	"github.com/spf13/cobra"
)

// releaseList is what 'cairn releases --output json' prints.
type releaseList struct {
	Project         string           `json:"project"`
	Server          string           `json:"server"`
	SnapshotVersion int64            `json:"snapshot_version"`
	RoleVersion     int64            `json:"role_version"`
	Releases        []client.Release `json:"releases"`
}

func (a *app) releasesCommand() *cobra.Command {
	var output string
	cmd := &cobra.Command{
		Use:   "releases NAME",
		Short: "List a project's releases, verified through TUF metadata",
		Long: `releases lists the releases of project NAME, newest first, as the project's
signed role metadata lists them after verifying the whole chain from the pinned root.
The server's REST API is not consulted.`,
		Args: cobra.ExactArgs(1),
		RunE: run(func(cmd *cobra.Command, args []string) error {
			repo, pr, err := a.projectRole(args[0])
			if err != nil {
				return err
			}
			rels := pr.Releases()
			if output == "json" {
				if rels == nil {
					rels = []client.Release{}
				}
				return a.printJSON(releaseList{Project: pr.Name, Server: repo.Server(), SnapshotVersion: pr.SnapshotVersion, RoleVersion: pr.Version(), Releases: rels})
			}
			a.notef("Verified %s role version %d through snapshot %d of %s.\n", pr.Name, pr.Version(), pr.SnapshotVersion, repo.Server())
			if len(rels) == 0 {
				a.notef("%s has no releases yet.\n", pr.Name)
				return nil
			}
			tw := a.table()
			fmt.Fprintln(tw, "VERSION\tSTATUS\tFILE\tSIZE\tSHA256")
			for _, r := range rels {
				status := "ok"
				if r.Yanked {
					status = "yanked"
				}
				for _, f := range r.Files {
					fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\n", r.Version, status, f.Name, f.Length, f.SHA256)
				}
			}
			if err := tw.Flush(); err != nil {
				return err
			}
			for _, r := range rels {
				if !r.Yanked {
					continue
				}
				if r.YankReason != "" {
					a.printf("%s %s is yanked: %s\n", pr.Name, r.Version, r.YankReason)
				} else {
					a.printf("%s %s is yanked (no reason given)\n", pr.Name, r.Version)
				}
			}
			return nil
		}),
	}
	addOutputFlag(cmd, &output)
	return cmd
}

func (a *app) getCommand() *cobra.Command {
	var (
		dir    string
		oldDir string // -o DIR, deprecated
		names  []string
		output string
		via    string
		asOf   bool
		stale  time.Duration
		pf     policyFlags
		layout string
		keys   []string
	)
	cmd := &cobra.Command{
		Use:   "get NAME[@VERSION] | oci://REGISTRY/REPO{@sha256:DIGEST|:TAG} [--output-dir DIR | --oci-layout DIR] [--via oci] [--as-of-bundle]",
		Short: "Download a release, verified end to end",
		Long: `get downloads the files of release VERSION of project NAME (default: the
highest version that is not yanked) into DIR. Every file is checked against the length
and hashes in the project's signed metadata, verified from the pinned root; nothing is
written to DIR unless every file verified.

With --via oci the files come from the server's OCI registry instead: the manifest that
the tag NAME:VERSION resolves to must be exactly the one the TUF-verified release implies
(so its digest is covered by the maintainers' signatures), and each layer is checked like
a file. The registry's answer is never trusted on its own.

With --as-of-bundle (for a mirror of an air-gapped site, 'cairn mirror'), expiry is
evaluated as of the time the mirror's bundle was exported, which must be within
--max-staleness of now (default: "mirror_max_staleness" in the configuration, else 30
days); see SECURITY.md, "Air-gapped mirrors".

With an attestation policy (policy.yaml in the config directory, --policy FILE, or the
--trust-identity / --require-* flags; see 'cairn policy --help'), every attestation of
each file is verified offline against the Sigstore trusted root the repository publishes
through TUF, the list is checked against the signed attestation index, and the policy is
applied before anything is downloaded: an unmet rule exits 4, naming it, and nothing is
written.

With oci://REGISTRY/REPO@sha256:DIGEST (sget's OCI mode) get fetches any OCI artifact,
from any registry with the referrers API, by digest: the manifest must hash to DIGEST and
each layer to its digest. REPO:TAG is resolved once to the digest of the manifest the
registry sends, which get prints: a tag can move, so pin the digest it names. The Sigstore bundles attached to it as
referrers (cosign's bundle layout; Cairn serves a release's committed attestations that
way) are verified offline against the trusted root the configured repository publishes
through TUF, and the policy is applied per layer (the project is REPO's first component)
before anything is written; the layers are written under their titles, or, with
--oci-layout DIR (a new or empty directory), the whole artifact (manifest, config, layers)
as an OCI image layout that oras, crane or skopeo read. --key PUB (a PEM public key, as
cosign verify --key takes; repeatable) also accepts bundles signed with that key (cosign
attest --key), as identity key:sha256:<fingerprint> from issuer local-key, and requires at
least one of them per layer.

-o DIR still names the directory, as it did, but is deprecated: use --output-dir DIR. On
every other command -o is --output, the output format, and it will be here too.`,
		Args: cobra.ExactArgs(1),
		RunE: run(func(cmd *cobra.Command, args []string) error {
			if cmd.Flags().Changed(deprecatedOutputDir) {
				if cmd.Flags().Changed("output-dir") {
					return api.Errorf(api.CodeBadRequest, "-o and --output-dir both name the directory: give only --output-dir DIR")
				}
				dir = oldDir
				a.notef("warning: 'cairn get -o DIR' is deprecated: use --output-dir DIR; -o will mean --output (the format), as on every other cairn command\n")
			}
			if strings.HasPrefix(args[0], "oci://") {
				return a.getOCI(args[0], dir, layout, keys, &pf, output)
			}
			if len(keys) > 0 {
				return api.Errorf(api.CodeBadRequest, "--key is for oci:// references (bundles signed with cosign --key); a release of a project is verified through TUF")
			}
			if layout != "" {
				return api.Errorf(api.CodeBadRequest, "--oci-layout is for oci:// references; a release of a project is written with --output-dir (or fetched through the registry with --via oci)")
			}
			project, version, pinned, err := releaseArg(args[0])
			if err != nil {
				return err
			}
			repo, err := a.repo()
			if err != nil {
				return err
			}
			if asOf {
				if !cmd.Flags().Changed("max-staleness") {
					if stale, err = a.mirrorMaxStaleness(); err != nil {
						return err
					}
				}
				t, err := repo.BundleAsOf(a.ctx, a.now(), stale)
				if err != nil {
					return err
				}
				repo.SetAsOf(t)
				a.notef("Evaluating expiry as of the mirror's bundle export time, %s.\n", t.Format(time.RFC3339))
			}
			pr, err := repo.ProjectRole(a.ctx, project)
			if err != nil {
				return err
			}
			rels := pr.Releases()
			var rel client.Release
			if pinned {
				var ok bool
				if rel, ok = client.FindRelease(rels, version); !ok {
					return api.Errorf(api.CodeNotFound, "project %s has no release %q in its verified metadata; see 'cairn releases %s'", project, version, project)
				}
				if rel.Yanked {
					a.notef("warning: %s %s is yanked (%s); downloading it because it was asked for by version\n", project, version, yankWhy(rel.YankReason))
				}
			} else {
				var ok bool
				if rel, ok = client.LatestRelease(rels); !ok {
					return api.Errorf(api.CodeNotFound, "project %s has no release that is not yanked; name a version with %s@VERSION", project, project)
				}
				for _, r := range rels {
					if r.Yanked && client.CompareVersions(r.Version, rel.Version) > 0 {
						a.notef("note: skipping %s %s, which is yanked\n", project, r.Version)
					}
				}
			}
			rules, err := a.policyRules(&pf, project)
			if err != nil {
				return err
			}
			if !rules.Empty() {
				sel := rel.Files
				if len(names) > 0 {
					sel = slices.DeleteFunc(slices.Clone(sel), func(f api.File) bool { return !slices.Contains(names, f.Name) })
				}
				if err := a.checkAttestationPolicy(repo, rules, sel); err != nil {
					return err
				}
			}
			var files []client.DownloadedFile
			manifest := ""
			switch via {
			case "tuf":
				files, err = repo.DownloadRelease(a.ctx, pr, rel.Version, dir, names...)
			case "oci":
				files, manifest, err = repo.DownloadReleaseOCI(a.ctx, pr, rel.Version, dir, names...)
			default:
				err = api.Errorf(api.CodeBadRequest, "--via must be tuf or oci, not %q", via)
			}
			if err != nil {
				return err
			}
			if output == "json" {
				return a.printJSON(files)
			}
			a.notef("Verified %s %s through snapshot %d of %s.\n", project, rel.Version, pr.SnapshotVersion, repo.Server())
			if manifest != "" {
				a.notef("Pulled over OCI: %s:%s is %s, the manifest the signed release implies.\n", project, api.ReleaseTag(rel.Version), manifest)
			}
			for _, f := range files {
				a.printf("%s\t%d bytes\tsha256 %s\n", f.LocalPath, f.Length, f.SHA256)
			}
			return nil
		}),
	}
	cmd.Flags().StringVar(&dir, "output-dir", ".", "directory `DIR` to write the files to (-o DIR is its deprecated short form)")
	cmd.Flags().StringSliceVar(&keys, "key", nil, "with oci://: a PEM public key `FILE` whose signed bundles count (cosign verify --key); at least one is required per layer (repeatable)")
	cmd.Flags().StringVar(&layout, "oci-layout", "", "with oci://: write the artifact as an OCI image layout into `DIR` (new or empty) instead of its files")
	// -o DIR, the old short form, under a name of its own so that its use can be told
	// apart and warned about on stderr (pflag's ShorthandDeprecated notice would reach
	// stdout through cobra); hidden from help and completion.
	cmd.Flags().StringVarP(&oldDir, deprecatedOutputDir, "o", "", "deprecated: use --output-dir")
	_ = cmd.Flags().MarkHidden(deprecatedOutputDir)
	cmd.Flags().StringArrayVar(&names, "file", nil, "download only this file of the release (repeatable)")
	cmd.Flags().StringVar(&via, "via", "tuf", "where the files come from: tuf (the TUF targets) or oci (the OCI registry, checked against TUF)")
	cmd.Flags().BoolVar(&asOf, "as-of-bundle", false, "evaluate expiry as of the export time of the bundle a mirror serves (air-gapped mirrors)")
	cmd.Flags().DurationVar(&stale, "max-staleness", client.DefaultMaxStaleness, "with --as-of-bundle: refuse a mirror whose bundle was exported longer ago (default: mirror_max_staleness from the configuration, else 720h)")
	addOutputFlag(cmd, &output)
	pf.add(cmd)
	return cmd
}

// deprecatedOutputDir is the hidden flag behind 'cairn get -o DIR'.
const deprecatedOutputDir = "deprecated-o"

// releaseArg splits NAME[@VERSION]; pinned says a version was given.
func releaseArg(arg string) (project, version string, pinned bool, err error) {
	project, version, pinned = strings.Cut(arg, "@")
	if pinned && version == "" {
		return "", "", false, api.Errorf(api.CodeBadRequest, "%q names no version after '@'", arg)
	}
	return project, version, pinned, nil
}

// yankWhy gives the reason a release is yanked, or says there was none.
func yankWhy(reason string) string {
	if reason == "" {
		return "no reason given"
	}
	return "reason: " + reason
}
