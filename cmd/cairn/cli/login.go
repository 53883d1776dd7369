package cli

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/cairn-dev/cairn/api"
	"github.com/cairn-dev/cairn/client"
	"github.com/spf13/cobra"
	"github.com/zalando/go-keyring"
	"golang.org/x/term"
)

func (a *app) loginCommand() *cobra.Command {
	var tokenStdin bool
	cmd := &cobra.Command{
		Use:   "login [SERVER]",
		Short: "Store an API token for a server, for every later command that writes",
		Long: `login stores the API token the server's operators gave you, so that uploads,
yanks and every other write to SERVER use it without --token or $CAIRN_TOKEN.

SERVER defaults to --server, $CAIRN_SERVER, else the server 'cairn init' configured.
The token is read from a prompt on the terminal (not echoed), or from standard input
with --token-stdin, never from the command line: other users of the machine can read a
command line in ps output.

The token goes into the OS keyring where one is usable (macOS Keychain, Windows
Credential Manager, the Secret Service of a Linux desktop: GNOME Keyring, KWallet), else
into $CAIRN_HOME/credentials.json with mode 0600 (a server, a container, CI: a Linux
machine without a D-Bus session bus). $CAIRN_CREDENTIAL_STORE=keyring or file forces
one. --token and $CAIRN_TOKEN still win over the stored token.`,
		Example: `  # Paste the token at the prompt
  cairn login https://cairn.example.org
  # From a file or a secret manager, in a script
  cairn login --token-stdin https://cairn.example.org < cairn.token`,
		Args: cobra.MaximumNArgs(1),
		RunE: run(func(cmd *cobra.Command, args []string) error {
			if a.token != "" {
				return api.Errorf(api.CodeBadRequest, "cairn login does not take --token: other users can read it in ps output; pipe the token in with --token-stdin, or type it at the prompt")
			}
			home, server, err := a.loginServer(args)
			if err != nil {
				return err
			}
			store, err := a.credentialStore()
			if err != nil {
				return err
			}
			if store == credKeyring && !a.keyringPresent() {
				return api.Errorf(api.CodeBadRequest, "$CAIRN_CREDENTIAL_STORE=keyring, but this session has no OS keyring (no D-Bus session bus: $DBUS_SESSION_BUS_ADDRESS is empty); unset it to store the token in a 0600 file")
			}
			token, err := a.readToken(server, tokenStdin)
			if err != nil {
				return err
			}
			where, err := a.storeToken(home, server, token, store)
			if err != nil {
				return err
			}
			a.printf("Stored the API token for %s in %s.\n", server, where)
			if a.env("CAIRN_TOKEN") != "" {
				a.notef("note: $CAIRN_TOKEN is set, and wins over the stored token until you unset it.\n")
			}
			return nil
		}),
	}
	cmd.Flags().BoolVar(&tokenStdin, "token-stdin", false, "read the token from standard input (one line) instead of a prompt")
	return cmd
}

func (a *app) logoutCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "logout [SERVER]",
		Short: "Remove the API token 'cairn login' stored for a server",
		Long: `logout removes the token stored for SERVER (default: --server, $CAIRN_SERVER,
else the configured server) from the OS keyring and from $CAIRN_HOME/credentials.json.
It does not revoke the token on the server: ask its operators to ('cairnd token revoke').`,
		Example: `  cairn logout https://cairn.example.org`,
		Args:    cobra.MaximumNArgs(1),
		RunE: run(func(cmd *cobra.Command, args []string) error {
			home, server, err := a.loginServer(args)
			if err != nil {
				return err
			}
			store, err := a.credentialStore()
			if err != nil {
				return err
			}
			var removed []string
			if store != credFile && a.keyringPresent() {
				switch err := keyringDelete(server); {
				case err == nil:
					removed = append(removed, "the OS keyring")
				case errors.Is(err, keyring.ErrNotFound):
				case store == credKeyring:
					return fmt.Errorf("removing the token for %s from the OS keyring: %w", server, err)
				default:
					a.notef("note: could not reach the OS keyring (%v); checked the file only.\n", err)
				}
			}
			if store != credKeyring {
				c, err := loadCredentials(home)
				if err != nil {
					return err
				}
				if _, ok := c.Tokens[server]; ok {
					delete(c.Tokens, server)
					if err := saveCredentials(home, c); err != nil {
						return err
					}
					removed = append(removed, credentialsPath(home))
				}
			}
			if len(removed) == 0 {
				a.printf("No token was stored for %s.\n", server)
				return nil
			}
			a.printf("Removed the API token for %s from %s.\n", server, strings.Join(removed, " and "))
			return nil
		}),
	}
}

