package cli

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"strings"

	"github.com/cairn-dev/cairn/api"
	"github.com/cairn-dev/cairn/client"
	"github.com/cairn-dev/cairn/internal/strictjson"
)

// Config is <home>/config.json, written by 'cairn init'.
type Config struct {
	// Server is the default server URL.
	Server string `json:"server"`
	// Root is the path of the pinned root metadata of Server, a copy kept in the home.
	Root string `json:"root"`
	// MirrorMaxStaleness bounds the age of a mirror's bundle for 'cairn get
	// --as-of-bundle' (a Go duration, e.g. "168h"); empty means 30 days.
	MirrorMaxStaleness string `json:"mirror_max_staleness,omitempty"`
}

// HomeDir resolves the configuration directory: $CAIRN_HOME, else $XDG_CONFIG_HOME/cairn,
// else $HOME/.config/cairn.
func HomeDir(env func(string) string) (string, error) {
	if h := env("CAIRN_HOME"); h != "" {
		return h, nil
	}
	if x := env("XDG_CONFIG_HOME"); x != "" {
		return filepath.Join(x, "cairn"), nil
	}
	h := env("HOME")
	if h == "" {
		var err error
		if h, err = os.UserHomeDir(); err != nil {
			return "", fmt.Errorf("finding the configuration directory: set CAIRN_HOME: %w", err)
		}
	}
	return filepath.Join(h, ".config", "cairn"), nil
}

func (a *app) home() (string, error) { return HomeDir(a.env) }

func configPath(home string) string { return filepath.Join(home, "config.json") }

// LoadConfig reads the configuration; a missing file is an empty Config.
func LoadConfig(home string) (Config, error) {
	var c Config
	b, err := os.ReadFile(configPath(home))
	if errors.Is(err, fs.ErrNotExist) {
		return c, nil
	}
	if err != nil {
		return c, fmt.Errorf("reading configuration: %w", err)
	}
	if err := strictjson.Check(b, strictjson.FieldsOf(c)); err != nil {
		return c, api.Errorf(api.CodeBadRequest, "configuration %s is refused (%v): fix it or run 'cairn init' again", configPath(home), err)
	}
	if err := json.Unmarshal(b, &c); err != nil {
		return c, api.Errorf(api.CodeBadRequest, "configuration %s is not valid JSON (%v): fix it or run 'cairn init' again", configPath(home), err)
	}
	return c, nil
}

// SaveConfig writes the configuration atomically.
func SaveConfig(home string, c Config) error {
	b, err := json.MarshalIndent(c, "", "  ")
	if err != nil {
		return err
	}
	return writeFileAtomic(configPath(home), append(b, '\n'), 0o600)
}

// serverDir names a server's directory under the home: host, port and path, with
// characters that are special in file names replaced.
func serverDir(server string) string {
	u, err := url.Parse(server)
	if err != nil {
		return "invalid"
	}
	name := u.Host + strings.TrimRight(u.Path, "/")
	return strings.NewReplacer(":", "_", "/", "_", "\\", "_").Replace(name)
}

// MetadataDir is where verified TUF metadata of server is cached, under cache, cairn's
// cache directory (Dirs.Cache).
func MetadataDir(cache, server string) string {
	return filepath.Join(cache, "metadata", serverDir(server))
}

func rootPath(home, server string) string {
	return filepath.Join(home, "roots", serverDir(server)+".root.json")
}

// serverURL is the server to talk to: --server, $CAIRN_SERVER, or the configured one.
func (a *app) serverURL(cfg Config) (string, error) {
	s := a.server
	if s == "" {
		s = a.env("CAIRN_SERVER")
	}
	if s == "" {
		s = cfg.Server
	}
	if s == "" {
		return "", api.Errorf(api.CodeBadRequest, "no server configured: run 'cairn init --server URL --root FILE' first, or pass --server")
	}
	u, err := client.ParseServerURL(s)
	if err != nil {
		return "", err
	}
	return u.String(), nil
}

// tokenValue is the API token of this invocation (credentials.go has the order of its
// sources), or "" when there is none or the stored one cannot be read (requireToken and
// apiClient say why).
func (a *app) tokenValue() string {
	r, _ := a.resolveToken()
	return r.value
}

