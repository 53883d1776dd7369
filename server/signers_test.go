package server_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cairn-dev/cairn/api"
	"github.com/cairn-dev/cairn/server"
	"github.com/cairn-dev/cairn/store/blobstore"
	"github.com/cairn-dev/cairn/tufrepo"
	"github.com/sigstore/sigstore/pkg/signature"
)

// outage is a signer that fails while down is set, as a KMS does when it is unreachable,
// throttling, or the key is disabled.
type outage struct {
	signature.Signer
	down atomic.Bool
}

func (o *outage) SignMessage(r io.Reader, opts ...signature.SignOption) ([]byte, error) {
	if o.down.Load() {
		return nil, errors.New("kms: ThrottlingException: rate exceeded")
	}
	return o.Signer.SignMessage(r, opts...)
}

func devSigner(t *testing.T, dir, role string) *tufrepo.OnlineSigner {
	t.Helper()
	keys := filepath.Join(dir, "keys")
	uri := (&url.URL{Scheme: "file", Path: filepath.Join(keys, role+".json"), RawQuery: "passphrase-file=" + url.QueryEscape(filepath.Join(keys, "passphrase"))}).String()
	s, err := tufrepo.FileSignerFromURI(t.Context(), uri, func(string) string { return "" })
	if err != nil {
		t.Fatal(err)
	}
	o, err := tufrepo.NewOnlineSigner(t.Context(), s)
	if err != nil {
		t.Fatal(err)
	}
	return o
}

// A signing outage: the publish fails after its retries and stores nothing, /readyz says
// "degraded" (still 200: the served metadata is valid) and names the failing signer,
// /metrics counts the failed attempts; when the KMS is back the next publish succeeds.
func TestSignerOutage(t *testing.T) {
	r := freshRepo(t)
	ts := devSigner(t, r.Dir, tufrepo.RoleTimestamp)
	flaky := &outage{Signer: ts.Signer}
	ts.Signer = flaky
	ts.Retry = tufrepo.Retry{Attempts: 3, Initial: time.Millisecond, Max: time.Millisecond}
	signers := tufrepo.Signers{Timestamp: ts, Snapshot: devSigner(t, r.Dir, tufrepo.RoleSnapshot), RecentlyClaimed: devSigner(t, r.Dir, tufrepo.RoleRecentlyClaimed)}
	blobs, err := blobstore.OpenDir(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	// A replica whose clock is 20 hours on: the 1-day timestamp is due for re-signing.
	later := time.Now().Add(20 * time.Hour)
	cfg := server.DefaultConfig()
	cfg.PublishInterval = time.Hour
	srv := server.New(cfg, r.DB, blobs, signers, slog.New(slog.NewTextHandler(io.Discard, nil)), func() time.Time { return later })
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	// The outage starts before the server does: otherwise its own first publish may sign
	// the due timestamp before the test's, which then has nothing to do and succeeds.
	flaky.down.Store(true)
	if err := srv.Start(ctx); err != nil {
		t.Fatal(err)
	}
	var before int64
	if err := r.DB.Pool.QueryRow(ctx, `SELECT max(version) FROM metadata WHERE role = 'timestamp'`).Scan(&before); err != nil {
		t.Fatal(err)
	}
	get := func(path string) (int, string) {
		rec := httptest.NewRecorder()
		srv.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
		return rec.Code, rec.Body.String()
	}
	readyz := func() (int, api.Health) {
		code, body := get("/readyz")
		var h api.Health
		if err := json.Unmarshal([]byte(body), &h); err != nil {
			t.Fatalf("readyz: %v: %s", err, body)
		}
		return code, h
	}

	_, err = srv.Publisher().PublishOnce(ctx)
	if err == nil || !strings.Contains(err.Error(), "failed 3 times") || !strings.Contains(err.Error(), "ThrottlingException") || !strings.Contains(err.Error(), ts.KeyID) {
		t.Fatalf("publish during the outage: %v", err)
	}
	var after int64
	if err := r.DB.Pool.QueryRow(ctx, `SELECT max(version) FROM metadata WHERE role = 'timestamp'`).Scan(&after); err != nil || after != before {
		t.Fatalf("timestamp version %d after a failed publish, was %d (%v)", after, before, err)
	}
	code, h := readyz()
	if code != http.StatusOK || h.Status != "degraded" || !strings.HasPrefix(h.Checks["publisher"], "FAILING") ||
		!strings.HasPrefix(h.Checks["signer timestamp"], "FAILING: key "+ts.KeyID[:12]) || !strings.Contains(h.Checks["signer timestamp"], "ThrottlingException") {
		t.Fatalf("readyz during the outage: %d %+v", code, h)
	}
	_, metrics := get("/metrics")
	for _, want := range []string{`cairn_sign_attempts_total{result="error",signer="timestamp"}`, `cairn_signer_healthy{signer="timestamp"} 0`, `cairn_signer_healthy{signer="snapshot"} 1`, `cairn_publishes_total{reason="",result="error"}`} {
		if !strings.Contains(metrics, want) {
			t.Errorf("/metrics lacks %s", want)
		}
		if strings.HasSuffix(want, "}") && strings.Contains(metrics, want+" 0\n") {
			t.Errorf("/metrics has %s at 0 (the series exists from the start; the event must count)", want)
		}
	}

	flaky.down.Store(false)
	res, err := srv.Publisher().PublishOnce(ctx)
	if err != nil || res.TimestampVersion != before+1 {
		t.Fatalf("publish after the outage: %+v, %v", res, err)
	}
	code, h = readyz()
	if code != http.StatusOK || h.Status != "ok" || h.Checks["publisher"] != "ok" || !strings.HasPrefix(h.Checks["signer timestamp"], "ok: key ") {
		t.Fatalf("readyz after the outage: %d %+v", code, h)
	}
	if _, metrics = get("/metrics"); !strings.Contains(metrics, `cairn_signer_healthy{signer="timestamp"} 1`) {
		t.Error("cairn_signer_healthy did not recover")
	}
}
