package client

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func jwt(t *testing.T, claims map[string]any) string {
	t.Helper()
	b, err := json.Marshal(claims)
	if err != nil {
		t.Fatal(err)
	}
	enc := base64.RawURLEncoding.EncodeToString
	return enc([]byte(`{"alg":"RS256"}`)) + "." + enc(b) + "." + enc([]byte("sig"))
}

// TestIdentityTokenSources: the flag (value or @FILE) wins, then $SIGSTORE_ID_TOKEN, then
// GitHub Actions' ambient token, asked for with audience "sigstore" and its bearer token.
func TestIdentityTokenSources(t *testing.T) {
	var gotAuth, gotAudience string
	gh := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		gotAuth, gotAudience = r.Header.Get("Authorization"), r.URL.Query().Get("audience")
		if gotAuth != "Bearer runner-secret" {
			http.Error(w, "no", http.StatusForbidden)
			return
		}
		json.NewEncoder(w).Encode(map[string]string{"value": "from-actions"})
	}))
	defer gh.Close()
	file := filepath.Join(t.TempDir(), "tok")
	if err := os.WriteFile(file, []byte("from-file\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	big := filepath.Join(t.TempDir(), "big")
	if err := os.WriteFile(big, make([]byte, MaxIdentityTokenBytes+1), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, flag  string
		env         map[string]string
		token, from string
		wantErr     string
	}{
		{name: "flag", flag: "from-flag", env: map[string]string{"SIGSTORE_ID_TOKEN": "x"}, token: "from-flag", from: "--identity-token"},
		{name: "file", flag: "@" + file, token: "from-file", from: "--identity-token @" + file},
		{name: "file too large", flag: "@" + big, wantErr: "more than 16384 bytes"},
		{name: "env", env: map[string]string{"SIGSTORE_ID_TOKEN": "from-env", "ACTIONS_ID_TOKEN_REQUEST_URL": gh.URL}, token: "from-env", from: "$SIGSTORE_ID_TOKEN"},
		{name: "github actions", env: map[string]string{"ACTIONS_ID_TOKEN_REQUEST_URL": gh.URL + "/token?api-version=2.0", "ACTIONS_ID_TOKEN_REQUEST_TOKEN": "runner-secret"}, token: "from-actions", from: "GitHub Actions (ACTIONS_ID_TOKEN_REQUEST_URL)"},
		{name: "github actions refuses", env: map[string]string{"ACTIONS_ID_TOKEN_REQUEST_URL": gh.URL, "ACTIONS_ID_TOKEN_REQUEST_TOKEN": "wrong"}, wantErr: "id-token: write"},
		{name: "none", wantErr: "none was found"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			src := IdentityTokenSource{Flag: tc.flag, Env: func(k string) string { return tc.env[k] }, HTTPClient: gh.Client()}
			tok, from, err := src.IdentityToken(context.Background())
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v; want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil || tok != tc.token || from != tc.from {
				t.Fatalf("got %q from %q, %v; want %q from %q", tok, from, err, tc.token, tc.from)
			}
		})
	}
	if gotAudience != "sigstore" {
		t.Errorf("GitHub Actions was asked for audience %q; Fulcio wants sigstore", gotAudience)
	}
}

func TestReadIdentityClaims(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	for _, tc := range []struct {
		name, token, who, wantErr string
	}{
		{"email", jwt(t, map[string]any{"iss": "https://issuer", "sub": "123", "email": "a@b.dev", "exp": now.Unix() + 60}), "a@b.dev", ""},
		{"subject", jwt(t, map[string]any{"iss": "https://issuer", "sub": "repo:x/y:ref:refs/heads/main", "exp": now.Unix() + 60}), "repo:x/y:ref:refs/heads/main", ""},
		{"expired", jwt(t, map[string]any{"iss": "https://issuer", "sub": "1", "exp": now.Unix()}), "", "expired at"},
		{"no issuer", jwt(t, map[string]any{"sub": "1"}), "", "names no issuer"},
		{"two parts", "a.b", "", "not a JWT"},
		{"claims not base64", "a.!!!.c", "", "not base64url"},
		{"claims not JSON", "a." + base64.RawURLEncoding.EncodeToString([]byte("[1]")) + ".c", "", "not a JSON object"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := ReadIdentityClaims(tc.token, now)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v; want %q", err, tc.wantErr)
				}
				if strings.Contains(err.Error(), tc.token) {
					t.Fatalf("the error shows the token: %v", err)
				}
				return
			}
			if err != nil || c.Who() != tc.who {
				t.Fatalf("%+v, %v; want %s", c, err, tc.who)
			}
		})
	}
}
