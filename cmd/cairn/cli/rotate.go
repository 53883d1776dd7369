package cli

import (
	"crypto"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/cairn-dev/cairn/api"
	"github.com/cairn-dev/cairn/client"
	"github.com/cairn-dev/cairn/tufrepo"
	"github.com/spf13/cobra"
	"github.com/theupdateframework/go-tuf/v2/metadata"
)

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

// rootRotate runs 'cairn admin root rotate' in steps, each refusing what it can before the
// next asks for more: the flags and named keys (no passphrase), the plan against the
// verified current root, the admin's confirmation, the signatures, the generated keys
// saved, and the upload verified through TUF.
func (a *app) rootRotate(cmd *cobra.Command, o rootRotateOptions) error {
	now := a.now()
	in, err := a.checkRotateFlags(cmd, o, now)
	if err != nil {
		return err
	}
	r, err := a.planRotation(o, in, now)
	if err != nil {
		return err
	}
	if o.output != "json" {
		a.printRootPlan(r.cur, &r.rep, r.gens)
	}
	if o.dryRun {
		if o.output == "json" {
			return a.printJSON(r.rep)
		}
		a.printf("Dry run: nothing was signed, kept or sent.\n")
		return nil
	}
	if !o.yes {
		ok, err := a.confirm(fmt.Sprintf("Sign %s and upload? [y/N] ", r.what()))
		if err != nil {
			return err
		}
		if !ok {
			a.notef("Not signed.\n")
			return nil
		}
	}
	up, err := a.signRotation(r)
	if err != nil {
		return err
	}
	// Keys first: a root signed by keys that were then lost could never be changed again.
	if err := a.saveGeneratedKeys(r); err != nil {
		return err
	}
	return a.publishRotation(r, up, o)
}

// rotateFlags is what the flags of 'root rotate' ask for, checked, with the keys they name
// read from the key store (no passphrase yet).
type rotateFlags struct {
	rootExpires, targetsExpires time.Time
	keyType                     tufrepo.KeyType
	// timestampKey and snapshotKey are new online public keys, or nil to keep the server's.
	timestampKey, snapshotKey *metadata.Key
	ks                        KeyStore
	// oldKFs are the current root keys that sign (--key); newRootKFs and newTargetsKFs
	// the keys that become root and targets keys (--new-root-key, --new-targets-key).
	oldKFs, newRootKFs, newTargetsKFs []*tufrepo.KeyFile
}

// rotation is the next root (and targets, when the targets keys change) as planned from
// the verified current top level, before anything is signed.
type rotation struct {
	in          *rotateFlags
	repo        *client.Repo
	cur         *client.TopLevel
	gens        []*generatedKey
	plan        *client.RootPlan
	nextRoot    *metadata.Metadata[metadata.RootType]
	tplan       *client.TargetsPlan // nil when targets is not re-signed
	nextTargets *metadata.Metadata[metadata.TargetsType]
	rep         rotateReport
}

// what names the metadata the rotation signs, for prompts and errors.
func (r *rotation) what() string {
	what := fmt.Sprintf("root version %d", r.plan.NextVersion)
	if r.tplan != nil {
		what += fmt.Sprintf(" and targets version %d", r.tplan.NextVersion)
	}
	return what
}

