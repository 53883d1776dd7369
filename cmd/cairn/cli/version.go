package cli

import (
	"github.com/cairn-dev/cairn/internal/buildinfo"
	"github.com/spf13/cobra"
)

func (a *app) versionCommand() *cobra.Command {
	var output string
	cmd := &cobra.Command{
		Use:   "version",
		Short: "Print the version, commit and Go version cairn was built from",
		Long: `version prints the build of this cairn binary as the Go toolchain recorded it: the
module version (a release tag, or a pseudo-version naming the commit), the commit and its
time, whether the work tree had local changes, the Go version and the platform. It does
not contact a server.`,
		Args: cobra.NoArgs,
		RunE: run(func(*cobra.Command, []string) error {
			info := buildinfo.Read("cairn")
			if output == "json" {
				return a.printJSON(info)
			}
			a.printf("%s\n", info)
			return nil
		}),
	}
	addOutputFlag(cmd, &output)
	return cmd
}
