package cli

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/cairn-dev/cairn/api"
	"github.com/cairn-dev/cairn/internal/strictjson"
	"github.com/cairn-dev/cairn/tufrepo"
	"github.com/spf13/cobra"
	"github.com/theupdateframework/go-tuf/v2/metadata"
)

// KeyStore is the directory of a user's encrypted signing keys, one
// tufrepo.KeyFile per "<name>.json", mode 0600.
type KeyStore struct{ Dir string }

// keyStore returns the key store in the data directory, after moving in the keys of the
// old place (dirs.go).
func (a *app) keyStore() (KeyStore, error) {
	d, err := a.dirs()
	if err != nil {
		return KeyStore{}, err
	}
	a.migrateKeys(d)
	return KeyStore{Dir: filepath.Join(d.Data, "keys")}, nil
}

// maxKeyName bounds key names, which become file names.
const maxKeyName = 64

func (s KeyStore) path(name string) (string, error) {
	if err := tufrepo.ValidateComponent("key name", name, maxKeyName); err != nil {
		// Say the whole name (bounded), and what to do if it is a key file's path, the
		// commonest reason for a name with a "/" in it.
		shown := name
		if len(shown) > 4*maxKeyName {
			shown = shown[:4*maxKeyName] + "…"
		}
		if st, serr := os.Stat(name); serr == nil && !st.IsDir() {
			return "", api.Errorf(api.CodeInvalidName, "%q is a file, but --key takes the name of a key in your key store (%s): import the file first with 'cairn key import %s --name NAME', then give --key NAME", shown, s.Dir, name)
		}
		return "", api.Errorf(api.CodeInvalidName, "key name %q is not allowed: use 1 to %d of A-Z a-z 0-9 . _ + -, starting with a letter or digit ('cairn key list' shows your keys)", shown, maxKeyName)
	}
	return filepath.Join(s.Dir, name+".json"), nil
}

// notFound is the error for a key name that is not in the store.
func (s KeyStore) notFound(name string) error {
	return api.Errorf(api.CodeNotFound, "there is no key named %q in %s: 'cairn key list' shows the keys there; add one with 'cairn key generate --name %s', or import a key file (yours, or a cairnd --dev key such as <data-dir>/keys/root.json) with 'cairn key import FILE --name %s'", name, s.Dir, name, name)
}

// Load reads the key named name.
func (s KeyStore) Load(name string) (*tufrepo.KeyFile, error) {
	p, err := s.path(name)
	if err != nil {
		return nil, err
	}
	b, err := os.ReadFile(p)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, s.notFound(name)
	}
	if err != nil {
		return nil, fmt.Errorf("reading key %q: %w", name, err)
	}
	kf, err := tufrepo.ParseKeyFile(b)
	if err != nil {
		return nil, api.Wrap(api.CodeInvalidKey, err, "key file %s is damaged: %v", p, err)
	}
	if kf.Name == "" {
		kf.Name = name
	}
	return kf, nil
}

// Save writes a new key file; it never overwrites an existing key.
func (s KeyStore) Save(kf *tufrepo.KeyFile) (string, error) {
	p, err := s.path(kf.Name)
	if err != nil {
		return "", err
	}
	b, err := json.MarshalIndent(kf, "", "  ")
	if err != nil {
		return "", err
	}
	// Synced and linked into place: a crash or a full disk never leaves a half-written
	// private key, and an existing key is never overwritten.
	err = writeFileExclusive(p, append(b, '\n'), 0o600)
	if errors.Is(err, fs.ErrExist) {
		return "", api.Errorf(api.CodeBadRequest, "a key named %q already exists (%s); choose another name", kf.Name, p)
	}
	if err != nil {
		return "", fmt.Errorf("writing key %q: %w", kf.Name, err)
	}
	return p, nil
}