// checkRotateFlags checks the flags of 'root rotate' and reads the keys they name.
func (a *app) checkRotateFlags(cmd *cobra.Command, o rootRotateOptions, now time.Time) (*rotateFlags, error) {
	in := &rotateFlags{keyType: tufrepo.KeyType(o.keyType)}
	var err error
	if in.rootExpires, err = parseExpiry("--expires", o.expires, now); err != nil {
		return nil, err
	}
	if in.targetsExpires, err = parseExpiry("--targets-expires", o.targetsExpires, now); err != nil {
		return nil, err
	}
	if o.genRootKeys < 0 || o.genRootKeys > client.MaxRoleKeys || o.genTargetsKeys < 0 || o.genTargetsKeys > client.MaxRoleKeys {
		return nil, api.Errorf(api.CodeInvalidThreshold, "--generate-root-keys and --generate-targets-keys take 0 to %d", client.MaxRoleKeys)
	}
	if o.threshold < 0 || o.targetsThreshold < 0 {
		return nil, api.Errorf(api.CodeInvalidThreshold, "a threshold must be at least 1")
	}
	if in.keyType != tufrepo.KeyEd25519 && in.keyType != tufrepo.KeyECDSAP256 {
		return nil, api.Errorf(api.CodeInvalidKey, "--key-type %q is not supported: use %s or %s", o.keyType, tufrepo.KeyEd25519, tufrepo.KeyECDSAP256)
	}
	if cmd.Flags().Changed("targets-expires") && len(o.newTargetsKeys) == 0 && o.genTargetsKeys == 0 {
		return nil, api.Errorf(api.CodeBadRequest, "--targets-expires applies only when the targets keys change; to re-sign targets alone use 'cairn admin targets resign'")
	}
	// New online keys: public halves only, validated as the server validates keys.
	for _, k := range []struct {
		flag, arg string
		dst       **metadata.Key
	}{{"--timestamp-key", o.timestampKey, &in.timestampKey}, {"--snapshot-key", o.snapshotKey, &in.snapshotKey}} {
		if !cmd.Flags().Changed(strings.TrimPrefix(k.flag, "--")) {
			continue
		}
		if *k.dst, err = parseOnlineKey(k.flag, k.arg); err != nil {
			return nil, err
		}
	}
	if !o.dryRun {
		if err := a.requireToken(); err != nil {
			return nil, err
		}
	}
	if in.ks, err = a.keyStore(); err != nil {
		return nil, err
	}
	if in.oldKFs, err = a.loadKeys("--key", o.keys); err != nil {
		return nil, err
	}
	if in.newRootKFs, err = a.loadKeys("--new-root-key", o.newRootKeys); err != nil {
		return nil, err
	}
	if in.newTargetsKFs, err = a.loadKeys("--new-targets-key", o.newTargetsKeys); err != nil {
		return nil, err
	}
	return in, nil
}

// planRotation verifies the current top level, generates the new keys (in memory) and
// plans the next root and targets, with who signs them.
func (a *app) planRotation(o rootRotateOptions, in *rotateFlags, now time.Time) (*rotation, error) {
	repo, cur, err := a.verifiedTopLevel()
	if err != nil {
		return nil, err
	}
	curRoot := client.RootRoleKeys(cur.Root, tufrepo.RoleRoot)
	// Refuse keys that cannot sign for the current root before any passphrase is asked
	// and anything is sent.
	if err := checkSigningKeys("root", "--key", in.oldKFs, curRoot, cur.Root.Signed.Version); err != nil {
		return nil, err
	}
	gens, err := a.generateRotationKeys(in, o, cur.Root.Signed.Version+1, cur.Targets.Signed.Version+1)
	if err != nil {
		return nil, err
	}

	change := client.RootChange{RootThreshold: o.threshold, TargetsThreshold: o.targetsThreshold, TimestampKey: in.timestampKey, SnapshotKey: in.snapshotKey, Expires: in.rootExpires}
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
	if len(in.newRootKFs) > 0 || o.genRootKeys > 0 {
		if change.RootKeys, err = addKeys(tufrepo.RoleRoot, in.newRootKFs); err != nil {
			return nil, err
		}
	}
	if len(in.newTargetsKFs) > 0 || o.genTargetsKeys > 0 {
		if change.TargetsKeys, err = addKeys(tufrepo.RoleTargets, in.newTargetsKFs); err != nil {
			return nil, err
		}
	}
	r := &rotation{in: in, repo: repo, cur: cur, gens: gens}
	if r.plan, r.nextRoot, err = client.PlanRootRotation(cur.Root, cur.Targets, change, now); err != nil {
		return nil, err
	}
	if r.plan.TargetsKeysChanged() {
		if r.tplan, r.nextTargets, err = client.PlanTargetsResign(cur.Targets, in.targetsExpires, now); err != nil {
			return nil, err
		}
	}
	if r.plan.Renewal() && (len(in.newRootKFs) > 0 || len(in.newTargetsKFs) > 0 || in.timestampKey != nil || in.snapshotKey != nil) {
		a.notef("note: the keys given are the current keys; this only renews root\n")
	}

	r.rep = rotateReport{Server: repo.Server(), Snapshot: cur.Snapshot.Signed.Version, Root: r.plan, Targets: r.tplan, KeyNames: names, DryRun: o.dryRun}
	for _, g := range gens {
		r.rep.Generated = append(r.rep.Generated, generatedKeyInfo{Role: g.role, Name: g.name, KeyID: g.signer.KeyID, Fingerprint: fingerprintText(g.signer.Key)})
	}
	if err := r.chooseSigners(); err != nil {
		return nil, err
	}
	return r, nil
}

