package client

import (
	"context"
	"fmt"
	"io"

	"github.com/cairn-dev/cairn/api"
	"github.com/sigstore/sigstore/pkg/oauthflow"
)

// Sigstore's public OIDC issuer and the client ID Fulcio expects as the token's audience:
// cosign's defaults.
const (
	DefaultOIDCIssuer   = "https://oauth2.sigstore.dev/auth"
	DefaultOIDCClientID = "sigstore"
)

// BrowserLogin gets an identity token by logging in with a browser: the OAuth 2.0
// authorization code flow with PKCE, the code coming back to a listener on loopback
// (RFC 8252). sigstore/sigstore's oauthflow does the protocol (as cosign's does); it
// checks the state, the nonce and the token's signature and audience against the issuer's
// keys. When no browser opens, it prints the URL and reads the code from In.
type BrowserLogin struct {
	Issuer   string
	ClientID string
	// Open opens the login URL (nil: the system's browser, xdg-open on Linux).
	Open func(url string) error
	In   io.Reader
	Out  io.Writer
}

// loginPage is what the browser shows once the code has reached the CLI.
const loginPage = `<!doctype html><html lang="en"><meta charset="utf-8"><title>cairn: signed in</title><p>You are signed in. Go back to the terminal: cairn goes on signing.</p></html>`

// Token runs the flow and returns the raw ID token. The flow cannot be cancelled halfway
// (oauthflow takes no context); ctx ends the wait, and the flow's own listener gives up
// after two minutes.
func (b BrowserLogin) Token(ctx context.Context) (string, error) {
	issuer, clientID := b.Issuer, b.ClientID
	if issuer == "" {
		issuer = DefaultOIDCIssuer
	}
	if clientID == "" {
		clientID = DefaultOIDCClientID
	}
	tg := &oauthflow.InteractiveIDTokenGetter{HTMLPage: loginPage, Input: b.In, Output: b.Out, BrowserOpener: b.Open}
	type result struct {
		tok *oauthflow.OIDCIDToken
		err error
	}
	done := make(chan result, 1)
	go func() {
		tok, err := oauthflow.OIDConnect(issuer, clientID, "", "", tg)
		done <- result{tok, err}
	}()
	select {
	case <-ctx.Done():
		return "", fmt.Errorf("logging in at %s: %w", issuer, ctx.Err())
	case r := <-done:
		if r.err != nil {
			return "", api.Wrap(api.CodeUnauthorized, r.err, "logging in at %s with a browser: %v (or pass --identity-token)", issuer, r.err)
		}
		if len(r.tok.RawString) > MaxIdentityTokenBytes {
			return "", api.Errorf(api.CodeTooLarge, "the identity token from %s has more than %d bytes", issuer, MaxIdentityTokenBytes)
		}
		return r.tok.RawString, nil
	}
}
