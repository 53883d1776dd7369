package helm_test

// The boot test: what `helm template` renders is run. For each value set, the migrate
// Job, the bootstrap Job, the Deployment and the gc CronJob are started as the real cairnd
// binary (static, as `make image` builds it) with exactly the container's args and env,
// in a chroot where the rendered ConfigMap, the Secrets and the volumes are laid out at
// their mountPaths, as the pod's user (runAsUser/runAsGroup/fsGroup), against a fresh
// PostgreSQL database. A flag, config key or value that cairnd does not accept fails the
// process and so the test; the probes are asked over HTTP at the port the manifest names.

import (
	"bytes"
	"context"
	"encoding/json"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/cairn-dev/cairn/internal/imagebuild"
	"github.com/cairn-dev/cairn/internal/rekortest"
	"github.com/cairn-dev/cairn/internal/s3test"
	"github.com/cairn-dev/cairn/internal/testdb"
	"github.com/cairn-dev/cairn/internal/testenv"
	"github.com/cairn-dev/cairn/store"
	"github.com/cairn-dev/cairn/tufrepo"
)

// imageEnv is the environment the image's config sets (internal/imagebuild), under the
// container's env as a container runtime applies it.
var imageEnv = []string{"PATH=/usr/local/bin", "CAIRN_LISTEN=0.0.0.0:8080"}

const imageWorkDir = "/home/nonroot"

