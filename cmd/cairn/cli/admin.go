package cli

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/cairn-dev/cairn/api"
	"github.com/cairn-dev/cairn/internal/strictjson"
	"github.com/cairn-dev/cairn/tufrepo"
	"github.com/spf13/cobra"
	"github.com/theupdateframework/go-tuf/v2/metadata"
)

func (a *app) adminCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "admin",
		Short: "Repository administration with offline keys (root ceremony)",
		Long: `admin commands run on a repository administrator's machine, ideally one that is
offline. They create and use the offline keys of root, targets and claimed, which must
never reach the server.`,
	}
	cmd.AddCommand(a.adminInitCommand())
	cmd.AddCommand(a.adminClaimCommand())
	cmd.AddCommand(a.topLevelCommands()...)
	return cmd
}

// maxAdminKeys bounds the number of keys of one offline role.
const maxAdminKeys = 32

// adminInitOptions are the flags of 'cairn admin init'.
type adminInitOptions struct {
	out                                           string
	rootKeys, rootThreshold                       int
	targetsKeys, targetsThreshold                 int
	claimedKeys, claimedThreshold                 int
	timestampKey, snapshotKey, recentlyClaimedKey string
	keyType, keyPrefix, output                    string
}

// offlineRole is one offline role of the ceremony and the keys generated for it.
type offlineRole struct {
	role      string
	n, t      int
	names     []string
	keyFiles  []*tufrepo.KeyFile
	signers   []*tufrepo.OnlineSigner
	flagN     string
	flagT     string
	expiresAt time.Time
}

// onlineRole is one online role and the public key given for it.
type onlineRole struct {
	role, flag, arg string
	key             *metadata.Key
}

// adminInitResult is what 'cairn admin init --output json' prints.
type adminInitResult struct {
	Dir     string               `json:"dir"`
	Files   []adminInitFile      `json:"files"`
	Offline []adminInitRole      `json:"offline_roles"`
	Online  []adminInitOnlineKey `json:"online_roles"`
	Next    string               `json:"next"`
}

type adminInitFile struct {
	Path   string `json:"path"`
	SHA256 string `json:"sha256"`
	Length int    `json:"length"`
}

type adminInitRole struct {
	Role      string    `json:"role"`
	Threshold int       `json:"threshold"`
	Expires   time.Time `json:"expires"`
	Keys      []keyInfo `json:"keys"`
	KeyFiles  []string  `json:"key_files"`
}

type adminInitOnlineKey struct {
	Role        string `json:"role"`
	KeyID       string `json:"keyid"`
	Fingerprint string `json:"fingerprint"`
	Expiry      string `json:"signed_by_server_every"`
}

