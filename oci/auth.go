package oci

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/cairn-dev/cairn/api"
	"github.com/cairn-dev/cairn/store"
)

// Authentication, the way OCI clients send credentials:
//   - Basic auth with a Cairn token as the password (any user name);
//   - the registry token flow: a 401 carries a Bearer challenge naming /v2/token, which
//     takes the same Basic credentials and hands out a short-lived registry token;
//   - "Bearer <Cairn token>" directly.
//
// A registry token is HMAC-signed with a key kept in the database (shared by replicas) and
// names the Cairn token it was issued for, so revoking that token revokes it at once.
// Permissions are always those of the Cairn token: any valid token may pull; pushing and
// deleting need MayWrite on the repository's first path component (the project).

type access int

const (
	accessPull access = iota
	accessPush
	accessDelete
)

const registryTokenPrefix = "cairnreg."

var errBadCredentials = errorf(api.CodeUnauthorized, nil, "the credentials are not valid (or the token was revoked): log in with a Cairn token as the password, any user name")

// identity is who a request comes from: nil token means anonymous.
type identity struct {
	token     *store.Token
	presented bool
}

// credentials resolves a request's Authorization header.
func (g *Registry) credentials(r *http.Request) (identity, error) {
	h := r.Header.Get("Authorization")
	if h == "" {
		return identity{}, nil
	}
	scheme, val, _ := strings.Cut(h, " ")
	val = strings.TrimSpace(val)
	switch {
	case strings.EqualFold(scheme, "Basic"):
		_, pass, ok := r.BasicAuth()
		if !ok || pass == "" {
			return identity{}, errBadCredentials
		}
		return g.cairnToken(r.Context(), pass)
	case strings.EqualFold(scheme, "Bearer") && strings.HasPrefix(val, store.TokenPrefix):
		return g.cairnToken(r.Context(), val)
	case strings.EqualFold(scheme, "Bearer") && strings.HasPrefix(val, registryTokenPrefix):
		return g.verifyRegistryToken(r.Context(), val)
	}
	return identity{}, errBadCredentials
}

func (g *Registry) cairnToken(ctx context.Context, secret string) (identity, error) {
	t, err := g.db.Authenticate(ctx, secret)
	if err != nil {
		var ae *api.Error
		if errors.As(err, &ae) && ae.Code == api.CodeUnauthorized {
			return identity{}, errBadCredentials
		}
		return identity{}, err // the database failed: a 500, not a refusal
	}
	return identity{token: t, presented: true}, nil
}

// project is the Cairn project a repository belongs to: its first path component.
func project(repo string) string {
	p, _, _ := strings.Cut(repo, "/")
	return p
}

// authorize checks that the request may do a to repo (repo "" is the registry itself). It
// writes the refusal and returns false when not.
func (g *Registry) authorize(w http.ResponseWriter, r *http.Request, repo string, a access) (*store.Token, bool) {
	id, err := g.credentials(r)
	if err != nil {
		g.challenge(w, r, repo, a)
		g.fail(w, r, err)
		return nil, false
	}
	if id.token == nil {
		if a == accessPull && g.cfg.AnonymousPull {
			return nil, true
		}
		g.challenge(w, r, repo, a)
		what := "pushing"
		switch {
		case a == accessDelete:
			what = "deleting"
		case a == accessPull:
			what = "pulling (anonymous pull is off)"
		}
		g.fail(w, r, errorf(api.CodeUnauthorized, nil, "%s needs a Cairn token: log in with the token as the password (any user name)", what))
		return nil, false
	}
	if a == accessPull || repo == "" {
		return id.token, true
	}
	if !id.token.MayWrite(project(repo)) {
		g.fail(w, r, errorf(api.CodeForbidden, map[string]string{"repository": repo, "project": project(repo)},
			"token %q may not push to or delete from %s: a project token writes only to <project> and <project>/… repositories of its projects (%s); use a token for project %q or an admin token",
			id.token.Name, repo, strings.Join(id.token.Projects, ", "), project(repo)))
		return nil, false
	}
	return id.token, true
}

// challenge sets the Bearer challenge that sends clients to the token endpoint. Its realm
// comes from configuration only (Config.ExternalURL): a realm built from the request's
// Host header would let anyone who can set that header (a link, a proxy that passes it
// on) have clients send their credentials to a host of their choice. Without one, the
// challenge is Basic: clients send their credentials to the host they already talk to.
func (g *Registry) challenge(w http.ResponseWriter, r *http.Request, repo string, a access) {
	base := strings.TrimRight(g.cfg.ExternalURL, "/")
	if base == "" {
		w.Header().Set("WWW-Authenticate", fmt.Sprintf(`Basic realm="%s"`, g.cfg.Service))
		return
	}
	c := fmt.Sprintf(`Bearer realm="%s/v2/token",service="%s"`, base, g.cfg.Service)
	if repo != "" {
		actions := "pull"
		switch a {
		case accessPush:
			actions = "pull,push"
		case accessDelete:
			actions = "delete"
		}
		c += fmt.Sprintf(`,scope="repository:%s:%s"`, repo, actions)
	}
	w.Header().Set("WWW-Authenticate", c)
}