// TestChartBoots renders the chart with several value sets and runs every workload it
// describes as processes.
func TestChartBoots(t *testing.T) {
	helmBin(t)
	if os.Geteuid() != 0 {
		testenv.MissingTool(t, "the boot test runs each pod in a chroot as the pod's user, which needs root (CI and the dev machines run as root)")
	}
	bin := buildCairnd(t)
	world := newOutside(t)

	for _, tc := range []struct {
		name  string
		args  []string
		s3    bool
		rekor bool
	}{
		// The chart's defaults around the required values: the migrate hook Job migrates,
		// serve runs with no_migrate; the key passphrase is CAIRN_KEY_PASSPHRASE from the Secret.
		{name: "defaults", args: nil},
		// Finished blobs in S3 (versitygw), its keys from the Secret.
		{name: "s3 blob store", s3: true, args: []string{
			"--set", "config.s3.bucket=blobs", "--set", "config.s3.region=us-east-1", "--set", "config.s3.pathStyle=true", "--set", "config.s3.prefix=cairn/",
			"--set", "secretKeys.s3AccessKey=s3-access-key", "--set", "secretKeys.s3SecretKey=s3-secret-key",
		}},
		// A transparency log (an in-process Rekor v2 stand-in): its key from the
		// ConfigMap, mounted at /etc/cairn/rekor where rekor_key points.
		{name: "transparency log", rekor: true, args: []string{"--set", "config.rekor.timeout=10s"}},
		// No migrate hook (bootstrap and serve migrate), the key passphrase from a file in
		// the mounted Secret, two replicas (ReadWriteMany, rolling), an Ingress host as the
		// external URL, gc in dry-run, the alerts and the ServiceMonitor.
		{name: "migrate off, passphrase file, replicas", args: []string{
			"--set", "migrate.enabled=false", "--set", "secretKeys.keyPassphrase=",
			"--set", "keys.timestamp=file:///etc/cairn/keys/timestamp.json?passphrase-file=/etc/cairn/keys/passphrase",
			"--set", "keys.snapshot=file:///etc/cairn/keys/snapshot.json?passphrase-file=/etc/cairn/keys/passphrase",
			"--set", "keys.recentlyClaimed=file:///etc/cairn/keys/recently-claimed.json?passphrase-file=/etc/cairn/keys/passphrase",
			"--set", "replicaCount=2", "--set", "gc.dryRun=true", "--set", "config.logLevel=debug",
			"--set", "ingress.enabled=true", "--set", "ingress.hosts[0].host=registry.example", "--set", "ingress.hosts[0].paths[0].path=/", "--set", "ingress.hosts[0].paths[0].pathType=Prefix",
			"--set", "metrics.prometheusRule.enabled=true", "--set", "metrics.serviceMonitor.enabled=true",
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dbURL, drop, err := testdb.Create("helm_boot")
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(drop)
			secrets := world.secrets(dbURL)
			if tc.s3 {
				if os.Getenv("CAIRN_S3_BIN") == "" {
					testenv.MissingTool(t, "CAIRN_S3_BIN is not set: run `make test-helm` (builds versitygw with `make s3`)")
				}
				s3 := s3test.Start(t)
				secrets["cairn-secrets"]["s3-access-key"] = []byte(s3.AccessKey)
				secrets["cairn-secrets"]["s3-secret-key"] = []byte(s3.SecretKey)
				tc.args = append(tc.args, "--set", "config.s3.endpoint="+s3.Endpoint, "--set", "config.s3.bucket="+s3.Bucket)
			}
			var log *rekortest.Fake
			if tc.rekor {
				log = rekortest.NewFake(t)
				pem := filepath.Join(t.TempDir(), "rekor.pub")
				if err := os.WriteFile(pem, log.PublicPEM, 0o644); err != nil {
					t.Fatal(err)
				}
				tc.args = append(tc.args, "--set", "config.rekor.url="+log.URL, "--set", "config.rekor.origin="+log.Origin, "--set-file", "config.rekor.keyPEM="+pem)
			}
			port := freePort(t)
			args := append([]string{"-f", "testdata/boot.yaml", "--set", "config.port=" + strconv.Itoa(port)}, tc.args...)
			r := render(t, args...)
			c := newCluster(t, bin, r, secrets, world.configMaps)

			migrate := r.find("Job", "-migrate")
			if migrate != nil {
				c.runToCompletion(t, migrate)
				checkSchemaCurrent(t, dbURL)
			}
			c.runToCompletion(t, r.workload("Job", "-bootstrap"))
			if migrate == nil {
				checkSchemaCurrent(t, dbURL) // bootstrap migrated, as the chart says serve would
			}

			srv := c.start(t, r.workload("Deployment", ""))
			srv.waitReady(t)
			for _, probe := range []string{"startupProbe", "livenessProbe", "readinessProbe"} {
				if get(srv.container, probe) == nil {
					if probe != "startupProbe" {
						t.Errorf("the Deployment has no %s", probe)
					}
					continue
				}
				if code, body := srv.probe(t, probe); code != http.StatusOK {
					t.Errorf("%s %s answered %d: %s", probe, str(srv.container, probe, "httpGet", "path"), code, body)
				}
			}
			// It serves the repository the bootstrap Job loaded, on the Service's targetPort.
			svcPort := srv.port(t, get(r.one("Service"), "spec", "ports", 0, "targetPort"))
			if code, body := srv.get(t, svcPort, "/metadata/1.root.json"); code != http.StatusOK || !bytes.Equal(body, world.ceremony["1.root.json"]) {
				t.Errorf("GET /metadata/1.root.json through the Service's targetPort: %d, not the ceremony's root:\n%.300s", code, body)
			}
			if code, body := srv.get(t, svcPort, "/metadata/timestamp.json"); code != http.StatusOK {
				t.Errorf("GET /metadata/timestamp.json: %d %s", code, body)
			}

			if log != nil {
				// The publisher logs the versions it signs: the log was reached with the
				// key the chart mounted.
				for deadline := time.Now().Add(time.Minute); log.Size() == 0; time.Sleep(200 * time.Millisecond) {
					if time.Now().After(deadline) {
						t.Fatalf("nothing reached the transparency log in a minute:\n%s", srv.out)
					}
				}
			}

			// The gc CronJob runs beside the serving pod, on the same blob volume: it takes
			// the file an upload killed two hours ago left in <blob-dir>/tmp (kept with
			// --dry-run), which only a gc that sees the Deployment's volume can find.
			var cfg struct {
				BlobDir string `json:"blob_dir"`
			}
			if err := json.Unmarshal(c.configMaps[str(r.one("ConfigMap"), "metadata", "name")]["cairnd.json"], &cfg); err != nil {
				t.Fatal(err)
			}
			left := filepath.Join(c.path(t, cfg.BlobDir), "tmp", "upload-killed")
			if err := os.WriteFile(left, []byte("half an upload"), 0o644); err != nil {
				t.Fatalf("the serving pod made no %s/tmp: %v", cfg.BlobDir, err)
			}
			// The serving process ran as the pod's user: what it made is that user's.
			if fi, err := os.Stat(filepath.Dir(left)); err != nil || fi.Sys().(*syscall.Stat_t).Uid != uint32(get(srv.spec, "securityContext", "runAsUser").(int)) {
				t.Errorf("%s/tmp was not made by the pod's user %v: %v", cfg.BlobDir, get(srv.spec, "securityContext", "runAsUser"), err)
			}
			old := time.Now().Add(-2 * time.Hour)
			if err := os.Chtimes(left, old, old); err != nil {
				t.Fatal(err)
			}
			gc := r.workload("CronJob", "-gc")
			dryRun := slices.Contains(strs(podOf(t, gc).container, "args"), "--dry-run")
			out := c.runToCompletion(t, gc)
			var rep struct {
				TempFiles int  `json:"temp_files"`
				DryRun    bool `json:"dry_run"`
			}
			if err := json.Unmarshal([]byte(out), &rep); err != nil {
				t.Errorf("gc printed no JSON report: %v\n%s", err, out)
			}
			_, err = os.Stat(left)
			if rep.TempFiles != 1 || rep.DryRun != dryRun || (err == nil) != dryRun {
				t.Errorf("gc (dry run %v) reported %s and the abandoned upload file is there: %v", dryRun, out, err == nil)
			}

			srv.stop(t)
		})
	}

	// The point of the test: something the chart renders that cairnd does not accept makes
	// the process fail, and so the test.
	t.Run("refused by cairnd", func(t *testing.T) {
		dbURL, drop, err := testdb.Create("helm_boot")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(drop)
		for _, tc := range []struct {
			name, kind, suffix string
			args               []string
			want               string
		}{
			{"unknown config key", "Deployment", "", []string{"--set", "config.extra.no_such_setting=true"}, `unknown key "no_such_setting"`},
			{"gc duration cairnd cannot parse", "CronJob", "-gc", []string{"--set", "gc.grace=an hour"}, `invalid argument "an hour" for "--grace"`},
			{"bad environment in the migrate Job", "Job", "-migrate", []string{"--set-string", "extraEnv[0].name=CAIRN_MAX_BLOB_SIZE", "--set-string", "extraEnv[0].value=lots"}, `bad value "lots" from environment variable CAIRN_MAX_BLOB_SIZE`},
		} {
			t.Run(tc.name, func(t *testing.T) {
				r := render(t, append([]string{"-f", "testdata/boot.yaml", "--set", "config.port=" + strconv.Itoa(freePort(t))}, tc.args...)...)
				c := newCluster(t, bin, r, world.secrets(dbURL), world.configMaps)
				code, stdout, stderr := c.run(t, r.workload(tc.kind, tc.suffix), time.Minute)
				if code == 0 || !strings.Contains(stderr, tc.want) {
					t.Errorf("%s %s: exit %d, want a failure saying %q\nstdout: %s\nstderr: %s", tc.kind, tc.suffix, code, tc.want, stdout, stderr)
				}
			})
		}
	})
}

