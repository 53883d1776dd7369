package server

import (
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/cairn-dev/cairn/api"
)

// Every search parameter is bounded and checked; anything else is refused, naming it.
func TestParseSearchRefusesBadInput(t *testing.T) {
	k := strings.Repeat("ab", 32)
	for _, tt := range []struct {
		query, want string
	}{
		{"", "give at least one search filter"},
		{"limit=5", "give at least one search filter"},
		{"q=a&q=b", `"q" is given 2 times`},
		{"q=a&evil=1", `unknown search parameter "evil"`},
		{"q=" + strings.Repeat("a", 65), "is not a project name or prefix"},
		{"q=a*", "is not a project name or prefix"},
		{"key=" + k[:63], "is not a key ID"},
		{"sha256=zz", "is not 64 hex digits"},
		{"published_after=yesterday", "is not an RFC 3339 time"},
		{"published_after=2026-12-02T00:00:00Z&published_before=2026-12-01T00:00:00Z", "is not before published_before"},
		{"q=a&limit=0", "give 1 to 500"},
		{"q=a&limit=501", "give 1 to 500"},
		{"q=a&cursor=%%%", "the search query string is malformed"},
		{"q=a&cursor=" + strings.Repeat("A", 600), "is not one this search returned"},
		// A files cursor on a projects search, and the other way round.
		{"q=a&cursor=" + encodeCursor(searchCursor{Path: "a/1/f"}), "is not one this search returned"},
		{"sha256=" + k + "&cursor=" + encodeCursor(searchCursor{Name: "a"}), "is not one this search returned"},
	} {
		_, err := parseSearch(httptest.NewRequest("GET", "/api/v1/search?"+tt.query, nil))
		if api.CodeOf(err) != api.CodeBadRequest || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%q: %v; want bad_request mentioning %q", tt.query, err, tt.want)
		}
	}
	q, err := parseSearch(httptest.NewRequest("GET", "/api/v1/search?q=Hel&key="+strings.ToUpper(k)+"&limit=7", nil))
	if err != nil || q.Prefix != "Hel" || q.KeyID != k || q.Limit != 7 || q.Files() {
		t.Errorf("good query: %+v, %v", q, err)
	}
}
