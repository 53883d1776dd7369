package helm_test

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/cairn-dev/cairn/internal/testenv"
)

// schemaDir holds the vendored JSON schemas (`make helm-schemas`, schemas/README.md).
const schemaDir = "schemas"

// valueSets are the renders kubeconform checks: every file of testdata and the switches
// that add or change objects, so that every kind and every optional block is rendered once.
var valueSets = [][]string{
	{"-f", "testdata/minimal.yaml"},
	{"-f", "testdata/production.yaml"},
	{"-f", "testdata/production.yaml", "--set", "metrics.prometheusRule.enabled=true", "--set", "metrics.prometheusRule.labels.release=kube-prometheus-stack"},
	{"-f", "testdata/boot.yaml", "--set", "migrate.enabled=false", "--set", "replicaCount=2", "--set", "gc.dryRun=true"},
	{"-f", "testdata/minimal.yaml", "--set", "gc.enabled=true", "--set", "persistence.existingClaim=blobs-nfs", "--set", "serviceAccount.create=false", "--set", "serviceAccount.name=cairn"},
	{"-f", "testdata/minimal.yaml", "--set", "podDisruptionBudget.minAvailable=1", "--set", "podDisruptionBudget.maxUnavailable=", "--set", "ingress.enabled=true", "--set", "ingress.hosts[0].host=reg.example", "--set", "ingress.hosts[0].paths[0].path=/", "--set", "ingress.hosts[0].paths[0].pathType=Prefix"},
}

func kubeconformBin(t *testing.T) string {
	t.Helper()
	bin := os.Getenv("CAIRN_KUBECONFORM_BIN")
	if bin == "" {
		testenv.MissingTool(t, "CAIRN_KUBECONFORM_BIN is not set: run `make test-helm` (builds kubeconform v0.8.0 into .cache/kubeconform/bin)")
	}
	if out, err := exec.Command(bin, "-v").CombinedOutput(); err != nil {
		t.Fatalf("CAIRN_KUBECONFORM_BIN=%s does not run: %v\n%s", bin, err, out)
	}
	return bin
}

// kubeVersion is the Kubernetes version of the vendored schemas, from their directory name.
func kubeVersion(t *testing.T) string {
	t.Helper()
	dirs, err := filepath.Glob(filepath.Join(schemaDir, "v*-standalone-strict"))
	if err != nil || len(dirs) != 1 {
		t.Fatalf("want one %s/v<version>-standalone-strict directory, found %v (%v): run `make helm-schemas`", schemaDir, dirs, err)
	}
	return strings.TrimSuffix(strings.TrimPrefix(filepath.Base(dirs[0]), "v"), "-standalone-strict")
}

// kubeconformResult is one line of `kubeconform -output json -verbose`.
type kubeconformResult struct {
	Filename, Kind, Name, Version, Status, Msg string
}

// kubeconform validates the manifests in file with the vendored schemas only (no
// download: -schema-location names nothing else) and returns a result per object.
func kubeconform(t *testing.T, file string) []kubeconformResult {
	t.Helper()
	abs, err := filepath.Abs(schemaDir)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(kubeconformBin(t), "-strict", "-kubernetes-version", kubeVersion(t), "-schema-location", abs,
		"-cache", t.TempDir(), "-output", "json", "-verbose", file)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err = cmd.Run()
	var out struct{ Resources []kubeconformResult }
	if jerr := json.Unmarshal(stdout.Bytes(), &out); jerr != nil {
		t.Fatalf("kubeconform %s: %v; output is not JSON (%v):\n%s\n%s", file, err, jerr, stdout.String(), stderr.String())
	}
	return out.Resources
}

