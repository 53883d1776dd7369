package tufrepo

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"strings"

	"github.com/sigstore/sigstore/pkg/signature"
)

// FileSignerFromURI opens an encrypted Cairn key file named by a file:// URI (package
// keyuri dispatches every other scheme):
//
//	file:///abs/path/key.json?passphrase-file=/abs/path   encrypted Cairn key file
//	file:///abs/path/key.json?passphrase-env=VAR          passphrase from VAR
//	file:///abs/path/key.json                             passphrase from CAIRN_KEY_PASSPHRASE
//
// getenv is injected so tests and the server decide where the environment comes from.
func FileSignerFromURI(ctx context.Context, uri string, getenv func(string) string) (signature.Signer, error) {
	u, err := url.Parse(uri)
	if err != nil {
		// Not %w: url.Error quotes the whole URI, which may carry a PIN or token.
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return nil, fmt.Errorf("parsing key URI: %v", err)
	}
	if u.Scheme != "file" {
		return nil, fmt.Errorf("key URI %q: scheme %q is not a key file: use file:///path/to/key.json", redactURI(u), u.Scheme)
	}
	return fileSigner(u, getenv)
}

func fileSigner(u *url.URL, getenv func(string) string) (signature.Signer, error) {
	path := u.Path
	if u.Host != "" || !strings.HasPrefix(path, "/") {
		return nil, fmt.Errorf("file key URI must be absolute: file:///path/to/key.json")
	}
	q := u.Query()
	var pass []byte
	switch {
	case q.Get("passphrase-file") != "":
		b, err := os.ReadFile(q.Get("passphrase-file"))
		if err != nil {
			return nil, fmt.Errorf("reading passphrase file for key %s: %w", path, err)
		}
		pass = []byte(strings.TrimRight(string(b), "\r\n"))
	default:
		env := q.Get("passphrase-env")
		if env == "" {
			env = "CAIRN_KEY_PASSPHRASE"
		}
		pass = []byte(getenv(env))
		if len(pass) == 0 {
			return nil, fmt.Errorf("key %s: no passphrase: set %s or add ?passphrase-file=", path, env)
		}
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading key file: %w", err)
	}
	kf, err := ParseKeyFile(data)
	if err != nil {
		return nil, fmt.Errorf("key %s: %w", path, err)
	}
	priv, err := kf.Decrypt(pass)
	if err != nil {
		return nil, fmt.Errorf("key %s: %w", path, err)
	}
	return NewSigner(priv)
}

// redactURI drops query parameters, which may carry PINs or passphrases, from logs.
func redactURI(u *url.URL) string {
	c := *u
	c.RawQuery = ""
	c.User = nil
	return c.String()
}
