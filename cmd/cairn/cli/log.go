package cli

import (
	"github.com/spf13/cobra"
)

func (a *app) logCommand() *cobra.Command {
	cmd := &cobra.Command{Use: "log", Short: "Inspect the server's audit log"}
	cmd.AddCommand(a.logVerifyCommand())
	return cmd
}

func (a *app) logVerifyCommand() *cobra.Command {
	var (
		pageSize int
		output   string
	)
	cmd := &cobra.Command{
		Use:   "verify",
		Short: "Read the whole audit log and recompute its hash chain",
		Long: `verify pages through the server's audit log from the start and recomputes the
hash chain, failing (exit 1) at the first entry whose hash or link does not match. It
prints the head hash: compare it with what others see to detect a log shown differently
to different people.`,
		Args: cobra.NoArgs,
		RunE: run(func(cmd *cobra.Command, _ []string) error {
			ac, err := a.apiClient()
			if err != nil {
				return err
			}
			sum, err := ac.VerifyLog(a.ctx, pageSize)
			if err != nil {
				return err
			}
			if output == "json" {
				return a.printJSON(sum)
			}
			if sum.Entries == 0 {
				a.printf("The audit log of %s is empty.\n", ac.Server())
				return nil
			}
			a.printf("Audit log of %s verified: %d entries (%d to %d), head %s\n", ac.Server(), sum.Entries, sum.FirstSeq, sum.LastSeq, sum.Head)
			return nil
		}),
	}
	cmd.Flags().IntVar(&pageSize, "page-size", 500, "entries to request per page")
	addOutputFlag(cmd, &output)
	return cmd
}
