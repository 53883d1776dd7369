package daemon

import (
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"time"

	"github.com/cairn-dev/cairn/tlog"
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