// loginServer is the home and the server login and logout are about: the argument, else
// --server, $CAIRN_SERVER or the configured server, as every command picks it, so that
// the stored token is found under the same URL later.
func (a *app) loginServer(args []string) (home, server string, err error) {
	home, err = a.home()
	if err != nil {
		return "", "", err
	}
	if len(args) == 1 {
		u, err := client.ParseServerURL(args[0])
		if err != nil {
			return "", "", err
		}
		return home, u.String(), nil
	}
	cfg, err := LoadConfig(home)
	if err != nil {
		return "", "", err
	}
	server, err = a.serverURL(cfg)
	return home, server, err
}

// readToken reads the token from stdin (--token-stdin) or a prompt on the terminal.
func (a *app) readToken(server string, fromStdin bool) (string, error) {
	var raw []byte
	if fromStdin {
		b, err := io.ReadAll(io.LimitReader(a.stdin, maxToken+1))
		if err != nil {
			return "", fmt.Errorf("reading the token from standard input: %w", err)
		}
		if len(b) > maxToken {
			return "", api.Errorf(api.CodeBadRequest, "standard input has more than %d bytes, so it is not an API token; nothing was stored", maxToken)
		}
		raw = b
	} else {
		f, ok := a.stdin.(*os.File)
		if !ok || !term.IsTerminal(int(f.Fd())) {
			return "", api.Errorf(api.CodeBadRequest, "standard input is not a terminal to prompt on: pipe the token in with --token-stdin (cairn login --token-stdin %s < FILE)", server)
		}
		a.notef("API token for %s: ", server)
		b, err := term.ReadPassword(int(f.Fd()))
		a.notef("\n")
		if err != nil {
			return "", fmt.Errorf("reading the token: %w", err)
		}
		raw = b
	}
	tok := string(bytes.TrimSpace(raw))
	switch {
	case tok == "":
		return "", api.Errorf(api.CodeBadRequest, "the token is empty; nothing was stored")
	case strings.ContainsFunc(tok, func(r rune) bool { return r <= ' ' || r == 0x7f }):
		return "", api.Errorf(api.CodeBadRequest, "the token has spaces, line breaks or control characters inside it: give one token, on one line; nothing was stored")
	}
	return tok, nil
}

// storeToken puts token in the keyring when store allows and one is usable, else in the
// credentials file, and returns where it went. Only one place holds a server's token, so
// that logout and a later login cannot leave an old one behind that wins.
func (a *app) storeToken(home, server, token string, store credentialStore) (string, error) {
	c, err := loadCredentials(home)
	if err != nil {
		return "", err
	}
	if store != credFile && a.keyringPresent() {
		kerr := keyringSet(server, token)
		if kerr == nil {
			if _, ok := c.Tokens[server]; ok {
				delete(c.Tokens, server)
				if err := saveCredentials(home, c); err != nil {
					return "", err
				}
			}
			return "the OS keyring", nil
		}
		if store == credKeyring {
			return "", fmt.Errorf("storing the token in the OS keyring (nothing was stored): %w", kerr)
		}
		a.notef("note: the OS keyring is not usable (%v); using a file instead.\n", kerr)
	}
	c.Tokens[server] = token
	if err := saveCredentials(home, c); err != nil {
		return "", err
	}
	if store != credFile && a.keyringPresent() {
		// An older token in the keyring would win over the file's: remove it.
		keyringDelete(server)
	}
	return credentialsPath(home) + " (mode 0600)", nil
}
