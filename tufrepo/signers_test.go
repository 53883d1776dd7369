package tufrepo

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// writeKeyFile writes an encrypted key file and returns its path and key ID.
func writeKeyFile(t *testing.T, dir string, kt KeyType) (path, keyID string) {
	t.Helper()
	_, kf := encryptedKey(t, kt)
	b, err := json.Marshal(kf)
	if err != nil {
		t.Fatal(err)
	}
	path = filepath.Join(dir, "key-"+string(kt)+".json")
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return path, kf.KeyID
}

func envOf(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

func TestSignerFromURIFile(t *testing.T) {
	t.Parallel() // scrypt
	ctx := context.Background()
	dir := t.TempDir()
	edPath, edID := writeKeyFile(t, dir, KeyEd25519)
	ecPath, ecID := writeKeyFile(t, dir, KeyECDSAP256)
	passFile := filepath.Join(dir, "pass")
	if err := os.WriteFile(passFile, append(testPassphrase, '\r', '\n'), 0o600); err != nil {
		t.Fatal(err)
	}
	passFileNoNL := filepath.Join(dir, "pass2")
	if err := os.WriteFile(passFileNoNL, testPassphrase, 0o600); err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name  string
		uri   string
		env   map[string]string
		keyID string
	}{
		{"passphrase-file with trailing newline", "file://" + edPath + "?passphrase-file=" + passFile, nil, edID},
		{"passphrase-file without newline", "file://" + ecPath + "?passphrase-file=" + passFileNoNL, nil, ecID},
		{"passphrase-env", "file://" + edPath + "?passphrase-env=MY_PASS", map[string]string{"MY_PASS": string(testPassphrase), "CAIRN_KEY_PASSPHRASE": "wrong"}, edID},
		{"default CAIRN_KEY_PASSPHRASE", "file://" + ecPath, map[string]string{"CAIRN_KEY_PASSPHRASE": string(testPassphrase)}, ecID},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s, err := FileSignerFromURI(ctx, tc.uri, envOf(tc.env))
			if err != nil {
				t.Fatalf("SignerFromURI: %v", err)
			}
			o, err := NewOnlineSigner(ctx, s)
			if err != nil {
				t.Fatal(err)
			}
			if o.KeyID != tc.keyID {
				t.Fatalf("signer key ID %s, want %s", o.KeyID, tc.keyID)
			}
			// It signs metadata that verifies under its key.
			raw, err := SignEnvelope(ctx, (&SnapshotIndex{}).EncodeSigned(1, t0), o)
			if err != nil {
				t.Fatal(err)
			}
			_, md, err := ParseSnapshot(raw)
			if err != nil {
				t.Fatal(err)
			}
			if err := rootDelegating(t, RoleSnapshot, 1, o).VerifyDelegate(RoleSnapshot, md); err != nil {
				t.Fatalf("signature does not verify: %v", err)
			}
		})
	}
}

func TestSignerFromURIRefusals(t *testing.T) {
	t.Parallel() // scrypt
	ctx := context.Background()
	dir := t.TempDir()
	edPath, _ := writeKeyFile(t, dir, KeyEd25519)
	notKey := filepath.Join(dir, "not-a-key.json")
	if err := os.WriteFile(notKey, []byte(`{"hello":"world"}`), 0o600); err != nil {
		t.Fatal(err)
	}
	good := map[string]string{"CAIRN_KEY_PASSPHRASE": string(testPassphrase)}

	tests := []struct {
		name        string
		uri         string
		env         map[string]string
		contains    []string
		notContains []string
		wrongPass   bool
	}{
		{name: "missing passphrase (default variable)", uri: "file://" + edPath, contains: []string{edPath, "no passphrase", "CAIRN_KEY_PASSPHRASE", "passphrase-file"}},
		{name: "missing passphrase (named variable)", uri: "file://" + edPath + "?passphrase-env=KEY_PW", env: good, contains: []string{"no passphrase", "KEY_PW"}},
		{name: "passphrase file missing", uri: "file://" + edPath + "?passphrase-file=" + filepath.Join(dir, "nope"), contains: []string{"reading passphrase file", edPath}},
		{name: "wrong passphrase", uri: "file://" + edPath, env: map[string]string{"CAIRN_KEY_PASSPHRASE": "wrong"}, contains: []string{edPath}, wrongPass: true},
		{name: "key file missing", uri: "file://" + filepath.Join(dir, "missing.json"), env: good, contains: []string{"reading key file"}},
		{name: "not a key file", uri: "file://" + notKey, env: good, contains: []string{notKey, "not a Cairn key file"}},
		{name: "relative path (host form)", uri: "file://keys/online.json", env: good, contains: []string{"must be absolute"}},
		{name: "relative path (opaque form)", uri: "file:keys/online.json", env: good, contains: []string{"must be absolute"}},
		{name: "relative path (dot)", uri: "file://./online.json", env: good, contains: []string{"must be absolute"}},
		{name: "no scheme", uri: edPath, env: good, contains: []string{"not a key file", "file:///"}},
		{name: "other scheme", uri: "ftp://host/key?pin=123456", env: good, contains: []string{`"ftp"`, "not a key file"}, notContains: []string{"123456"}},
		{name: "other scheme with user info", uri: "sftp://admin:hunter2@host/key", env: good, contains: []string{"not a key file"}, notContains: []string{"hunter2"}},
		{name: "kms scheme", uri: "awskms:///arn:aws:kms:eu-west-1:123:key/abc", contains: []string{`"awskms"`, "not a key file"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s, err := FileSignerFromURI(ctx, tc.uri, envOf(tc.env))
			if s != nil {
				t.Error("returned a signer with the error")
			}
			wantContains(t, err, tc.contains...)
			for _, n := range tc.notContains {
				if strings.Contains(err.Error(), n) {
					t.Errorf("error %q leaks %q", err, n)
				}
			}
			if tc.wrongPass && !errors.Is(err, ErrWrongPassphrase) {
				t.Errorf("error %v is not ErrWrongPassphrase", err)
			}
		})
	}
}

// BUG: a key URI that does not parse is echoed whole, query secrets included.
func TestSignerFromURIParseErrorRedacted(t *testing.T) {
	for _, uri := range []string{"hashivault://k%zz?token=s3cret", "awskms://host/key\x7f?pin=s3cret"} {
		_, err := FileSignerFromURI(context.Background(), uri, envOf(nil))
		if err == nil {
			t.Fatalf("%q accepted", uri)
		}
		if strings.Contains(err.Error(), "s3cret") {
			t.Errorf("error leaks the secret: %v", err)
		}
	}
}
