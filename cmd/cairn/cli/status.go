package cli

import (
	"fmt"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/cairn-dev/cairn/api"
	"github.com/cairn-dev/cairn/tufrepo"
	"github.com/spf13/cobra"
)

// statusOptions are the flags of 'cairn admin status'.
type statusOptions struct {
	noVerify bool
	within   time.Duration
	output   string
}

// statusReport is what 'cairn admin status --output json' prints.
type statusReport struct {
	Server string           `json:"server"`
	Roles  []api.RoleExpiry `json:"roles"`
	// Verified is what a TUF refresh from the pinned root sees, when one is pinned.
	Verified *statusVerified `json:"verified,omitempty"`
	Warnings []string        `json:"warnings"`
}

type statusVerified struct {
	Snapshot       int64     `json:"snapshot"`
	RootVersion    int64     `json:"root_version"`
	RootExpires    time.Time `json:"root_expires"`
	TargetsVersion int64     `json:"targets_version"`
	TargetsExpires time.Time `json:"targets_expires"`
}

func (a *app) adminStatusCommand() *cobra.Command {
	var o statusOptions
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Every role's version and expiry, with warnings; exit 4 when something needs attention",
		Long: `status reads the server's repository status (GET /api/v1/status): every top-level
and delegating role with its version, its expiry, whether the admins (offline) or the
server (online) sign it, and a warning when it expires soon (30 days ahead for offline
roles). When a root is pinned for the server ('cairn init'), it also refreshes through
TUF and checks that the server's word matches the verified root and targets.

It exits 0 when all is well and 4 when any role needs attention, so that it can run
from cron; other failures have the usual exit codes. No token is needed.`,
		Example: `  cairn admin status
  cairn admin status --within 60d --output json`,
		Args: cobra.NoArgs,
		RunE: run(func(cmd *cobra.Command, _ []string) error { return a.adminStatus(o) }),
	}
	cmd.Flags().BoolVar(&o.noVerify, "no-verify", false, "do not cross-check with a TUF refresh from the pinned root")
	cmd.Flags().Var(daysValue{d: &o.within, now: func() time.Time { return a.now() }}, "within", "also warn when an offline role expires within this time (e.g. 60d), beyond the server's own warnings")
	addOutputFlag(cmd, &o.output)
	return cmd
}

// daysValue is a duration flag that also takes days and weeks (60d, 8w), or a date
// (2027-06-30), which is the time from now until then.
type daysValue struct {
	d   *time.Duration
	now func() time.Time
}

func (d daysValue) String() string {
	if d.d == nil || *d.d == 0 {
		return "0"
	}
	return d.d.String()
}

func (d daysValue) Type() string { return "duration" }

func (d daysValue) Set(s string) error {
	now := d.now().UTC().Truncate(time.Second)
	t, err := parseExpiry("--within", s, now)
	if err != nil || !t.After(now) {
		return fmt.Errorf("%q is not a duration such as 60d, 8w or 720h", s)
	}
	*d.d = t.Sub(now)
	return nil
}

// statusHint says who fixes a role that expires soon.
func statusHint(e api.RoleExpiry) string {
	switch e.Role {
	case tufrepo.RoleRoot:
		return "renew it with 'cairn admin root rotate --key ROOTKEY…'"
	case tufrepo.RoleTargets:
		return "re-sign it with 'cairn admin targets resign --key TARGETSKEY…'"
	case tufrepo.RoleClaimed:
		return "re-sign it with 'cairn admin claim --renew --key CLAIMEDKEY…'"
	}
	if e.SignedBy == "online" {
		return "the server re-signs it: check its /readyz and the publisher's logs"
	}
	return ""
}

