package daemon

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestRekorConfig: --rekor-* through flags, environment and config file, with defaults,
// and the refusals that name the flag.
func TestRekorConfig(t *testing.T) {
	dir := t.TempDir()
	pub, _, _ := ed25519.GenerateKey(rand.Reader)
	der, _ := x509.MarshalPKIXPublicKey(pub)
	keyFile := filepath.Join(dir, "rekor.pub")
	os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}), 0o644)
	cfgFile := filepath.Join(dir, "cairnd.json")
	os.WriteFile(cfgFile, []byte(`{"rekor_origin": "from-file", "rekor_retry_max": "1m"}`), 0o644)
	log := slog.New(slog.NewTextHandler(io.Discard, nil))

	c, err := loadConfig([]string{"--config", cfgFile, "--rekor-key", keyFile}, map[string]string{"CAIRN_REKOR_URL": "https://rekor.example"})
	if err != nil {
		t.Fatal(err)
	}
	if c.RekorURL != "https://rekor.example" || c.RekorOrigin != "from-file" || c.RekorRetryMax != time.Minute || c.RekorTimeout != 30*time.Second {
		t.Fatalf("config %+v", c)
	}
	tc, err := tlogConfig(&c, log)
	if err != nil {
		t.Fatal(err)
	}
	if tc.URL != c.RekorURL || tc.LogKey == nil || tc.LogKey.Origin != "from-file" || !pub.Equal(tc.LogKey.Key) || tc.MaxBackoff != time.Minute {
		t.Fatalf("tlog config %+v", tc)
	}

	// Off by default.
	c, _ = loadConfig(nil, nil)
	if tc, err := tlogConfig(&c, log); err != nil || tc.URL != "" {
		t.Fatalf("default: %+v %v", tc, err)
	}

	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{"--rekor-key", keyFile}, "--rekor-url"},
		{[]string{"--rekor-url", "rekor.example"}, "--rekor-url"},
		{[]string{"--rekor-url", "https://rekor.example", "--rekor-key", filepath.Join(dir, "missing.pub")}, "--rekor-key"},
		{[]string{"--rekor-url", "https://rekor.example", "--rekor-key", cfgFile}, "PEM"},
	} {
		c, err := loadConfig(tt.args, nil)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := tlogConfig(&c, log); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%v: %v, want an error naming %s", tt.args, err, tt.want)
		}
	}
}
