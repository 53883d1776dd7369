package cli

import (
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/cairn-dev/cairn/api"
	"github.com/cairn-dev/cairn/tufrepo"
	"github.com/sigstore/sigstore/pkg/signature"
)

// The one way a command reads its signing keys (loadKey, loadKeys) and the one way it
// opens them to sign (openSigner, openSigners). Loading needs no passphrase, so that
// everything that can be refused without one is refused before the user is asked for it.

// loadKey reads key name from the key store, without its passphrase. The key file's Name
// is the name it was asked for, which is also the name its passphrase is found under.
func (a *app) loadKey(name string) (*tufrepo.KeyFile, error) {
	ks, err := a.keyStore()
	if err != nil {
		return nil, err
	}
	kf, err := ks.Load(name)
	if err != nil {
		return nil, err
	}
	kf.Name = name
	return kf, nil
}

// loadKeys reads the keys given by flag (repeatable), each key once even when it is
// named twice. No names is no keys; loadRequiredKeys refuses that.
func (a *app) loadKeys(flag string, names []string) ([]*tufrepo.KeyFile, error) {
	if len(names) == 0 {
		return nil, nil
	}
	ks, err := a.keyStore()
	if err != nil {
		return nil, err
	}
	var out []*tufrepo.KeyFile
	seen := map[string]bool{}
	for _, n := range names {
		kf, err := ks.Load(n)
		if err != nil {
			// Say which flag named the key: a command may take keys from several.
			return nil, fmt.Errorf("%s %s: %w", flag, n, err)
		}
		kf.Name = n
		if seen[kf.KeyID] {
			continue
		}
		seen[kf.KeyID] = true
		out = append(out, kf)
	}
	return out, nil
}

// loadRequiredKeys is loadKeys for a flag that must be given at least once.
func (a *app) loadRequiredKeys(flag string, names []string) ([]*tufrepo.KeyFile, error) {
	if len(names) == 0 {
		return nil, api.Errorf(api.CodeBadRequest, "%s is required", flag)
	}
	return a.loadKeys(flag, names)
}

// openSigner decrypts kf with its passphrase (passphrase.go says where that comes from).
// Decrypt checks that the private key is the key the file names, so that a damaged or
// mixed-up file is refused before it signs anything.
func (a *app) openSigner(kf *tufrepo.KeyFile) (*tufrepo.OnlineSigner, error) {
	name := kf.Name
	pass, err := a.keyPassphrase(name, fmt.Sprintf("Passphrase for key %q: ", name), false)
	if err != nil {
		return nil, err
	}
	priv, err := kf.Decrypt(pass)
	if errors.Is(err, tufrepo.ErrWrongPassphrase) {
		return nil, api.Errorf(api.CodeBadRequest, "wrong passphrase for key %q (or the key file is damaged); its passphrase comes from --passphrase-file %s=FILE, else $%s, else $CAIRN_KEY_PASSPHRASE, else a prompt", name, name, passphraseEnv(name))
	}
	if err != nil {
		return nil, api.Wrap(api.CodeInvalidKey, err, "key %q is damaged (%v): restore its file from your backup, or import the key again with 'cairn key import FILE --name %s'", name, err, name)
	}
	sv, err := tufrepo.NewSigner(priv)
	if err != nil {
		return nil, fmt.Errorf("opening key %q: %w", name, err)
	}
	s, err := tufrepo.NewOnlineSigner(a.ctx, sv)
	if err != nil {
		return nil, fmt.Errorf("opening key %q: %w", name, err)
	}
	return s, nil
}

// openSigners opens every key of kfs, in order.
func (a *app) openSigners(kfs []*tufrepo.KeyFile) ([]*tufrepo.OnlineSigner, error) {
	out := make([]*tufrepo.OnlineSigner, 0, len(kfs))
	for _, kf := range kfs {
		s, err := a.openSigner(kf)
		if err != nil {
			return nil, err
		}
		out = append(out, s)
	}
	return out, nil
}

// plainSigners returns the signature.Signer of each online signer, for the client
// functions that sign project metadata.
func plainSigners(ss []*tufrepo.OnlineSigner) []signature.Signer {
	out := make([]signature.Signer, len(ss))
	for i, o := range ss {
		out[i] = o.Signer
	}
	return out
}

// keyFileDamaged says that a key file's private key is not the key its key ID names.
func keyFileDamaged(name, fileKeyID, privateKeyID string) error {
	return api.Errorf(api.CodeInvalidKey, "key file %q says key ID %s, but its private key is %s: the key file is damaged", name, fileKeyID, privateKeyID)
}

// localKeyNames maps the key IDs of the local key store to their names. Keys that do not
// load are skipped: names are only for display.
func (a *app) localKeyNames() map[string]string {
	out := map[string]string{}
	ks, err := a.keyStore()
	if err != nil {
		return out
	}
	entries, err := os.ReadDir(ks.Dir)
	if err != nil {
		return out
	}
	for _, e := range entries {
		name, ok := strings.CutSuffix(e.Name(), ".json")
		if !ok || e.IsDir() || strings.HasPrefix(name, ".") {
			continue
		}
		if kf, err := ks.Load(name); err == nil {
			if _, dup := out[kf.KeyID]; !dup {
				out[kf.KeyID] = name
			}
		}
	}
	return out
}
