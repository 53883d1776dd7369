// Package helm_test checks the Helm chart in deploy/helm/cairn with a real helm binary:
// helm lint and helm template with realistic and minimal values, every rendered document
// parsed as YAML, and the properties operators rely on asserted (this file); the rendered
// workloads run as cairnd processes against PostgreSQL (boot_test.go); every manifest
// validated by kubeconform against the vendored schemas (kubeconform_test.go). No cluster
// is needed. Run with `make test-helm` (it builds helm v3.22.0, kubeconform v0.8.0 and
// versitygw into .cache and sets CAIRN_HELM_BIN, CAIRN_KUBECONFORM_BIN, CAIRN_S3_BIN);
// without them the tests skip, and under CI=true they fail.
package helm_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/cairn-dev/cairn/internal/daemon"
	"github.com/cairn-dev/cairn/internal/testenv"
)

const (
	chartDir   = "cairn"
	configPath = "/etc/cairn/cairnd.json"
)

// The environment variables that carry secrets: always from the Secret, never a value.
var secretEnv = []string{"CAIRN_DATABASE_URL", "CAIRN_BLOB_S3_ACCESS_KEY", "CAIRN_BLOB_S3_SECRET_KEY", "CAIRN_PKCS11_PIN", "CAIRN_KEY_PASSPHRASE"}

// Config file keys that are secrets and must never be in a ConfigMap.
var secretConfigKeys = []string{"database_url", "blob_s3_access_key", "blob_s3_secret_key"}

func helmBin(t *testing.T) string {
	t.Helper()
	bin := os.Getenv("CAIRN_HELM_BIN")
	if bin == "" {
		testenv.MissingTool(t, "CAIRN_HELM_BIN is not set: run `make test-helm` (builds helm v3.22.0 into .cache/helm/bin)")
	}
	out, err := exec.Command(bin, "version", "--short").CombinedOutput()
	if err != nil {
		t.Fatalf("CAIRN_HELM_BIN=%s does not run: %v\n%s", bin, err, out)
	}
	return bin
}

// helm runs helm with args and returns stdout, and stderr in the error if it fails.
func helm(t *testing.T, args ...string) (string, error) {
	t.Helper()
	cmd := exec.Command(helmBin(t), args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	cmd.Env = append(os.Environ(), "HELM_CACHE_HOME="+t.TempDir(), "HELM_CONFIG_HOME="+t.TempDir(), "HELM_DATA_HOME="+t.TempDir())
	if err := cmd.Run(); err != nil {
		return stdout.String(), errors.New(err.Error() + ": " + stderr.String())
	}
	return stdout.String(), nil
}

type obj = map[string]any

// rendered is the output of helm template, every document parsed.
type rendered struct {
	t    *testing.T
	docs []obj
}

func render(t *testing.T, args ...string) *rendered {
	t.Helper()
	out, err := helm(t, append([]string{"template", "rel", chartDir, "--namespace", "cairn"}, args...)...)
	if err != nil {
		t.Fatalf("helm template %v: %v", args, err)
	}
	r := &rendered{t: t}
	dec := yaml.NewDecoder(strings.NewReader(out))
	for {
		var d obj
		err := dec.Decode(&d)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("helm template %v: output is not YAML: %v\n%s", args, err, out)
		}
		if d == nil {
			continue
		}
		if d["apiVersion"] == nil || d["kind"] == nil || get(d, "metadata", "name") == nil {
			t.Fatalf("a rendered document lacks apiVersion, kind or metadata.name: %v", d)
		}
		r.docs = append(r.docs, d)
	}
	if len(r.docs) == 0 {
		t.Fatalf("helm template %v rendered nothing", args)
	}
	return r
}

func (r *rendered) all(kind string) []obj {
	var out []obj
	for _, d := range r.docs {
		if d["kind"] == kind {
			out = append(out, d)
		}
	}
	return out
}

func (r *rendered) one(kind string) obj {
	r.t.Helper()
	l := r.all(kind)
	if len(l) != 1 {
		r.t.Fatalf("want exactly one %s, rendered %d", kind, len(l))
	}
	return l[0]
}

// get walks a path of map keys and list indexes (int) through a parsed document.
func get(v any, path ...any) any {
	for _, p := range path {
		switch k := p.(type) {
		case string:
			m, ok := v.(obj)
			if !ok {
				return nil
			}
			v = m[k]
		case int:
			l, ok := v.([]any)
			if !ok || k >= len(l) {
				return nil
			}
			v = l[k]
		}
	}
	return v
}