// List returns every key, by name.
func (s KeyStore) List() ([]*tufrepo.KeyFile, error) {
	entries, err := os.ReadDir(s.Dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("listing keys: %w", err)
	}
	var out []*tufrepo.KeyFile
	for _, e := range entries {
		name, ok := strings.CutSuffix(e.Name(), ".json")
		if !ok || e.IsDir() || strings.HasPrefix(name, ".") {
			continue
		}
		kf, err := s.Load(name)
		if err != nil {
			return nil, err
		}
		out = append(out, kf)
	}
	slices.SortFunc(out, func(x, y *tufrepo.KeyFile) int { return strings.Compare(x.Name, y.Name) })
	return out, nil
}

// kdf is the key-encryption cost: standard scrypt, or the cheap legacy parameters when
// CAIRN_KDF=fast (for tests, where standard scrypt would dominate the run time).
func (a *app) kdf() tufrepo.KDFStrength {
	if a.env("CAIRN_KDF") == "fast" {
		return tufrepo.KDFFast
	}
	return tufrepo.KDFStandard
}

// keyInfo is one key as 'cairn key list --output json' prints it.
type keyInfo struct {
	Name        string  `json:"name"`
	KeyID       string  `json:"keyid"`
	Fingerprint string  `json:"fingerprint"`
	Public      api.Key `json:"public"`
}

func describeKey(kf *tufrepo.KeyFile) (keyInfo, error) {
	k, err := kf.TUFKey()
	if err != nil {
		return keyInfo{}, fmt.Errorf("key %q: %w", kf.Name, err)
	}
	fp, err := tufrepo.Fingerprint(k)
	if err != nil {
		return keyInfo{}, fmt.Errorf("key %q: %w", kf.Name, err)
	}
	return keyInfo{Name: kf.Name, KeyID: kf.KeyID, Fingerprint: fp, Public: kf.Public}, nil
}

func (a *app) keyCommand() *cobra.Command {
	cmd := &cobra.Command{Use: "key", Short: "Create, import, list and export signing keys"}
	cmd.AddCommand(a.keyGenerateCommand(), a.keyImportCommand(), a.keyListCommand(), a.keyExportCommand())
	return cmd
}

func (a *app) keyGenerateCommand() *cobra.Command {
	var name, typ string
	cmd := &cobra.Command{
		Use:   "generate --name NAME [--type ed25519|ecdsa-p256]",
		Short: "Generate a signing key, encrypted with a passphrase",
		Args:  cobra.NoArgs,
		RunE: run(func(cmd *cobra.Command, _ []string) error {
			ks, err := a.newKeyName(name, "choose another name")
			if err != nil {
				return err
			}
			kt := tufrepo.KeyType(typ)
			if kt != tufrepo.KeyEd25519 && kt != tufrepo.KeyECDSAP256 {
				return api.Errorf(api.CodeInvalidKey, "key type %q is not supported: use %s or %s", typ, tufrepo.KeyEd25519, tufrepo.KeyECDSAP256)
			}
			pass, err := a.keyPassphrase(name, fmt.Sprintf("Passphrase for new key %q: ", name), true)
			if err != nil {
				return err
			}
			priv, err := tufrepo.GenerateKey(kt)
			if err != nil {
				return fmt.Errorf("generating key: %w", err)
			}
			kf, err := tufrepo.EncryptKey(name, priv, pass, a.kdf())
			if err != nil {
				return fmt.Errorf("encrypting key: %w", err)
			}
			path, err := ks.Save(kf)
			if err != nil {
				return err
			}
			info, err := describeKey(kf)
			if err != nil {
				return err
			}
			a.printf("Generated %s key %q\n  key ID:      %s\n  fingerprint: %s\n  file:        %s\n", kt, name, info.KeyID, info.Fingerprint, path)
			a.notef("Give maintainers and admins the public key: cairn key export --public %s\n", name)
			return nil
		}),
	}
	cmd.Flags().StringVar(&name, "name", "", "name of the key (required)")
	cmd.Flags().StringVar(&typ, "type", string(tufrepo.KeyEd25519), "key type: ed25519 or ecdsa-p256")
	cmd.MarkFlagRequired("name")
	return cmd
}

