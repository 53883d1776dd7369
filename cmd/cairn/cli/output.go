package cli

import (
	"encoding/json"
	"text/tabwriter"

	"github.com/cairn-dev/cairn/api"
	"github.com/spf13/cobra"
)

// addOutputFlag adds -o, --output: the output format, as in kubectl, helm and cairnd.
// Only 'cairn get' has no -o for it yet: there -o is the deprecated short form of
// --output-dir (see getCommand).
func addOutputFlag(cmd *cobra.Command, output *string) {
	short := "o"
	if cmd.Flags().ShorthandLookup(short) != nil {
		short = ""
	}
	*output = "text"
	cmd.Flags().VarP(outputFormat{output}, "output", short, "output format: text or json")
}

// outputFormat is the value of every --output flag: it is checked once, when the flag is
// parsed, so no command checks it again and a bad value is refused before anything runs.
type outputFormat struct{ p *string }

func (o outputFormat) String() string {
	if o.p == nil {
		return ""
	}
	return *o.p
}

func (o outputFormat) Set(s string) error {
	if err := checkOutput(s); err != nil {
		return err
	}
	*o.p = s
	return nil
}

func (o outputFormat) Type() string { return "text|json" }

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

// finishWithJSON returns the last step of a command that prints *out as its JSON output
// whatever happens: with --output json it prints it, then returns err (or the printing
// error if there was none).
func (a *app) finishWithJSON(output string, out any) func(err error) error {
	return func(err error) error {
		if output == "json" {
			if jerr := a.printJSON(out); err == nil {
				err = jerr
			}
		}
		return err
	}
}