func (a *app) adminStatus(o statusOptions) error {
	ac, err := a.apiClient()
	if err != nil {
		return err
	}
	st, err := ac.Status(a.ctx)
	if err != nil {
		return err
	}
	rep := statusReport{Server: ac.Server(), Roles: st.Roles, Warnings: []string{}}
	if rep.Roles == nil {
		rep.Roles = []api.RoleExpiry{}
	}
	now := a.now()
	for i, e := range rep.Roles {
		if e.Warning == "" && o.within > 0 && e.SignedBy == "offline" && e.Expires.Sub(now) < o.within {
			rep.Roles[i].Warning = fmt.Sprintf("expires in %s, within --within %s", roughDuration(e.Expires.Sub(now)), roughDuration(o.within))
			e = rep.Roles[i]
		}
		if e.Warning != "" {
			w := e.Role + ": " + e.Warning
			if h := statusHint(e); h != "" && !strings.Contains(e.Warning, "cairn admin ") {
				w += "; " + h
			}
			rep.Warnings = append(rep.Warnings, w)
		}
	}
	if len(rep.Roles) == 0 {
		rep.Warnings = append(rep.Warnings, "the server reports no roles")
	}

	// Cross-check the offline roles with what clients verify.
	var verifyErr error
	if !o.noVerify {
		repo, err := a.repo()
		switch {
		case err != nil:
			if o.output != "json" {
				a.notef("note: not cross-checked through TUF (%v)\n", err)
			}
		default:
			tl, err := repo.TopLevel(a.ctx)
			if err != nil {
				verifyErr = err
				break
			}
			v := &statusVerified{Snapshot: tl.Snapshot.Signed.Version, RootVersion: tl.Root.Signed.Version, RootExpires: tl.Root.Signed.Expires.UTC(),
				TargetsVersion: tl.Targets.Signed.Version, TargetsExpires: tl.Targets.Signed.Expires.UTC()}
			rep.Verified = v
			for _, e := range rep.Roles {
				var ver int64
				var exp time.Time
				switch e.Role {
				case tufrepo.RoleRoot:
					ver, exp = v.RootVersion, v.RootExpires
				case tufrepo.RoleTargets:
					ver, exp = v.TargetsVersion, v.TargetsExpires
				default:
					continue
				}
				if e.Version != ver || !e.Expires.Equal(exp) {
					rep.Warnings = append(rep.Warnings, fmt.Sprintf("%s: the server reports version %d expiring %s, but the verified metadata is version %d expiring %s",
						e.Role, e.Version, fmtUTC(e.Expires), ver, fmtUTC(exp)))
				}
			}
		}
	}

	if o.output == "json" {
		if err := a.printJSON(rep); err != nil {
			return err
		}
	} else {
		a.printf("Repository %s\n", rep.Server)
		tw := tabwriter.NewWriter(a.stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "ROLE\tVERSION\tEXPIRES\tSIGNED BY\tSTATUS")
		for _, e := range rep.Roles {
			state := "ok"
			if e.Warning != "" {
				state = "WARNING: " + e.Warning
			}
			fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%s\n", e.Role, e.Version, untilText(e.Expires, a.now()), e.SignedBy, state)
		}
		tw.Flush()
		if v := rep.Verified; v != nil {
			a.printf("Verified through TUF from the pinned root: snapshot %d, root version %d, targets version %d.\n", v.Snapshot, v.RootVersion, v.TargetsVersion)
		}
		for _, w := range rep.Warnings {
			a.notef("warning: %s\n", w)
		}
	}
	if verifyErr != nil {
		return fmt.Errorf("cross-checking through TUF: %w", verifyErr)
	}
	if n := len(rep.Warnings); n > 0 {
		msg := fmt.Sprintf("%s: %s", plural(n, "warning"), strings.Join(rep.Warnings, "; "))
		if o.output != "json" {
			msg = fmt.Sprintf("%s above need attention", plural(n, "warning"))
			if n == 1 {
				msg = "1 warning above needs attention"
			}
		}
		return &attentionError{msg: msg}
	}
	return nil
}

// attentionError ends 'cairn admin status' with exit 4 (policy) when a role needs
// attention, with its own message rather than an error code's.
type attentionError struct{ msg string }

func (e *attentionError) Error() string { return e.msg }

func (e *attentionError) Unwrap() error { return api.Errorf(api.CodeExpired, "%s", e.msg) }