// buildCairnd builds ../../cmd/cairnd as `make image` does: static, no cgo, so that it
// runs in a chroot that holds nothing else.
func buildCairnd(t *testing.T) string {
	t.Helper()
	out := filepath.Join(t.TempDir(), "cairnd")
	cmd := exec.Command("go", "build", "-trimpath", "-o", out, "../../cmd/cairnd")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("building cairnd (CGO_ENABLED=0 go build ../../cmd/cairnd): %v\n%s", err, b)
	}
	return out
}

// outside is what the chart takes from outside: Secrets and ConfigMaps an operator creates.
type outside struct {
	passphrase []byte
	keyFiles   map[string][]byte // the online keys, encrypted, by file name
	ceremony   map[string][]byte // the offline ceremony's output
	configMaps map[string]map[string][]byte
}

// newOutside makes three online keys (encrypted key files for file:// URIs) and runs the
// offline ceremony that names them, as `cairn admin init` does.
func newOutside(t *testing.T) *outside {
	t.Helper()
	ctx := context.Background()
	o := &outside{passphrase: []byte("online key passphrase"), keyFiles: map[string][]byte{}}
	newSigner := func(kt tufrepo.KeyType) (*tufrepo.OnlineSigner, []byte, error) {
		priv, err := tufrepo.GenerateKey(kt)
		if err != nil {
			return nil, nil, err
		}
		s, err := tufrepo.NewSigner(priv)
		if err != nil {
			return nil, nil, err
		}
		os, err := tufrepo.NewOnlineSigner(ctx, s)
		if err != nil {
			return nil, nil, err
		}
		kf, err := tufrepo.EncryptKey("k", priv, o.passphrase, tufrepo.KDFFast)
		if err != nil {
			return nil, nil, err
		}
		b, err := json.Marshal(kf)
		return os, b, err
	}
	online := map[string]*tufrepo.OnlineSigner{}
	for role, kt := range map[string]tufrepo.KeyType{tufrepo.RoleTimestamp: tufrepo.KeyEd25519, tufrepo.RoleSnapshot: tufrepo.KeyECDSAP256, tufrepo.RoleRecentlyClaimed: tufrepo.KeyEd25519} {
		s, b, err := newSigner(kt)
		if err != nil {
			t.Fatalf("making the %s key: %v", role, err)
		}
		online[role], o.keyFiles[role+".json"] = s, b
	}
	offline := map[string]*tufrepo.OnlineSigner{}
	for _, role := range []string{tufrepo.RoleRoot, tufrepo.RoleTargets, tufrepo.RoleClaimed} {
		s, _, err := newSigner(tufrepo.KeyEd25519)
		if err != nil {
			t.Fatal(err)
		}
		offline[role] = s
	}
	off, err := tufrepo.Ceremony(ctx, tufrepo.CeremonyConfig{
		RootSigners: []*tufrepo.OnlineSigner{offline[tufrepo.RoleRoot]}, RootThreshold: 1,
		TargetsSigners: []*tufrepo.OnlineSigner{offline[tufrepo.RoleTargets]}, TargetsThreshold: 1,
		ClaimedSigners: []*tufrepo.OnlineSigner{offline[tufrepo.RoleClaimed]}, ClaimedThreshold: 1,
		Timestamp: online[tufrepo.RoleTimestamp].Key, Snapshot: online[tufrepo.RoleSnapshot].Key, RecentlyClaimed: online[tufrepo.RoleRecentlyClaimed].Key,
		Now: time.Now(),
	})
	if err != nil {
		t.Fatalf("the offline ceremony: %v", err)
	}
	o.ceremony = map[string][]byte{"1.root.json": off.Root, "1.targets.json": off.Targets, "1.claimed.json": off.Claimed}
	o.configMaps = map[string]map[string][]byte{"ceremony": o.ceremony}
	return o
}

