package cli

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"time"

	"github.com/cairn-dev/cairn/api"
	"github.com/cairn-dev/cairn/internal/strictjson"
	"github.com/zalando/go-keyring"
)

// Where the API token of a command comes from, first match wins:
//
//  1. --token (discouraged: other users of the machine can read it in ps output);
//  2. $CAIRN_TOKEN;
//  3. what 'cairn login' stored for the server the command talks to: the OS keyring
//     (macOS Keychain, Windows Credential Manager, the Secret Service of a Linux desktop),
//     else the file <home>/credentials.json, mode 0600.
//
// Explicit sources win over the stored one, as GH_TOKEN does over 'gh auth login', so
// that a script can use another token without logging out.

// keyringService is the service name of cairn's entries in the OS keyring; the entry's
// user is the server URL.
const keyringService = "cairn"

// keyringTimeout bounds one keyring operation. A keyring that is locked may ask the user
// to unlock it in a dialog, which takes a while; a Secret Service that never answers must
// not hang cairn for ever: the file is used instead.
const keyringTimeout = 30 * time.Second

// maxToken bounds a token read from stdin or the credentials file: tokens are short lines.
const maxToken = 4 << 10

// credentialStore is where 'cairn login' puts tokens: "auto" (the default: the OS keyring
// where one is usable, else the file), "keyring" or "file", from $CAIRN_CREDENTIAL_STORE.
type credentialStore string

const (
	credAuto    credentialStore = "auto"
	credKeyring credentialStore = "keyring"
	credFile    credentialStore = "file"
)

func (a *app) credentialStore() (credentialStore, error) {
	switch s := credentialStore(a.env("CAIRN_CREDENTIAL_STORE")); s {
	case "", credAuto:
		return credAuto, nil
	case credKeyring, credFile:
		return s, nil
	default:
		return "", api.Errorf(api.CodeBadRequest, "$CAIRN_CREDENTIAL_STORE=%q: want auto, keyring or file", string(s))
	}
}

// keyringPresent says whether an OS keyring can exist for this process. macOS and
// Windows always have one; elsewhere the Secret Service is reached over the D-Bus session
// bus, which a headless machine (a server, a container, CI) does not have: there the
// file is used without trying, so cairn never starts a bus of its own.
func (a *app) keyringPresent() bool {
	switch runtime.GOOS {
	case "darwin", "windows":
		return true
	}
	return a.env("DBUS_SESSION_BUS_ADDRESS") != ""
}

// withKeyringTimeout runs f, a keyring operation, giving up after keyringTimeout.
func withKeyringTimeout[T any](f func() (T, error)) (T, error) {
	type result struct {
		v   T
		err error
	}
	ch := make(chan result, 1)
	go func() {
		v, err := f()
		ch <- result{v, err}
	}()
	select {
	case r := <-ch:
		return r.v, r.err
	case <-time.After(keyringTimeout):
		var zero T
		return zero, fmt.Errorf("the OS keyring did not answer within %s", keyringTimeout)
	}
}

func keyringGet(server string) (string, error) {
	return withKeyringTimeout(func() (string, error) { return keyring.Get(keyringService, server) })
}

func keyringSet(server, token string) error {
	_, err := withKeyringTimeout(func() (struct{}, error) { return struct{}{}, keyring.Set(keyringService, server, token) })
	return err
}

func keyringDelete(server string) error {
	_, err := withKeyringTimeout(func() (struct{}, error) { return struct{}{}, keyring.Delete(keyringService, server) })
	return err
}

// credentialsFile is <home>/credentials.json: server URL → token, for machines without a
// usable OS keyring. It holds secrets, so it is written 0600 and refused when others may
// read it, as ssh refuses a private key they may read.
type credentialsFile struct {
	Tokens map[string]string `json:"tokens"`
}

func credentialsPath(home string) string { return filepath.Join(home, "credentials.json") }

