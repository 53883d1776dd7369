package cli

import (
	"bytes"
	"fmt"
	"os"

	"github.com/cairn-dev/cairn/api"
	"golang.org/x/term"
)

// passphrase returns $CAIRN_KEY_PASSPHRASE, or asks on the terminal (twice when confirm
// is set, so a typo cannot lock a new key away). Without either it refuses rather than
// reading a secret from a pipe by surprise.
func (a *app) passphrase(prompt string, confirm bool) ([]byte, error) {
	if p := a.env("CAIRN_KEY_PASSPHRASE"); p != "" {
		return []byte(p), nil
	}
	f, ok := a.stdin.(*os.File)
	if !ok || !term.IsTerminal(int(f.Fd())) {
		return nil, api.Errorf(api.CodeBadRequest, "a key passphrase is needed: set CAIRN_KEY_PASSPHRASE or run cairn in a terminal")
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