// generateRotationKeys generates the keys --generate-root-keys and --generate-targets-keys
// ask for, in memory; their names are checked first, so that none is generated when one
// name is taken.
func (a *app) generateRotationKeys(in *rotateFlags, o rootRotateOptions, nextRootVersion, nextTargetsVersion int64) ([]*generatedKey, error) {
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
			p, err := in.ks.path(name)
			if err != nil {
				return nil, api.Wrap(api.CodeBadRequest, err, "--key-prefix %q gives the key name %q, which is not allowed", o.keyPrefix, name)
			}
			if _, err := os.Stat(p); err == nil {
				return nil, api.Errorf(api.CodeBadRequest, "a key named %q already exists (%s): rotate never overwrites keys; name it with --new-%s-key, or choose another --key-prefix", name, p, g.role)
			} else if !errors.Is(err, fs.ErrNotExist) {
				return nil, fmt.Errorf("checking key %q: %w", name, err)
			}
			gens = append(gens, &generatedKey{role: g.role, name: name})
		}
	}
	for _, g := range gens {
		priv, err := tufrepo.GenerateKey(in.keyType)
		if err != nil {
			return nil, fmt.Errorf("generating key %q: %w", g.name, err)
		}
		sv, err := tufrepo.NewSigner(priv)
		if err != nil {
			return nil, fmt.Errorf("key %q: %w", g.name, err)
		}
		if g.signer, err = tufrepo.NewOnlineSigner(a.ctx, sv); err != nil {
			return nil, fmt.Errorf("key %q: %w", g.name, err)
		}
		g.priv = priv
	}
	return gens, nil
}