func str(v any, path ...any) string { s, _ := get(v, path...).(string); return s }

func strs(v any, path ...any) []string {
	var out []string
	l, _ := get(v, path...).([]any)
	for _, x := range l {
		s, _ := x.(string)
		out = append(out, s)
	}
	return out
}

// podSpecs returns every pod template of the rendered workloads, by "Kind/name".
func (r *rendered) podSpecs() map[string]obj {
	out := map[string]obj{}
	for _, d := range r.docs {
		name := d["kind"].(string) + "/" + str(d, "metadata", "name")
		switch d["kind"] {
		case "Deployment", "Job":
			out[name], _ = get(d, "spec", "template", "spec").(obj)
		case "CronJob":
			out[name], _ = get(d, "spec", "jobTemplate", "spec", "template", "spec").(obj)
		}
	}
	return out
}

func envVar(container obj, name string) obj {
	l, _ := container["env"].([]any)
	for _, e := range l {
		if m, _ := e.(obj); str(m, "name") == name {
			return m
		}
	}
	return nil
}

func TestChartLint(t *testing.T) {
	for _, f := range []string{"testdata/minimal.yaml", "testdata/production.yaml"} {
		if out, err := helm(t, "lint", "--strict", chartDir, "-f", f); err != nil {
			t.Errorf("helm lint --strict -f %s: %v\n%s", f, err, out)
		}
	}
}