// secrets returns the Secrets of one install, fresh so that a value set may add keys.
func (o *outside) secrets(dbURL string) map[string]map[string][]byte {
	keys := map[string][]byte{"passphrase": o.passphrase}
	for k, v := range o.keyFiles {
		keys[k] = v
	}
	return map[string]map[string][]byte{
		"cairn-secrets": {"database-url": []byte(dbURL), "key-passphrase": o.passphrase},
		"cairn-keys":    keys,
	}
}

// workload returns the rendered object of kind whose name ends in suffix, failing the
// test unless there is exactly one.
func (r *rendered) workload(kind, suffix string) obj {
	r.t.Helper()
	w := r.find(kind, suffix)
	if w == nil {
		r.t.Fatalf("want one %s named *%s, rendered none", kind, suffix)
	}
	return w
}

// find is workload for an object that may be missing: nil then.
func (r *rendered) find(kind, suffix string) obj {
	r.t.Helper()
	var found []obj
	for _, d := range r.all(kind) {
		if suffix == "" || strings.HasSuffix(str(d, "metadata", "name"), suffix) {
			found = append(found, d)
		}
	}
	if len(found) > 1 {
		r.t.Fatalf("want one %s named *%s, rendered %d", kind, suffix, len(found))
	}
	if len(found) == 0 {
		return nil
	}
	return found[0]
}

