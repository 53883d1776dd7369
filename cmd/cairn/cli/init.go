package cli

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"slices"
	"strings"

	"github.com/cairn-dev/cairn/api"
	"github.com/cairn-dev/cairn/client"
	"github.com/cairn-dev/cairn/tufrepo"
	"github.com/spf13/cobra"
	"github.com/theupdateframework/go-tuf/v2/metadata"
)

func (a *app) initCommand() *cobra.Command {
	var rootFile string
	var tofu bool
	cmd := &cobra.Command{
		Use:   "init --server URL --root FILE",
		Short: "Pin a server's root of trust and make it the default server",
		Long: `init records the server URL and pins its root metadata: every later download
is verified from this root. Get root.json from your repository administrators through
a channel you trust, not from the server itself.

Without --root, init refuses unless --trust-on-first-use is given, which downloads
version 1 of the root from the server and trusts whatever it gets.`,
		Args: cobra.NoArgs,
		RunE: run(func(cmd *cobra.Command, _ []string) error {
			server := a.server
			if server == "" {
				server = a.env("CAIRN_SERVER")
			}
			if server == "" {
				return api.Errorf(api.CodeBadRequest, "init needs --server URL")
			}
			u, err := client.ParseServerURL(server)
			if err != nil {
				return err
			}
			server = u.String()
			var rootRaw []byte
			switch {
			case rootFile != "" && tofu:
				return api.Errorf(api.CodeBadRequest, "give either --root or --trust-on-first-use, not both")
			case rootFile != "":
				rootRaw, err = os.ReadFile(rootFile)
				if errors.Is(err, fs.ErrNotExist) {
					return api.Errorf(api.CodeBadRequest, "root file %s does not exist: get root.json from your repository's administrators (a dev server, 'cairnd serve --dev', writes it to <data-dir>/root.json)", rootFile)
				}
				if err != nil {
					return fmt.Errorf("reading root metadata: %w", err)
				}
			case tofu:
				hc, err := a.httpClient()
				if err != nil {
					return err
				}
				ac, err := client.NewAPI(server, client.WithUserAgent(userAgent), client.WithHTTPClient(hc))
				if err != nil {
					return err
				}
				if rootRaw, err = ac.Metadata(a.ctx, "1.root.json"); err != nil {
					return err
				}
				a.notef("WARNING: trusting root metadata downloaded from %s on first use.\n", server)
				a.notef("WARNING: whoever controls that server or the network path to it could have sent any root;\n")
				a.notef("WARNING: every later verification rests on it. Compare its SHA-256 with your administrators':\n")
				a.notef("WARNING:   %x\n", sha256.Sum256(rootRaw))
			default:
				return api.Errorf(api.CodeBadRequest, "init needs --root FILE, the root metadata from your repository administrators (or, knowingly, --trust-on-first-use)")
			}
			root, err := checkRoot(rootRaw)
			if err != nil {
				return err
			}
			home, err := a.home()
			if err != nil {
				return err
			}
			d, err := a.dirs()
			if err != nil {
				return err
			}
			// Start from a clean cache: metadata cached under an earlier root must not
			// outlive the decision to trust this one (nor come back from the old place).
			mdDir := MetadataDir(d.Cache, server)
			for _, dir := range []string{mdDir, MetadataDir(d.Config, server)} {
				if err := os.RemoveAll(dir); err != nil {
					return fmt.Errorf("clearing cached metadata: %w", err)
				}
			}
			hc, err := a.httpClient()
			if err != nil {
				return err
			}
			repo, err := client.OpenRepo(client.RepoConfig{Server: server, TrustedRoot: rootRaw, MetadataDir: mdDir, UserAgent: userAgent, HTTPClient: hc})
			if err != nil {
				return err
			}
			var ve *client.VerifyError
			snapshot := int64(0)
			switch err := repo.Refresh(a.ctx); {
			case errors.As(err, &ve):
				os.RemoveAll(mdDir)
				return fmt.Errorf("%s does not serve metadata that verifies from this root; nothing was saved: %w", server, err)
			case err != nil:
				a.notef("warning: could not check the server's metadata now (%v); pinning the root anyway\n", err)
			default:
				snapshot = repo.SnapshotVersion()
			}
			prev, err := LoadConfig(home)
			if err != nil {
				return err
			}
			rp := rootPath(home, server)
			if err := writeFileAtomic(rp, rootRaw, 0o644); err != nil {
				return err
			}
			if err := SaveConfig(home, Config{Server: server, Root: rp}); err != nil {
				return err
			}
			a.printf("Pinned root version %d of %s (sha256 %x)\n", root.Signed.Version, server, sha256.Sum256(rootRaw))
			a.printf("  root keys: %s (threshold %d)\n", strings.Join(rootKeyFingerprints(root), ", "), root.Signed.Roles[tufrepo.RoleRoot].Threshold)
			if snapshot > 0 {
				a.printf("  verified the server's metadata at snapshot %d\n", snapshot)
			}
			// A second init moves the default: say so, since every later command without
			// --server now goes to the new server.
			if prev.Server != "" && prev.Server != server {
				a.printf("The default server is now %s (it was %s; 'cairn --server %s …' still reaches that one with its own pinned root).\n", server, prev.Server, prev.Server)
			}
			return nil
		}),
	}
	cmd.Flags().StringVar(&rootFile, "root", "", "root metadata file to pin (root.json from your administrators)")
	cmd.Flags().BoolVar(&tofu, "trust-on-first-use", false, "download the root from the server and trust it (unsafe: see above)")
	return cmd
}

// checkRoot parses root metadata and checks it is signed by a threshold of its own root
// keys, so that a typo or a truncated file is refused before it is pinned.
func checkRoot(raw []byte) (*metadata.Metadata[metadata.RootType], error) {
	root, err := metadata.Root().FromBytes(raw)
	if err != nil {
		return nil, &client.VerifyError{Code: client.ExitMalformed, Role: tufrepo.RoleRoot, Detail: "the file is not TUF root metadata", Err: err}
	}
	if rr := root.Signed.Roles[tufrepo.RoleRoot]; rr == nil {
		return nil, &client.VerifyError{Code: client.ExitMalformed, Role: tufrepo.RoleRoot, Detail: "the root metadata does not define the root role"}
	}
	if err := root.VerifyDelegate(tufrepo.RoleRoot, root); err != nil {
		return nil, &client.VerifyError{Code: client.ExitSignatureInvalid, Role: tufrepo.RoleRoot, Detail: "the root metadata is not signed by a threshold of its own root keys", Err: err}
	}
	if !root.Signed.ConsistentSnapshot {
		return nil, &client.VerifyError{Code: client.ExitPolicy, Role: tufrepo.RoleRoot, Detail: "Cairn repositories use consistent snapshots, but this root does not enable them"}
	}
	return root, nil
}

func rootKeyFingerprints(root *metadata.Metadata[metadata.RootType]) []string {
	var out []string
	for _, id := range root.Signed.Roles[tufrepo.RoleRoot].KeyIDs {
		if k := root.Signed.Keys[id]; k != nil {
			if fp, err := tufrepo.Fingerprint(k); err == nil {
				out = append(out, fp)
				continue
			}
		}
		out = append(out, id)
	}
	slices.Sort(out)
	return out
}
