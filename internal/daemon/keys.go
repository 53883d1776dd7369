package daemon

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/cairn-dev/cairn/store"
	"github.com/cairn-dev/cairn/tufrepo"
	"github.com/cairn-dev/cairn/tufrepo/keyuri"
	"github.com/spf13/cobra"
	"github.com/theupdateframework/go-tuf/v2/metadata"
)

// KeyCheck is the result of `cairnd keys check` for one configured key URI.
type KeyCheck struct {
	// Signer is the role the URI is configured for, or "standby-N".
	Signer string `json:"signer"`
	// URI is the key URI without its query (which may hold a PIN).
	URI     string `json:"uri"`
	KeyID   string `json:"keyid,omitempty"`
	KeyType string `json:"keytype,omitempty"`
	// Probe is "ok (N ms)" or why the KMS/HSM could not sign.
	Probe string `json:"probe"`
	// Delegation says whether the published root (or targets, for recently-claimed)
	// delegates the role to this key.
	Delegation string `json:"delegation"`
	OK         bool   `json:"ok"`
}

func keysCheckCmd(stdout io.Writer, getenv func(string) string) *cobra.Command {
	var output string
	cmd := &cobra.Command{
		Use:   "check",
		Short: "Reach every configured online key, sign a probe, and compare its key ID with what root and targets delegate",
		Long: `For each configured key URI (--timestamp-key, --snapshot-key, --recently-claimed-key,
--standby-key), reach the KMS or HSM, sign a probe message and verify it, and compare the
key's TUF key ID with the keys that the published root delegates timestamp and snapshot to
and that targets delegates recently-claimed to. Exits 1 if any key cannot sign or a role
is delegated to no configured key: cairnd serve would refuse to start with this
configuration. Before the repository is bootstrapped, only the probes are checked.`,
		Args:        cobra.NoArgs,
		Annotations: map[string]string{annotationDatabase: "optional"},
	}
	cmd.Flags().StringVarP(&output, "output", "o", "text", "output format: text or json")
	return withConfig(cmd, getenv, func(ctx context.Context, c *Config) error {
		if output != "text" && output != "json" {
			return fmt.Errorf("--output must be text or json, not %q", output)
		}
		var root *metadata.Metadata[metadata.RootType]
		var targets *metadata.Metadata[metadata.TargetsType]
		note := ""
		if c.DatabaseURL == "" {
			note = "no database configured: delegations not checked (give --database-url)"
		} else {
			db, err := openCurrentDB(ctx, c, newLogger(io.Discard, "error"))
			if err != nil {
				return err
			}
			root, targets, err = publishedTopLevel(ctx, db)
			db.Close()
			if err != nil {
				return err
			}
			if root == nil {
				note = "the repository is not bootstrapped yet: delegations not checked (give admins these keys with `cairnd keys public`)"
			}
		}
		checks := CheckKeys(ctx, c, getenv, root, targets)
		failed := 0
		for _, k := range checks {
			if !k.OK {
				failed++
			}
		}
		if output == "json" {
			if err := json.NewEncoder(stdout).Encode(struct {
				Keys []KeyCheck `json:"keys"`
				Note string     `json:"note,omitempty"`
			}{checks, note}); err != nil {
				return err
			}
		} else {
			tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "SIGNER\tURI\tKEY ID\tPROBE\tDELEGATION")
			for _, k := range checks {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", k.Signer, k.URI, k.KeyID, k.Probe, k.Delegation)
			}
			tw.Flush()
			if note != "" {
				fmt.Fprintln(stdout, note)
			}
		}
		if failed > 0 {
			return fmt.Errorf("%d of %d online keys failed the check", failed, len(checks))
		}
		return nil
	})
}

// publishedTopLevel returns the published root and targets, or nils before bootstrap.
func publishedTopLevel(ctx context.Context, db *store.DB) (*metadata.Metadata[metadata.RootType], *metadata.Metadata[metadata.TargetsType], error) {
	ok, err := db.Bootstrapped(ctx)
	if err != nil || !ok {
		return nil, nil, err
	}
	rootM, err := db.LatestPublished(ctx, tufrepo.RoleRoot)
	if err != nil {
		return nil, nil, err
	}
	targetsM, err := db.LatestPublished(ctx, tufrepo.RoleTargets)
	if err != nil {
		return nil, nil, err
	}
	root, err := metadata.Root().FromBytes(rootM.Raw)
	if err != nil {
		return nil, nil, fmt.Errorf("parsing the published root: %w", err)
	}
	targets, err := metadata.Targets().FromBytes(targetsM.Raw)
	if err != nil {
		return nil, nil, fmt.Errorf("parsing the published targets: %w", err)
	}
	return root, targets, nil
}