func TestChartRender(t *testing.T) {
	for _, tc := range []struct {
		file, secret string
		replicas     int
		accessMode   string
		secretEnv    []string // the CAIRN_* secrets the Deployment must take from the Secret
	}{
		{"testdata/minimal.yaml", "cairn-secrets", 1, "ReadWriteOnce", []string{"CAIRN_DATABASE_URL"}},
		{"testdata/production.yaml", "cairn-prod", 3, "ReadWriteMany", []string{"CAIRN_DATABASE_URL", "CAIRN_BLOB_S3_ACCESS_KEY", "CAIRN_BLOB_S3_SECRET_KEY", "CAIRN_PKCS11_PIN"}},
	} {
		t.Run(filepath.Base(tc.file), func(t *testing.T) {
			r := render(t, "-f", tc.file)
			if l := r.all("Secret"); len(l) != 0 {
				t.Errorf("the chart renders %d Secret(s): secrets must come from existingSecret", len(l))
			}

			// The ConfigMap: valid JSON, no secrets, and accepted by cairnd's own
			// configuration loader.
			cm := r.one("ConfigMap")
			raw := str(cm, "data", "cairnd.json")
			var cfg map[string]any
			if err := json.Unmarshal([]byte(raw), &cfg); err != nil {
				t.Fatalf("cairnd.json is not JSON: %v\n%s", err, raw)
			}
			for _, k := range secretConfigKeys {
				if _, ok := cfg[k]; ok {
					t.Errorf("cairnd.json holds the secret key %q", k)
				}
			}
			for _, d := range r.all("ConfigMap") {
				for k, v := range get(d, "data").(obj) {
					s, _ := v.(string)
					for _, bad := range []string{"postgres://", "postgresql://", "pin-value=", "passphrase=", "PRIVATE KEY"} {
						if strings.Contains(s, bad) {
							t.Errorf("ConfigMap %s key %s contains %q", str(d, "metadata", "name"), k, bad)
						}
					}
				}
			}
			checkConfigLoads(t, raw)
			for _, k := range []string{"timestamp_key", "snapshot_key", "recently_claimed_key", "blob_dir", "listen", "external_url"} {
				if s, _ := cfg[k].(string); s == "" {
					t.Errorf("cairnd.json: %q is missing", k)
				}
			}
			if cfg["no_migrate"] != true {
				t.Errorf("cairnd.json: no_migrate = %v, want true (the migrate hook Job migrates)", cfg["no_migrate"])
			}

			// The Deployment runs serve with the config file from that ConfigMap.
			dep := r.one("Deployment")
			if got := get(dep, "spec", "replicas"); got != tc.replicas {
				t.Errorf("replicas = %v, want %d", got, tc.replicas)
			}
			pod := get(dep, "spec", "template", "spec").(obj)
			c := get(pod, "containers", 0).(obj)
			if got, want := strs(c, "args"), []string{"serve", "--config", configPath}; !reflect.DeepEqual(got, want) {
				t.Errorf("cairnd args = %q, want %q", got, want)
			}
			if str(c, "image") == "" || strings.HasSuffix(str(c, "image"), ":") {
				t.Errorf("image = %q", str(c, "image"))
			}
			checkConfigMounted(t, pod, c, str(cm, "metadata", "name"))
			port := get(c, "ports", 0, "containerPort")
			if str(c, "ports", 0, "name") != "http" {
				t.Errorf("container port is not named http: %v", get(c, "ports"))
			}
			// The image sets CAIRN_LISTEN, which overrides the file: the chart must set it
			// to the same address.
			if l := envVar(c, "CAIRN_LISTEN"); l == nil || str(l, "value") != cfg["listen"] {
				t.Errorf("CAIRN_LISTEN = %v, want the config file's listen %v", l, cfg["listen"])
			} else if !strings.HasSuffix(str(l, "value"), ":"+jsonNum(port)) {
				t.Errorf("CAIRN_LISTEN %s does not listen on the containerPort %v", str(l, "value"), port)
			}

			// Probes.
			for probe, path := range map[string]string{"livenessProbe": "/healthz", "readinessProbe": "/readyz"} {
				if got := str(c, probe, "httpGet", "path"); got != path {
					t.Errorf("%s path = %q, want %q", probe, got, path)
				}
				if p := get(c, probe, "httpGet", "port"); p != "http" && p != port {
					t.Errorf("%s port = %v, want http", probe, p)
				}
			}

			// Secrets: the env vars of every pod come from the existing Secret by name.
			for _, name := range tc.secretEnv {
				e := envVar(c, name)
				if e == nil {
					t.Errorf("the Deployment does not set %s", name)
					continue
				}
				if got := str(e, "valueFrom", "secretKeyRef", "name"); got != tc.secret {
					t.Errorf("%s comes from Secret %q, want %q", name, got, tc.secret)
				}
			}
			for kind, spec := range r.podSpecs() {
				initC, _ := get(spec, "initContainers").([]any)
				cs, _ := get(spec, "containers").([]any)
				for _, ci := range append(initC, cs...) {
					for _, name := range secretEnv {
						if e := envVar(ci.(obj), name); e != nil && (e["value"] != nil || str(e, "valueFrom", "secretKeyRef", "name") != tc.secret) {
							t.Errorf("%s: %s is not taken from Secret %s: %v", kind, name, tc.secret, e)
						}
					}
				}
			}

			// Security context of every pod.
			specs := r.podSpecs()
			if len(specs) < 2 {
				t.Errorf("pod templates: %v, want the Deployment and the migrate Job at least", keys(specs))
			}
			for kind, spec := range specs {
				checkSecurity(t, kind, spec)
			}

			// The migrate hook Job.
			var migrate obj
			for _, j := range r.all("Job") {
				if strings.HasSuffix(str(j, "metadata", "name"), "-migrate") {
					migrate = j
				}
			}
			if migrate == nil {
				t.Fatal("no migrate Job")
			}
			hooks := strings.Split(str(migrate, "metadata", "annotations", "helm.sh/hook"), ",")
			if !slices.Contains(hooks, "pre-install") || !slices.Contains(hooks, "pre-upgrade") {
				t.Errorf("migrate Job hooks = %v, want pre-install and pre-upgrade", hooks)
			}
			mc := get(migrate, "spec", "template", "spec", "containers", 0).(obj)
			if got := strs(mc, "args"); !reflect.DeepEqual(got, []string{"migrate"}) {
				t.Errorf("migrate Job args = %q", got)
			}
			if got := str(envVar(mc, "CAIRN_DATABASE_URL"), "valueFrom", "secretKeyRef", "name"); got != tc.secret {
				t.Errorf("migrate Job's CAIRN_DATABASE_URL from Secret %q, want %q", got, tc.secret)
			}
			// A pre-install hook runs before the chart's other objects exist.
			for _, v := range get(migrate, "spec", "template", "spec", "volumes").([]any) {
				if get(v, "configMap") != nil || get(v, "persistentVolumeClaim") != nil {
					t.Errorf("the pre-install migrate Job mounts a chart object that does not exist yet: %v", v)
				}
			}

			// Blob storage.
			pvc := r.one("PersistentVolumeClaim")
			if got := strs(pvc, "spec", "accessModes"); !reflect.DeepEqual(got, []string{tc.accessMode}) {
				t.Errorf("PVC access modes = %v, want %s", got, tc.accessMode)
			}
			if !slices.ContainsFunc(get(pod, "volumes").([]any), func(v any) bool {
				return str(v, "persistentVolumeClaim", "claimName") == str(pvc, "metadata", "name")
			}) {
				t.Errorf("the Deployment does not mount the PVC %s", str(pvc, "metadata", "name"))
			}
			if tc.accessMode == "ReadWriteOnce" && str(dep, "spec", "strategy", "type") != "Recreate" {
				t.Errorf("ReadWriteOnce blob volume with strategy %v: a surge pod on another node would hang", get(dep, "spec", "strategy"))
			}

			// Service, PDB.
			svc := r.one("Service")
			if str(svc, "spec", "ports", 0, "targetPort") != "http" {
				t.Errorf("Service targetPort = %v", get(svc, "spec", "ports", 0, "targetPort"))
			}
			for k, v := range get(svc, "spec", "selector").(obj) {
				if get(dep, "spec", "template", "metadata", "labels", k) != v {
					t.Errorf("Service selector %s=%v does not select the Deployment's pods", k, v)
				}
			}
			r.one("PodDisruptionBudget")
		})
	}
}