type tokenPayload struct {
	Sub     string `json:"sub"` // Cairn token ID; "" for an anonymous token
	Service string `json:"svc"`
	Exp     int64  `json:"exp"`
}

func (g *Registry) tokenKey(ctx context.Context) ([]byte, error) {
	g.keyMu.Lock()
	defer g.keyMu.Unlock()
	if g.key != nil {
		return g.key, nil
	}
	k, err := g.db.OCITokenKey(ctx)
	if err != nil {
		return nil, err
	}
	g.key = k
	return k, nil
}

func (g *Registry) issueRegistryToken(ctx context.Context, sub string, exp time.Time) (string, error) {
	key, err := g.tokenKey(ctx)
	if err != nil {
		return "", err
	}
	payload, _ := json.Marshal(tokenPayload{Sub: sub, Service: g.cfg.Service, Exp: exp.Unix()})
	mac := hmac.New(sha256.New, key)
	mac.Write(payload)
	enc := base64.RawURLEncoding
	return registryTokenPrefix + enc.EncodeToString(payload) + "." + enc.EncodeToString(mac.Sum(nil)), nil
}

func (g *Registry) verifyRegistryToken(ctx context.Context, tok string) (identity, error) {
	rest := strings.TrimPrefix(tok, registryTokenPrefix)
	p64, m64, ok := strings.Cut(rest, ".")
	if !ok || len(rest) > 4096 {
		return identity{}, errBadCredentials
	}
	enc := base64.RawURLEncoding
	payload, err1 := enc.DecodeString(p64)
	sum, err2 := enc.DecodeString(m64)
	if err1 != nil || err2 != nil {
		return identity{}, errBadCredentials
	}
	key, err := g.tokenKey(ctx)
	if err != nil {
		return identity{}, err
	}
	mac := hmac.New(sha256.New, key)
	mac.Write(payload)
	if !hmac.Equal(mac.Sum(nil), sum) { // constant time
		return identity{}, errBadCredentials
	}
	var p tokenPayload
	if err := json.Unmarshal(payload, &p); err != nil || p.Service != g.cfg.Service {
		return identity{}, errBadCredentials
	}
	if g.now().Unix() >= p.Exp {
		return identity{}, errorf(api.CodeUnauthorized, nil, "the registry token has expired: get a new one from /v2/token")
	}
	if p.Sub == "" {
		return identity{presented: true}, nil
	}
	t, err := g.db.TokenByID(ctx, p.Sub)
	if err != nil {
		return identity{}, err
	}
	if t == nil {
		return identity{}, errBadCredentials
	}
	return identity{token: t, presented: true}, nil
}

// token is the token endpoint of the Bearer challenge flow (GET with Basic credentials, or
// POST with the OAuth2 password grant). Without credentials it hands out an anonymous
// token while anonymous pull is on.
func (g *Registry) token(w http.ResponseWriter, r *http.Request) {
	var id identity
	var err error
	switch r.Method {
	case http.MethodGet:
		id, err = g.credentials(r)
	case http.MethodPost:
		if err := r.ParseForm(); err != nil {
			g.fail(w, r, errorf(api.CodeOCIUnsupported, nil, "the token request is not a form: %v", err))
			return
		}
		switch r.PostForm.Get("grant_type") {
		case "password":
			if pw := r.PostForm.Get("password"); pw != "" {
				id, err = g.cairnToken(r.Context(), pw)
			} else {
				err = errBadCredentials
			}
		default:
			g.fail(w, r, errorf(api.CodeOCIUnsupported, nil, "grant_type %q is not supported: use password (a Cairn token), or GET with Basic credentials", truncate(r.PostForm.Get("grant_type"), 40)))
			return
		}
	default:
		g.fail(w, r, errorf(api.CodeMethodNotAllowed, nil, "%s is not supported on /v2/token", r.Method))
		return
	}
	if err != nil {
		w.Header().Set("WWW-Authenticate", fmt.Sprintf(`Basic realm="%s"`, g.cfg.Service))
		g.fail(w, r, err)
		return
	}
	sub := ""
	if id.token != nil {
		sub = id.token.ID
	} else if !g.cfg.AnonymousPull {
		w.Header().Set("WWW-Authenticate", fmt.Sprintf(`Basic realm="%s"`, g.cfg.Service))
		g.fail(w, r, errorf(api.CodeUnauthorized, nil, "this registry needs a Cairn token for every request: send it as the Basic password"))
		return
	}
	now := g.now()
	exp := now.Add(g.cfg.TokenTTL)
	tok, err := g.issueRegistryToken(r.Context(), sub, exp)
	if err != nil {
		g.fail(w, r, err)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	_ = json.NewEncoder(w).Encode(map[string]any{
		"token":        tok,
		"access_token": tok,
		"expires_in":   int(g.cfg.TokenTTL / time.Second),
		"issued_at":    now.UTC().Format(time.RFC3339),
	})
}