// CheckKeys probes every configured online key and compares it with root and targets
// (either may be nil: not bootstrapped).
func CheckKeys(ctx context.Context, c *Config, getenv func(string) string, root *metadata.Metadata[metadata.RootType], targets *metadata.Metadata[metadata.TargetsType]) []KeyCheck {
	type entry struct {
		signer, uri string
	}
	entries := []entry{{tufrepo.RoleTimestamp, c.TimestampKey}, {tufrepo.RoleSnapshot, c.SnapshotKey}, {tufrepo.RoleRecentlyClaimed, c.RecentlyClaimedKey}}
	for i, u := range c.StandbyKeys {
		entries = append(entries, entry{fmt.Sprintf("standby-%d", i+1), u})
	}
	checks := make([]KeyCheck, len(entries))
	ids := map[string]string{} // key ID → signer name, for the delegation step
	for i, e := range entries {
		k := &checks[i]
		k.Signer, k.URI = e.signer, keyuri.Redact(e.uri)
		if e.uri == "" {
			k.Probe = "no URI configured"
			k.Delegation = "-"
			continue
		}
		o, err := probeKey(ctx, e.uri, getenv)
		if o != nil {
			k.KeyID, k.KeyType = o.KeyID, o.Key.Type
			ids[o.KeyID] = e.signer
		}
		if err != nil {
			k.Probe = "FAILED: " + err.Error()
			k.Delegation = "-"
			continue
		}
		k.Probe = "ok"
		k.OK = true
	}
	if root == nil {
		for i := range checks {
			if checks[i].OK {
				checks[i].Delegation = "not checked"
			}
		}
		return checks
	}
	rv := root.Signed.Version
	for i := range checks {
		k := &checks[i]
		if k.KeyID == "" {
			continue
		}
		switch k.Signer {
		case tufrepo.RoleTimestamp, tufrepo.RoleSnapshot:
			want := root.Signed.Roles[k.Signer].KeyIDs
			switch holder := holderOf(want, ids); {
			case slices.Contains(want, k.KeyID):
				k.Delegation = fmt.Sprintf("root v%d delegates %s to this key", rv, k.Signer)
			case holder != "":
				k.Delegation = fmt.Sprintf("unused: root v%d delegates %s to %s", rv, k.Signer, holder)
			default:
				k.OK = false
				k.Delegation = fmt.Sprintf("MISMATCH: root v%d delegates %s to %s, and no configured key is one of them: configure that key's URI, or rotate root (cairn admin root rotate --%s-key)", rv, k.Signer, strings.Join(want, ", "), k.Signer)
			}
		case tufrepo.RoleRecentlyClaimed:
			want := recentlyClaimedKeys(targets)
			if slices.Contains(want, k.KeyID) {
				k.Delegation = fmt.Sprintf("targets v%d delegates recently-claimed to this key", targets.Signed.Version)
			} else {
				k.OK = false
				k.Delegation = fmt.Sprintf("MISMATCH: targets v%d delegates recently-claimed to %s: configure that key's URI", targets.Signed.Version, strings.Join(want, ", "))
			}
		default: // standby
			var roles []string
			for _, r := range []string{tufrepo.RoleTimestamp, tufrepo.RoleSnapshot} {
				if slices.Contains(root.Signed.Roles[r].KeyIDs, k.KeyID) {
					roles = append(roles, r)
				}
			}
			if len(roles) > 0 {
				k.Delegation = fmt.Sprintf("root v%d delegates %s to this standby key", rv, strings.Join(roles, " and "))
			} else {
				k.Delegation = fmt.Sprintf("not in root v%d: ready for a rotation", rv)
			}
		}
	}
	return checks
}

// holderOf names the configured signer that holds one of want, if any.
func holderOf(want []string, ids map[string]string) string {
	for _, id := range want {
		if s, ok := ids[id]; ok {
			return s
		}
	}
	return ""
}

func recentlyClaimedKeys(t *metadata.Metadata[metadata.TargetsType]) []string {
	if t == nil || t.Signed.Delegations == nil {
		return nil
	}
	for _, d := range t.Signed.Delegations.Roles {
		if d.Name == tufrepo.RoleRecentlyClaimed {
			return d.KeyIDs
		}
	}
	return nil
}

// probeKey opens a key URI and signs and verifies a probe with it, within 30 seconds.
func probeKey(ctx context.Context, uri string, getenv func(string) string) (*tufrepo.OnlineSigner, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	s, err := keyuri.Open(ctx, uri, getenv)
	if err != nil {
		return nil, err
	}
	o, err := tufrepo.NewOnlineSigner(ctx, s)
	if err != nil {
		return nil, err
	}
	if err := o.Probe(ctx); err != nil {
		if errors.Is(err, context.DeadlineExceeded) {
			return o, fmt.Errorf("no signature within 30 s: %w", err)
		}
		return o, err
	}
	return o, nil
}
