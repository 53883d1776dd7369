package client

import (
	"context"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/cairn-dev/cairn/internal/sigstoretest"
)

// follow is a browser for tests: it opens the login URL with an HTTP client, which follows
// the issuer's redirect to the CLI's loopback listener. It runs in the background, as a
// browser does: the listener answers only once the flow waits for the code.
func follow(t *testing.T, rewrite func(*url.URL)) func(string) error {
	return func(raw string) error {
		u, err := url.Parse(raw)
		if err != nil {
			return err
		}
		if rewrite != nil {
			rewrite(u)
		}
		go func() {
			resp, err := http.Get(u.String())
			if err != nil {
				t.Logf("the test browser: %v", err)
				return
			}
			resp.Body.Close()
		}()
		return nil
	}
}

func TestBrowserLogin(t *testing.T) {
	is := sigstoretest.NewIssuer(t)
	is.SetLogin("alice@hello.dev")
	var out strings.Builder
	b := BrowserLogin{Issuer: is.URL, Open: follow(t, nil), In: strings.NewReader(""), Out: &out}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	tok, from, err := IdentityTokenSource{Env: func(string) string { return "" }, Browser: &b}.IdentityToken(ctx)
	if err != nil {
		t.Fatalf("browser login: %v (printed %q)", err, out.String())
	}
	if from != "a browser login at "+is.URL {
		t.Errorf("the token comes from %q", from)
	}
	c, err := ReadIdentityClaims(tok, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if c.Who() != "alice@hello.dev" || c.Issuer != is.URL {
		t.Errorf("logged in as %s at %s", c.Who(), c.Issuer)
	}
	if !strings.Contains(out.String(), is.URL+"/auth?") {
		t.Errorf("the login URL is not shown: %q", out.String())
	}
}

// A code obtained with another PKCE challenge (what an app that intercepts the redirect
// holds) cannot be redeemed by this flow's verifier, and a forged state is not accepted:
// the login fails, with no token.
func TestBrowserLoginRefusals(t *testing.T) {
	is := sigstoretest.NewIssuer(t)
	is.SetLogin("alice@hello.dev")
	for _, tc := range []struct {
		name    string
		rewrite func(*url.URL)
	}{
		{"another challenge", func(u *url.URL) {
			q := u.Query()
			q.Set("code_challenge", "Xy8KBz8pNvLv9c7Q0Hxvk4ZfIWj3CQ2k7Gf0pKQJwD8")
			u.RawQuery = q.Encode()
		}},
		{"forged state", func(u *url.URL) {
			q := u.Query()
			q.Set("state", "forged")
			u.RawQuery = q.Encode()
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := BrowserLogin{Issuer: is.URL, Open: follow(t, tc.rewrite), In: strings.NewReader(""), Out: io.Discard}
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			tok, err := b.Token(ctx)
			if err == nil || tok != "" {
				t.Fatalf("login succeeded: %q", tok)
			}
			if !strings.Contains(err.Error(), "logging in at "+is.URL) {
				t.Errorf("error %q does not say where the login failed", err)
			}
		})
	}
}