// TestChartKubeconform validates every manifest of every value set against the Kubernetes
// schemas, strictly: an unknown or misplaced field, a wrong type or a missing required
// field fails, as the API server would refuse it.
func TestChartKubeconform(t *testing.T) {
	kubeconformBin(t)
	rendered := map[string]bool{} // "apiVersion/Kind" of every rendered object
	for _, args := range valueSets {
		t.Run(strings.Join(args, " "), func(t *testing.T) {
			out, err := helm(t, append([]string{"template", "rel", chartDir, "--namespace", "cairn"}, args...)...)
			if err != nil {
				t.Fatalf("helm template: %v", err)
			}
			f := filepath.Join(t.TempDir(), "rendered.yaml")
			if err := os.WriteFile(f, []byte(out), 0o644); err != nil {
				t.Fatal(err)
			}
			results := kubeconform(t, f)
			docs := render(t, append([]string{}, args...)...).docs
			if len(results) != len(docs) {
				t.Errorf("kubeconform reported %d objects, helm rendered %d", len(results), len(docs))
			}
			for _, d := range docs {
				rendered[str(d, "apiVersion")+"/"+str(d, "kind")] = true
			}
			for _, r := range results {
				if r.Status != "statusValid" {
					t.Errorf("%s %s (%s): %s %s", r.Kind, r.Name, r.Version, r.Status, r.Msg)
				}
			}
		})
	}

	// The vendored schemas are exactly those of the kinds the chart renders: a new kind
	// needs its schema (`make helm-schemas`), and no schema lies unused.
	var vendored []string
	files, _ := filepath.Glob(filepath.Join(schemaDir, "v*-standalone-strict", "*.json"))
	for _, f := range files {
		vendored = append(vendored, filepath.Base(f))
	}
	var want []string
	for gvk := range rendered {
		want = append(want, schemaFile(gvk))
	}
	slices.Sort(vendored)
	slices.Sort(want)
	if !slices.Equal(vendored, want) {
		t.Errorf("vendored schemas %v, want one per rendered kind %v: set HELM_KINDS in the Makefile and run `make helm-schemas`", vendored, want)
	}
}

// schemaFile is kubeconform's schema file name for "group/version/Kind" or "version/Kind".
func schemaFile(gvk string) string {
	parts := strings.Split(gvk, "/")
	kind := strings.ToLower(parts[len(parts)-1])
	if len(parts) == 2 {
		return kind + "-" + parts[0] + ".json"
	}
	return kind + "-" + strings.Split(parts[0], ".")[0] + "-" + parts[1] + ".json"
}

// TestKubeconformRefuses: the schemas and flags do refuse what the API server refuses, so
// that a valid result above means something.
func TestKubeconformRefuses(t *testing.T) {
	kubeconformBin(t)
	out, err := helm(t, "template", "rel", chartDir, "--namespace", "cairn", "-f", "testdata/production.yaml", "--set", "metrics.prometheusRule.enabled=true")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, old, new, kind, want string
	}{
		{"unknown container field", "          imagePullPolicy: IfNotPresent\n", "          imagePullPolicy: IfNotPresent\n          imagePullPolicyy: Always\n", "Deployment", "imagePullPolicyy"},
		{"probe port of the wrong type", "httpGet:\n              path: /healthz\n              port: http", "httpGet:\n              path: /healthz\n              port: [http]", "Deployment", "port"},
		{"unknown CronJob field", "  concurrencyPolicy: Forbid\n", "  concurrencyPolicy: Forbid\n  concurency: 1\n", "CronJob", "concurency"},
		{"PrometheusRule rule without expr", "      expr: ", "      exprr: ", "PrometheusRule", "expr"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if !strings.Contains(out, tc.old) {
				t.Fatalf("the rendered chart has no %q to break", tc.old)
			}
			f := filepath.Join(t.TempDir(), "broken.yaml")
			if err := os.WriteFile(f, []byte(strings.Replace(out, tc.old, tc.new, 1)), 0o644); err != nil {
				t.Fatal(err)
			}
			var invalid []kubeconformResult
			for _, r := range kubeconform(t, f) {
				if r.Status != "statusValid" {
					invalid = append(invalid, r)
				}
			}
			if len(invalid) != 1 || invalid[0].Kind != tc.kind || invalid[0].Status != "statusInvalid" || !strings.Contains(invalid[0].Msg, tc.want) {
				t.Errorf("want one invalid %s mentioning %q, got %+v", tc.kind, tc.want, invalid)
			}
		})
	}
}
