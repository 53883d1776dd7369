package cli

import (
	"fmt"
	"time"

	"github.com/cairn-dev/cairn/api"
	"github.com/cairn-dev/cairn/client"
	"github.com/spf13/cobra"
)

// searchOutput is 'cairn search --output json': the server's answer and what TUF
// verification made of each result.
type searchOutput struct {
	api.SearchResult
	Verified []client.Verified `json:"verification"`
}

func (a *app) searchCommand() *cobra.Command {
	var (
		p             client.SearchParams
		after, before string
		output        string
	)
	cmd := &cobra.Command{
		Use:   "search [NAME-PREFIX] [--key KEYID] [--sha256 HASH] [--after TIME] [--before TIME]",
		Short: "Find projects by name or maintainer key, and releases by file hash or date; results verified through TUF",
		Long: `search asks the server's index (GET /api/v1/search):

  cairn search hel                    projects whose name starts with "hel"
  cairn search --key KEYID            projects the maintainer key KEYID signs for
  cairn search --sha256 HASH          published releases that contain the file HASH
  cairn search --after 2026-12-01T00:00:00Z --before 2026-12-08T00:00:00Z
                                      files published in that week (newest first)

Filters combine. The index is the server's database, so a result is only a pointer:
cairn then verifies each one through TUF from the pinned root (the project's signed
role lists the file with that length and sha256; the verified delegation lists the key)
and marks it VERIFIED or NOT VERIFIED; only verified hashes are to be trusted. Pages of
--limit results (default 20); --cursor continues from the 'next' cursor printed.`,
		Args: cobra.MaximumNArgs(1),
		RunE: run(func(cmd *cobra.Command, args []string) error {
			if len(args) == 1 {
				p.Prefix = args[0]
			}
			if p.Limit < 1 || p.Limit > 100 {
				return api.Errorf(api.CodeBadRequest, "--limit %d: give 1 to 100 (each page's projects are verified through TUF)", p.Limit)
			}
			for _, t := range []struct {
				flag, v string
				t       *time.Time
			}{{"--after", after, &p.After}, {"--before", before, &p.Before}} {
				if t.v == "" {
					continue
				}
				v, err := time.Parse(time.RFC3339, t.v)
				if err != nil {
					if v, err = time.Parse(time.DateOnly, t.v); err != nil {
						return api.Errorf(api.CodeBadRequest, "%s %q is not a date (2026-12-01) or an RFC 3339 time (2026-12-01T00:00:00Z)", t.flag, t.v)
					}
				}
				*t.t = v
			}
			ac, err := a.apiClient()
			if err != nil {
				return err
			}
			res, err := ac.Search(a.ctx, p)
			if err != nil {
				return err
			}
			repo, err := a.repo()
			if err != nil {
				return err
			}
			ver, err := repo.VerifySearch(a.ctx, res, p.KeyID)
			if err != nil {
				return err
			}
			if output == "json" {
				return a.printJSON(searchOutput{SearchResult: res, Verified: ver})
			}
			a.notef("Results come from the server's index and are only pointers; each is verified through TUF below.\n")
			mark := func(v client.Verified) string {
				if v.OK {
					return "VERIFIED (" + v.Detail + ")"
				}
				return "NOT VERIFIED: " + v.Detail
			}
			tw := a.table()
			i := 0
			for _, pr := range res.Projects {
				fmt.Fprintf(tw, "%s\t%s\tthreshold %d of %d\t%s\n", pr.Name, pr.Delegator, pr.Threshold, len(pr.KeyIDs), mark(ver[i]))
				i++
			}
			for _, f := range res.Files {
				sum := f.SHA256
				if !ver[i].OK {
					sum = "(unverified) " + sum
				}
				fmt.Fprintf(tw, "%s\t%d bytes\tsha256 %s\t%s\t%s\n", f.Path, f.Length, sum, f.PublishedAt.Format(time.RFC3339), mark(ver[i]))
				i++
			}
			tw.Flush()
			if i == 0 {
				a.printf("No results.\n")
			}
			if res.Next != "" {
				a.printf("More results: add --cursor %s\n", res.Next)
			}
			return nil
		}),
	}
	cmd.Flags().StringVar(&p.KeyID, "key", "", "projects whose maintainers include this key ID (64 hex digits, 'cairn key list --output json')")
	cmd.Flags().StringVar(&p.SHA256, "sha256", "", "release files with this sha256")
	cmd.Flags().StringVar(&after, "after", "", "files published at or after this date or time")
	cmd.Flags().StringVar(&before, "before", "", "files published before this date or time")
	cmd.Flags().IntVar(&p.Limit, "limit", 20, "results per page (at most 100, the projects verified per page)")
	cmd.Flags().StringVar(&p.Cursor, "cursor", "", "continue a search from the cursor a previous page printed")
	addOutputFlag(cmd, &output)
	return cmd
}
