package cli

import (
	"fmt"
	"strings"
	"time"

	"github.com/cairn-dev/cairn/api"
	"github.com/cairn-dev/cairn/client"
	"github.com/cairn-dev/cairn/tufrepo"
	"github.com/spf13/cobra"
	"github.com/theupdateframework/go-tuf/v2/metadata"
)

// topLevelCommands are the admin commands for the top of the trust chain: 'root rotate',
// 'targets resign' and 'status'. adminCommand registers them.
func (a *app) topLevelCommands() []*cobra.Command {
	root := &cobra.Command{Use: "root", Short: "Rotate the root keys, the targets keys, or renew root"}
	root.AddCommand(a.rootRotateCommand())
	targets := &cobra.Command{Use: "targets", Short: "Re-sign the top-level targets metadata"}
	targets.AddCommand(a.targetsResignCommand())
	return []*cobra.Command{root, targets, a.adminStatusCommand()}
}

// rotateReport is what 'cairn admin root rotate' and 'cairn admin targets resign' print
// with --output json.
type rotateReport struct {
	Server   string `json:"server"`
	Snapshot int64  `json:"verified_snapshot"`
	// Root is the root change (root rotate only).
	Root *client.RootPlan `json:"root,omitempty"`
	// Targets is the targets re-signed with it, if any.
	Targets *client.TargetsPlan `json:"targets,omitempty"`
	// KeyNames names the keys found in the local key store, by key ID.
	KeyNames        map[string]string   `json:"key_names"`
	Generated       []generatedKeyInfo  `json:"generated_keys,omitempty"`
	RootSignedBy    []string            `json:"root_signed_by,omitempty"`
	TargetsSignedBy []string            `json:"targets_signed_by,omitempty"`
	DryRun          bool                `json:"dry_run,omitempty"`
	Result          *api.TopLevelResult `json:"result,omitempty"`
	Verified        *topLevelVerified   `json:"verified,omitempty"`
}

type generatedKeyInfo struct {
	Role        string `json:"role"`
	Name        string `json:"name"`
	KeyID       string `json:"keyid"`
	Fingerprint string `json:"fingerprint"`
	// File is where the encrypted key was saved (empty in a dry run).
	File string `json:"file,omitempty"`
}

// topLevelVerified is the new metadata as a fresh TUF refresh sees it.
type topLevelVerified struct {
	Snapshot       int64 `json:"snapshot"`
	RootVersion    int64 `json:"root_version"`
	TargetsVersion int64 `json:"targets_version"`
}

// checkSigningKeys refuses keys that are not keys of role, or fewer than its threshold.
func checkSigningKeys(role, flag string, kfs []*tufrepo.KeyFile, keys client.RoleKeys, version int64) error {
	for _, kf := range kfs {
		if !keys.Has(kf.KeyID) {
			return api.Errorf(api.CodeKeyNotDelegated, "key %q (%s) is not a current %s key: root version %d gives %s to %s; sign with those keys (%s NAME for each)",
				kf.Name, kf.KeyID, role, version, role, client.KeyList(keys.Keys), flag)
		}
	}
	if len(kfs) < keys.Threshold {
		return api.Errorf(api.CodeThresholdNotMet, "%s needs %d of its %d keys to sign (%s); you gave %d: add %s for each",
			role, keys.Threshold, len(keys.Keys), client.KeyList(keys.Keys), len(kfs), flag)
	}
	return nil
}

// submitTopLevel uploads an update with the admin token.
func (a *app) submitTopLevel(up api.TopLevelUpdate, wait time.Duration) (api.TopLevelResult, error) {
	ac, err := a.apiClient()
	if err != nil {
		return api.TopLevelResult{}, err
	}
	return ac.SubmitTopLevel(a.ctx, up, wait)
}

// verifiedTopLevel opens the TUF repository and returns the verified root, targets and
// snapshot that an admin command builds on.
func (a *app) verifiedTopLevel() (*client.Repo, *client.TopLevel, error) {
	repo, err := a.repo()
	if err != nil {
		return nil, nil, err
	}
	cur, err := repo.TopLevel(a.ctx)
	if err != nil {
		return nil, nil, err
	}
	return repo, cur, nil
}

// verifyTopLevel refreshes through TUF after an upload and reports what clients now see.
func (a *app) verifyTopLevel(repo *client.Repo, res api.TopLevelResult) *topLevelVerified {
	if res.Status != api.StatusPublished {
		return nil
	}
	tl, err := repo.TopLevel(a.ctx)
	if err != nil {
		a.notef("warning: the server published the update, but refreshing through TUF afterwards failed: %v\n", err)
		return nil
	}
	v := &topLevelVerified{Snapshot: tl.Snapshot.Signed.Version, RootVersion: tl.Root.Signed.Version, TargetsVersion: tl.Targets.Signed.Version}
	if (res.RootVersion > 0 && v.RootVersion < res.RootVersion) || (res.TargetsVersion > 0 && v.TargetsVersion < res.TargetsVersion) {
		a.notef("warning: the server says it published root %d / targets %d, but a TUF refresh sees root %d and targets %d\n", res.RootVersion, res.TargetsVersion, v.RootVersion, v.TargetsVersion)
	}
	return v
}

func (a *app) printTopLevelResult(res api.TopLevelResult, v *topLevelVerified) {
	var parts []string
	if res.RootVersion > 0 {
		parts = append(parts, fmt.Sprintf("root version %d", res.RootVersion))
	}
	if res.TargetsVersion > 0 {
		parts = append(parts, fmt.Sprintf("targets version %d", res.TargetsVersion))
	}
	what := strings.Join(parts, " and ")
	switch res.Status {
	case api.StatusPublished:
		a.printf("Published %s in snapshot %d.\n", what, res.SnapshotVersion)
		if v != nil {
			a.printf("Verified through TUF: snapshot %d, root version %d, targets version %d.\n", v.Snapshot, v.RootVersion, v.TargetsVersion)
		}
	default:
		a.printf("The server accepted %s and publishes it with its next snapshot.\n", what)
	}
}

func (a *app) printDelegations(t *client.TargetsPlan) {
	for _, d := range t.Delegations {
		who := "offline"
		if d.Online {
			who = "online, held by the server"
		}
		a.printf("    %s: %d of %s (%s), paths %s\n", d.Role, d.Threshold, plural(len(d.Keys), "key"), who, strings.Join(d.Paths, " "))
	}
}

func keyName(names map[string]string, id string) string {
	if n, ok := names[id]; ok {
		return n
	}
	return "(not in your key store)"
}

func fingerprintText(k *metadata.Key) string {
	fp, err := tufrepo.Fingerprint(k)
	if err != nil {
		return "(unusable key)"
	}
	return fp
}
