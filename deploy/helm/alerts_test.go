package helm_test

import (
	"net/http"
	"net/http/httptest"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/cairn-dev/cairn/internal/daemon"
	"github.com/cairn-dev/cairn/internal/testdb"
	"github.com/cairn-dev/cairn/internal/testrepo"
	"github.com/cairn-dev/cairn/tufrepo"
)

const rulesFile = "cairn/files/prometheus-rules.yaml"

type alertRule struct {
	Alert       string            `yaml:"alert"`
	Expr        string            `yaml:"expr"`
	For         string            `yaml:"for"`
	Labels      map[string]string `yaml:"labels"`
	Annotations map[string]string `yaml:"annotations"`
}

type ruleFile struct {
	Groups []struct {
		Name  string      `yaml:"name"`
		Rules []alertRule `yaml:"rules"`
	} `yaml:"groups"`
}

func loadRules(t *testing.T) []alertRule {
	t.Helper()
	b, err := os.ReadFile(rulesFile)
	if err != nil {
		t.Fatal(err)
	}
	var f ruleFile
	dec := yaml.NewDecoder(strings.NewReader(string(b)))
	dec.KnownFields(true)
	if err := dec.Decode(&f); err != nil {
		t.Fatalf("%s: %v", rulesFile, err)
	}
	var out []alertRule
	for _, g := range f.Groups {
		out = append(out, g.Rules...)
	}
	return out
}

// scraped is one /metrics page: metric family → label names seen on its series.
type scraped map[string]map[string]bool

var (
	typeLine   = regexp.MustCompile(`^# TYPE (\S+) (\S+)$`)
	sampleLine = regexp.MustCompile(`^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{([^}]*)\})? `)
	labelName  = regexp.MustCompile(`([a-zA-Z_][a-zA-Z0-9_]*)="`)
)

func parseScrape(page string) scraped {
	s := scraped{}
	types := map[string]string{}
	for _, l := range strings.Split(page, "\n") {
		if m := typeLine.FindStringSubmatch(l); m != nil {
			types[m[1]], s[m[1]] = m[2], map[string]bool{}
		}
	}
	for _, l := range strings.Split(page, "\n") {
		m := sampleLine.FindStringSubmatch(l)
		if m == nil {
			continue
		}
		fam := m[1]
		for _, suf := range []string{"_bucket", "_sum", "_count"} {
			if base := strings.TrimSuffix(fam, suf); base != fam && (types[base] == "histogram" || types[base] == "summary") {
				fam = base
			}
		}
		for _, ln := range labelName.FindAllStringSubmatch(m[3], -1) {
			if s[fam] != nil {
				s[fam][ln[1]] = true
			}
		}
	}
	return s
}

// series is what an expression selects: a metric name (or a bare identifier) and the
// label names its matchers use.
type series struct {
	name   string
	labels []string
}

var (
	selector = regexp.MustCompile(`([a-zA-Z_:][a-zA-Z0-9_:]*)?\{([^}]*)\}`)
	matcher  = regexp.MustCompile(`([a-zA-Z_][a-zA-Z0-9_]*)\s*(=~|!~|!=|=)`)
	grouping = regexp.MustCompile(`\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)`)
	rangeSel = regexp.MustCompile(`\[[^\]]*\]`)
	ident    = regexp.MustCompile(`[a-zA-Z_:][a-zA-Z0-9_:]*(\s*\()?`)
	// PromQL words that are not metric names.
	promqlWords = []string{"and", "or", "unless", "bool", "offset", "by", "without", "on", "ignoring", "group_left", "group_right", "inf", "nan"}
)

// selected lists every series an expression names. Identifiers followed by "(" are
// functions or aggregations; label names in by()/without() are left out (instance and
// job are the scraper's).
func selected(expr string) ([]series, error) {
	var out []series
	rest := selector.ReplaceAllStringFunc(expr, func(sel string) string {
		m := selector.FindStringSubmatch(sel)
		s := series{name: m[1]}
		for _, lm := range matcher.FindAllStringSubmatch(m[2], -1) {
			s.labels = append(s.labels, lm[1])
		}
		out = append(out, s)
		return " "
	})
	rest = rangeSel.ReplaceAllString(grouping.ReplaceAllString(rest, " "), " ")
	for _, id := range ident.FindAllString(rest, -1) {
		if strings.HasSuffix(id, "(") || slices.Contains(promqlWords, strings.ToLower(id)) {
			continue
		}
		out = append(out, series{name: id})
	}
	return out, nil
}