// TestChartProduction checks what only the production values turn on.
func TestChartProduction(t *testing.T) {
	r := render(t, "-f", "testdata/production.yaml")
	var cfg map[string]any
	if err := json.Unmarshal([]byte(str(r.one("ConfigMap"), "data", "cairnd.json")), &cfg); err != nil {
		t.Fatal(err)
	}
	for k, want := range map[string]any{
		"blob_s3_bucket": "cairn-blobs", "blob_s3_region": "eu-central-1", "blob_s3_prefix": "prod/",
		"rekor_url": "https://rekor.example", "rekor_key": "/etc/cairn/rekor/rekor.pub", "rekor_origin": "rekor.example",
		"external_url": "https://registry.example", "oci_anonymous_pull": false, "max_blob_size": float64(10737418240),
		"standby_key": "pkcs11:token=cairn;object=timestamp-2?module-path=/opt/hsm/lib/libcs_pkcs11_R3.so",
	} {
		if cfg[k] != want {
			t.Errorf("cairnd.json %s = %v, want %v", k, cfg[k], want)
		}
	}
	if !strings.HasPrefix(cfg["timestamp_key"].(string), "pkcs11:") {
		t.Errorf("timestamp_key = %v", cfg["timestamp_key"])
	}
	pod := get(r.one("Deployment"), "spec", "template", "spec").(obj)
	c := get(pod, "containers", 0).(obj)
	mounts := map[string]string{}
	for _, m := range get(c, "volumeMounts").([]any) {
		mounts[str(m, "mountPath")] = str(m, "name")
	}
	for path, name := range map[string]string{"/opt/hsm/lib": "hsm-lib", "/opt/hsm/etc": "hsm-conf", "/etc/cairn/rekor": "rekor", "/var/lib/cairn/blobs": "blobs", "/tmp": "tmp"} {
		if mounts[path] != name {
			t.Errorf("mount %s = %q, want volume %s (mounts %v)", path, mounts[path], name, mounts)
		}
	}
	if envVar(c, "ChrystokiConfigurationPath") == nil {
		t.Error("extraEnv is not passed")
	}
	sm := r.one("ServiceMonitor")
	if str(sm, "spec", "endpoints", 0, "path") != "/metrics" || str(sm, "spec", "endpoints", 0, "port") != "http" {
		t.Errorf("ServiceMonitor endpoints = %v", get(sm, "spec", "endpoints"))
	}
	ing := r.one("Ingress")
	if str(ing, "spec", "rules", 0, "host") != "registry.example" || str(ing, "spec", "rules", 0, "http", "paths", 0, "backend", "service", "name") != str(r.one("Service"), "metadata", "name") {
		t.Errorf("Ingress rules = %v", get(ing, "spec", "rules"))
	}
	gc := r.one("CronJob")
	gcc := get(gc, "spec", "jobTemplate", "spec", "template", "spec", "containers", 0).(obj)
	if args := strs(gcc, "args"); len(args) < 3 || !reflect.DeepEqual(args[:3], []string{"gc", "--config", configPath}) {
		t.Errorf("gc CronJob args = %q", args)
	}
	if get(gc, "spec", "jobTemplate", "spec", "template", "spec", "affinity") != nil {
		t.Error("gc CronJob pinned to a node although the blob volume is ReadWriteMany")
	}
	if sa := str(r.one("ServiceAccount"), "metadata", "annotations", "eks.amazonaws.com/role-arn"); sa == "" || str(pod, "serviceAccountName") != str(r.one("ServiceAccount"), "metadata", "name") {
		t.Errorf("the Deployment does not use the annotated ServiceAccount")
	}
}

