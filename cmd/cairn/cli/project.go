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
	cmd := &cobra.Command{Use: "project", Short: "Create projects"}
	cmd.AddCommand(a.projectCreateCommand())
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