func (a *app) adminInitCommand() *cobra.Command {
	var o adminInitOptions
	cmd := &cobra.Command{
		Use:   "init --out DIR --timestamp-key PUB --snapshot-key PUB --recently-claimed-key PUB",
		Short: "Root ceremony: generate the offline keys and sign version 1 of root, targets and claimed",
		Long: `init creates a new repository's root of trust. It generates the offline keys of
root, targets and claimed into your key store (encrypted with your passphrase, as
'cairn key generate' does), signs version 1 of root, targets and claimed with them,
checks the result, and writes DIR/1.root.json, DIR/1.targets.json and DIR/1.claimed.json.

The online keys (timestamp, snapshot, recently-claimed) stay on the server, in its KMS
or HSM. Give init only their public halves: the JSON that 'cairnd keys public --key URI'
prints on the server, as a file or inline.

Then copy DIR to the server and load it with 'cairnd bootstrap --metadata DIR', and
give 1.root.json to your users through a channel they trust.`,
		Example: `  # on the server, for each online key:
  cairnd keys public --key file:///etc/cairn/timestamp.json > timestamp.pub.json
  # on the admin machine:
  cairn admin init --out ceremony --root-keys 3 --root-threshold 2 \
    --timestamp-key timestamp.pub.json --snapshot-key snapshot.pub.json \
    --recently-claimed-key recently-claimed.pub.json`,
		Args: cobra.NoArgs,
		RunE: run(func(cmd *cobra.Command, _ []string) error { return a.adminInit(o) }),
	}
	f := cmd.Flags()
	f.StringVar(&o.out, "out", "", "directory to write 1.root.json, 1.targets.json and 1.claimed.json to (required; must not hold metadata yet)")
	f.IntVar(&o.rootKeys, "root-keys", 3, "number of root keys to generate")
	f.IntVar(&o.rootThreshold, "root-threshold", 2, "number of root keys that must sign a new root")
	f.IntVar(&o.targetsKeys, "targets-keys", 1, "number of targets keys to generate")
	f.IntVar(&o.targetsThreshold, "targets-threshold", 1, "number of targets keys that must sign targets")
	f.IntVar(&o.claimedKeys, "claimed-keys", 1, "number of claimed keys to generate")
	f.IntVar(&o.claimedThreshold, "claimed-threshold", 1, "number of claimed keys that must sign claimed")
	f.StringVar(&o.timestampKey, "timestamp-key", "", "public timestamp key: a file with, or the JSON of, 'cairnd keys public' (required)")
	f.StringVar(&o.snapshotKey, "snapshot-key", "", "public snapshot key: a file with, or the JSON of, 'cairnd keys public' (required)")
	f.StringVar(&o.recentlyClaimedKey, "recently-claimed-key", "", "public recently-claimed key: a file with, or the JSON of, 'cairnd keys public' (required)")
	f.StringVar(&o.keyType, "key-type", string(tufrepo.KeyEd25519), "type of the generated keys: ed25519 or ecdsa-p256")
	f.StringVar(&o.keyPrefix, "key-prefix", "", "prefix of the generated key names (PREFIX-root-1, …; default root-1, …)")
	addOutputFlag(cmd, &o.output)
	cmd.MarkFlagRequired("out")
	return cmd
}