// apiClient returns a REST client for the selected server.
func (a *app) apiClient() (*client.API, error) {
	home, err := a.home()
	if err != nil {
		return nil, err
	}
	cfg, err := LoadConfig(home)
	if err != nil {
		return nil, err
	}
	server, err := a.serverURL(cfg)
	if err != nil {
		return nil, err
	}
	hc, err := a.httpClient()
	if err != nil {
		return nil, err
	}
	// A stored token that cannot be read does not stop reads; writes call requireToken,
	// which says why.
	return client.NewAPI(server, client.WithToken(a.tokenValue()), client.WithUserAgent(userAgent), client.WithHTTPClient(hc))
}

// requireToken fails early, before any passphrase prompt or upload, when a write has no
// token to authenticate with.
func (a *app) requireToken() error {
	tok, err := a.resolveToken()
	if err != nil {
		return err
	}
	if tok.value == "" {
		return api.Errorf(api.CodeBadRequest, "this command writes to the server and needs an API token: run 'cairn login' (it reads the token from a prompt, or from stdin with --token-stdin), or set CAIRN_TOKEN")
	}
	return nil
}

const userAgent = "cairn-cli"

// repo opens the verifying TUF client for the selected server, with the root pinned by
// 'cairn init' for that server.
func (a *app) repo() (*client.Repo, error) {
	home, err := a.home()
	if err != nil {
		return nil, err
	}
	cfg, err := LoadConfig(home)
	if err != nil {
		return nil, err
	}
	server, err := a.serverURL(cfg)
	if err != nil {
		return nil, err
	}
	root, err := readPinnedRoot(home, cfg, server)
	if err != nil {
		return nil, err
	}
	d, err := a.dirs()
	if err != nil {
		return nil, err
	}
	a.migrateMetadata(d, server)
	if root == nil {
		return nil, api.Errorf(api.CodeBadRequest, "no trusted root is pinned for %s: run 'cairn init --server %s --root FILE' with the root metadata your repository administrators published", server, server)
	}
	hc, err := a.httpClient()
	if err != nil {
		return nil, err
	}
	return client.OpenRepo(client.RepoConfig{
		Server: server, TrustedRoot: root, MetadataDir: MetadataDir(d.Cache, server), UserAgent: userAgent,
		OCIToken: a.tokenValue(), HTTPClient: hc, ClassicSnapshot: a.classicSnapshot,
		Progress: a.trackProgress,
	})
}

// pinnedRoot is the root 'cairn init' pinned for server, or nil if there is none.
func (a *app) pinnedRoot(server string) ([]byte, error) {
	home, err := a.home()
	if err != nil {
		return nil, err
	}
	cfg, err := LoadConfig(home)
	if err != nil {
		return nil, err
	}
	return readPinnedRoot(home, cfg, server)
}

func readPinnedRoot(home string, cfg Config, server string) ([]byte, error) {
	rp := rootPath(home, server)
	if cfg.Server == server && cfg.Root != "" {
		rp = cfg.Root
	}
	b, err := os.ReadFile(rp)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading the pinned root: %w", err)
	}
	return b, nil
}

// projectRole opens the verifying TUF client and the project's role, verified through it.
func (a *app) projectRole(project string) (*client.Repo, *client.ProjectRole, error) {
	repo, err := a.repo()
	if err != nil {
		return nil, nil, err
	}
	pr, err := repo.ProjectRole(a.ctx, project)
	if err != nil {
		return nil, nil, err
	}
	return repo, pr, nil
}

// delegatedProjectRole is projectRole for a change of the project's maintainers, which
// needs a verified delegation with keys.
func (a *app) delegatedProjectRole(project string) (*client.Repo, *client.ProjectRole, error) {
	repo, pr, err := a.projectRole(project)
	if err != nil {
		return nil, nil, err
	}
	if pr.Delegator == "" || len(pr.KeyIDs) == 0 {
		return nil, nil, api.Errorf(api.CodeKeyNotDelegated, "no verified role delegates to project %s", project)
	}
	return repo, pr, nil
}
