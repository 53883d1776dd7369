package client

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/cairn-dev/cairn/api"
)

// MaxIdentityTokenBytes bounds an OIDC identity token read from a file, the environment or
// a CI provider: real ones are 1–3 KB.
const MaxIdentityTokenBytes = 16 << 10

// IdentityClaims are the claims of an identity token that Cairn reads, unverified, to
// name the identity and refuse an expired token before anything is sent. Fulcio verifies
// the token; these are never trusted for anything else.
type IdentityClaims struct {
	Issuer  string `json:"iss"`
	Subject string `json:"sub"`
	Email   string `json:"email"`
	Expiry  int64  `json:"exp"`
}

// Who names the identity for messages: the email if there is one, else the subject.
func (c IdentityClaims) Who() string {
	if c.Email != "" {
		return c.Email
	}
	return c.Subject
}

// ReadIdentityClaims reads the claims of a JWT without verifying it, and refuses a token
// that is not a JWT, has no issuer, or expired before now. The error never contains the
// token.
func ReadIdentityClaims(token string, now time.Time) (IdentityClaims, error) {
	var c IdentityClaims
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		return c, api.Errorf(api.CodeBadRequest, "the identity token is not a JWT (three dot-separated parts): give the OIDC ID token itself")
	}
	payload, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(parts[1], "="))
	if err != nil {
		return c, api.Errorf(api.CodeBadRequest, "the identity token's claims are not base64url: give the OIDC ID token itself")
	}
	if err := json.Unmarshal(payload, &c); err != nil {
		return c, api.Errorf(api.CodeBadRequest, "the identity token's claims are not a JSON object: give the OIDC ID token itself")
	}
	if c.Issuer == "" {
		return c, api.Errorf(api.CodeBadRequest, "the identity token names no issuer (iss)")
	}
	if c.Expiry != 0 && !now.Before(time.Unix(c.Expiry, 0)) {
		return c, api.Errorf(api.CodeExpired, "the identity token from %s expired at %s: get a fresh one (they live minutes)", c.Issuer, time.Unix(c.Expiry, 0).UTC().Format(time.RFC3339))
	}
	return c, nil
}

// IdentityTokenSource says where the token comes from; resolve it with IdentityToken.
type IdentityTokenSource struct {
	// Flag is --identity-token: the token, or @FILE to read it from FILE.
	Flag string
	// Env looks up environment variables: SIGSTORE_ID_TOKEN (cosign's), then GitHub
	// Actions' ACTIONS_ID_TOKEN_REQUEST_URL and ACTIONS_ID_TOKEN_REQUEST_TOKEN.
	Env func(string) string
	// HTTPClient asks the CI provider for its token.
	HTTPClient *http.Client
	// Browser, if set, logs in with a browser when no other source has a token.
	Browser *BrowserLogin
}

// IdentityToken returns the OIDC identity token and where it came from, in this order:
// the flag, $SIGSTORE_ID_TOKEN, GitHub Actions' ambient token (audience "sigstore"), a
// browser login (if Browser is set). No source is an error that names them all.
func (s IdentityTokenSource) IdentityToken(ctx context.Context) (token, from string, err error) {
	switch {
	case strings.HasPrefix(s.Flag, "@"):
		p := s.Flag[1:]
		fh, err := os.Open(p)
		if err != nil {
			return "", "", api.Wrap(api.CodeBadRequest, err, "--identity-token %s: %v", s.Flag, err)
		}
		defer fh.Close()
		b, err := io.ReadAll(io.LimitReader(fh, MaxIdentityTokenBytes+1))
		if err != nil {
			return "", "", fmt.Errorf("--identity-token %s: %w", s.Flag, err)
		}
		if len(b) > MaxIdentityTokenBytes {
			return "", "", api.Errorf(api.CodeTooLarge, "--identity-token %s: the file has more than %d bytes; an identity token is a few KB", s.Flag, MaxIdentityTokenBytes)
		}
		return strings.TrimSpace(string(b)), "--identity-token " + s.Flag, nil
	case len(s.Flag) > MaxIdentityTokenBytes:
		return "", "", api.Errorf(api.CodeTooLarge, "--identity-token has more than %d bytes; an identity token is a few KB", MaxIdentityTokenBytes)
	case s.Flag != "":
		return s.Flag, "--identity-token", nil
	}
	if t := s.Env("SIGSTORE_ID_TOKEN"); t != "" {
		if len(t) > MaxIdentityTokenBytes {
			return "", "", api.Errorf(api.CodeTooLarge, "$SIGSTORE_ID_TOKEN has more than %d bytes; an identity token is a few KB", MaxIdentityTokenBytes)
		}
		return strings.TrimSpace(t), "$SIGSTORE_ID_TOKEN", nil
	}
	if u, bearer := s.Env("ACTIONS_ID_TOKEN_REQUEST_URL"), s.Env("ACTIONS_ID_TOKEN_REQUEST_TOKEN"); u != "" && bearer != "" {
		t, err := githubActionsToken(ctx, s.HTTPClient, u, bearer)
		if err != nil {
			return "", "", err
		}
		return t, "GitHub Actions (ACTIONS_ID_TOKEN_REQUEST_URL)", nil
	}
	if s.Browser != nil {
		t, err := s.Browser.Token(ctx)
		if err != nil {
			return "", "", err
		}
		issuer := s.Browser.Issuer
		if issuer == "" {
			issuer = DefaultOIDCIssuer
		}
		return t, "a browser login at " + issuer, nil
	}
	return "", "", api.Errorf(api.CodeBadRequest, "keyless signing needs an OIDC identity token and none was found: pass --identity-token @FILE (or TOKEN), set $SIGSTORE_ID_TOKEN, run in GitHub Actions with 'permissions: id-token: write', or log in with a browser (run from a terminal, or pass --oidc-issuer)")
}

// githubActionsToken asks GitHub Actions for an ID token with audience "sigstore", as
// Fulcio expects (the documented ACTIONS_ID_TOKEN_REQUEST_URL protocol).
func githubActionsToken(ctx context.Context, hc *http.Client, reqURL, bearer string) (string, error) {
	u, err := url.Parse(reqURL)
	if err != nil || !u.IsAbs() {
		return "", api.Errorf(api.CodeBadRequest, "$ACTIONS_ID_TOKEN_REQUEST_URL is not an absolute URL")
	}
	q := u.Query()
	q.Set("audience", "sigstore")
	u.RawQuery = q.Encode()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return "", fmt.Errorf("asking GitHub Actions for an identity token: %w", err)
	}
	req.Header.Set("Authorization", "Bearer "+bearer)
	if hc == nil {
		hc = http.DefaultClient
	}
	resp, err := hc.Do(req)
	if err != nil {
		return "", fmt.Errorf("asking GitHub Actions for an identity token: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("asking GitHub Actions for an identity token: %s (does the job have 'permissions: id-token: write'?)", resp.Status)
	}
	var body struct {
		Value string `json:"value"`
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, MaxIdentityTokenBytes)).Decode(&body); err != nil || body.Value == "" {
		return "", fmt.Errorf("asking GitHub Actions for an identity token: the answer has no token (value)")
	}
	return body.Value, nil
}