// TestChartVariants: switches that change the rendered objects.
func TestChartVariants(t *testing.T) {
	min := []string{"-f", "testdata/minimal.yaml"}
	t.Run("replicas>1 switches to ReadWriteMany", func(t *testing.T) {
		r := render(t, append(min, "--set", "replicaCount=2")...)
		if got := strs(r.one("PersistentVolumeClaim"), "spec", "accessModes"); !reflect.DeepEqual(got, []string{"ReadWriteMany"}) {
			t.Errorf("access modes = %v", got)
		}
		if str(r.one("Deployment"), "spec", "strategy", "type") != "RollingUpdate" {
			t.Error("ReadWriteMany but not a rolling update")
		}
	})
	t.Run("gc with ReadWriteOnce runs beside a cairnd pod", func(t *testing.T) {
		r := render(t, append(min, "--set", "gc.enabled=true")...)
		aff := get(r.one("CronJob"), "spec", "jobTemplate", "spec", "template", "spec", "affinity", "podAffinity", "requiredDuringSchedulingIgnoredDuringExecution", 0)
		if str(aff, "topologyKey") != "kubernetes.io/hostname" || str(aff, "labelSelector", "matchLabels", "app.kubernetes.io/component") != "server" {
			t.Errorf("gc pod affinity = %v", aff)
		}
	})
	// cairnd listens on 0.0.0.0, so it needs an external URL for the OCI token realm (it
	// never takes it from a request's Host): given, else the Ingress host, else the Service.
	t.Run("external URL", func(t *testing.T) {
		ing := []string{"--set", "ingress.enabled=true", "--set", "ingress.hosts[0].host=reg.example", "--set", "ingress.hosts[0].paths[0].path=/", "--set", "ingress.hosts[0].paths[0].pathType=Prefix"}
		for _, tc := range []struct {
			args []string
			want string
		}{
			{nil, "http://rel-cairn.cairn.svc"},
			{[]string{"--set", "service.port=8080"}, "http://rel-cairn.cairn.svc:8080"},
			{ing, "http://reg.example"},
			{append(ing, "--set", "ingress.tls[0].secretName=t", "--set", "ingress.tls[0].hosts[0]=reg.example"), "https://reg.example"},
			{append(ing, "--set", "config.externalURL=https://given.example"), "https://given.example"},
		} {
			r := render(t, append(min, tc.args...)...)
			var cfg map[string]any
			json.Unmarshal([]byte(str(r.one("ConfigMap"), "data", "cairnd.json")), &cfg)
			if cfg["external_url"] != tc.want {
				t.Errorf("%v: external_url = %v, want %s", tc.args, cfg["external_url"], tc.want)
			}
		}
	})
	t.Run("migrate disabled: serve migrates", func(t *testing.T) {
		r := render(t, append(min, "--set", "migrate.enabled=false")...)
		if len(r.all("Job")) != 0 {
			t.Error("a Job is rendered with migrate.enabled=false")
		}
		var cfg map[string]any
		json.Unmarshal([]byte(str(r.one("ConfigMap"), "data", "cairnd.json")), &cfg)
		if cfg["no_migrate"] != false {
			t.Errorf("no_migrate = %v with the hook off", cfg["no_migrate"])
		}
	})
	t.Run("bootstrap Job", func(t *testing.T) {
		r := render(t, append(min, "--set", "bootstrap.metadataConfigMap=ceremony")...)
		var found bool
		for _, j := range r.all("Job") {
			c := get(j, "spec", "template", "spec", "containers", 0)
			if args := strs(c, "args"); len(args) > 0 && args[0] == "bootstrap" {
				found = true
				if !slices.Contains(args, "--metadata") || !slices.Contains(args, configPath) {
					t.Errorf("bootstrap args = %q", args)
				}
			}
		}
		if !found {
			t.Error("no bootstrap Job")
		}
	})
	t.Run("existing claim", func(t *testing.T) {
		r := render(t, append(min, "--set", "persistence.existingClaim=blobs-nfs")...)
		if len(r.all("PersistentVolumeClaim")) != 0 {
			t.Error("a PVC is created although existingClaim is set")
		}
		if !slices.ContainsFunc(get(r.one("Deployment"), "spec", "template", "spec", "volumes").([]any), func(v any) bool {
			return str(v, "persistentVolumeClaim", "claimName") == "blobs-nfs"
		}) {
			t.Error("the existing claim is not mounted")
		}
		if str(r.one("Deployment"), "spec", "strategy", "type") != "Recreate" {
			t.Error("an existing claim taken as ReadWriteOnce (1 replica, no accessMode) is not rolled out with Recreate")
		}
	})
}