// newKeyName opens the key store and checks that name is a valid key name no key has yet
// (key generate, key import): a key is never overwritten; advice says what to do instead.
func (a *app) newKeyName(name, advice string) (KeyStore, error) {
	ks, err := a.keyStore()
	if err != nil {
		return ks, err
	}
	p, err := ks.path(name)
	if err != nil {
		return ks, err
	}
	if _, err := os.Stat(p); err == nil {
		return ks, api.Errorf(api.CodeBadRequest, "a key named %q already exists (%s); %s", name, p, advice)
	}
	return ks, nil
}

// maxKeyFile bounds a key file read by 'cairn key import': real ones are under 1 KiB.
const maxKeyFile = 64 << 10

func (a *app) keyImportCommand() *cobra.Command {
	var name string
	cmd := &cobra.Command{
		Use:   "import FILE --name NAME",
		Short: "Add an encrypted key file to your key store (e.g. a cairnd --dev offline key)",
		Long: `import copies an encrypted key file into your key store under NAME, so that commands
taking --key NAME can sign with it. The file stays encrypted with the passphrase it was
made with: for the keys that 'cairnd serve --dev' writes (<data-dir>/keys/root.json,
targets.json, claimed.json, …) that is the content of <data-dir>/keys/passphrase, e.g.

  cairn key import .data/dev/keys/root.json --name dev-root
  cairn admin … --key dev-root --passphrase-file dev-root=.data/dev/keys/passphrase

An existing key is never overwritten, and a file that is not a Cairn key file (or whose
public key does not match its key ID) is refused.`,
		Args: cobra.ExactArgs(1),
		RunE: run(func(cmd *cobra.Command, args []string) error {
			ks, err := a.newKeyName(name, "import under another --name")
			if err != nil {
				return err
			}
			kf, err := readKeyFile(args[0])
			if err != nil {
				return err
			}
			kf.Name = name
			path, err := ks.Save(kf)
			if err != nil {
				return err
			}
			info, err := describeKey(kf)
			if err != nil {
				return err
			}
			a.printf("Imported %s key %q from %s\n  key ID:      %s\n  fingerprint: %s\n  file:        %s\n", kf.Public.KeyType, name, args[0], info.KeyID, info.Fingerprint, path)
			a.notef("Its passphrase is the one the file was encrypted with: give it with %s=… or --passphrase-file %s=FILE\n", passphraseEnv(name), name)
			return nil
		}),
	}
	cmd.Flags().StringVar(&name, "name", "", "name of the key in your key store (required)")
	cmd.MarkFlagRequired("name")
	return cmd
}

// readKeyFile reads and checks a key file to import: a Cairn key file whose key ID is
// the ID of its public key, so that a damaged or mixed-up file is refused now rather than
// when it signs.
func readKeyFile(file string) (*tufrepo.KeyFile, error) {
	f, err := os.Open(file)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, api.Errorf(api.CodeNotFound, "key file %s does not exist", file)
	}
	if err != nil {
		return nil, fmt.Errorf("reading key file: %w", err)
	}
	defer f.Close()
	if st, err := f.Stat(); err == nil && st.IsDir() {
		return nil, api.Errorf(api.CodeBadRequest, "%s is a directory: give one key file in it (e.g. %s)", file, filepath.Join(file, "root.json"))
	}
	b, err := io.ReadAll(io.LimitReader(f, maxKeyFile+1))
	if err != nil {
		return nil, fmt.Errorf("reading key file %s: %w", file, err)
	}
	if len(b) > maxKeyFile {
		return nil, api.Errorf(api.CodeInvalidKey, "%s is larger than %d bytes: not a Cairn key file", file, maxKeyFile)
	}
	kf, err := tufrepo.ParseKeyFile(b)
	if err != nil {
		return nil, api.Wrap(api.CodeInvalidKey, err, "%s is not a Cairn key file (%v): import a file written by 'cairn key generate' or by 'cairnd serve --dev' (<data-dir>/keys/<role>.json); a public key alone cannot sign", file, err)
	}
	k, err := kf.TUFKey()
	if err != nil {
		return nil, api.Wrap(api.CodeInvalidKey, err, "key file %s: its public key is not usable: %v", file, err)
	}
	if id, err := k.ID(); err != nil || id != kf.KeyID {
		return nil, api.Errorf(api.CodeInvalidKey, "key file %s is damaged: it says key ID %s, but its public key's ID is %s", file, kf.KeyID, id)
	}
	return kf, nil
}