func (a *app) adminInit(o adminInitOptions) error {
	// Everything that can be refused is checked before any key is generated or any file
	// written, so that a refusal leaves the key store and DIR exactly as they were.
	if strings.TrimSpace(o.out) == "" {
		return api.Errorf(api.CodeBadRequest, "--out DIR must not be empty")
	}
	roles := []*offlineRole{
		{role: tufrepo.RoleRoot, n: o.rootKeys, t: o.rootThreshold, flagN: "--root-keys", flagT: "--root-threshold"},
		{role: tufrepo.RoleTargets, n: o.targetsKeys, t: o.targetsThreshold, flagN: "--targets-keys", flagT: "--targets-threshold"},
		{role: tufrepo.RoleClaimed, n: o.claimedKeys, t: o.claimedThreshold, flagN: "--claimed-keys", flagT: "--claimed-threshold"},
	}
	for _, r := range roles {
		if r.n < 1 || r.n > maxAdminKeys {
			return api.Errorf(api.CodeInvalidThreshold, "%s %d: %s needs between 1 and %d keys", r.flagN, r.n, r.role, maxAdminKeys)
		}
		if r.t < 1 || r.t > r.n {
			return api.Errorf(api.CodeInvalidThreshold, "%s %d is not possible with %s %d: use 1 to %d", r.flagT, r.t, r.flagN, r.n, r.n)
		}
	}
	kt := tufrepo.KeyType(o.keyType)
	if kt != tufrepo.KeyEd25519 && kt != tufrepo.KeyECDSAP256 {
		return api.Errorf(api.CodeInvalidKey, "--key-type %q is not supported: use %s or %s", o.keyType, tufrepo.KeyEd25519, tufrepo.KeyECDSAP256)
	}
	online := []*onlineRole{
		{role: tufrepo.RoleTimestamp, flag: "--timestamp-key", arg: o.timestampKey},
		{role: tufrepo.RoleSnapshot, flag: "--snapshot-key", arg: o.snapshotKey},
		{role: tufrepo.RoleRecentlyClaimed, flag: "--recently-claimed-key", arg: o.recentlyClaimedKey},
	}
	for _, r := range online {
		k, err := parseOnlineKey(r.flag, r.arg)
		if err != nil {
			return err
		}
		r.key = k
	}
	if err := checkCeremonyDir(o.out); err != nil {
		return err
	}
	ks, err := a.keyStore()
	if err != nil {
		return err
	}
	prefix := strings.TrimRight(o.keyPrefix, "-")
	if prefix != "" {
		prefix += "-"
	}
	for _, r := range roles {
		for i := 1; i <= r.n; i++ {
			name := fmt.Sprintf("%s%s-%d", prefix, r.role, i)
			p, err := ks.path(name)
			if err != nil {
				return api.Wrap(api.CodeBadRequest, err, "--key-prefix %q gives the key name %q, which is not allowed", o.keyPrefix, name)
			}
			if _, err := os.Stat(p); err == nil {
				return api.Errorf(api.CodeBadRequest, "a key named %q already exists (%s): init never overwrites keys; use another --key-prefix", name, p)
			} else if !errors.Is(err, fs.ErrNotExist) {
				return fmt.Errorf("checking key %q: %w", name, err)
			}
			r.names = append(r.names, name)
		}
	}
	for i, x := range online {
		for _, y := range online[i+1:] {
			if tufrepo.KeyID(x.key) == tufrepo.KeyID(y.key) {
				a.notef("warning: %s and %s are the same key %s; separate keys limit what one stolen key can do\n", x.role, y.role, tufrepo.KeyID(x.key))
			}
		}
	}
	if o.rootThreshold == 1 {
		a.notef("warning: with --root-threshold 1, one stolen root key is enough to replace every key of the repository\n")
	}

	pass, err := a.passphrase("Passphrase for the new root, targets and claimed keys: ", true)
	if err != nil {
		return err
	}
	for _, r := range roles {
		for _, name := range r.names {
			priv, err := tufrepo.GenerateKey(kt)
			if err != nil {
				return fmt.Errorf("generating key %q: %w", name, err)
			}
			kf, err := tufrepo.EncryptKey(name, priv, pass, a.kdf())
			if err != nil {
				return fmt.Errorf("encrypting key %q: %w", name, err)
			}
			sv, err := tufrepo.NewSigner(priv)
			if err != nil {
				return fmt.Errorf("key %q: %w", name, err)
			}
			s, err := tufrepo.NewOnlineSigner(a.ctx, sv)
			if err != nil {
				return fmt.Errorf("key %q: %w", name, err)
			}
			r.keyFiles = append(r.keyFiles, kf)
			r.signers = append(r.signers, s)
		}
	}

	off, err := tufrepo.Ceremony(a.ctx, tufrepo.CeremonyConfig{
		RootSigners: roles[0].signers, RootThreshold: roles[0].t,
		TargetsSigners: roles[1].signers, TargetsThreshold: roles[1].t,
		ClaimedSigners: roles[2].signers, ClaimedThreshold: roles[2].t,
		Timestamp: online[0].key, Snapshot: online[1].key, RecentlyClaimed: online[2].key,
		Now: a.now(),
	})
	if err != nil {
		return fmt.Errorf("root ceremony: %w", err)
	}
	if err := tufrepo.VerifyOffline(off); err != nil {
		return fmt.Errorf("root ceremony: the metadata just signed does not verify, nothing was written: %w", err)
	}
	if err := checkCeremonyOutput(off, roles, online); err != nil {
		return fmt.Errorf("root ceremony: nothing was written: %w", err)
	}

	// Keys first: metadata without the keys that signed it could never be changed.
	var saved []string
	undoKeys := func() {
		for _, p := range saved {
			os.Remove(p)
		}
	}
	keyPaths := map[string]string{}
	for _, r := range roles {
		for _, kf := range r.keyFiles {
			p, err := ks.Save(kf)
			if err != nil {
				undoKeys()
				return fmt.Errorf("%w (no key was kept and no metadata written)", err)
			}
			saved = append(saved, p)
			keyPaths[kf.Name] = p
		}
	}
	files := []struct {
		name string
		data []byte
	}{{"1.root.json", off.Root}, {"1.targets.json", off.Targets}, {"1.claimed.json", off.Claimed}}
	if err := os.MkdirAll(o.out, 0o755); err != nil {
		undoKeys()
		return fmt.Errorf("creating %s (no key was kept): %w", o.out, err)
	}
	var written []string
	res := adminInitResult{Dir: o.out}
	for _, f := range files {
		p := filepath.Join(o.out, f.name)
		if err := writeNewFile(p, f.data, 0o644); err != nil {
			for _, w := range written {
				os.Remove(w)
			}
			undoKeys()
			return fmt.Errorf("%w (no key was kept and no metadata written)", err)
		}
		written = append(written, p)
		sum := sha256.Sum256(f.data)
		res.Files = append(res.Files, adminInitFile{Path: p, SHA256: hex.EncodeToString(sum[:]), Length: len(f.data)})
	}

	for _, r := range roles {
		ar := adminInitRole{Role: r.role, Threshold: r.t, Expires: r.expiresAt}
		for _, kf := range r.keyFiles {
			info, err := describeKey(kf)
			if err != nil {
				return err
			}
			ar.Keys = append(ar.Keys, info)
			ar.KeyFiles = append(ar.KeyFiles, keyPaths[kf.Name])
		}
		res.Offline = append(res.Offline, ar)
	}
	every := map[string]time.Duration{tufrepo.RoleTimestamp: tufrepo.TimestampExpiry, tufrepo.RoleSnapshot: tufrepo.SnapshotExpiry, tufrepo.RoleRecentlyClaimed: tufrepo.RecentlyClaimedExpiry}
	for _, r := range online {
		fp, err := tufrepo.Fingerprint(r.key)
		if err != nil {
			return fmt.Errorf("%s key: %w", r.role, err)
		}
		res.Online = append(res.Online, adminInitOnlineKey{Role: r.role, KeyID: tufrepo.KeyID(r.key), Fingerprint: fp, Expiry: humanDuration(every[r.role])})
	}
	res.Next = fmt.Sprintf("cairnd bootstrap --metadata %s --timestamp-key TIMESTAMP_KEY_URI --snapshot-key SNAPSHOT_KEY_URI --recently-claimed-key RECENTLY_CLAIMED_KEY_URI", shellQuote(o.out))
	if o.output == "json" {
		return a.printJSON(res)
	}
	a.printAdminInit(res)
	return nil
}

