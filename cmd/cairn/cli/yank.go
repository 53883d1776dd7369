package cli

import (
	"strings"
	"time"

	"github.com/cairn-dev/cairn/api"
	"github.com/cairn-dev/cairn/client"
	"github.com/cairn-dev/cairn/tufrepo"
	"github.com/spf13/cobra"
)

// yankResult is what 'cairn yank --output json' and 'cairn unyank --output json' print.
type yankResult struct {
	api.SubmitResult
	Version string   `json:"version"`
	Yanked  bool     `json:"yanked"`
	Reason  string   `json:"reason,omitempty"`
	Files   []string `json:"files"`
}

func (a *app) yankCommand() *cobra.Command {
	var (
		keyName, reason string
		wait            time.Duration
		output          string
	)
	cmd := &cobra.Command{
		Use:   "yank NAME VERSION --key KEY [--reason TEXT]",
		Short: "Flag a release as yanked (PEP 592): kept, but no longer picked as the latest",
		Long: `yank marks every file of release VERSION of project NAME as yanked. Nothing is
deleted: it writes the next version of the project's role metadata in which the release's
files carry {"yanked": true, "yank_reason": TEXT} in their signed custom data, signs it
with KEY and submits it. Clients then skip the release when they pick the latest version,
while 'cairn get NAME@VERSION' still downloads it, with a warning.

If the project needs more than one maintainer signature, the change waits as a proposal
until co-maintainers sign it with 'cairn sign NAME'. Undo with 'cairn unyank'.`,
		Args: cobra.ExactArgs(2),
		RunE: run(func(cmd *cobra.Command, args []string) error {
			return a.yank(args[0], args[1], keyName, true, reason, wait, output)
		}),
	}
	cmd.Flags().StringVar(&keyName, "key", "", "your signing key (required)")
	cmd.Flags().StringVar(&reason, "reason", "", "why the release is yanked, shown to downloaders")
	cmd.Flags().DurationVar(&wait, "wait", time.Minute, "how long to wait for the change to be published (0: do not wait)")
	addOutputFlag(cmd, &output)
	cmd.MarkFlagRequired("key")
	return cmd
}

func (a *app) unyankCommand() *cobra.Command {
	var (
		keyName string
		wait    time.Duration
		output  string
	)
	cmd := &cobra.Command{
		Use:   "unyank NAME VERSION --key KEY",
		Short: "Remove the yanked flag from a release",
		Long: `unyank writes the next version of project NAME's role metadata in which the files
of release VERSION no longer carry the yanked flag and reason, signs it with KEY and
submits it (as a proposal for co-maintainers to sign if the project needs more than one
signature).`,
		Args: cobra.ExactArgs(2),
		RunE: run(func(cmd *cobra.Command, args []string) error {
			return a.yank(args[0], args[1], keyName, false, "", wait, output)
		}),
	}
	cmd.Flags().StringVar(&keyName, "key", "", "your signing key (required)")
	cmd.Flags().DurationVar(&wait, "wait", time.Minute, "how long to wait for the change to be published (0: do not wait)")
	addOutputFlag(cmd, &output)
	cmd.MarkFlagRequired("key")
	return cmd
}

func (a *app) yank(project, version, keyName string, yank bool, reason string, wait time.Duration, output string) error {
	if err := tufrepo.ValidateProjectName(project); err != nil {
		return err
	}
	if err := tufrepo.ValidateComponent("release version", version, tufrepo.MaxVersionLength); err != nil {
		return err
	}
	reason = strings.TrimSpace(reason)
	if err := client.ValidateYankReason(reason); err != nil {
		return err
	}
	pr, kf, err := a.maintainerRole(project, keyName)
	if err != nil {
		return err
	}
	next, err := client.NextYankRole(pr.Metadata, project, version, yank, reason, a.now())
	if err != nil {
		return err
	}
	rel, _ := client.FindRelease(pr.Releases(), version)
	files := make([]string, len(rel.Files))
	for i, f := range rel.Files {
		files[i] = f.Name
	}
	signer, err := a.openSigner(kf)
	if err != nil {
		return err
	}
	ac, err := a.apiClient()
	if err != nil {
		return err
	}
	verb := "Yanking"
	if !yank {
		verb = "Unyanking"
	}
	a.notef("%s %s %s (%s; role version %d → %d)\n", verb, project, version, plural(len(files), "file"), pr.Version(), next.Signed.Version)
	a.noteThreshold(pr, project, "change", keyName)
	res, err := a.signAndSubmitRole(ac, project, next, signer.Signer, wait)
	if err != nil {
		return err
	}
	if output == "json" {
		return a.printJSON(yankResult{SubmitResult: res, Version: version, Yanked: yank, Reason: reason, Files: files})
	}
	done := "Yanked"
	if !yank {
		done = "Unyanked"
	}
	switch res.Status {
	case api.StatusPublished:
		a.printf("%s %s %s (%s) in role version %d, published in snapshot %d.\n", done, project, version, plural(len(files), "file"), res.RoleVersion, res.SnapshotVersion)
	default:
		a.printf("%s\n", describeSubmit(res))
	}
	return nil
}

// maintainerRole is what a maintainer's change of a project starts with: an API token, the
// project's verified role, and key keyName, which the role's delegation must list.
// Everything that can be refused without the key is refused before its passphrase is
// asked (the key is opened later, with openSigner).
func (a *app) maintainerRole(project, keyName string) (*client.ProjectRole, *tufrepo.KeyFile, error) {
	if err := a.requireToken(); err != nil {
		return nil, nil, err
	}
	_, pr, err := a.projectRole(project)
	if err != nil {
		return nil, nil, err
	}
	kf, err := a.loadKey(keyName)
	if err != nil {
		return nil, nil, err
	}
	if err := requireMaintainerKey(pr, project, keyName, kf); err != nil {
		return nil, nil, err
	}
	return pr, kf, nil
}