// TestAlertRulesUseExportedMetrics: every metric and label an alert expression names is
// exported by a real cairnd (with a transparency log and a static directory configured,
// which add their own metrics), every alert says how bad it is and where its runbook is,
// and that runbook section exists.
func TestAlertRulesUseExportedMetrics(t *testing.T) {
	rules := loadRules(t)
	if len(rules) < 10 {
		t.Fatalf("%s holds %d alerts", rulesFile, len(rules))
	}
	// A Rekor log that refuses every entry: the worker's failures appear in the metrics.
	rekor := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "down for the test", http.StatusServiceUnavailable)
	}))
	defer rekor.Close()
	u, drop, err := testdb.Create("helm_alerts")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(drop)
	r := testrepo.Boot(t, u, func(c *daemon.Config) {
		c.RekorURL, c.RekorRetryMax, c.StaticDir = rekor.URL, time.Second, t.TempDir()
	})
	// Some traffic: a project and an upload (publishes, signatures, requests).
	k := testrepo.NewKey(t, tufrepo.KeyEd25519)
	r.CreateProject(t, r.AdminToken, "demo", 1, []*testrepo.Key{k}, k)
	var page scraped
	deadline := time.Now().Add(30 * time.Second)
	for {
		page = parseScrape(string(r.Do(t, http.MethodGet, "/metrics", "", "", nil).Body))
		if len(page["cairn_tlog_failures_total"]) > 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}

	runbook, err := os.ReadFile("../../docs/operations.md")
	if err != nil {
		t.Fatal(err)
	}
	anchors := map[string]bool{}
	for _, l := range strings.Split(string(runbook), "\n") {
		if h, ok := strings.CutPrefix(l, "#"); ok {
			h = strings.ToLower(strings.TrimSpace(strings.TrimLeft(h, "#")))
			h = regexp.MustCompile(`[^a-z0-9 _-]`).ReplaceAllString(h, "")
			anchors[strings.ReplaceAll(h, " ", "-")] = true
		}
	}
	seen := map[string]bool{}
	for _, rule := range rules {
		if rule.Alert == "" || seen[rule.Alert] {
			t.Errorf("alert name %q empty or repeated", rule.Alert)
		}
		seen[rule.Alert] = true
		if sev := rule.Labels["severity"]; sev != "critical" && sev != "warning" {
			t.Errorf("%s: severity %q, want critical or warning", rule.Alert, sev)
		}
		if rule.Annotations["summary"] == "" || rule.Annotations["description"] == "" {
			t.Errorf("%s: no summary or description", rule.Alert)
		}
		if a, ok := strings.CutPrefix(rule.Annotations["runbook"], "docs/operations.md#"); !ok || !anchors[a] {
			t.Errorf("%s: runbook %q is not a section of docs/operations.md", rule.Alert, rule.Annotations["runbook"])
		}
		if rule.For != "" {
			if _, err := time.ParseDuration(rule.For); err != nil {
				t.Errorf("%s: for %q: %v", rule.Alert, rule.For, err)
			}
		}
		if strings.Count(rule.Expr, "(") != strings.Count(rule.Expr, ")") || strings.Count(rule.Expr, "{") != strings.Count(rule.Expr, "}") {
			t.Errorf("%s: unbalanced brackets in %q", rule.Alert, rule.Expr)
		}
		ss, _ := selected(rule.Expr)
		if len(ss) == 0 {
			t.Errorf("%s: %q names no metric", rule.Alert, rule.Expr)
		}
		for _, s := range ss {
			labels, ok := page[s.name]
			if !ok {
				t.Errorf("%s: %q names %q, which cairnd does not export", rule.Alert, rule.Expr, s.name)
				continue
			}
			for _, l := range s.labels {
				if !labels[l] {
					t.Errorf("%s: %q matches label %q, which %s does not carry", rule.Alert, rule.Expr, l, s.name)
				}
			}
		}
	}
}

// TestAlertExpressionParsing checks the helper above on expressions of the shapes the rules use.
func TestAlertExpressionParsing(t *testing.T) {
	for _, tc := range []struct {
		expr string
		want []string
	}{
		{`cairn_role_expiry_seconds < 0`, []string{"cairn_role_expiry_seconds"}},
		{`cairn_role_expiry_seconds{role=~"root|targets"} < 30 * 86400`, []string{"cairn_role_expiry_seconds{role}"}},
		{`sum by (instance) (rate(a_total{code=~"5..", method="GET"}[5m])) / sum by (instance) (rate(a_total[5m])) > 0.05`, []string{"a_total{code,method}", "a_total"}},
		{`x > 0 and increase(y[30m]) == 0`, []string{"x", "y"}},
	} {
		ss, err := selected(tc.expr)
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, s := range ss {
			n := s.name
			if len(s.labels) > 0 {
				n += "{" + strings.Join(s.labels, ",") + "}"
			}
			got = append(got, n)
		}
		slices.Sort(got)
		slices.Sort(tc.want)
		if !slices.Equal(got, tc.want) {
			t.Errorf("%s: got %v, want %v", tc.expr, got, tc.want)
		}
	}
}