func (a *app) printAdminInit(res adminInitResult) {
	a.printf("Signed version 1 of a new repository's root, targets and claimed metadata:\n")
	tw := tabwriter.NewWriter(a.stdout, 0, 4, 2, ' ', 0)
	for _, f := range res.Files {
		fmt.Fprintf(tw, "  %s\t%d bytes\tsha256 %s\n", f.Path, f.Length, f.SHA256)
	}
	tw.Flush()
	for _, r := range res.Offline {
		a.printf("\n%s: %d of these %d offline keys must sign it; version 1 expires %s\n", r.Role, r.Threshold, len(r.Keys), r.Expires.UTC().Format("2006-01-02 15:04 MST"))
		tw := tabwriter.NewWriter(a.stdout, 0, 4, 2, ' ', 0)
		for i, k := range r.Keys {
			fmt.Fprintf(tw, "  %s\tkey ID %s\tfingerprint %s\t%s\n", k.Name, k.KeyID, k.Fingerprint, r.KeyFiles[i])
		}
		tw.Flush()
	}
	a.printf("\nOnline keys (held by the server; root and targets delegate to them):\n")
	tw = tabwriter.NewWriter(a.stdout, 0, 4, 2, ' ', 0)
	for _, k := range res.Online {
		fmt.Fprintf(tw, "  %s\tkey ID %s\tfingerprint %s\tthe server re-signs it, valid %s at a time\n", k.Role, k.KeyID, k.Fingerprint, k.Expiry)
	}
	tw.Flush()
	a.printf(`
Next:
  1. Copy %s to the server and load it there, with the URIs of the three online keys
     above (the ones you gave to 'cairnd keys public'):
       %s
  2. Give %s to your users through a channel they trust; they pin it with
       cairn init --server URL --root 1.root.json
  3. Hand each offline key to its holder and back it up: keys and passphrase are needed
     to sign new versions before the offline metadata expires.
`, res.Dir, res.Next, res.Files[0].Path)
}