// cluster runs the pods of one install. Every pod shares one chroot, so two pods that
// mount different content at the same path fail the test instead of silently seeing one
// of them; a persistentVolumeClaim is the same directory in every pod that mounts it.
type cluster struct {
	bin        string
	root       string
	secrets    map[string]map[string][]byte
	configMaps map[string]map[string][]byte
	claims     map[string]string // claim name -> the mountPath it was first mounted at
}

func newCluster(t *testing.T, bin string, r *rendered, secrets, external map[string]map[string][]byte) *cluster {
	t.Helper()
	c := &cluster{bin: bin, root: filepath.Join(t.TempDir(), "root"), secrets: secrets, configMaps: map[string]map[string][]byte{}, claims: map[string]string{}}
	for name, data := range external {
		c.configMaps[name] = data
	}
	for _, cm := range r.all("ConfigMap") {
		data := map[string][]byte{}
		for k, v := range get(cm, "data").(obj) {
			s, _ := v.(string)
			data[k] = []byte(s)
		}
		c.configMaps[str(cm, "metadata", "name")] = data
	}
	// The image: the binary at its entrypoint, its working directory; the rest of the
	// root file system is root's and read-only to the pod's user.
	dst := c.path(t, imagebuild.BinaryPath)
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(bin)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dst, b, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(c.path(t, imageWorkDir), 0o755); err != nil {
		t.Fatal(err)
	}
	return c
}

// path maps an absolute path of the pod's file system into the chroot.
func (c *cluster) path(t *testing.T, p string) string {
	t.Helper()
	if !path.IsAbs(p) || path.Clean(p) != p {
		t.Fatalf("mount path %q is not a clean absolute path", p)
	}
	return filepath.Join(c.root, p)
}

// pod is one workload's pod template and its only container.
type pod struct {
	name      string
	spec      obj
	container obj
}

func podOf(t *testing.T, w obj) pod {
	t.Helper()
	name := w["kind"].(string) + "/" + str(w, "metadata", "name")
	spec, _ := get(w, "spec", "template", "spec").(obj)
	if w["kind"] == "CronJob" {
		spec, _ = get(w, "spec", "jobTemplate", "spec", "template", "spec").(obj)
	}
	if spec == nil {
		t.Fatalf("%s has no pod template", name)
	}
	if ic := get(spec, "initContainers"); ic != nil {
		t.Fatalf("%s has init containers, which the boot test does not run: %v", name, ic)
	}
	cs, _ := get(spec, "containers").([]any)
	if len(cs) != 1 {
		t.Fatalf("%s has %d containers, want 1", name, len(cs))
	}
	return pod{name: name, spec: spec, container: cs[0].(obj)}
}

// files returns the files a configMap or secret volume source projects, by path.
func (c *cluster) files(t *testing.T, p pod, vol obj) (map[string][]byte, bool) {
	t.Helper()
	var data map[string][]byte
	var what string
	optional := false
	switch {
	case get(vol, "configMap") != nil:
		what = "ConfigMap " + str(vol, "configMap", "name")
		data = c.configMaps[str(vol, "configMap", "name")]
		optional, _ = get(vol, "configMap", "optional").(bool)
	case get(vol, "secret") != nil:
		what = "Secret " + str(vol, "secret", "secretName")
		data = c.secrets[str(vol, "secret", "secretName")]
		optional, _ = get(vol, "secret", "optional").(bool)
	default:
		return nil, false
	}
	if data == nil {
		if optional {
			return map[string][]byte{}, true
		}
		t.Fatalf("%s: volume %s: %s does not exist (the pod would not start)", p.name, str(vol, "name"), what)
	}
	src := vol["configMap"]
	if src == nil {
		src = vol["secret"]
	}
	items, _ := get(src, "items").([]any)
	if len(items) == 0 {
		return data, true
	}
	out := map[string][]byte{}
	for _, it := range items {
		v, ok := data[str(it, "key")]
		if !ok {
			t.Fatalf("%s: volume %s: %s has no key %q", p.name, str(vol, "name"), what, str(it, "key"))
		}
		out[str(it, "path")] = v
	}
	return out, true
}