// TestChartRefuses: rendering fails, with a message naming what to fix.
func TestChartRefuses(t *testing.T) {
	min := []string{"-f", "testdata/minimal.yaml"}
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"no values", nil, "image.repository is required"},
		{"no image", append(min, "--set", "image.repository="), "image.repository is required"},
		{"no tag", append(min, "--set", "image.tag="), "image.tag (or image.digest) is required"},
		{"no secret", append(min, "--set", "existingSecret="), "existingSecret is required"},
		{"no timestamp key", append(min, "--set", "keys.timestamp="), "keys.timestamp is required"},
		{"no snapshot key", append(min, "--set", "keys.snapshot="), "keys.snapshot is required"},
		{"no recently-claimed key", append(min, "--set", "keys.recentlyClaimed="), "keys.recentlyClaimed is required"},
		{"replicas>1 on ReadWriteOnce", append(min, "--set", "replicaCount=2", "--set", "persistence.accessMode=ReadWriteOnce"), "needs ReadWriteMany"},
		{"PIN in a key URI", append(min, "--set-string", "keys.timestamp=pkcs11:token=t;object=o?module-path=/x.so&pin-value=1234"), "carries a secret"},
		{"database URL in the config file", append(min, "--set", "config.extra.database_url=postgres://u:pw@db/cairn"), "config.extra.database_url is refused"},
		{"S3 secret in the config file", append(min, "--set", "config.extra.blob_s3_secret_key=s3cr3t"), "config.extra.blob_s3_secret_key is refused"},
		{"blobs in an emptyDir", append(min, "--set", "persistence.enabled=false"), "set config.s3.bucket"},
		{"ingress without hosts", append(min, "--set", "ingress.enabled=true"), "ingress.hosts is required"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, err := helm(t, append([]string{"template", "rel", chartDir}, tc.args...)...)
			if err == nil {
				t.Fatalf("helm template %v succeeded, want an error containing %q; rendered:\n%.2000s", tc.args, tc.want, out)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("helm template %v: error %q does not contain %q", tc.args, err, tc.want)
			}
		})
	}
}

// checkConfigLoads runs cairnd's own configuration loader (through `cairnd migrate`) on
// the rendered config file: an unknown key or a value a flag does not parse fails before
// the database is opened, and the database URL here is one that cannot be parsed, so
// reaching "parsing database URL" proves the file was accepted.
func checkConfigLoads(t *testing.T, raw string) {
	t.Helper()
	f := filepath.Join(t.TempDir(), "cairnd.json")
	if err := os.WriteFile(f, []byte(raw), 0o600); err != nil {
		t.Fatal(err)
	}
	env := map[string]string{"CAIRN_DATABASE_URL": "postgres://%zz"}
	var stdout, stderr bytes.Buffer
	code := daemon.Main(context.Background(), []string{"migrate", "--config", f}, &stdout, &stderr, func(k string) string { return env[k] })
	if code == 0 || !strings.Contains(stderr.String(), "parsing database URL") {
		t.Errorf("cairnd does not accept the rendered config file (exit %d): %s\n%s", code, stderr.String(), raw)
	}
}

func checkConfigMounted(t *testing.T, pod, c obj, configMap string) {
	t.Helper()
	var vol string
	for _, m := range get(c, "volumeMounts").([]any) {
		if str(m, "mountPath") == configPath {
			vol = str(m, "name")
			if s := str(m, "subPath"); s != "" && s != "cairnd.json" {
				t.Errorf("config mount subPath = %q", s)
			}
		}
	}
	if vol == "" {
		t.Fatalf("nothing is mounted at %s", configPath)
	}
	for _, v := range get(pod, "volumes").([]any) {
		if str(v, "name") == vol {
			if got := str(v, "configMap", "name"); got != configMap {
				t.Errorf("%s comes from ConfigMap %q, want %q", configPath, got, configMap)
			}
			return
		}
	}
	t.Errorf("volume %s of the config mount is not defined", vol)
}