// parseOnlineKey reads the public key of an online role given to flag: inline JSON or a
// file holding the JSON that 'cairnd keys public' prints (a whole Cairn key file is also
// accepted, and only its public half read). It is validated as the server would.
func parseOnlineKey(flag, arg string) (*metadata.Key, error) {
	how := "the JSON printed by 'cairnd keys public --key URI' on the server, as a file or inline"
	var data []byte
	switch trimmed := strings.TrimSpace(arg); {
	case trimmed == "":
		return nil, api.Errorf(api.CodeBadRequest, "%s is required: %s", flag, how)
	case strings.HasPrefix(trimmed, "{"):
		data = []byte(trimmed)
	default:
		b, err := os.ReadFile(arg)
		if err != nil {
			return nil, api.Errorf(api.CodeInvalidKey, "%s %q is neither inline JSON nor a readable file (%v): give %s", flag, arg, err, how)
		}
		data = b
	}
	var k struct {
		KeyType string `json:"keytype"`
		Scheme  string `json:"scheme"`
		KeyVal  struct {
			Public  string `json:"public"`
			Private string `json:"private"`
		} `json:"keyval"`
		Public *api.Key `json:"public"` // a whole Cairn key file
	}
	if err := tufrepo.CheckJSONFields(data, fmt.Sprintf("%s %.60q", flag, arg), strictjson.FieldsOf(k, tufrepo.KeyFile{}), api.CodeInvalidKey); err != nil {
		return nil, err
	}
	if err := json.Unmarshal(data, &k); err != nil {
		return nil, api.Errorf(api.CodeInvalidKey, "%s %.60q is not valid JSON (%v): give %s", flag, arg, err, how)
	}
	if k.KeyVal.Private != "" {
		return nil, api.Errorf(api.CodeInvalidKey, "%s holds a private key: online private keys stay on the server; give %s", flag, how)
	}
	var wire api.Key
	wire.KeyType, wire.Scheme, wire.KeyVal.Public = k.KeyType, k.Scheme, k.KeyVal.Public
	if wire.KeyType == "" && k.Public != nil {
		wire = *k.Public
	}
	if wire.KeyType == "" && wire.Scheme == "" && wire.KeyVal.Public == "" {
		return nil, api.Errorf(api.CodeInvalidKey, "%s %.60q is not a public key: give %s", flag, arg, how)
	}
	mk, err := tufrepo.KeyFromAPI(wire)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", flag, err)
	}
	return mk, nil
}

// ceremonyFile matches the names of TUF metadata files that a ceremony directory must not
// already hold.
var ceremonyFile = regexp.MustCompile(`^([0-9]+\.)?(root|targets|claimed|recently-claimed|snapshot|timestamp)\.json$`)

// checkCeremonyDir refuses a --out that is not a directory or already holds metadata, so
// that the output of an earlier ceremony is never overwritten or mixed with a new one.
func checkCeremonyDir(dir string) error {
	st, err := os.Stat(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("checking --out %s: %w", dir, err)
	}
	if !st.IsDir() {
		return api.Errorf(api.CodeBadRequest, "--out %s is not a directory", dir)
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("checking --out %s: %w", dir, err)
	}
	for _, e := range entries {
		if ceremonyFile.MatchString(e.Name()) {
			return api.Errorf(api.CodeBadRequest, "--out %s already holds TUF metadata (%s): init never overwrites a ceremony's output; choose a new directory", dir, e.Name())
		}
	}
	return nil
}

