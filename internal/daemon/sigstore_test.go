package daemon

import (
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestBadSigstoreTrustedRootRefusedAtStart: a trusted root that is not one (junk, an
// ambiguous document, one without a CA or log, too large, missing) stops cairnd at start
// with a message naming the flag, rather than a server that refuses every attestation.
func TestBadSigstoreTrustedRootRefusedAtStart(t *testing.T) {
	u := newDB(t, t.Name())
	dir := t.TempDir()
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	for _, tc := range []struct{ name, path, says string }{
		{"not JSON", write("junk.json", "not json"), "trusted root"},
		{"duplicate key", write("dup.json", `{"mediaType":"a","mediaType":"b"}`), "trusted root"},
		{"no CA", write("empty.json", `{"mediaType":"application/vnd.dev.sigstore.trustedroot+json;version=0.1"}`), "no certificate authority"},
		{"too large", write("big.json", strings.Repeat(" ", 2<<20)), "larger than"},
		{"missing", filepath.Join(dir, "nope.json"), "no such file"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := devConfig(t.TempDir(), u)
			c.SigstoreTrustedRoot = tc.path
			r, err := Start(t.Context(), c, func(string) string { return "" }, io.Discard, slog.New(slog.NewTextHandler(io.Discard, nil)))
			if err == nil {
				r.Close()
				t.Fatal("started")
			}
			if !strings.Contains(err.Error(), "--sigstore-trusted-root") || !strings.Contains(err.Error(), tc.says) {
				t.Fatalf("%v; want it to name --sigstore-trusted-root and say %q", err, tc.says)
			}
		})
	}
}
