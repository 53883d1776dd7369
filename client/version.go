package client

import (
	"strings"
)

// CompareVersions orders release versions naturally and returns -1, 0 or +1. Versions are
// split into runs of digits and runs of letters (other characters only separate runs);
// digit runs compare as numbers, letter runs case-insensitively, and a digit run sorts
// above a letter run at the same place. When one version is a prefix of the other, the
// longer one is newer unless what it adds starts with letters (a pre-release such as
// "-rc.1", "a1", "beta"), which is older — except "post", which is newer. So
// 1.2 < 1.10, 1.0.0-rc.1 < 1.0.0 < 1.0.0.1, 1.0a1 < 1.0b1 < 1.0rc1 < 1.0 < 1.0.post1.
// Versions that tie (e.g. "1.0" and "1-0") fall back to byte order, so the order is total.
func CompareVersions(a, b string) int {
	ta, tb := versionTokens(a), versionTokens(b)
	for i := 0; i < len(ta) && i < len(tb); i++ {
		if c := compareToken(ta[i], tb[i]); c != 0 {
			return c
		}
	}
	switch {
	case len(ta) > len(tb):
		return tailSign(ta[len(tb)])
	case len(tb) > len(ta):
		return -tailSign(tb[len(ta)])
	}
	return strings.Compare(a, b)
}

// tailSign is how a version compares with its own prefix, given the first extra token.
func tailSign(t string) int {
	if isDigits(t) || strings.EqualFold(t, "post") {
		return 1
	}
	return -1
}

func compareToken(x, y string) int {
	dx, dy := isDigits(x), isDigits(y)
	switch {
	case dx && dy:
		x, y = strings.TrimLeft(x, "0"), strings.TrimLeft(y, "0")
		if len(x) != len(y) {
			if len(x) < len(y) {
				return -1
			}
			return 1
		}
		return strings.Compare(x, y)
	case dx:
		return 1
	case dy:
		return -1
	}
	return strings.Compare(strings.ToLower(x), strings.ToLower(y))
}

// versionTokens splits a version into digit runs and letter runs.
func versionTokens(v string) []string {
	var out []string
	start, kind := -1, 0 // kind: 1 digits, 2 letters
	flush := func(i int) {
		if start >= 0 {
			out = append(out, v[start:i])
		}
		start, kind = -1, 0
	}
	for i := 0; i < len(v); i++ {
		c := v[i]
		k := 0
		switch {
		case c >= '0' && c <= '9':
			k = 1
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z':
			k = 2
		}
		if k != kind {
			flush(i)
			if k != 0 {
				start, kind = i, k
			}
		}
	}
	flush(len(v))
	return out
}

func isDigits(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}