// mount lays out the pod's volumeMounts in the chroot.
func (c *cluster) mount(t *testing.T, p pod, uid, gid int) {
	t.Helper()
	vols := map[string]obj{}
	for _, v := range get(p.spec, "volumes").([]any) {
		vols[str(v, "name")] = v.(obj)
	}
	mounts, _ := get(p.container, "volumeMounts").([]any)
	for _, m := range mounts {
		mp, sub := str(m, "mountPath"), str(m, "subPath")
		vol, ok := vols[str(m, "name")]
		if !ok {
			t.Fatalf("%s: volumeMount %s names no volume", p.name, str(m, "name"))
		}
		dst := c.path(t, mp)
		if files, ok := c.files(t, p, vol); ok {
			if sub != "" {
				b, ok := files[sub]
				if !ok {
					t.Fatalf("%s: mount %s: subPath %q is not in the volume", p.name, mp, sub)
				}
				c.writeFile(t, p, dst, b)
				continue
			}
			for name, b := range files {
				c.writeFile(t, p, filepath.Join(dst, name), b)
			}
			continue
		}
		switch {
		case get(vol, "emptyDir") != nil:
		case get(vol, "persistentVolumeClaim") != nil:
			claim := str(vol, "persistentVolumeClaim", "claimName")
			if at, ok := c.claims[claim]; ok && at != mp {
				t.Fatalf("%s mounts claim %s at %s, another pod at %s: the boot test shares one root", p.name, claim, mp, at)
			}
			c.claims[claim] = mp
		default:
			t.Fatalf("%s: volume %s: this kind of volume cannot be booted here: %v", p.name, str(vol, "name"), vol)
		}
		if sub != "" {
			t.Fatalf("%s: subPath on a writable volume is not supported here", p.name)
		}
		if err := os.MkdirAll(dst, 0o755); err != nil {
			t.Fatal(err)
		}
		// Writable by the pod's user and fsGroup, as the kubelet makes them.
		if err := os.Chown(dst, uid, gid); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(dst, 0o2775); err != nil {
			t.Fatal(err)
		}
	}
}

