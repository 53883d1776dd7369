package cli

import (
	"encoding/json"
	"text/tabwriter"

	"github.com/cairn-dev/cairn/api"
	"github.com/spf13/cobra"
)

func addOutputFlag(cmd *cobra.Command, output *string) {
	cmd.Flags().StringVar(output, "output", "text", "output format: text or json")
}

func checkOutput(output string) error {
	if output != "text" && output != "json" {
		return api.Errorf(api.CodeBadRequest, "--output must be text or json, not %q", output)
	}
	return nil
}

// printJSON writes v as indented JSON on stdout.
func (a *app) printJSON(v any) error {
	enc := json.NewEncoder(a.stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// table writes aligned columns to stdout; Flush it when done.
func (a *app) table() *tabwriter.Writer { return tabwriter.NewWriter(a.stdout, 0, 4, 2, ' ', 0) }
