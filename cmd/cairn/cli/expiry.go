package cli

import (
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/cairn-dev/cairn/api"
)

var lifetimeRE = regexp.MustCompile(`^([0-9]+)([dwy])$`)

// parseExpiry reads an expiry flag: a lifetime from now (365d, 52w, 1y, or a Go duration
// such as 8760h) or a date (2027-06-30, or RFC 3339).
func parseExpiry(flag, s string, now time.Time) (time.Time, error) {
	s = strings.TrimSpace(s)
	if m := lifetimeRE.FindStringSubmatch(s); m != nil {
		n, err := strconv.Atoi(m[1])
		if err == nil && n <= 100*366 {
			days := map[string]int{"d": 1, "w": 7, "y": 365}[m[2]]
			return now.UTC().Add(time.Duration(n*days) * 24 * time.Hour).Truncate(time.Second), nil
		}
	}
	if d, err := time.ParseDuration(s); err == nil && d > 0 {
		return now.UTC().Add(d).Truncate(time.Second), nil
	}
	if t, err := time.Parse("2006-01-02", s); err == nil {
		return t.UTC(), nil
	}
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t.UTC().Truncate(time.Second), nil
	}
	return time.Time{}, api.Errorf(api.CodeBadRequest, "%s %q is neither a lifetime (365d, 52w, 1y, 8760h) nor a date (2027-06-30)", flag, s)
}
