package sigstoretest

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"net"
	"net/http"
	"net/url"
	"time"
)

// The issuer's browser login: the authorization code flow with PKCE (RFC 7636) as a CLI
// runs it, with the code sent back to a loopback redirect. Whoever opens the
// authorization URL is logged in as SetLogin's identity, at once: the "browser" of a test
// is an HTTP client that follows the redirect.

// authGrant is what an authorization code stands for until it is redeemed, once.
type authGrant struct {
	email, clientID, redirect, nonce, challenge string
}

// SetLogin makes the authorization endpoint log in email.
func (is *Issuer) SetLogin(email string) {
	is.mu.Lock()
	defer is.mu.Unlock()
	is.login = email
}

func (is *Issuer) authorize(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	redirect, err := url.Parse(q.Get("redirect_uri"))
	if err != nil || redirect.Scheme != "http" || !isLoopback(redirect.Hostname()) {
		http.Error(w, "redirect_uri must be http:// to a loopback address", http.StatusBadRequest)
		return
	}
	if q.Get("response_type") != "code" || q.Get("code_challenge_method") != "S256" || q.Get("code_challenge") == "" || q.Get("client_id") == "" {
		http.Error(w, "want response_type=code, a client_id and an S256 code_challenge", http.StatusBadRequest)
		return
	}
	is.mu.Lock()
	email := is.login
	code := rand.Text()
	is.codes[code] = authGrant{email: email, clientID: q.Get("client_id"), redirect: redirect.String(), nonce: q.Get("nonce"), challenge: q.Get("code_challenge")}
	is.mu.Unlock()
	if email == "" {
		http.Error(w, "nobody is logged in (SetLogin)", http.StatusForbidden)
		return
	}
	back := redirect.Query()
	back.Set("code", code)
	back.Set("state", q.Get("state"))
	redirect.RawQuery = back.Encode()
	http.Redirect(w, r, redirect.String(), http.StatusFound)
}

func (is *Issuer) token(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	clientID, _, ok := r.BasicAuth()
	if !ok {
		clientID = r.PostForm.Get("client_id")
	}
	is.mu.Lock()
	g, found := is.codes[r.PostForm.Get("code")]
	delete(is.codes, r.PostForm.Get("code"))
	is.mu.Unlock()
	sum := sha256.Sum256([]byte(r.PostForm.Get("code_verifier")))
	switch {
	case r.PostForm.Get("grant_type") != "authorization_code" || !found:
		oauthError(w, "invalid_grant", "unknown or redeemed code")
		return
	case g.clientID != clientID || g.redirect != r.PostForm.Get("redirect_uri"):
		oauthError(w, "invalid_grant", "the code was issued to another client or redirect")
		return
	case base64.RawURLEncoding.EncodeToString(sum[:]) != g.challenge:
		oauthError(w, "invalid_grant", "the code verifier does not match the challenge")
		return
	}
	id, err := is.mint(g.email, g.clientID, g.nonce, 5*time.Minute)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(map[string]any{"access_token": rand.Text(), "token_type": "Bearer", "expires_in": 300, "id_token": id})
}

func oauthError(w http.ResponseWriter, code, desc string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusBadRequest)
	_ = json.NewEncoder(w).Encode(map[string]string{"error": code, "error_description": desc})
}

func isLoopback(host string) bool {
	ip := net.ParseIP(host)
	return host == "localhost" || (ip != nil && ip.IsLoopback())
}
