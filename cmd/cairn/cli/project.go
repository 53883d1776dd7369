package cli

import (
	"time"

	"github.com/cairn-dev/cairn/api"
	"github.com/cairn-dev/cairn/client"
	"github.com/cairn-dev/cairn/tufrepo"
	"github.com/spf13/cobra"
	"github.com/theupdateframework/go-tuf/v2/metadata"
)

func (a *app) projectCommand() *cobra.Command {
	cmd := &cobra.Command{Use: "project", Short: "Create projects and declare their links"}
	cmd.AddCommand(a.projectCreateCommand(), a.projectLinksCommand())
	return cmd
}

func (a *app) projectLinksCommand() *cobra.Command {
	var (
		keyName, homepage, repository, output string
		wait                                  time.Duration
	)
	cmd := &cobra.Command{
		Use:   "links NAME --key KEY [--homepage URL] [--repository URL]",
		Short: "Declare the project's homepage and source repository, signed by its maintainers",
		Long: `links signs the next version of NAME's role metadata with the project's homepage and
source repository (https URLs) in it, and submits it like any change (T of the maintainers
must sign; see 'cairn sign'). The links are the maintainers' own: the server cannot change
them. 'cairn attestations' uses them to show which signer identities are the project's own
(email or URI under the homepage's domain, or URIs under the repository). A link left out
is removed; with neither, the declaration is removed.`,
		Example: "  cairn project links hello --key alice --homepage https://hello.dev --repository https://github.com/hello/hello",
		Args:    cobra.ExactArgs(1),
		RunE: run(func(cmd *cobra.Command, args []string) error {
			project := args[0]
			if err := tufrepo.ValidateProjectName(project); err != nil {
				return err
			}
			links := tufrepo.ProjectLinks{Homepage: homepage, Repository: repository}
			if err := tufrepo.ValidateProjectLinks(links); err != nil {
				return err
			}
			pr, kf, err := a.maintainerRole(project, keyName)
			if err != nil {
				return err
			}
			next, err := client.NextLinksRole(pr.Metadata, project, links, a.now())
			if err != nil {
				return err
			}
			signer, err := a.openSigner(kf)
			if err != nil {
				return err
			}
			ac, err := a.apiClient()
			if err != nil {
				return err
			}
			a.notef("Declaring the links of %s (role version %d → %d)\n", project, pr.Version(), next.Signed.Version)
			a.noteThreshold(pr, project, "change", keyName)
			res, err := a.signAndSubmitRole(ac, project, next, signer.Signer, wait)
			if err != nil {
				return err
			}
			if output == "json" {
				return a.printJSON(res)
			}
			if res.Status == api.StatusPublished {
				a.printf("Declared the links of %s in role version %d, published in snapshot %d.\n", project, res.RoleVersion, res.SnapshotVersion)
			} else {
				a.printf("%s\n", describeSubmit(res))
			}
			return nil
		}),
	}
	addOutputFlag(cmd, &output)
	cmd.Flags().StringVar(&keyName, "key", "", "your signing key (required)")
	cmd.Flags().StringVar(&homepage, "homepage", "", "the project's homepage, an https:// URL")
	cmd.Flags().StringVar(&repository, "repository", "", "the project's source repository, an https:// URL")
	cmd.Flags().DurationVar(&wait, "wait", time.Minute, "how long to wait for the change to be published (0: do not wait)")
	_ = cmd.MarkFlagRequired("key")
	return cmd
}

func (a *app) projectCreateCommand() *cobra.Command {
	var (
		keyName     string
		maintainers []string
		threshold   int
		wait        time.Duration
		output      string
	)
	cmd := &cobra.Command{
		Use:   "create NAME --key KEY [--maintainer PUBKEY]... [--threshold T]",
		Short: "Create a project whose releases your maintainer keys sign",
		Long: `create registers NAME with the public keys of its maintainers: your key KEY and
each --maintainer (a file with, or the JSON of, 'cairn key export --public', or a local
key name). T of these keys must sign every change of the project. Version 1 of the
project's role metadata, with no releases, is signed with KEY and sent with the request.`,
		Args: cobra.ExactArgs(1),
		RunE: run(func(cmd *cobra.Command, args []string) error {
			name := args[0]
			if err := tufrepo.ValidateProjectName(name); err != nil {
				return err
			}
			if err := a.requireToken(); err != nil {
				return err
			}
			own, err := a.loadKey(keyName)
			if err != nil {
				return err
			}
			ownKey, err := own.TUFKey()
			if err != nil {
				return err
			}
			keys := []*metadata.Key{ownKey}
			seen := map[string]bool{own.KeyID: true}
			for _, m := range maintainers {
				k, err := a.parseMaintainerKey(m)
				if err != nil {
					return err
				}
				if id := tufrepo.KeyID(k); !seen[id] {
					seen[id] = true
					keys = append(keys, k)
				}
			}
			if threshold < 1 || threshold > len(keys) {
				return api.Errorf(api.CodeInvalidThreshold, "--threshold %d is not possible with %d maintainer key(s): use 1 to %d", threshold, len(keys), len(keys))
			}
			if len(keys) > tufrepo.MaxMaintainerKeys {
				return api.Errorf(api.CodeTooMany, "%d maintainer keys given; at most %d are allowed", len(keys), tufrepo.MaxMaintainerKeys)
			}
			ac, err := a.apiClient()
			if err != nil {
				return err
			}
			signer, err := a.openSigner(own)
			if err != nil {
				return err
			}
			raw, err := client.SignRole(client.NewProjectRole(a.now()), signer.Signer)
			if err != nil {
				return err
			}
			req := api.CreateProjectRequest{Name: name, Threshold: threshold, Metadata: raw}
			for _, k := range keys {
				req.Keys = append(req.Keys, tufrepo.KeyToAPI(k))
			}
			res, err := ac.CreateProject(a.ctx, req, wait)
			if err != nil {
				return err
			}
			if output == "json" {
				return a.printJSON(res)
			}
			a.printf("Created project %s with %d maintainer key(s), threshold %d.\n", name, len(keys), threshold)
			a.printf("%s\n", describeSubmit(res))
			return nil
		}),
	}
	cmd.Flags().StringVar(&keyName, "key", "", "your signing key (required)")
	cmd.Flags().StringArrayVar(&maintainers, "maintainer", nil, "another maintainer's public key: file, JSON or local key name (repeatable)")
	cmd.Flags().IntVar(&threshold, "threshold", 1, "how many maintainer keys must sign each change")
	cmd.Flags().DurationVar(&wait, "wait", 30*time.Second, "how long the server may hold the answer until the project is published")
	addOutputFlag(cmd, &output)
	cmd.MarkFlagRequired("key")
	return cmd
}