// chooseSigners fills in who signs: every --key (current root keys), and every key of the
// new root and of the new targets that is at hand (given by name or generated). Each new
// set must reach its own threshold, or clients would refuse it.
func (r *rotation) chooseSigners() error {
	plan, rep := r.plan, &r.rep
	available := map[string]bool{}
	for _, kfs := range [][]*tufrepo.KeyFile{r.in.oldKFs, r.in.newRootKFs, r.in.newTargetsKFs} {
		for _, kf := range kfs {
			available[kf.KeyID] = true
		}
	}
	for _, g := range r.gens {
		available[g.signer.KeyID] = true
	}
	for _, kf := range r.in.oldKFs {
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
	if r.tplan != nil {
		for _, id := range plan.Targets.After.KeyIDs() {
			if available[id] {
				rep.TargetsSignedBy = append(rep.TargetsSignedBy, id)
			}
		}
		if len(rep.TargetsSignedBy) < plan.Targets.After.Threshold {
			return api.Errorf(api.CodeThresholdNotMet, "targets version %d must be signed by %d of the new %s, and only %d of them are at hand: give them with --new-targets-key",
				r.tplan.NextVersion, plan.Targets.After.Threshold, plural(len(plan.Targets.After.Keys), "targets key"), len(rep.TargetsSignedBy))
		}
	}
	return nil
}

// signRotation opens every key that signs (the current root keys, then the new root and
// targets keys from the key store; generated keys are already open), signs the next root
// and targets, and checks them as the server and every client will before anything is
// kept or sent.
func (a *app) signRotation(r *rotation) (api.TopLevelUpdate, error) {
	var up api.TopLevelUpdate
	signers := map[string]*tufrepo.OnlineSigner{}
	for _, kfs := range [][]*tufrepo.KeyFile{r.in.oldKFs, r.in.newRootKFs, r.in.newTargetsKFs} {
		for _, kf := range kfs {
			if _, ok := signers[kf.KeyID]; ok {
				continue
			}
			s, err := a.openSigner(kf)
			if err != nil {
				return up, err
			}
			signers[kf.KeyID] = s
		}
	}
	for _, g := range r.gens {
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
	var err error
	if up.Root, err = client.SignTopLevel(a.ctx, r.nextRoot, pick(r.rep.RootSignedBy)...); err != nil {
		return up, fmt.Errorf("signing root version %d: %w", r.plan.NextVersion, err)
	}
	if r.nextTargets != nil {
		if up.Targets, err = client.SignTopLevel(a.ctx, r.nextTargets, pick(r.rep.TargetsSignedBy)...); err != nil {
			return up, fmt.Errorf("signing targets version %d: %w", r.tplan.NextVersion, err)
		}
	}
	if err := client.CheckTopLevelUpdate(r.cur, up, a.now()); err != nil {
		return up, fmt.Errorf("the %s just signed would be refused, nothing was sent: %w", r.what(), err)
	}
	return up, nil
}

// saveGeneratedKeys encrypts the generated keys with one new passphrase and saves them to
// the key store, recording where in the report.
func (a *app) saveGeneratedKeys(r *rotation) error {
	if len(r.gens) == 0 {
		return nil
	}
	pass, err := a.passphrase(fmt.Sprintf("Passphrase for the %s new key(s): ", strconv.Itoa(len(r.gens))), true)
	if err != nil {
		return err
	}
	for i, g := range r.gens {
		kf, err := tufrepo.EncryptKey(g.name, g.priv, pass, a.kdf())
		if err != nil {
			return fmt.Errorf("encrypting key %q: %w (nothing was sent)", g.name, err)
		}
		p, err := r.in.ks.Save(kf)
		if err != nil {
			return fmt.Errorf("%w (nothing was sent; keys saved so far: %s)", err, savedNames(r.rep.Generated[:i]))
		}
		r.rep.Generated[i].File = p
	}
	return nil
}

// publishRotation uploads the signed update, verifies it through TUF and says what the
// admin must do next.
func (a *app) publishRotation(r *rotation, up api.TopLevelUpdate, o rootRotateOptions) error {
	res, err := a.submitTopLevel(up, o.wait)
	if err != nil {
		if len(r.gens) > 0 {
			a.notef("The generated keys stay in your key store (%s); no published root uses them. Reuse them with --new-root-key / --new-targets-key, or delete them.\n", savedNames(r.rep.Generated))
		}
		return err
	}
	rep := &r.rep
	rep.Result = &res
	rep.Verified = a.verifyTopLevel(r.repo, res)
	if o.output == "json" {
		return a.printJSON(rep)
	}
	a.printTopLevelResult(res, rep.Verified)
	for _, g := range rep.Generated {
		a.printf("New %s key %q saved to %s: back it up with its passphrase.\n", g.Role, g.Name, g.File)
	}
	if r.plan.Root.Changed() {
		a.printf("Keep the old root keys until every client has updated: clients that trust root version %d need them to reach version %d.\n", r.plan.CurrentVersion, r.plan.NextVersion)
	}
	a.printOnlineKeysResult(r.plan, rep.Verified)
	return nil
}
