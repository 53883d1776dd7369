package cli

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strings"

	"github.com/cairn-dev/cairn/api"
	"golang.org/x/term"
)

// Where a key's passphrase comes from, first match wins:
//
//  1. --passphrase-file NAME=FILE (the file's content, one trailing newline removed);
//  2. $CAIRN_KEY_PASSPHRASE_<NAME>, NAME upper-cased with every character other than
//     A-Z and 0-9 turned into "_" (key "dev-root" reads CAIRN_KEY_PASSPHRASE_DEV_ROOT);
//  3. $CAIRN_KEY_PASSPHRASE, for every key;
//  4. a prompt, when stdin is a terminal.
//
// The per-key sources let one command sign with several keys that have different
// passphrases (project resign --key a --key b, admin commands with several root keys)
// without a terminal.

// maxPassphraseFile bounds a passphrase file: a passphrase is a line, not a document.
const maxPassphraseFile = 4 << 10

// passphraseEnv is the environment variable that holds key name's own passphrase.
func passphraseEnv(name string) string {
	b := []byte(strings.ToUpper(name))
	for i, c := range b {
		if (c < 'A' || c > 'Z') && (c < '0' || c > '9') {
			b[i] = '_'
		}
	}
	return "CAIRN_KEY_PASSPHRASE_" + string(b)
}

// passphraseFiles parses the --passphrase-file values into key name → file.
func (a *app) passphraseFiles() (map[string]string, error) {
	out := map[string]string{}
	for _, v := range a.passFiles {
		name, file, ok := strings.Cut(v, "=")
		if !ok || name == "" || file == "" {
			return nil, api.Errorf(api.CodeBadRequest, "--passphrase-file %q: want NAME=FILE, the key's name in your key store and the file holding its passphrase", v)
		}
		if prev, dup := out[name]; dup {
			return nil, api.Errorf(api.CodeBadRequest, "--passphrase-file names key %q twice (%s and %s)", name, prev, file)
		}
		out[name] = file
	}
	return out, nil
}

// keyPassphrase returns the passphrase of key name (see above for the sources).
func (a *app) keyPassphrase(name, prompt string, confirm bool) ([]byte, error) {
	files, err := a.passphraseFiles()
	if err != nil {
		return nil, err
	}
	if pass, _, err := a.givenPassphrase(name, files); err != nil || pass != nil {
		return pass, err
	}
	return a.askPassphrase(prompt, confirm, fmt.Sprintf("the passphrase of key %q is needed: give --passphrase-file %s=FILE, set %s (this key) or CAIRN_KEY_PASSPHRASE (every key), or run cairn in a terminal", name, name, passphraseEnv(name)))
}

// givenPassphrase returns key name's passphrase from the sources that need no terminal (1
// to 3 above; files is passphraseFiles), with the source for messages, or nil when none
// gives one. 'cairn doctor' checks keys with it, so it tells what signing would use.
func (a *app) givenPassphrase(name string, files map[string]string) (pass []byte, source string, err error) {
	if file, ok := files[name]; ok {
		p, err := readPassphraseFile(name, file)
		return p, "--passphrase-file " + name + "=" + file, err
	}
	if p := a.env(passphraseEnv(name)); p != "" {
		return []byte(p), "$" + passphraseEnv(name), nil
	}
	if p := a.env("CAIRN_KEY_PASSPHRASE"); p != "" {
		return []byte(p), "$CAIRN_KEY_PASSPHRASE", nil
	}
	return nil, "", nil
}

func readPassphraseFile(name, file string) ([]byte, error) {
	f, err := os.Open(file)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, api.Errorf(api.CodeNotFound, "--passphrase-file %s=%s: the file does not exist", name, file)
	}
	if err != nil {
		return nil, fmt.Errorf("--passphrase-file %s=%s: %w", name, file, err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxPassphraseFile+1))
	if err != nil {
		return nil, fmt.Errorf("--passphrase-file %s=%s: %w", name, file, err)
	}
	if len(b) > maxPassphraseFile {
		return nil, api.Errorf(api.CodeBadRequest, "--passphrase-file %s=%s: larger than %d bytes, so not a passphrase", name, file, maxPassphraseFile)
	}
	b = bytes.TrimSuffix(bytes.TrimSuffix(b, []byte("\n")), []byte("\r"))
	if len(b) == 0 {
		return nil, api.Errorf(api.CodeBadRequest, "--passphrase-file %s=%s: the file is empty", name, file)
	}
	return b, nil
}

// passphrase returns $CAIRN_KEY_PASSPHRASE, or asks on the terminal (twice when confirm
// is set, so a typo cannot lock a new key away). Without either it refuses rather than
// reading a secret from a pipe by surprise. For a passphrase of several new keys at once;
// a named key's goes through keyPassphrase.
func (a *app) passphrase(prompt string, confirm bool) ([]byte, error) {
	return a.askPassphrase(prompt, confirm, "a key passphrase is needed: set CAIRN_KEY_PASSPHRASE or run cairn in a terminal")
}

func (a *app) askPassphrase(prompt string, confirm bool, missing string) ([]byte, error) {
	if p := a.env("CAIRN_KEY_PASSPHRASE"); p != "" {
		return []byte(p), nil
	}
	f, ok := a.stdin.(*os.File)
	if !ok || !term.IsTerminal(int(f.Fd())) {
		return nil, api.Errorf(api.CodeBadRequest, "%s", missing)
	}
	read := func(p string) ([]byte, error) {
		a.notef("%s", p)
		b, err := term.ReadPassword(int(f.Fd()))
		a.notef("\n")
		if err != nil {
			return nil, fmt.Errorf("reading passphrase: %w", err)
		}
		return b, nil
	}
	p, err := read(prompt)
	if err != nil {
		return nil, err
	}
	if len(p) == 0 {
		return nil, api.Errorf(api.CodeBadRequest, "the passphrase is empty")
	}
	if confirm {
		again, err := read("Repeat passphrase: ")
		if err != nil {
			return nil, err
		}
		if !bytes.Equal(p, again) {
			return nil, api.Errorf(api.CodeBadRequest, "the passphrases do not match")
		}
	}
	return p, nil
}
