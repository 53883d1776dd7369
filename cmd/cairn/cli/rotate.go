package cli

import (
	"crypto"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
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

// rootRotateOptions are the flags of 'cairn admin root rotate'.
type rootRotateOptions struct {
	keys             []string
	newRootKeys      []string
	genRootKeys      int
	threshold        int
	newTargetsKeys   []string
	genTargetsKeys   int
	targetsThreshold int
	timestampKey     string
	snapshotKey      string
	keyType          string
	keyPrefix        string
	expires          string
	targetsExpires   string
	yes, dryRun      bool
	wait             time.Duration
	output           string
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

func (a *app) rootRotateCommand() *cobra.Command {
	var o rootRotateOptions
	cmd := &cobra.Command{
		Use:   "rotate --key ROOTKEY... [--new-root-key NAME... | --generate-root-keys N] [--threshold T] [--new-targets-key NAME... | --generate-targets-key] [--timestamp-key PUBKEY] [--snapshot-key PUBKEY] [--expires 365d]",
		Short: "Sign the next root: new root keys or threshold, new targets or online keys, or a later expiry",
		Long: `rotate writes the next version of root and signs it offline. It refreshes and
verifies the current root, targets and snapshot from your pinned root (following any
rotation since), and writes root version N+1:

  - root keys: the keys named with --new-root-key and/or generated with
    --generate-root-keys (into your key store, encrypted with your passphrase); without
    either, the current root keys stay. --threshold sets how many must sign (default: the
    current threshold);
  - targets keys: likewise with --new-targets-key, --generate-targets-key and
    --targets-threshold. When they change, targets version M+1 (same delegations as the
    verified one) is signed by the new targets keys and sent with the root, so that no
    client ever sees a root whose targets it cannot verify;
  - timestamp and snapshot keep the server's online keys, unless --timestamp-key or
    --snapshot-key gives a new public key (the JSON 'cairnd keys public --key URI'
    prints, as a file or inline): the new root then delegates that role to this key
    alone, threshold 1. The server must already hold the new key: restart it with
    --standby-key URI first, or it refuses the root. It switches to the new key in the
    publish that serves the new root, so clients never see a gap;
  - the expiry is --expires from now.

With no key or threshold change, rotate renews root: a new version with a later expiry.

Root version N+1 is signed by every --key (current root keys; at least the current
threshold of them, so that clients that trust version N accept it) and by every new root
key (at least the new threshold, so that it is valid on its own). rotate shows in plain
words what changes (keys before and after with fingerprints, thresholds, expiry), asks for
confirmation (--yes does not), checks everything as the server and clients will, uploads
it with an admin token, and verifies the published result through TUF.

Keep the old root keys until every client has followed: a client that has not updated
since version N needs them to reach N+1.`,
		Example: `  # replace the single dev root key by two new keys, 2 of 2, and the targets key
  cairn admin root rotate --key root --generate-root-keys 2 --threshold 2 --generate-targets-key
  # renew root for another year
  cairn admin root rotate --key root-1 --key root-2 --expires 365d --yes
  # move timestamp to a key the server already holds as --standby-key
  cairnd keys public --key "file:///etc/cairn/timestamp-2.json?passphrase-file=/etc/cairn/pass" > timestamp-2.pub.json
  cairn admin root rotate --key root --timestamp-key timestamp-2.pub.json`,
		Args: cobra.NoArgs,
		RunE: run(func(cmd *cobra.Command, _ []string) error { return a.rootRotate(cmd, o) }),
	}
	f := cmd.Flags()
	f.StringArrayVar(&o.keys, "key", nil, "a current root key in your key store to sign with (required; repeatable; at least the current threshold)")
	f.StringArrayVar(&o.newRootKeys, "new-root-key", nil, "a key in your key store that becomes a root key (repeatable; may be a current root key to keep it)")
	f.IntVar(&o.genRootKeys, "generate-root-keys", 0, "generate N new root keys into your key store")
	f.IntVar(&o.threshold, "threshold", 0, "how many root keys must sign a root (default: the current threshold)")
	f.StringArrayVar(&o.newTargetsKeys, "new-targets-key", nil, "a key in your key store that becomes a targets key (repeatable)")
	f.IntVar(&o.genTargetsKeys, "generate-targets-keys", 0, "generate N new targets keys into your key store")
	f.IntVar(&o.genTargetsKeys, "generate-targets-key", 0, "generate one new targets key (same as --generate-targets-keys 1)")
	f.Lookup("generate-targets-key").NoOptDefVal = "1"
	f.IntVar(&o.targetsThreshold, "targets-threshold", 0, "how many targets keys must sign targets (default: the current threshold)")
	f.StringVar(&o.timestampKey, "timestamp-key", "", "new online timestamp public key: a file with the JSON 'cairnd keys public' prints, or the JSON itself (the server must hold it as --standby-key)")
	f.StringVar(&o.snapshotKey, "snapshot-key", "", "new online snapshot public key: a file with the JSON 'cairnd keys public' prints, or the JSON itself (the server must hold it as --standby-key)")
	f.StringVar(&o.keyType, "key-type", string(tufrepo.KeyEd25519), "type of generated keys: ed25519 or ecdsa-p256")
	f.StringVar(&o.keyPrefix, "key-prefix", "", "prefix of generated key names (PREFIX-root-vN-1, …; default root-vN-1, …)")
	f.StringVar(&o.expires, "expires", "365d", "expiry of the new root: a lifetime (365d, 52w, 8760h) or a date (2027-06-30)")
	f.StringVar(&o.targetsExpires, "targets-expires", "365d", "expiry of the new targets, when the targets keys change")
	f.BoolVarP(&o.yes, "yes", "y", false, "sign without asking for confirmation")
	f.BoolVar(&o.dryRun, "dry-run", false, "show what would change and stop before signing (generated keys are not kept)")
	f.DurationVar(&o.wait, "wait", 30*time.Second, "how long the server may hold the answer until the new metadata is published")
	addOutputFlag(cmd, &o.output)
	cmd.MarkFlagRequired("key")
	return cmd
}

// generatedKey is a key generated by rotate, kept in memory until the admin confirms.
type generatedKey struct {
	role   string
	name   string
	priv   crypto.Signer
	signer *tufrepo.OnlineSigner
}

func (a *app) rootRotate(cmd *cobra.Command, o rootRotateOptions) error {
	now := time.Now()
	rootExpires, err := parseExpiry("--expires", o.expires, now)
	if err != nil {
		return err
	}
	targetsExpires, err := parseExpiry("--targets-expires", o.targetsExpires, now)
	if err != nil {
		return err
	}
	if o.genRootKeys < 0 || o.genRootKeys > client.MaxRoleKeys || o.genTargetsKeys < 0 || o.genTargetsKeys > client.MaxRoleKeys {
		return api.Errorf(api.CodeInvalidThreshold, "--generate-root-keys and --generate-targets-keys take 0 to %d", client.MaxRoleKeys)
	}
	if o.threshold < 0 || o.targetsThreshold < 0 {
		return api.Errorf(api.CodeInvalidThreshold, "a threshold must be at least 1")
	}
	kt := tufrepo.KeyType(o.keyType)
	if kt != tufrepo.KeyEd25519 && kt != tufrepo.KeyECDSAP256 {
		return api.Errorf(api.CodeInvalidKey, "--key-type %q is not supported: use %s or %s", o.keyType, tufrepo.KeyEd25519, tufrepo.KeyECDSAP256)
	}
	if cmd.Flags().Changed("targets-expires") && len(o.newTargetsKeys) == 0 && o.genTargetsKeys == 0 {
		return api.Errorf(api.CodeBadRequest, "--targets-expires applies only when the targets keys change; to re-sign targets alone use 'cairn admin targets resign'")
	}
	// New online keys: public halves only, validated as the server validates keys.
	var timestampKey, snapshotKey *metadata.Key
	for _, k := range []struct {
		flag, arg string
		dst       **metadata.Key
	}{{"--timestamp-key", o.timestampKey, &timestampKey}, {"--snapshot-key", o.snapshotKey, &snapshotKey}} {
		if !cmd.Flags().Changed(strings.TrimPrefix(k.flag, "--")) {
			continue
		}
		if *k.dst, err = parseOnlineKey(k.flag, k.arg); err != nil {
			return err
		}
	}
	if !o.dryRun {
		if err := a.requireToken(); err != nil {
			return err
		}
	}
	ks, err := a.keyStore()
	if err != nil {
		return err
	}
	oldKFs, err := a.loadKeys("--key", o.keys)
	if err != nil {
		return err
	}
	newRootKFs, err := a.loadKeys("--new-root-key", o.newRootKeys)
	if err != nil {
		return err
	}
	newTargetsKFs, err := a.loadKeys("--new-targets-key", o.newTargetsKeys)
	if err != nil {
		return err
	}

	repo, cur, err := a.verifiedTopLevel()
	if err != nil {
		return err
	}
	curRoot := client.RootRoleKeys(cur.Root, tufrepo.RoleRoot)
	// Refuse keys that cannot sign for the current root before any passphrase is asked
	// and anything is sent.
	if err := checkSigningKeys("root", "--key", oldKFs, curRoot, cur.Root.Signed.Version); err != nil {
		return err
	}

	// Names of generated keys, checked before anything is generated.
	nextRootVersion, nextTargetsVersion := cur.Root.Signed.Version+1, cur.Targets.Signed.Version+1
	var gens []*generatedKey
	prefix := strings.TrimRight(o.keyPrefix, "-")
	if prefix != "" {
		prefix += "-"
	}
	for _, g := range []struct {
		role    string
		n       int
		version int64
	}{{tufrepo.RoleRoot, o.genRootKeys, nextRootVersion}, {tufrepo.RoleTargets, o.genTargetsKeys, nextTargetsVersion}} {
		for i := 1; i <= g.n; i++ {
			name := fmt.Sprintf("%s%s-v%d-%d", prefix, g.role, g.version, i)
			p, err := ks.path(name)
			if err != nil {
				return api.Wrap(api.CodeBadRequest, err, "--key-prefix %q gives the key name %q, which is not allowed", o.keyPrefix, name)
			}
			if _, err := os.Stat(p); err == nil {
				return api.Errorf(api.CodeBadRequest, "a key named %q already exists (%s): rotate never overwrites keys; name it with --new-%s-key, or choose another --key-prefix", name, p, g.role)
			} else if !errors.Is(err, fs.ErrNotExist) {
				return fmt.Errorf("checking key %q: %w", name, err)
			}
			gens = append(gens, &generatedKey{role: g.role, name: name})
		}
	}
	for _, g := range gens {
		priv, err := tufrepo.GenerateKey(kt)
		if err != nil {
			return fmt.Errorf("generating key %q: %w", g.name, err)
		}
		sv, err := tufrepo.NewSigner(priv)
		if err != nil {
			return fmt.Errorf("key %q: %w", g.name, err)
		}
		if g.signer, err = tufrepo.NewOnlineSigner(a.ctx, sv); err != nil {
			return fmt.Errorf("key %q: %w", g.name, err)
		}
		g.priv = priv
	}

	change := client.RootChange{RootThreshold: o.threshold, TargetsThreshold: o.targetsThreshold, TimestampKey: timestampKey, SnapshotKey: snapshotKey, Expires: rootExpires}
	names := a.localKeyNames()
	addKeys := func(role string, kfs []*tufrepo.KeyFile) ([]*metadata.Key, error) {
		out := []*metadata.Key{}
		for _, kf := range kfs {
			k, err := kf.TUFKey()
			if err != nil {
				return nil, api.Wrap(api.CodeInvalidKey, err, "key %q: %v", kf.Name, err)
			}
			out = append(out, k)
		}
		for _, g := range gens {
			if g.role == role {
				out = append(out, g.signer.Key)
				names[g.signer.KeyID] = g.name
			}
		}
		return out, nil
	}
	if len(newRootKFs) > 0 || o.genRootKeys > 0 {
		if change.RootKeys, err = addKeys(tufrepo.RoleRoot, newRootKFs); err != nil {
			return err
		}
	}
	if len(newTargetsKFs) > 0 || o.genTargetsKeys > 0 {
		if change.TargetsKeys, err = addKeys(tufrepo.RoleTargets, newTargetsKFs); err != nil {
			return err
		}
	}
	plan, nextRoot, err := client.PlanRootRotation(cur.Root, cur.Targets, change, now)
	if err != nil {
		return err
	}
	var tplan *client.TargetsPlan
	var nextTargets *metadata.Metadata[metadata.TargetsType]
	if plan.TargetsKeysChanged() {
		if tplan, nextTargets, err = client.PlanTargetsResign(cur.Targets, targetsExpires, now); err != nil {
			return err
		}
	}
	if plan.Renewal() && (len(newRootKFs) > 0 || len(newTargetsKFs) > 0 || timestampKey != nil || snapshotKey != nil) {
		a.notef("note: the keys given are the current keys; this only renews root\n")
	}

	rep := rotateReport{Server: repo.Server(), Snapshot: cur.Snapshot.Signed.Version, Root: plan, Targets: tplan, KeyNames: names, DryRun: o.dryRun}
	for _, g := range gens {
		rep.Generated = append(rep.Generated, generatedKeyInfo{Role: g.role, Name: g.name, KeyID: g.signer.KeyID, Fingerprint: fingerprintText(g.signer.Key)})
	}
	// Who signs: every --key (current root keys), and every key of the new root and of the
	// new targets that is at hand (given by name or generated). Each new set must reach
	// its own threshold, or clients would refuse it.
	available := map[string]bool{}
	for _, kfs := range [][]*tufrepo.KeyFile{oldKFs, newRootKFs, newTargetsKFs} {
		for _, kf := range kfs {
			available[kf.KeyID] = true
		}
	}
	for _, g := range gens {
		available[g.signer.KeyID] = true
	}
	for _, kf := range oldKFs {
		rep.RootSignedBy = append(rep.RootSignedBy, kf.KeyID)
	}
	var ownRoot []string
	for _, id := range plan.Root.After.KeyIDs() {
		if available[id] {
			ownRoot = append(ownRoot, id)
			if !slices.Contains(rep.RootSignedBy, id) {
				rep.RootSignedBy = append(rep.RootSignedBy, id)
			}
		}
	}
	if len(ownRoot) < plan.Root.After.Threshold {
		return api.Errorf(api.CodeThresholdNotMet, "root version %d needs %d of its own %s to sign it, and only %d of them are at hand: give the others with --key or --new-root-key, or lower --threshold",
			plan.NextVersion, plan.Root.After.Threshold, plural(len(plan.Root.After.Keys), "root key"), len(ownRoot))
	}
	if tplan != nil {
		for _, id := range plan.Targets.After.KeyIDs() {
			if available[id] {
				rep.TargetsSignedBy = append(rep.TargetsSignedBy, id)
			}
		}
		if len(rep.TargetsSignedBy) < plan.Targets.After.Threshold {
			return api.Errorf(api.CodeThresholdNotMet, "targets version %d must be signed by %d of the new %s, and only %d of them are at hand: give them with --new-targets-key",
				tplan.NextVersion, plan.Targets.After.Threshold, plural(len(plan.Targets.After.Keys), "targets key"), len(rep.TargetsSignedBy))
		}
	}
	if o.output != "json" {
		a.printRootPlan(cur, &rep, gens)
	}
	if o.dryRun {
		if o.output == "json" {
			return a.printJSON(rep)
		}
		a.printf("Dry run: nothing was signed, kept or sent.\n")
		return nil
	}
	what := fmt.Sprintf("root version %d", plan.NextVersion)
	if tplan != nil {
		what += fmt.Sprintf(" and targets version %d", tplan.NextVersion)
	}
	if !o.yes {
		ok, err := a.confirm(fmt.Sprintf("Sign %s and upload? [y/N] ", what))
		if err != nil {
			return err
		}
		if !ok {
			a.notef("Not signed.\n")
			return nil
		}
	}

	// Open every key that signs: the current root keys, then the new root and targets keys
	// from the key store. Generated keys are already open.
	signers := map[string]*tufrepo.OnlineSigner{}
	for _, kfs := range [][]*tufrepo.KeyFile{oldKFs, newRootKFs, newTargetsKFs} {
		for _, kf := range kfs {
			if _, ok := signers[kf.KeyID]; ok {
				continue
			}
			s, err := a.openSigner(kf)
			if err != nil {
				return err
			}
			signers[kf.KeyID] = s
		}
	}
	for _, g := range gens {
		signers[g.signer.KeyID] = g.signer
	}
	pick := func(ids []string) []*tufrepo.OnlineSigner {
		var out []*tufrepo.OnlineSigner
		for _, id := range ids {
			if s, ok := signers[id]; ok {
				out = append(out, s)
			}
		}
		return out
	}
	up := api.TopLevelUpdate{}
	if up.Root, err = client.SignTopLevel(a.ctx, nextRoot, pick(rep.RootSignedBy)...); err != nil {
		return fmt.Errorf("signing root version %d: %w", plan.NextVersion, err)
	}
	if nextTargets != nil {
		if up.Targets, err = client.SignTopLevel(a.ctx, nextTargets, pick(rep.TargetsSignedBy)...); err != nil {
			return fmt.Errorf("signing targets version %d: %w", tplan.NextVersion, err)
		}
	}
	// Check it as the server and every client will before anything is kept or sent.
	if err := client.CheckTopLevelUpdate(cur, up, time.Now()); err != nil {
		return fmt.Errorf("the %s just signed would be refused, nothing was sent: %w", what, err)
	}

	// Keys first: a root signed by keys that were then lost could never be changed again.
	if len(gens) > 0 {
		pass, err := a.passphrase(fmt.Sprintf("Passphrase for the %s new key(s): ", strconv.Itoa(len(gens))), true)
		if err != nil {
			return err
		}
		for i, g := range gens {
			kf, err := tufrepo.EncryptKey(g.name, g.priv, pass, a.kdf())
			if err != nil {
				return fmt.Errorf("encrypting key %q: %w (nothing was sent)", g.name, err)
			}
			p, err := ks.Save(kf)
			if err != nil {
				return fmt.Errorf("%w (nothing was sent; keys saved so far: %s)", err, savedNames(rep.Generated[:i]))
			}
			rep.Generated[i].File = p
		}
	}

	res, err := a.submitTopLevel(up, o.wait)
	if err != nil {
		if len(gens) > 0 {
			a.notef("The generated keys stay in your key store (%s); no published root uses them. Reuse them with --new-root-key / --new-targets-key, or delete them.\n", savedNames(rep.Generated))
		}
		return err
	}
	rep.Result = &res
	rep.Verified = a.verifyTopLevel(repo, res)
	if o.output == "json" {
		return a.printJSON(rep)
	}
	a.printTopLevelResult(res, rep.Verified)
	for _, g := range rep.Generated {
		a.printf("New %s key %q saved to %s: back it up with its passphrase.\n", g.Role, g.Name, g.File)
	}
	if plan.Root.Changed() {
		a.printf("Keep the old root keys until every client has updated: clients that trust root version %d need them to reach version %d.\n", plan.CurrentVersion, plan.NextVersion)
	}
	a.printOnlineKeysResult(plan, rep.Verified)
	return nil
}

// printOnlineKeysResult says which keys the server signs timestamp and snapshot with after
// a root that moved them was uploaded.
func (a *app) printOnlineKeysResult(p *client.RootPlan, v *topLevelVerified) {
	for _, c := range []client.RoleKeysChange{p.Timestamp, p.Snapshot} {
		if !c.Changed() {
			continue
		}
		if v != nil && v.RootVersion >= p.NextVersion {
			// The refresh verified the served timestamp (and snapshot) with root version
			// NextVersion or later, so they are signed by its keys.
			a.printf("The server now signs %s with the new key %s: the TUF refresh above verified it.\n", c.Role, client.KeyList(c.After.Keys))
		} else {
			a.printf("The server switches %s to the new key %s when it publishes root version %d.\n", c.Role, client.KeyList(c.After.Keys), p.NextVersion)
		}
		a.printf("The old %s key no longer signs: when the server next restarts, give the new key as --%s-key (instead of --standby-key) and the old one may go.\n", c.Role, c.Role)
	}
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

func savedNames(g []generatedKeyInfo) string {
	if len(g) == 0 {
		return "none"
	}
	out := make([]string, len(g))
	for i, k := range g {
		out[i] = k.Name
	}
	return strings.Join(out, ", ")
}

// printRootPlan says in words what the next root changes.
func (a *app) printRootPlan(cur *client.TopLevel, rep *rotateReport, gens []*generatedKey) {
	p := rep.Root
	a.printf("Root version %d is verified (through snapshot %d); it expires %s.\n", p.CurrentVersion, rep.Snapshot, untilText(p.ExpiresBefore))
	if p.Renewal() {
		a.printf("Root version %d renews it: same keys and thresholds, expiring %s.\n", p.NextVersion, untilText(p.Expires))
	} else {
		a.printf("Root version %d expires %s and changes:\n", p.NextVersion, untilText(p.Expires))
	}
	generated := map[string]bool{}
	for _, g := range gens {
		generated[g.signer.KeyID] = true
	}
	a.printf("\n")
	a.printRoleChange("Root", p.Root, rep.KeyNames, generated)
	a.printf("\n")
	a.printRoleChange("Targets", p.Targets, rep.KeyNames, generated)
	if t := rep.Targets; t != nil {
		a.printf("  Targets version %d → %d is signed by the new targets keys and sent with root; it expires %s and keeps its delegations:\n", t.CurrentVersion, t.NextVersion, untilText(t.Expires))
		a.printDelegations(t)
	}
	a.printf("\n")
	a.printOnlineKeysChange(p)

	var old, nw []string
	for _, id := range rep.RootSignedBy {
		n := keyName(rep.KeyNames, id)
		if p.Root.Before.Has(id) {
			old = append(old, n)
		}
		if p.Root.After.Has(id) {
			nw = append(nw, n)
		}
	}
	a.printf("\nRoot version %d is signed by %s of the current root keys (%s; %d needed, so clients that trust version %d accept it)", p.NextVersion, strconv.Itoa(len(old)), strings.Join(old, ", "), p.Root.Before.Threshold, p.CurrentVersion)
	a.printf(" and by %d of its own root keys (%s; %d needed).\n", len(nw), strings.Join(nw, ", "), p.Root.After.Threshold)
	if rep.Targets != nil {
		var tn []string
		for _, id := range rep.TargetsSignedBy {
			tn = append(tn, keyName(rep.KeyNames, id))
		}
		a.printf("Targets version %d is signed by %s (%d needed).\n", rep.Targets.NextVersion, strings.Join(tn, ", "), p.Targets.After.Threshold)
	}
	if len(gens) > 0 {
		a.printf("Generated keys are saved to your key store, encrypted with your passphrase, before anything is sent.\n")
	}
	for _, w := range p.Warnings {
		a.notef("warning: %s\n", w)
	}
	if d := time.Until(p.Expires); d < 30*24*time.Hour {
		a.notef("warning: root version %d expires in %s; the server warns 30 days ahead, so 'cairn admin status' will warn at once\n", p.NextVersion, roughDuration(d))
	}
	if t := rep.Targets; t != nil && time.Until(t.Expires) < 30*24*time.Hour {
		a.notef("warning: targets version %d expires in %s; 'cairn admin status' will warn at once\n", t.NextVersion, roughDuration(time.Until(t.Expires)))
	}
	a.printf("\n")
}

// printOnlineKeysChange prints the timestamp and snapshot keys before and after, with the
// note that the server must already hold a new one.
func (a *app) printOnlineKeysChange(p *client.RootPlan) {
	if !p.OnlineKeysChanged() {
		a.printf("Timestamp and snapshot keep the server's online keys: timestamp %s; snapshot %s.\n", client.KeyList(p.Timestamp.After.Keys), client.KeyList(p.Snapshot.After.Keys))
		return
	}
	var moved []string
	for _, c := range []client.RoleKeysChange{p.Timestamp, p.Snapshot} {
		title := strings.ToUpper(c.Role[:1]) + c.Role[1:]
		if !c.Changed() {
			a.printf("%s keeps the server's online key %s.\n", title, client.KeyList(c.After.Keys))
			continue
		}
		moved = append(moved, c.Role)
		a.printf("%s key (online, held by the server) changes: %d of %s → %d of %s must sign.\n", title, c.Before.Threshold, plural(len(c.Before.Keys), "key"), c.After.Threshold, plural(len(c.After.Keys), "key"))
		tw := tabwriter.NewWriter(a.stdout, 0, 4, 2, ' ', 0)
		line := func(mark string, k client.TopLevelKey) {
			fmt.Fprintf(tw, "  %s\tkey %s\t%s\t%s\n", mark, k.KeyID, k.KeyType, k.Fingerprint)
		}
		for _, k := range c.Removed {
			line("- removes", k)
		}
		for _, k := range c.Added {
			line("+ adds", k)
		}
		for _, k := range c.Kept {
			line("  keeps", k)
		}
		tw.Flush()
	}
	a.printf("Note: the server must already hold the new %s key: start it with --standby-key URI for that key\n"+
		"before uploading ('cairnd keys public --key URI' prints the public key to compare). Otherwise the server\n"+
		"refuses root version %d and nothing changes. It switches to the new key in the publish that serves\n"+
		"root version %d; clients follow without a gap.\n",
		strings.Join(moved, " and "), p.NextVersion, p.NextVersion)
}

// printRoleChange prints a role's keys before and after.
func (a *app) printRoleChange(title string, c client.RoleKeysChange, names map[string]string, generated map[string]bool) {
	if !c.Changed() {
		a.printf("%s keys stay: %d of %s must sign.\n", title, c.After.Threshold, plural(len(c.After.Keys), "key"))
	} else {
		a.printf("%s keys: %d of %s → %d of %s must sign.\n", title, c.Before.Threshold, plural(len(c.Before.Keys), "key"), c.After.Threshold, plural(len(c.After.Keys), "key"))
	}
	tw := tabwriter.NewWriter(a.stdout, 0, 4, 2, ' ', 0)
	line := func(mark string, k client.TopLevelKey, note string) {
		fmt.Fprintf(tw, "  %s\t%s\tkey %s\t%s\t%s\t%s\n", mark, keyName(names, k.KeyID), short(k.KeyID), k.KeyType, k.Fingerprint, note)
	}
	for _, k := range c.Removed {
		line("- removes", k, "")
	}
	for _, k := range c.Added {
		note := ""
		if generated[k.KeyID] {
			note = "(new, generated now)"
		}
		line("+ adds", k, note)
	}
	for _, k := range c.Kept {
		line("  keeps", k, "")
	}
	tw.Flush()
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

var lifetimeRE = regexp.MustCompile(`^([0-9]+)([dwy])$`)

// parseExpiry reads an expiry flag: a lifetime from now (365d, 52w, 1y, or a Go duration
// such as 8760h) or a date (2027-06-30, or RFC 3339).
func parseExpiry(flag, s string, now time.Time) (time.Time, error) {
	s = strings.TrimSpace(s)
	if m := lifetimeRE.FindStringSubmatch(s); m != nil {
		n, err := strconv.Atoi(m[1])
		if err == nil && n <= 100*366 {
			days := map[string]int{"d": 1, "w": 7, "y": 365}[m[2]]
			return now.UTC().Add(time.Duration(n*days) * 24 * time.Hour).Truncate(time.Second), nil
		}
	}
	if d, err := time.ParseDuration(s); err == nil && d > 0 {
		return now.UTC().Add(d).Truncate(time.Second), nil
	}
	if t, err := time.Parse("2006-01-02", s); err == nil {
		return t.UTC(), nil
	}
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t.UTC().Truncate(time.Second), nil
	}
	return time.Time{}, api.Errorf(api.CodeBadRequest, "%s %q is neither a lifetime (365d, 52w, 1y, 8760h) nor a date (2027-06-30)", flag, s)
}

// targetsResignOptions are the flags of 'cairn admin targets resign'.
type targetsResignOptions struct {
	keys        []string
	expires     string
	yes, dryRun bool
	wait        time.Duration
	output      string
}

func (a *app) targetsResignCommand() *cobra.Command {
	var o targetsResignOptions
	cmd := &cobra.Command{
		Use:   "resign --key TARGETSKEY... [--expires 365d]",
		Short: "Sign the next targets with the same delegations and a new expiry",
		Long: `resign writes the next version of the top-level targets metadata: the verified
current one with version + 1 and a new expiry, delegating exactly as before (claimed
and recently-claimed, same keys, thresholds and paths). It signs it with every --key
(targets keys from your key store; root says how many must sign), checks it as the
server and clients will, uploads it with an admin token and verifies the result.

Run it before targets expires ('cairn admin status' warns 30 days ahead). To change
the targets keys, use 'cairn admin root rotate --new-targets-key'.`,
		Example: `  cairn admin targets resign --key targets --expires 365d --yes`,
		Args:    cobra.NoArgs,
		RunE:    run(func(cmd *cobra.Command, _ []string) error { return a.targetsResign(o) }),
	}
	f := cmd.Flags()
	f.StringArrayVar(&o.keys, "key", nil, "a targets key in your key store to sign with (required; repeatable)")
	f.StringVar(&o.expires, "expires", "365d", "expiry of the new targets: a lifetime (365d, 52w, 8760h) or a date (2027-06-30)")
	f.BoolVarP(&o.yes, "yes", "y", false, "sign without asking for confirmation")
	f.BoolVar(&o.dryRun, "dry-run", false, "show what would change and stop before signing")
	f.DurationVar(&o.wait, "wait", 30*time.Second, "how long the server may hold the answer until the new targets is published")
	addOutputFlag(cmd, &o.output)
	cmd.MarkFlagRequired("key")
	return cmd
}

func (a *app) targetsResign(o targetsResignOptions) error {
	now := time.Now()
	expires, err := parseExpiry("--expires", o.expires, now)
	if err != nil {
		return err
	}
	if !o.dryRun {
		if err := a.requireToken(); err != nil {
			return err
		}
	}
	kfs, err := a.loadKeys("--key", o.keys)
	if err != nil {
		return err
	}
	repo, cur, err := a.verifiedTopLevel()
	if err != nil {
		return err
	}
	tkeys := client.RootRoleKeys(cur.Root, tufrepo.RoleTargets)
	if err := checkSigningKeys("targets", "--key", kfs, tkeys, cur.Root.Signed.Version); err != nil {
		return err
	}
	plan, next, err := client.PlanTargetsResign(cur.Targets, expires, now)
	if err != nil {
		return err
	}
	rep := rotateReport{Server: repo.Server(), Snapshot: cur.Snapshot.Signed.Version, Targets: plan, KeyNames: a.localKeyNames(), DryRun: o.dryRun}
	for _, kf := range kfs {
		rep.TargetsSignedBy = append(rep.TargetsSignedBy, kf.KeyID)
	}
	if o.output != "json" {
		a.printf("Targets version %d is verified (through snapshot %d, root version %d); it expires %s.\n", plan.CurrentVersion, rep.Snapshot, cur.Root.Signed.Version, untilText(plan.ExpiresBefore))
		a.printf("Targets version %d changes only its expiry, to %s, and keeps its delegations:\n", plan.NextVersion, untilText(plan.Expires))
		a.printDelegations(plan)
		var names []string
		for _, id := range rep.TargetsSignedBy {
			names = append(names, keyName(rep.KeyNames, id))
		}
		a.printf("Signed by %s; root version %d requires %d of its %s.\n\n", strings.Join(names, ", "), cur.Root.Signed.Version, tkeys.Threshold, plural(len(tkeys.Keys), "targets key"))
		if plan.Expires.Before(plan.ExpiresBefore) {
			a.notef("warning: targets version %d expires earlier than version %d\n", plan.NextVersion, plan.CurrentVersion)
		}
		if d := time.Until(plan.Expires); d < 30*24*time.Hour {
			a.notef("warning: targets version %d expires in %s; the server warns 30 days ahead, so 'cairn admin status' will warn at once\n", plan.NextVersion, roughDuration(d))
		}
	}
	if o.dryRun {
		if o.output == "json" {
			return a.printJSON(rep)
		}
		a.printf("Dry run: nothing was signed or sent.\n")
		return nil
	}
	if !o.yes {
		ok, err := a.confirm(fmt.Sprintf("Sign targets version %d and upload it? [y/N] ", plan.NextVersion))
		if err != nil {
			return err
		}
		if !ok {
			a.notef("Not signed.\n")
			return nil
		}
	}
	var signers []*tufrepo.OnlineSigner
	for _, kf := range kfs {
		s, err := a.openSigner(kf)
		if err != nil {
			return err
		}
		signers = append(signers, s)
	}
	up := api.TopLevelUpdate{}
	if up.Targets, err = client.SignTopLevel(a.ctx, next, signers...); err != nil {
		return fmt.Errorf("signing targets version %d: %w", plan.NextVersion, err)
	}
	if err := client.CheckTopLevelUpdate(cur, up, time.Now()); err != nil {
		return fmt.Errorf("the targets version %d just signed would be refused, nothing was sent: %w", plan.NextVersion, err)
	}
	res, err := a.submitTopLevel(up, o.wait)
	if err != nil {
		return err
	}
	rep.Result = &res
	rep.Verified = a.verifyTopLevel(repo, res)
	if o.output == "json" {
		return a.printJSON(rep)
	}
	a.printTopLevelResult(res, rep.Verified)
	return nil
}

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
	cmd.Flags().Var((*daysValue)(&o.within), "within", "also warn when an offline role expires within this time (e.g. 60d), beyond the server's own warnings")
	addOutputFlag(cmd, &o.output)
	return cmd
}

// daysValue is a duration flag that also takes days and weeks (60d, 8w).
type daysValue time.Duration

func (d *daysValue) String() string {
	if *d == 0 {
		return "0"
	}
	return time.Duration(*d).String()
}
func (d *daysValue) Type() string { return "duration" }
func (d *daysValue) Set(s string) error {
	now := time.Now().UTC().Truncate(time.Second)
	t, err := parseExpiry("--within", s, now)
	if err != nil || !t.After(now) {
		return fmt.Errorf("%q is not a duration such as 60d, 8w or 720h", s)
	}
	*d = daysValue(t.Sub(now))
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
	now := time.Now()
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
			fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%s\n", e.Role, e.Version, untilText(e.Expires), e.SignedBy, state)
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

// untilText formats a time with how far it is from now, in whole days rounded to the
// nearest (an expiry asked for as 365d shows as 365 days, not 364).
func untilText(t time.Time) string {
	s := fmtUTC(t)
	d := time.Until(t)
	switch {
	case d >= 48*time.Hour:
		return fmt.Sprintf("%s (in %d days)", s, int((d+12*time.Hour)/(24*time.Hour)))
	case d <= -48*time.Hour:
		return fmt.Sprintf("%s (%d days ago)", s, int((-d+12*time.Hour)/(24*time.Hour)))
	case d > 0:
		return s + " (in " + roughDuration(d) + ")"
	case d < 0:
		return s + " (" + roughDuration(-d) + " ago)"
	}
	return s
}

func fmtUTC(t time.Time) string { return t.UTC().Format("2006-01-02 15:04 UTC") }
