package daemon

import (
	"encoding/json"
	"fmt"
	"io"

	"github.com/cairn-dev/cairn/internal/buildinfo"
	"github.com/spf13/cobra"
)

// versionCmd prints the build from the binary's own build information, so a cairnd built
// with plain `go build` or `go install …@vX` names its version and commit without -ldflags.
func versionCmd(stdout io.Writer) *cobra.Command {
	var output string
	cmd := &cobra.Command{
		Use:   "version",
		Short: "Print the version, commit and Go version cairnd was built from",
		Example: `  cairnd version
  cairnd version --output json`,
		Args: cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			info := buildinfo.Read("cairnd")
			switch output {
			case "text":
				_, err := fmt.Fprintln(stdout, info)
				return err
			case "json":
				enc := json.NewEncoder(stdout)
				enc.SetIndent("", "  ")
				return enc.Encode(info)
			default:
				return fmt.Errorf("--output must be text or json, not %q", output)
			}
		},
	}
	cmd.Flags().StringVarP(&output, "output", "o", "text", "output format: text or json")
	return cmd
}