func (a *app) keyListCommand() *cobra.Command {
	var output string
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List your signing keys",
		Args:  cobra.NoArgs,
		RunE: run(func(cmd *cobra.Command, _ []string) error {
			ks, err := a.keyStore()
			if err != nil {
				return err
			}
			kfs, err := ks.List()
			if err != nil {
				return err
			}
			infos := make([]keyInfo, 0, len(kfs))
			for _, kf := range kfs {
				info, err := describeKey(kf)
				if err != nil {
					return err
				}
				infos = append(infos, info)
			}
			if output == "json" {
				return a.printJSON(infos)
			}
			if len(infos) == 0 {
				a.notef("No keys in %s; create one with 'cairn key generate --name NAME'.\n", ks.Dir)
				return nil
			}
			tw := a.table()
			fmt.Fprintln(tw, "NAME\tTYPE\tKEY ID\tFINGERPRINT")
			for _, k := range infos {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", k.Name, k.Public.KeyType, k.KeyID, k.Fingerprint)
			}
			return tw.Flush()
		}),
	}
	addOutputFlag(cmd, &output)
	return cmd
}

func (a *app) keyExportCommand() *cobra.Command {
	var public bool
	cmd := &cobra.Command{
		Use:   "export --public NAME",
		Short: "Print a key's public half as JSON, for 'cairn project create --maintainer'",
		Args:  cobra.ExactArgs(1),
		RunE: run(func(cmd *cobra.Command, args []string) error {
			if !public {
				return api.Errorf(api.CodeBadRequest, "only public keys can be exported; private keys stay in their encrypted key file")
			}
			kf, err := a.loadKey(args[0])
			if err != nil {
				return err
			}
			return a.printJSON(kf.Public)
		}),
	}
	cmd.Flags().BoolVar(&public, "public", true, "export the public key (the only kind that can be exported)")
	return cmd
}

// ParseMaintainerKey reads a public key given to --maintainer: inline JSON, a file
// holding the JSON of 'cairn key export --public' (or a whole key file), or the name of a
// key in the local key store. The key is validated as the server would.
func (a *app) parseMaintainerKey(arg string) (*metadata.Key, error) {
	var data []byte
	switch trimmed := strings.TrimSpace(arg); {
	case strings.HasPrefix(trimmed, "{"):
		data = []byte(trimmed)
	default:
		b, err := os.ReadFile(arg)
		switch {
		case err == nil:
			data = b
		case errors.Is(err, fs.ErrNotExist):
			ks, kerr := a.keyStore()
			if kerr != nil {
				return nil, kerr
			}
			if _, perr := ks.path(arg); perr == nil {
				if kf, lerr := ks.Load(arg); lerr == nil {
					return kf.TUFKey()
				}
			}
			return nil, api.Errorf(api.CodeInvalidKey, "maintainer key %q is not JSON, a file or a local key name", arg)
		default:
			return nil, fmt.Errorf("reading maintainer key %s: %w", arg, err)
		}
	}
	var k struct {
		api.Key
		Public *api.Key `json:"public"` // a whole key file
	}
	// A public key handed over by someone else: it must have one reading.
	if err := tufrepo.CheckJSONFields(data, fmt.Sprintf("maintainer key %.60q", arg), strictjson.FieldsOf(k, tufrepo.KeyFile{}), api.CodeInvalidKey); err != nil {
		return nil, err
	}
	if err := json.Unmarshal(data, &k); err != nil {
		return nil, api.Errorf(api.CodeInvalidKey, "maintainer key %.60q is not valid JSON: %v", arg, err)
	}
	wire := k.Key
	if wire.KeyType == "" && k.Public != nil {
		wire = *k.Public
	}
	mk, err := tufrepo.KeyFromAPI(wire)
	if err != nil {
		return nil, fmt.Errorf("maintainer key %.60q: %w", arg, err)
	}
	return mk, nil
}