func checkSecurity(t *testing.T, kind string, spec obj) {
	t.Helper()
	if get(spec, "securityContext", "runAsNonRoot") != true {
		t.Errorf("%s: pod securityContext.runAsNonRoot = %v", kind, get(spec, "securityContext", "runAsNonRoot"))
	}
	for _, c := range get(spec, "containers").([]any) {
		sc := get(c, "securityContext")
		for k, want := range map[string]any{"runAsNonRoot": true, "readOnlyRootFilesystem": true, "allowPrivilegeEscalation": false} {
			if got := get(sc, k); got != want {
				t.Errorf("%s container %s: securityContext.%s = %v, want %v", kind, str(c, "name"), k, got, want)
			}
		}
		if got := strs(sc, "capabilities", "drop"); !reflect.DeepEqual(got, []string{"ALL"}) {
			t.Errorf("%s container %s: capabilities.drop = %v, want [ALL]", kind, str(c, "name"), got)
		}
		if get(sc, "capabilities", "add") != nil || get(sc, "privileged") == true {
			t.Errorf("%s container %s: adds capabilities or is privileged", kind, str(c, "name"))
		}
	}
}

func jsonNum(v any) string { b, _ := json.Marshal(v); return string(b) }

func keys(m map[string]obj) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// TestChartPrometheusRule: the alerts are off by default; on, they render as one
// PrometheusRule holding every alert of files/prometheus-rules.yaml, with the labels and
// the alerts switched off that values ask for.
func TestChartPrometheusRule(t *testing.T) {
	if n := len(render(t, "-f", "testdata/minimal.yaml").all("PrometheusRule")); n != 0 {
		t.Fatalf("%d PrometheusRule rendered by default, want 0", n)
	}
	want := loadRules(t)
	r := render(t, "-f", "testdata/minimal.yaml", "--set", "metrics.prometheusRule.enabled=true",
		"--set", "metrics.prometheusRule.labels.release=kube-prometheus-stack",
		"--set", "metrics.prometheusRule.ruleLabels.team=registry",
		"--set", "metrics.prometheusRule.ruleLabels.severity=info",
		"--set", "metrics.prometheusRule.disabled={CairnStaticExportFailing,CairnTransparencyLogBacklog}")
	pr := r.one("PrometheusRule")
	if str(pr, "apiVersion") != "monitoring.coreos.com/v1" || str(pr, "metadata", "labels", "release") != "kube-prometheus-stack" {
		t.Errorf("PrometheusRule header: %v", pr)
	}
	got := map[string]obj{}
	groups, _ := get(pr, "spec", "groups").([]any)
	for _, g := range groups {
		if str(g, "name") == "" {
			t.Errorf("a group without a name: %v", g)
		}
		rules, _ := get(g, "rules").([]any)
		if len(rules) == 0 {
			t.Errorf("group %s rendered with no rules", str(g, "name"))
		}
		for _, rule := range rules {
			got[str(rule, "alert")] = rule.(obj)
		}
	}
	for _, w := range want {
		g, ok := got[w.Alert]
		if w.Alert == "CairnStaticExportFailing" || w.Alert == "CairnTransparencyLogBacklog" {
			if ok {
				t.Errorf("%s rendered although disabled", w.Alert)
			}
			continue
		}
		if !ok {
			t.Errorf("%s missing from the PrometheusRule", w.Alert)
			continue
		}
		if str(g, "expr") != w.Expr || str(g, "for") != w.For || str(g, "annotations", "summary") != w.Annotations["summary"] {
			t.Errorf("%s rendered as %v, want %+v", w.Alert, g, w)
		}
		if str(g, "labels", "team") != "registry" || str(g, "labels", "severity") != w.Labels["severity"] {
			t.Errorf("%s labels %v: want team=registry added and its own severity %s kept", w.Alert, get(g, "labels"), w.Labels["severity"])
		}
	}
	if len(got) != len(want)-2 {
		t.Errorf("%d alerts rendered, want %d", len(got), len(want)-2)
	}
}