// checkCeremonyOutput checks, beyond VerifyOffline's signatures, that the metadata says
// what was asked for: thresholds, the generated keys and the online keys. It records each
// offline role's expiry.
func checkCeremonyOutput(off *tufrepo.OfflineMetadata, roles []*offlineRole, online []*onlineRole) error {
	root, err := metadata.Root().FromBytes(off.Root)
	if err != nil {
		return err
	}
	targets, err := metadata.Targets().FromBytes(off.Targets)
	if err != nil {
		return err
	}
	claimed, err := metadata.Targets().FromBytes(off.Claimed)
	if err != nil {
		return err
	}
	if !root.Signed.ConsistentSnapshot || root.Signed.Version != 1 || targets.Signed.Version != 1 || claimed.Signed.Version != 1 {
		return errors.New("the metadata is not version 1 with consistent snapshots")
	}
	ids := func(r *offlineRole) []string {
		var out []string
		for _, s := range r.signers {
			out = append(out, s.KeyID)
		}
		return out
	}
	sameSet := func(a, b []string) bool {
		if len(a) != len(b) {
			return false
		}
		m := map[string]bool{}
		for _, x := range a {
			m[x] = true
		}
		for _, x := range b {
			if !m[x] {
				return false
			}
		}
		return true
	}
	for _, r := range roles[:2] {
		rr := root.Signed.Roles[r.role]
		if rr == nil || rr.Threshold != r.t || !sameSet(rr.KeyIDs, ids(r)) {
			return fmt.Errorf("root does not delegate %s to the generated keys with threshold %d", r.role, r.t)
		}
	}
	for _, r := range online[:2] {
		rr := root.Signed.Roles[r.role]
		if rr == nil || !sameSet(rr.KeyIDs, []string{tufrepo.KeyID(r.key)}) {
			return fmt.Errorf("root does not delegate %s to the key given", r.role)
		}
	}
	found := map[string]bool{}
	if targets.Signed.Delegations != nil {
		for _, d := range targets.Signed.Delegations.Roles {
			switch d.Name {
			case tufrepo.RoleClaimed:
				found[d.Name] = d.Threshold == roles[2].t && sameSet(d.KeyIDs, ids(roles[2]))
			case tufrepo.RoleRecentlyClaimed:
				found[d.Name] = sameSet(d.KeyIDs, []string{tufrepo.KeyID(online[2].key)})
			}
		}
	}
	if !found[tufrepo.RoleClaimed] || !found[tufrepo.RoleRecentlyClaimed] {
		return errors.New("targets does not delegate claimed and recently-claimed to the keys given")
	}
	roles[0].expiresAt, roles[1].expiresAt, roles[2].expiresAt = root.Signed.Expires, targets.Signed.Expires, claimed.Signed.Expires
	return nil
}

// writeNewFile writes data to a file that must not exist yet, synced, and never seen
// half-written (writeFileExclusive).
func writeNewFile(path string, data []byte, mode os.FileMode) error {
	err := writeFileExclusive(path, data, mode)
	if errors.Is(err, fs.ErrExist) {
		return api.Errorf(api.CodeBadRequest, "%s already exists: init never overwrites a ceremony's output", path)
	}
	return err
}

func humanDuration(d time.Duration) string {
	if d%(24*time.Hour) == 0 {
		if days := d / (24 * time.Hour); days == 1 {
			return "1 day"
		} else {
			return fmt.Sprintf("%d days", days)
		}
	}
	return d.String()
}

// shellQuote quotes s for a POSIX shell when it needs it.
func shellQuote(s string) string {
	if s != "" && strings.Trim(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_./:=@%+,") == "" {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