func loadCredentials(home string) (credentialsFile, error) {
	c := credentialsFile{Tokens: map[string]string{}}
	p := credentialsPath(home)
	f, err := os.Open(p)
	if errors.Is(err, fs.ErrNotExist) {
		return c, nil
	}
	if err != nil {
		return c, fmt.Errorf("reading the stored tokens: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return c, fmt.Errorf("reading the stored tokens: %w", err)
	}
	if runtime.GOOS != "windows" && st.Mode().Perm()&0o077 != 0 {
		return c, api.Errorf(api.CodeBadRequest, "%s holds API tokens but other users may read it (mode %04o): run 'chmod 600 %s', or 'cairn logout' and log in again", p, st.Mode().Perm(), p)
	}
	if st.Size() > 1<<20 {
		return c, api.Errorf(api.CodeBadRequest, "%s is larger than 1 MiB, so it is not cairn's token file: remove it and run 'cairn login' again", p)
	}
	b := make([]byte, st.Size())
	if _, err := f.ReadAt(b, 0); err != nil && st.Size() > 0 {
		return c, fmt.Errorf("reading the stored tokens: %w", err)
	}
	if err := strictjson.Check(b, strictjson.FieldsOf(c)); err != nil {
		return c, api.Errorf(api.CodeBadRequest, "%s is refused (%v): remove it and run 'cairn login' again", p, err)
	}
	// Unknown fields are refused too: a file this cairn does not fully understand (a newer
	// cairn's) must not be rewritten by it without them.
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&c); err != nil {
		return c, api.Errorf(api.CodeBadRequest, "%s is not cairn's token file as this version knows it (%v): remove it and run 'cairn login' again", p, err)
	}
	if c.Tokens == nil {
		c.Tokens = map[string]string{}
	}
	return c, nil
}

func saveCredentials(home string, c credentialsFile) error {
	if len(c.Tokens) == 0 {
		if err := os.Remove(credentialsPath(home)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("removing the stored tokens: %w", err)
		}
		return nil
	}
	b, err := json.MarshalIndent(c, "", "  ")
	if err != nil {
		return err
	}
	return writeFileAtomic(credentialsPath(home), append(b, '\n'), 0o600)
}

// storedToken is the token 'cairn login' stored for server, and where it was found ("the
// OS keyring" or the file's path); "" when there is none.
func (a *app) storedToken(home, server string) (token, where string, err error) {
	store, err := a.credentialStore()
	if err != nil {
		return "", "", err
	}
	if store != credFile && a.keyringPresent() {
		t, kerr := keyringGet(server)
		switch {
		case kerr == nil && t != "":
			return t, "the OS keyring", nil
		case kerr != nil && !errors.Is(kerr, keyring.ErrNotFound) && store == credKeyring:
			return "", "", fmt.Errorf("reading the token for %s from the OS keyring: %w", server, kerr)
		}
		// A keyring that cannot be read in auto mode is as good as empty: the file is
		// where login put the token when the keyring failed it.
	}
	if store == credKeyring {
		return "", "", nil
	}
	c, err := loadCredentials(home)
	if err != nil {
		return "", "", err
	}
	if t := c.Tokens[server]; t != "" {
		return t, credentialsPath(home), nil
	}
	return "", "", nil
}

// resolvedToken is the token of this invocation and where it came from, looked up once.
type resolvedToken struct {
	value, source string
}

// resolveToken finds the token (see the order above). A stored token that cannot be read
// (a damaged or too open credentials file) is an error, so that the user hears why, rather
// than being told there is no token.
func (a *app) resolveToken() (resolvedToken, error) {
	if a.tok != nil {
		return *a.tok, nil
	}
	var r resolvedToken
	switch {
	case a.token != "":
		r = resolvedToken{a.token, "--token"}
	case a.env("CAIRN_TOKEN") != "":
		r = resolvedToken{a.env("CAIRN_TOKEN"), "$CAIRN_TOKEN"}
	default:
		home, err := a.home()
		if err != nil {
			return r, err
		}
		cfg, err := LoadConfig(home)
		if err != nil {
			return r, err
		}
		server, err := a.serverURL(cfg)
		if err != nil {
			// No server, no stored token; the command reports the missing server itself.
			return r, nil
		}
		t, where, err := a.storedToken(home, server)
		if err != nil {
			return r, err
		}
		if t != "" {
			r = resolvedToken{t, fmt.Sprintf("'cairn login %s' (stored in %s)", server, where)}
		}
	}
	a.tok = &r
	return r, nil
}
