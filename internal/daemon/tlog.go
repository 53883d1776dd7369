package daemon

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/cairn-dev/cairn/tlog"
	"github.com/cairn-dev/cairn/tufrepo"
)

// tlogConfig builds the transparency log configuration from --rekor-*.
func tlogConfig(c *Config, log *slog.Logger) (tlog.Config, error) {
	if c.RekorURL == "" {
		if c.RekorKey != "" || c.RekorOrigin != "" {
			return tlog.Config{}, errors.New("--rekor-key and --rekor-origin need --rekor-url")
		}
		return tlog.Config{}, nil
	}
	u, err := url.Parse(c.RekorURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return tlog.Config{}, fmt.Errorf("--rekor-url %q: want the log's base URL, http(s)://host[:port]", c.RekorURL)
	}
	cfg := tlog.Config{URL: c.RekorURL, RequestTimeout: c.RekorTimeout, MaxBackoff: c.RekorRetryMax}
	if c.RekorKey == "" {
		log.Warn("transparency log without --rekor-key: entries are stored without checking the log's checkpoint signature (auditors still check it)", "rekor_url", c.RekorURL)
		return cfg, nil
	}
	pemBytes, err := os.ReadFile(c.RekorKey)
	if err != nil {
		return tlog.Config{}, fmt.Errorf("reading --rekor-key: %w", err)
	}
	pub, err := tlog.ParsePublicKey(pemBytes)
	if err != nil {
		return tlog.Config{}, fmt.Errorf("--rekor-key %s: %w", c.RekorKey, err)
	}
	cfg.LogKey = &tlog.LogKey{Key: pub, Origin: c.RekorOrigin}
	return cfg, nil
}

// orDuration is d, or def when d is zero (a flag's default).
func orDuration(d, def time.Duration) time.Duration {
	if d == 0 {
		return def
	}
	return d
}

// checkLoggable refuses a configuration whose online keys cannot sign log statements (an
// Ed25519 key on a token without Ed25519ph, which Rekor v2 requires): every version they
// sign would wait in the backlog for ever. It signs a probe statement with each key.
func checkLoggable(ctx context.Context, cfg tlog.Config, s tufrepo.Signers) error {
	if cfg.URL == "" {
		return nil
	}
	named := []struct {
		name string
		o    *tufrepo.OnlineSigner
	}{{"timestamp", s.Timestamp}, {"snapshot", s.Snapshot}, {"recently-claimed", s.RecentlyClaimed}}
	for i, o := range s.Standby {
		named = append(named, struct {
			name string
			o    *tufrepo.OnlineSigner
		}{fmt.Sprintf("standby %d", i+1), o})
	}
	for _, n := range named {
		if n.o == nil {
			continue
		}
		_, err := tlog.Sign(ctx, n.o, tlog.Metadata{Role: "cairn-probe", Version: 1, SHA256: strings.Repeat("0", 64)})
		if errors.Is(err, tlog.ErrEd25519phUnsupported) {
			return fmt.Errorf("--rekor-url is set, but the %s key %s cannot sign transparency log statements: %w", n.name, n.o.KeyID, err)
		}
	}
	return nil
}
