package cli

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"strings"
	"testing"
	"time"
)

func TestSearchLive(t *testing.T) {
	r, c := liveMaintainer(t, "cli_search")
	dist := t.TempDir()
	c.ok("upload", "widget", "1.0", writeFile(t, dist, "widget.tar.gz", "one"), "--key", "alice")
	c.ok("project", "create", "widgetry", "--key", "bob")
	c.ok("upload", "widgetry", "0.1", writeFile(t, dist, "same.tar.gz", "one"), "--key", "bob")
	c.ok("project", "create", "gadget", "--key", "bob")
	alice, bob := keyIDOf(t, c, "alice"), keyIDOf(t, c, "bob")
	sum := sha256.Sum256([]byte("one"))
	one := hex.EncodeToString(sum[:])

	search := func(args ...string) searchOutput {
		t.Helper()
		var out searchOutput
		if err := json.Unmarshal([]byte(c.ok(append([]string{"search", "--output", "json"}, args...)...)), &out); err != nil {
			t.Fatal(err)
		}
		return out
	}
	names := func(o searchOutput) string {
		var s []string
		for i, p := range o.Projects {
			s = append(s, p.Name+map[bool]string{true: "+", false: "-"}[o.Verified[i].OK])
		}
		for i, f := range o.Files {
			s = append(s, f.Path+map[bool]string{true: "+", false: "-"}[o.Verified[len(o.Projects)+i].OK])
		}
		return strings.Join(s, " ")
	}
	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{"widg"}, "widget+ widgetry+"},
		{[]string{"WIDGET"}, "widget+ widgetry+"}, // canonical form
		{[]string{"--key", alice}, "widget+"},
		{[]string{"--key", bob}, "gadget+ widget+ widgetry+"},
		{[]string{"g", "--key", bob}, "gadget+"},
		{[]string{"--sha256", one}, "widgetry/0.1/same.tar.gz+ widget/1.0/widget.tar.gz+"},
		{[]string{"--sha256", one, "wi", "--key", alice}, "widget/1.0/widget.tar.gz+"},
		{[]string{"--after", time.Now().Add(-time.Hour).UTC().Format(time.RFC3339)}, "widgetry/0.1/same.tar.gz+ widget/1.0/widget.tar.gz+"},
		{[]string{"--before", "2000-01-01"}, ""},
		{[]string{"nosuch"}, ""},
	} {
		if got := names(search(tt.args...)); got != tt.want {
			t.Errorf("search %v = %q; want %q", tt.args, got, tt.want)
		}
	}
	// Pages: one result each, the cursor continues.
	p1 := search("--key", bob, "--limit", "1")
	p2 := search("--key", bob, "--limit", "1", "--cursor", p1.Next)
	if names(p1) != "gadget+" || names(p2) != "widget+" || p2.Next == "" {
		t.Errorf("pages: %q %q next %q", names(p1), names(p2), p2.Next)
	}
	// The text output says the index is only a pointer.
	text := c.run("search", "--sha256", one)
	if !strings.Contains(text.stderr, "only pointers") || !strings.Contains(text.stdout, "VERIFIED (listed by role version") {
		t.Errorf("text: %q / %q", text.stdout, text.stderr)
	}

	// An index that lies (a row changed in the database, not in signed metadata) is shown
	// as NOT VERIFIED, its hash marked unverified.
	if _, err := r.DB.Pool.Exec(context.Background(), `UPDATE release_files SET sha256 = decode(repeat('ab', 32), 'hex') WHERE path = 'widgetry/0.1/same.tar.gz'`); err != nil {
		t.Fatal(err)
	}
	lie := c.ok("search", "--sha256", strings.Repeat("ab", 32))
	if !strings.Contains(lie, "(unverified) abab") || !strings.Contains(lie, "NOT VERIFIED: the signed role lists 3 bytes with sha256 "+one) {
		t.Errorf("lying index:\n%s", lie)
	}

	// Bad input: a specific error, exit 10.
	for _, tt := range []struct {
		want string
		args []string
	}{
		{"give at least one search filter", []string{"search"}},
		{"is not 64 hex digits", []string{"search", "--sha256", "abc"}},
		{"is not a key ID", []string{"search", "--key", "xyz"}},
		{"is not a date", []string{"search", "--after", "yesterday"}},
		{"is not before published_before", []string{"search", "--after", "2026-12-02", "--before", "2026-12-01"}},
		{"--limit 0", []string{"search", "x", "--limit", "0"}},
		{"is not one this search returned", []string{"search", "x", "--cursor", "bogus"}},
		{"is not a project name or prefix", []string{"search", "a/b"}},
	} {
		c.fails(10, tt.want, tt.args...)
	}
}