func (c *cluster) writeFile(t *testing.T, p pod, dst string, b []byte) {
	t.Helper()
	if old, err := os.ReadFile(dst); err == nil {
		if !bytes.Equal(old, b) {
			t.Fatalf("%s mounts %s with other content than an earlier pod: the boot test shares one root", p.name, dst)
		}
		return
	}
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dst, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// env is the container's environment as the kubelet builds it: the image's, then envFrom,
// then env, with secretKeyRef and configMapKeyRef resolved.
func (c *cluster) env(t *testing.T, p pod) []string {
	t.Helper()
	vars := map[string]string{}
	var order []string
	set := func(k, v string) {
		if _, ok := vars[k]; !ok {
			order = append(order, k)
		}
		vars[k] = v
	}
	for _, kv := range imageEnv {
		k, v, _ := strings.Cut(kv, "=")
		set(k, v)
	}
	from, _ := get(p.container, "envFrom").([]any)
	for _, f := range from {
		var data map[string][]byte
		switch {
		case get(f, "secretRef") != nil:
			data = c.secrets[str(f, "secretRef", "name")]
		case get(f, "configMapRef") != nil:
			data = c.configMaps[str(f, "configMapRef", "name")]
		}
		if data == nil {
			t.Fatalf("%s: envFrom %v names nothing that exists", p.name, f)
		}
		for k, v := range data {
			set(str(f, "prefix")+k, string(v))
		}
	}
	env, _ := get(p.container, "env").([]any)
	for _, e := range env {
		name := str(e, "name")
		switch {
		case get(e, "valueFrom", "secretKeyRef") != nil:
			ref := get(e, "valueFrom", "secretKeyRef")
			v, ok := c.secrets[str(ref, "name")][str(ref, "key")]
			if !ok {
				t.Fatalf("%s: %s from Secret %s key %s, which does not exist (the pod would not start)", p.name, name, str(ref, "name"), str(ref, "key"))
			}
			set(name, string(v))
		case get(e, "valueFrom", "configMapKeyRef") != nil:
			ref := get(e, "valueFrom", "configMapKeyRef")
			v, ok := c.configMaps[str(ref, "name")][str(ref, "key")]
			if !ok {
				t.Fatalf("%s: %s from ConfigMap %s key %s, which does not exist", p.name, name, str(ref, "name"), str(ref, "key"))
			}
			set(name, string(v))
		case get(e, "valueFrom") != nil:
			t.Fatalf("%s: %s: valueFrom %v is not supported by the boot test", p.name, name, get(e, "valueFrom"))
		default:
			set(name, str(e, "value"))
		}
	}
	out := make([]string, 0, len(order))
	for _, k := range order {
		out = append(out, k+"="+vars[k])
	}
	return out
}

// ids returns the user, group and fsGroup the pod runs as: the container's securityContext
// over the pod's.
func ids(t *testing.T, p pod) (uid, gid, fsGroup int) {
	t.Helper()
	num := func(path ...any) (int, bool) {
		for _, base := range []any{p.container, p.spec} {
			if v, ok := get(base, path...).(int); ok {
				return v, true
			}
		}
		return 0, false
	}
	uid, ok := num("securityContext", "runAsUser")
	if !ok {
		t.Fatalf("%s sets no runAsUser: the image's user would be taken", p.name)
	}
	gid, _ = num("securityContext", "runAsGroup")
	fsGroup, ok = num("securityContext", "fsGroup")
	if !ok {
		fsGroup = gid
	}
	return uid, gid, fsGroup
}

// command prepares the container's process: the image's entrypoint with the args (the
// chart sets no command), in the chroot, as the pod's user.
func (c *cluster) command(t *testing.T, ctx context.Context, p pod) *exec.Cmd {
	t.Helper()
	if cmd := get(p.container, "command"); cmd != nil {
		t.Fatalf("%s sets command %v: the chart is meant to use the image's entrypoint %s", p.name, cmd, imagebuild.BinaryPath)
	}
	uid, gid, fsGroup := ids(t, p)
	c.mount(t, p, uid, fsGroup)
	// The path is resolved inside the chroot, after it is entered.
	cmd := exec.CommandContext(ctx, imagebuild.BinaryPath, strs(p.container, "args")...)
	cmd.Env = c.env(t, p)
	cmd.Dir = imageWorkDir
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Chroot:     c.root,
		Credential: &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid), Groups: []uint32{uint32(fsGroup)}},
		Setpgid:    true,
	}
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	cmd.WaitDelay = 30 * time.Second
	return cmd
}

// run runs a Job's container to its end and returns its exit code and output.
func (c *cluster) run(t *testing.T, w obj, limit time.Duration) (int, string, string) {
	t.Helper()
	p := podOf(t, w)
	if d, ok := get(w, "spec", "activeDeadlineSeconds").(int); ok && time.Duration(d)*time.Second < limit {
		limit = time.Duration(d) * time.Second
	}
	ctx, cancel := context.WithTimeout(context.Background(), limit)
	defer cancel()
	cmd := c.command(t, ctx, p)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	code := cmd.ProcessState.ExitCode()
	if err != nil && code == 0 {
		code = -1
	}
	return code, stdout.String(), stderr.String()
}

// runToCompletion runs a Job's (or CronJob's) container and fails the test unless it exits 0.
func (c *cluster) runToCompletion(t *testing.T, w obj) string {
	t.Helper()
	code, stdout, stderr := c.run(t, w, 2*time.Minute)
	if code != 0 {
		t.Fatalf("%s/%s (args %q) exited %d\nstdout: %s\nstderr: %s", w["kind"], str(w, "metadata", "name"), strs(podOf(t, w).container, "args"), code, stdout, stderr)
	}
	return stdout
}

