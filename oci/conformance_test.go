package oci_test

import (
	"context"
	"encoding/xml"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"testing"

	"github.com/cairn-dev/cairn/internal/daemon"
	"github.com/cairn-dev/cairn/internal/s3test"
	"github.com/cairn-dev/cairn/internal/testrepo"
	"github.com/cairn-dev/cairn/store"
	"gopkg.in/yaml.v3"
)

// conformanceVersion is the distribution-spec conformance suite, pinned in
// test/ociconformance/go.mod (a module of its own, so the main go.mod stays free of it).
const conformanceVersion = "v0.0.0-20260831232431-97274622c111"

// buildConformance builds the suite once into the user cache and returns the binary.
func buildConformance(t *testing.T) string {
	t.Helper()
	cache, err := os.UserCacheDir()
	if err != nil {
		cache = os.TempDir()
	}
	bin := filepath.Join(cache, "cairn", "ociconformance-"+conformanceVersion+"-"+runtime.GOOS+"-"+runtime.GOARCH)
	if _, err := os.Stat(bin); err == nil {
		return bin
	}
	if err := os.MkdirAll(filepath.Dir(bin), 0o755); err != nil {
		t.Fatal(err)
	}
	tmp := bin + ".tmp" + strconv.Itoa(os.Getpid())
	cmd := exec.Command("go", "build", "-o", tmp, "github.com/opencontainers/distribution-spec/conformance")
	cmd.Dir = filepath.Join("..", "test", "ociconformance")
	cmd.Env = append(os.Environ(), "GOTOOLCHAIN=local", "GOFLAGS=-mod=readonly")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("building the OCI conformance suite (in test/ociconformance): %v\n%s", err, out)
	}
	if err := os.Rename(tmp, bin); err != nil {
		t.Fatal(err)
	}
	return bin
}

type junitCase struct {
	Name      string `xml:"name,attr"`
	Status    string `xml:"status,attr"`
	SystemOut string `xml:"system-out"`
	Failure   *struct {
		Message string `xml:"message,attr"`
	} `xml:"failure"`
	Error *struct {
		Message string `xml:"message,attr"`
	} `xml:"error"`
}

type junitSuites struct {
	Suites []struct {
		Cases []junitCase `xml:"testcase"`
	} `xml:"testsuite"`
}

var countRE = regexp.MustCompile(`(?m)^\s+(Pass|FAIL|Skip|Error|Disabled)\.*:\s+(\d+)$`)

// TestConformance runs the OCI distribution-spec conformance suite against a real cairnd
// (dev mode, real PostgreSQL, loopback HTTP) with every workflow of the 1.1 profile on and
// a project-scoped Cairn token as the credentials. It fails on any failure or error, and
// if the suite wrote no results.yaml (it exits 0 when its configuration does not load).
// CAIRN_OCI_VERSION=dev runs the development profile instead.
func TestConformance(t *testing.T) {
	r, _ := registry(t)
	runConformance(t, r)
}

// TestConformanceS3 runs the suite against a cairnd whose finished blobs live in an S3
// bucket (a real versitygw): every workflow through the S3 content store.
func TestConformanceS3(t *testing.T) {
	srv := s3test.Start(t)
	r := testrepo.Boot(t, privateDB(t), func(c *daemon.Config) {
		c.OCIAnonymousPull = true
		c.MaxBlobSize = testMaxBlob
		c.BlobS3Endpoint, c.BlobS3Bucket, c.BlobS3PathStyle = srv.Endpoint, srv.Bucket, true
		c.BlobS3AccessKey, c.BlobS3SecretKey = srv.AccessKey, srv.SecretKey
	})
	runConformance(t, r)
	// The blobs are in the bucket, not on the local disk.
	var local []string
	_ = filepath.WalkDir(filepath.Join(r.Dir, "blobs", "sha256"), func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			local = append(local, p)
		}
		return nil
	})
	if len(local) != 0 {
		t.Errorf("%d blobs stored on the local disk with S3 configured, e.g. %s", len(local), local[0])
	}
}

