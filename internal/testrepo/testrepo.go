// Package testrepo boots a real Cairn server for tests and builds maintainer-signed
// project role metadata the way a maintainer's client does.
package testrepo

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cairn-dev/cairn/api"
	"github.com/cairn-dev/cairn/internal/daemon"
	"github.com/cairn-dev/cairn/tufrepo"
	"github.com/theupdateframework/go-tuf/v2/metadata"
)

// Repo is a running dev server.
type Repo struct {
	*daemon.Running
	Dir        string
	AdminToken string
	RootJSON   []byte
}

// Boot starts cairnd in dev mode on a loopback port with a new data dir and the given
// (fresh) database, and stops it when the test ends.
func Boot(t testing.TB, dbURL string, tweak func(*daemon.Config)) *Repo {
	t.Helper()
	dir := t.TempDir()
	c := daemon.Config{Listen: "127.0.0.1:0", DatabaseURL: dbURL, Dev: true, DataDir: dir, MaxBlobSize: 1 << 30, PublishInterval: time.Hour, LogLevel: "warn"}
	if tweak != nil {
		tweak(&c)
	}
	dir = c.DataDir
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	if os.Getenv("CAIRN_TEST_LOG") != "" {
		log = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	r, err := daemon.Start(context.Background(), c, os.Getenv, io.Discard, log)
	if err != nil {
		t.Fatalf("starting cairnd: %v", err)
	}
	t.Cleanup(func() { _ = r.Close() })
	tok, err := os.ReadFile(filepath.Join(dir, "admin.token"))
	if err != nil {
		t.Fatal(err)
	}
	root, err := os.ReadFile(filepath.Join(dir, "root.json"))
	if err != nil {
		t.Fatal(err)
	}
	return &Repo{Running: r, Dir: dir, AdminToken: strings.TrimSpace(string(tok)), RootJSON: root}
}

// Key is a maintainer key.
type Key struct {
	Signer *tufrepo.OnlineSigner
}

// NewKey generates a maintainer key of type kt.
func NewKey(t testing.TB, kt tufrepo.KeyType) *Key {
	t.Helper()
	priv, err := tufrepo.GenerateKey(kt)
	if err != nil {
		t.Fatal(err)
	}
	s, err := tufrepo.NewSigner(priv)
	if err != nil {
		t.Fatal(err)
	}
	o, err := tufrepo.NewOnlineSigner(context.Background(), s)
	if err != nil {
		t.Fatal(err)
	}
	return &Key{Signer: o}
}

// API returns the wire form of the public key.
func (k *Key) API() api.Key { return tufrepo.KeyToAPI(k.Signer.Key) }

// ID returns the key ID.
func (k *Key) ID() string { return k.Signer.KeyID }

// File is a release file.
type File struct {
	Path    string
	Content []byte
}

// Role builds an unsigned project role: version, expiry and targets.
func Role(version int64, expires time.Time, files ...File) *metadata.Metadata[metadata.TargetsType] {
	md := metadata.Targets(expires.UTC().Truncate(time.Second))
	md.Signed.Version = version
	md.Signed.SpecVersion = tufrepo.SpecVersion
	for _, f := range files {
		sum := sha256.Sum256(f.Content)
		tf := metadata.TargetFile()
		tf.Path = f.Path
		tf.Length = int64(len(f.Content))
		tf.Hashes = metadata.Hashes{"sha256": sum[:]}
		md.Signed.Targets[f.Path] = tf
	}
	return md
}

// Sign signs md with each key and returns the file bytes.
func Sign(t testing.TB, md *metadata.Metadata[metadata.TargetsType], keys ...*Key) []byte {
	t.Helper()
	for _, k := range keys {
		if _, err := md.Sign(k.Signer.Signer); err != nil {
			t.Fatal(err)
		}
	}
	b, err := md.ToBytes(false)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// Response is an HTTP answer.
type Response struct {
	Status int
	Header http.Header
	Body   []byte
}

// Problem decodes a problem document.
func (r Response) Problem() api.Problem {
	var p api.Problem
	_ = json.Unmarshal(r.Body, &p)
	return p
}

// Do sends a request to the server.
func (r *Repo) Do(t testing.TB, method, path, token, contentType string, body []byte) Response {
	t.Helper()
	req, err := http.NewRequest(method, r.URL+path, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return Response{Status: resp.StatusCode, Header: resp.Header, Body: b}
}

// JSON marshals v or fails the test.
func JSON(t testing.TB, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// PutBlob uploads content and fails the test unless it is stored.
func (r *Repo) PutBlob(t testing.TB, token string, content []byte) string {
	t.Helper()
	sum := sha256.Sum256(content)
	h := hex.EncodeToString(sum[:])
	resp := r.Do(t, http.MethodPut, "/api/v1/blobs/sha256:"+h, token, "application/octet-stream", content)
	if resp.Status != http.StatusCreated && resp.Status != http.StatusOK {
		t.Fatalf("PUT blob: %d %s", resp.Status, resp.Body)
	}
	return h
}

// CreateProject creates a project with version 1 of its role (no files) and waits for it
// to be published.
func (r *Repo) CreateProject(t testing.TB, token, name string, threshold int, signers []*Key, maintainers ...*Key) api.SubmitResult {
	t.Helper()
	req := api.CreateProjectRequest{Name: name, Threshold: threshold, Metadata: Sign(t, Role(1, time.Now().Add(tufrepo.ProjectRoleExpiry)), signers...)}
	for _, k := range maintainers {
		req.Keys = append(req.Keys, k.API())
	}
	resp := r.Do(t, http.MethodPost, "/api/v1/projects", token, api.MediaJSON, JSON(t, req))
	if resp.Status != http.StatusCreated {
		t.Fatalf("creating project %s: %d %s", name, resp.Status, resp.Body)
	}
	var res api.SubmitResult
	if err := json.Unmarshal(resp.Body, &res); err != nil {
		t.Fatal(err)
	}
	return res
}

// Submit posts a signed project role version.
func (r *Repo) Submit(t testing.TB, token, project string, raw []byte) Response {
	t.Helper()
	return r.Do(t, http.MethodPost, "/api/v1/projects/"+project+"/roles", token, api.MediaJSON, raw)
}

// OfflineSigner loads one of the dev repository's offline keys (root, targets, claimed):
// what an admin holds.
func (r *Repo) OfflineSigner(t testing.TB, role string) *tufrepo.OnlineSigner {
	t.Helper()
	keys := filepath.Join(r.Dir, "keys")
	uri := (&url.URL{Scheme: "file", Path: filepath.Join(keys, role+".json"), RawQuery: "passphrase-file=" + url.QueryEscape(filepath.Join(keys, "passphrase"))}).String()
	s, err := tufrepo.FileSignerFromURI(context.Background(), uri, func(string) string { return "" })
	if err != nil {
		t.Fatal(err)
	}
	o, err := tufrepo.NewOnlineSigner(context.Background(), s)
	if err != nil {
		t.Fatal(err)
	}
	return o
}

// OnlineKeyFile writes a new encrypted key file DIR/NAME.json of type kt and its passphrase
// file, as an operator would for a file:// online key (e.g. a standby key), and returns the
// URI cairnd takes for it and a signer holding the same key.
func OnlineKeyFile(t testing.TB, dir, name string, kt tufrepo.KeyType) (string, *tufrepo.OnlineSigner) {
	t.Helper()
	pass := []byte("passphrase of " + name)
	passFile := filepath.Join(dir, name+".passphrase")
	if err := os.WriteFile(passFile, pass, 0o600); err != nil {
		t.Fatal(err)
	}
	priv, err := tufrepo.GenerateKey(kt)
	if err != nil {
		t.Fatal(err)
	}
	kf, err := tufrepo.EncryptKey(name, priv, pass, tufrepo.KDFFast)
	if err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(kf)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, name+".json")
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	s, err := tufrepo.NewSigner(priv)
	if err != nil {
		t.Fatal(err)
	}
	o, err := tufrepo.NewOnlineSigner(context.Background(), s)
	if err != nil {
		t.Fatal(err)
	}
	return (&url.URL{Scheme: "file", Path: path, RawQuery: "passphrase-file=" + url.QueryEscape(passFile)}).String(), o
}