// server is a running Deployment pod.
type server struct {
	pod
	cmd    *exec.Cmd
	cancel context.CancelFunc
	out    *syncBuffer
	done   chan struct{}
	grace  time.Duration
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func (c *cluster) start(t *testing.T, w obj) *server {
	t.Helper()
	p := podOf(t, w)
	ctx, cancel := context.WithCancel(context.Background())
	s := &server{pod: p, cancel: cancel, out: &syncBuffer{}, done: make(chan struct{}), grace: 30 * time.Second}
	if g, ok := get(p.spec, "terminationGracePeriodSeconds").(int); ok {
		s.grace = time.Duration(g) * time.Second
	}
	s.cmd = c.command(t, ctx, p)
	s.cmd.Stdout, s.cmd.Stderr = s.out, s.out
	if err := s.cmd.Start(); err != nil {
		cancel()
		t.Fatalf("starting %s: %v", p.name, err)
	}
	go func() { _ = s.cmd.Wait(); close(s.done) }()
	t.Cleanup(func() {
		cancel()
		<-s.done
	})
	return s
}

// port resolves a probe's or Service's port (a number or a container port's name).
func (s *server) port(t *testing.T, v any) int {
	t.Helper()
	if n, ok := v.(int); ok {
		return n
	}
	ports, _ := get(s.container, "ports").([]any)
	for _, p := range ports {
		if str(p, "name") == v {
			if n, ok := get(p, "containerPort").(int); ok {
				return n
			}
		}
	}
	t.Fatalf("%s: no container port named %v", s.name, v)
	return 0
}

func (s *server) get(t *testing.T, port int, p string) (int, []byte) {
	t.Helper()
	client := &http.Client{Timeout: 5 * time.Second}
	resp, err := client.Get("http://" + net.JoinHostPort("127.0.0.1", strconv.Itoa(port)) + p)
	if err != nil {
		return 0, []byte(err.Error())
	}
	defer resp.Body.Close()
	var b bytes.Buffer
	_, _ = b.ReadFrom(resp.Body)
	return resp.StatusCode, b.Bytes()
}

// probe asks the probe as the kubelet does: an HTTP GET of path on port.
func (s *server) probe(t *testing.T, name string) (int, string) {
	t.Helper()
	hg := get(s.container, name, "httpGet")
	if hg == nil {
		t.Fatalf("%s: %s is not an httpGet probe: %v", s.name, name, get(s.container, name))
	}
	if sch := str(hg, "scheme"); sch != "" && sch != "HTTP" {
		t.Fatalf("%s: %s scheme %s", s.name, name, sch)
	}
	code, body := s.get(t, s.port(t, get(hg, "port")), str(hg, "path"))
	return code, string(body)
}

// waitReady waits, within the startup probe's budget, for the readiness probe to answer
// 200, and fails the test if the process exits first.
func (s *server) waitReady(t *testing.T) {
	t.Helper()
	budget := 2 * time.Minute
	if sp := get(s.container, "startupProbe"); sp != nil {
		period, _ := get(sp, "periodSeconds").(int)
		n, _ := get(sp, "failureThreshold").(int)
		if d := time.Duration(period*n) * time.Second; d > 0 && d < budget {
			budget = d
		}
	}
	deadline := time.Now().Add(budget)
	for {
		select {
		case <-s.done:
			t.Fatalf("%s (args %q) exited %d before it was ready:\n%s", s.name, strs(s.container, "args"), s.cmd.ProcessState.ExitCode(), s.out)
		default:
		}
		code, body := s.probe(t, "readinessProbe")
		if code == http.StatusOK {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s not ready after %s: readiness answered %d %s\n%s", s.name, budget, code, body, s.out)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// stop sends SIGTERM, as the kubelet does, and wants a clean exit within the pod's
// terminationGracePeriodSeconds.
func (s *server) stop(t *testing.T) {
	t.Helper()
	if err := s.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatalf("stopping %s: %v", s.name, err)
	}
	select {
	case <-s.done:
	case <-time.After(s.grace):
		t.Fatalf("%s did not stop within terminationGracePeriodSeconds (%s) of SIGTERM:\n%s", s.name, s.grace, s.out)
	}
	if code := s.cmd.ProcessState.ExitCode(); code != 0 {
		t.Errorf("%s exited %d on SIGTERM:\n%s", s.name, code, s.out)
	}
	if t.Failed() {
		t.Logf("%s output:\n%s", s.name, s.out)
	}
}

func checkSchemaCurrent(t *testing.T, dbURL string) {
	t.Helper()
	ctx := context.Background()
	db, err := store.Open(ctx, dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if err := db.CheckSchema(ctx); err != nil {
		t.Errorf("after the migration the schema is not current: %v", err)
	}
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}