func runConformance(t *testing.T, r *testrepo.Repo) {
	t.Helper()
	bin := buildConformance(t)
	tok, _, err := r.DB.CreateToken(context.Background(), store.NewTokenSpec{Name: "oci-conformance", Projects: []string{"conformance"}})
	if err != nil {
		t.Fatal(err)
	}
	version := os.Getenv("CAIRN_OCI_VERSION")
	if version == "" {
		version = "1.1"
	}
	results := t.TempDir()
	cmd := exec.Command(bin)
	cmd.Dir = results
	cmd.Env = append(os.Environ(),
		"OCI_REGISTRY="+r.Addr,
		"OCI_TLS=disabled",
		"OCI_REPO1=conformance/repo1",
		"OCI_REPO2=conformance/repo2",
		"OCI_USERNAME=cairn",
		"OCI_PASSWORD="+tok,
		"OCI_VERSION="+version,
		"OCI_RESULTS_DIR="+results,
		"OCI_API_PULL=true",
		"OCI_API_PUSH=true",
		"OCI_API_REFERRER=true",
		"OCI_API_TAGS_LIST=true",
		"OCI_API_TAGS_DELETE=true",
		"OCI_API_MANIFESTS_DELETE=true",
		"OCI_API_BLOBS_DELETE=true",
		"OCI_API_BLOBS_MOUNT_ANONYMOUS=true",
		"OCI_API_BLOBS_UPLOAD_CANCEL=true",
	)
	out, runErr := cmd.CombinedOutput()
	yml, err := os.ReadFile(filepath.Join(results, "results.yaml"))
	if err != nil {
		t.Fatalf("the conformance suite wrote no results.yaml (%v; exit: %v):\n%s", err, runErr, out)
	}
	counts := map[string]int{}
	for _, m := range countRE.FindAllStringSubmatch(string(out), -1) {
		counts[m[1]], _ = strconv.Atoi(m[2])
	}
	t.Logf("OCI conformance (%s profile): %d passed, %d failed, %d errors, %d skipped, %d disabled",
		version, counts["Pass"], counts["FAIL"], counts["Error"], counts["Skip"], counts["Disabled"])

	var failures []string
	var res struct {
		APIs map[string]string `yaml:"apis"`
		Data map[string]string `yaml:"data"`
	}
	if err := yaml.Unmarshal(yml, &res); err != nil {
		t.Fatalf("results.yaml does not parse: %v", err)
	}
	for kind, m := range map[string]map[string]string{"api": res.APIs, "data": res.Data} {
		for k, v := range m {
			if v == "FAIL" || v == "Error" {
				failures = append(failures, fmt.Sprintf("%s %s: %s", kind, k, v))
			}
		}
	}
	if raw, err := os.ReadFile(filepath.Join(results, "junit.xml")); err == nil {
		var j junitSuites
		if err := xml.Unmarshal(raw, &j); err != nil {
			t.Errorf("junit.xml does not parse: %v", err)
		}
		for _, s := range j.Suites {
			for _, c := range s.Cases {
				if c.Status == "failure" || c.Status == "error" {
					failures = append(failures, fmt.Sprintf("%s: %s: %s", c.Name, c.Status, strings.TrimSpace(c.SystemOut)))
				}
			}
		}
	}
	if runErr != nil && len(failures) == 0 {
		failures = append(failures, fmt.Sprintf("the suite exited with %v", runErr))
	}
	if counts["Pass"] == 0 {
		failures = append(failures, "no test passed: the suite did not run")
	}
	if counts["FAIL"] > 0 || counts["Error"] > 0 {
		failures = append(failures, fmt.Sprintf("%d failed, %d errors", counts["FAIL"], counts["Error"]))
	}
	if os.Getenv("CAIRN_OCI_VERBOSE") != "" {
		t.Logf("suite output:\n%s", out)
	}
	if len(failures) > 0 {
		t.Errorf("OCI conformance (%s): %d problems:\n%s", version, len(failures), strings.Join(failures, "\n"))
	}
}
