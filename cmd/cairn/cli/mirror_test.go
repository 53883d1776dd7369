package cli

import (
	"archive/tar"
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/cairn-dev/cairn/client"
	"github.com/cairn-dev/cairn/mirror"
)

// rewriteBundle copies the tar at src to dst, passing each member through edit (which may
// change its header and body, or drop it by returning nil).
func rewriteBundle(t *testing.T, src, dst string, edit func(h *tar.Header, body []byte) (*tar.Header, []byte)) {
	t.Helper()
	in, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	tr := tar.NewReader(bytes.NewReader(in))
	var out bytes.Buffer
	tw := tar.NewWriter(&out)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(tr)
		nh, nb := edit(h, body)
		if nh == nil {
			continue
		}
		nh.Size = int64(len(nb))
		if err := tw.WriteHeader(nh); err != nil {
			t.Fatal(err)
		}
		tw.Write(nb)
	}
	tw.Close()
	if err := os.WriteFile(dst, out.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestMirrorExportVerifyImportLive(t *testing.T) {
	r, c := liveMaintainer(t, "cli_mirror")
	dist := t.TempDir()
	c.ok("upload", "widget", "1.0", writeFile(t, dist, "widget.tar.gz", "one"), "--key", "alice")
	c.ok("upload", "widget", "2.0", writeFile(t, dist, "widget-2.tar.gz", "two"), "--key", "bob")
	c.ok("yank", "widget", "1.0", "--key", "alice", "--reason", "broken")
	c.ok("project", "create", "gadget", "--key", "alice")
	c.ok("upload", "gadget", "0.1", writeFile(t, dist, "gadget.zip", "gadget zero one"), "--key", "alice")
	rootFile := writeFile(t, t.TempDir(), "root.json", string(r.RootJSON))

	work := t.TempDir()
	full := filepath.Join(work, "full.tar")
	var exp client.BundleVerification
	if err := json.Unmarshal([]byte(c.ok("mirror", "export", "--project", "widget", "-o", full, "--output", "json")), &exp); err != nil {
		t.Fatal(err)
	}
	if exp.Files != 2 || len(exp.Projects) != 1 || exp.Projects[0] != "widget" || exp.AuditEntries == 0 || exp.MerkleProofs < 3 {
		t.Fatalf("export = %+v", exp)
	}
	// Offline: a CLI with no configuration at all.
	off := newCLI(t)
	var ver client.BundleVerification
	if err := json.Unmarshal([]byte(off.ok("mirror", "verify", full, "--root", rootFile, "-o", "json")), &ver); err != nil {
		t.Fatal(err)
	}
	if ver.SnapshotVersion != exp.SnapshotVersion || ver.Files != 2 {
		t.Fatalf("verify = %+v", ver)
	}
	if text := off.ok("mirror", "verify", full, "--root", rootFile); !strings.Contains(text, "2 release files verified") {
		t.Errorf("verify text:\n%s", text)
	}

	// Same state, same export second: same bytes is checked by mirror.Write's tests; here
	// the static import and what it lays out.
	static := filepath.Join(work, "static")
	off.ok("mirror", "import", full, "--static", static, "--root", rootFile)
	for _, p := range []string{"metadata/timestamp.json", "metadata/root.json", "metadata/1.root.json", "mirror/bundle.json"} {
		if _, err := os.Stat(filepath.Join(static, p)); err != nil {
			t.Errorf("static dir lacks %s", p)
		}
	}
	// Importing the same bundle again changes nothing.
	if text := off.ok("mirror", "import", full, "--static", static); !strings.Contains(text, "nothing written") {
		t.Errorf("re-import:\n%s", text)
	}

	// A newer full export then an incremental one on top.
	c.ok("upload", "widget", "3.0", writeFile(t, dist, "widget-3.tar.gz", "three"), "--key", "alice")
	inc := filepath.Join(work, "inc.tar")
	var incv client.BundleVerification
	if err := json.Unmarshal([]byte(c.ok("mirror", "export", "--project", "widget", "--since", strconv.FormatInt(exp.SnapshotVersion, 10), "-o", inc, "--output", "json")), &incv); err != nil {
		t.Fatal(err)
	}
	if incv.Files != 1 || incv.Missing != 2 {
		t.Fatalf("incremental export = %+v", incv)
	}
	off.ok("mirror", "import", inc, "--static", static)
	if _, err := os.Stat(filepath.Join(static, "targets/widget/3.0")); err != nil {
		t.Fatalf("incremental import did not add 3.0: %v", err)
	}
	// An incremental bundle of the current snapshot: no roles, no files, the chain and the
	// timestamp only; it applies (nothing new to write but the head files).
	var cur client.BundleVerification
	if err := json.Unmarshal([]byte(off.ok("mirror", "verify", inc, "--root", rootFile, "-o", "json")), &cur); err != nil {
		t.Fatal(err)
	}
	empty := filepath.Join(work, "empty.tar")
	var ev client.BundleVerification
	if err := json.Unmarshal([]byte(c.ok("mirror", "export", "--project", "widget", "--since", strconv.FormatInt(cur.SnapshotVersion, 10), "-o", empty, "--output", "json")), &ev); err != nil {
		t.Fatal(err)
	}
	if ev.Files != 0 || ev.Missing != 0 || ev.Roles == 0 {
		t.Errorf("empty incremental = %+v", ev)
	}
	off.ok("mirror", "import", empty, "--static", static)
	// --all: every project.
	all := filepath.Join(work, "all.tar")
	var av client.BundleVerification
	if err := json.Unmarshal([]byte(c.ok("mirror", "export", "--all", "-o", all, "--output", "json")), &av); err != nil {
		t.Fatal(err)
	}
	if strings.Join(av.Projects, ",") != "gadget,widget" || av.Files != 4 {
		t.Errorf("--all = %+v", av)
	}
	c.fails(10, "cannot be combined", "mirror", "export", "--all", "--project", "widget", "-o", all)
	c.fails(10, "nothing to export", "mirror", "export", "-o", all)
	c.fails(20, `project "nosuch" is not in the verified metadata`, "mirror", "export", "--project", "nosuch", "-o", filepath.Join(work, "nosuch.tar"))
	if _, err := os.Stat(filepath.Join(work, "nosuch.tar")); err == nil {
		t.Error("a refused export wrote its file")
	}
	after := treeSums(t, static)
	off.fails(4, "rollback", "mirror", "import", full, "--static", static)
	if got := treeSums(t, static); got != after {
		t.Fatal("a refused rollback changed the mirror")
	}

	// Attacks and bad input, each refused with its exit code and nothing written. Raw tar
	// edits (the reader's checks) and self-consistent rewrites of the OCI layout (so only
	// TUF can tell).
	other := t.TempDir()
	var widget2, widgetRole, widgetProof, targetsProof string
	for _, f := range readBundleT(t, full).Files {
		if strings.HasPrefix(f.Path, "merkle/") && strings.HasSuffix(f.Path, "/widget.json") {
			widgetProof = f.Path
		}
		if strings.HasPrefix(f.Path, "merkle/") && strings.HasSuffix(f.Path, "/targets.json") {
			targetsProof = f.Path
		}
		if strings.HasSuffix(f.Path, ".widget-2.tar.gz") {
			widget2 = f.Path
		}
		if strings.HasSuffix(f.Path, ".widget.json") {
			widgetRole = f.Path
		}
	}
	c.ok("mirror", "verify", full) // the root pinned by 'cairn init' when --root is not given
	oldRole := fetchT(t, r.URL+"/metadata/1.widget.json")
	for _, tt := range []struct {
		name string
		code int
		want string
		raw  func(h *tar.Header, body []byte) (*tar.Header, []byte)
		file string // rewrite this bundle file consistently...
		body []byte // ...to these bytes (nil: drop it)
	}{
		{name: "changed blob", code: 1, want: "altered or damaged after export", raw: func(h *tar.Header, b []byte) (*tar.Header, []byte) {
			if bytes.Equal(b, []byte("two")) {
				return h, []byte("TWO")
			}
			return h, b
		}},
		{name: "missing blob", code: 10, want: "its blob is not in the bundle", raw: func(h *tar.Header, b []byte) (*tar.Header, []byte) {
			if bytes.Equal(b, []byte("two")) {
				return nil, nil
			}
			return h, b
		}},
		{name: "path traversal", code: 10, want: "not part of an OCI image layout", raw: func(h *tar.Header, b []byte) (*tar.Header, []byte) {
			if h.Name == "oci-layout" {
				h.Name = "../../etc/oci-layout"
			}
			return h, b
		}},
		{name: "symlink", code: 10, want: "not a regular file", raw: func(h *tar.Header, b []byte) (*tar.Header, []byte) {
			if h.Name == "oci-layout" {
				h.Typeflag, h.Linkname = tar.TypeSymlink, "/etc/passwd"
				return h, nil
			}
			return h, b
		}},
		{name: "changed file", code: 1, want: "widget/2.0/widget-2.tar.gz", file: widget2, body: []byte("TWO")},
		{name: "dropped file", code: 4, want: "in neither the bundle nor the mirror", file: widget2},
		{name: "replaced role", code: 1, want: "widget metadata failed (hash mismatch)", file: widgetRole, body: oldRole},
		{name: "swapped proof", code: 4, want: "answered the leaf of \"targets\"", file: widgetProof, body: readBundleFile(t, full, targetsProof)},
		{name: "dropped signature", code: 2, want: "timestamp", file: "metadata/timestamp.json", body: dropSignatures(t, readBundleFile(t, full, "metadata/timestamp.json"))},
	} {
		bad := filepath.Join(work, strings.ReplaceAll(tt.name, " ", "-")+".tar")
		if tt.raw != nil {
			rewriteBundle(t, full, bad, tt.raw)
		} else {
			replaceInBundle(t, full, bad, tt.file, tt.body)
		}
		off.fails(tt.code, tt.want, "mirror", "verify", bad, "--root", rootFile)
		dir := filepath.Join(other, strings.ReplaceAll(tt.name, " ", "-"))
		off.fails(tt.code, tt.want, "mirror", "import", bad, "--static", dir, "--root", rootFile)
		if entries, _ := os.ReadDir(filepath.Join(dir, "metadata")); len(entries) != 0 {
			t.Errorf("%s: refused import wrote %d metadata files", tt.name, len(entries))
		}
		// Into the mirror that holds newer state: refused (as a rollback, if nothing else).
		if res := off.run("mirror", "import", bad, "--static", static); res.code == 0 {
			t.Fatalf("%s: import into the populated mirror succeeded", tt.name)
		}
		if got := treeSums(t, static); got != after {
			t.Fatalf("%s: a refused import changed the mirror", tt.name)
		}
	}
	// A truncated tar.
	raw, _ := os.ReadFile(full)
	// Cut inside a member's bytes (the root, which the bundle carries as it is): a cut
	// between members, or in a header's padding, reads as a shorter, complete archive,
	// which verify refuses for the missing files instead.
	at := bytes.Index(raw, r.RootJSON)
	if at < 0 {
		t.Fatal("test premise: the bundle carries root.json's bytes as they are")
	}
	trunc := writeFile(t, work, "trunc.tar", string(raw[:at+len(r.RootJSON)/2]))
	off.fails(10, "truncated", "mirror", "verify", trunc, "--root", rootFile)
	// A huge member (under a small limit).
	off.fails(4, "more than the 4 allowed per member", "mirror", "verify", full, "--root", rootFile, "--max-file-size", "4")
	// A foreign root: the bundle does not chain from it.
	foreign, fc := liveMaintainer(t, "cli_mirror_foreign")
	foreignRoot := writeFile(t, t.TempDir(), "root.json", string(foreign.RootJSON))
	off.fails(3, "another repository", "mirror", "verify", full, "--root", foreignRoot)
	foreignBundle := filepath.Join(work, "foreign.tar")
	fc.ok("mirror", "export", "--project", "widget", "-o", foreignBundle)
	off.fails(3, "another repository", "mirror", "import", foreignBundle, "--static", static)
	if got := treeSums(t, static); got != after {
		t.Fatal("a refused import changed the mirror")
	}
}

// treeSums lists every file under dir with its sha256, to show that a refused import
// changed nothing.
func treeSums(t *testing.T, dir string) string {
	t.Helper()
	var b strings.Builder
	err := filepath.Walk(dir, func(p string, info os.FileInfo, err error) error {
		if err != nil || info.IsDir() {
			return err
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		sum := sha256.Sum256(data)
		fmt.Fprintf(&b, "%s %s %x\n", p, info.Mode(), sum)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return b.String()
}

func readBundleT(t *testing.T, path string) *mirror.Bundle {
	t.Helper()
	b, cleanup, err := readBundle(path, mirror.Limits{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cleanup)
	return b
}

func readBundleFile(t *testing.T, bundle, path string) []byte {
	t.Helper()
	f, ok := readBundleT(t, bundle).File(path)
	if !ok {
		t.Fatalf("%s has no %s", bundle, path)
	}
	b, err := f.ReadAll(1 << 30)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// replaceInBundle writes a self-consistent copy of bundle src to dst with file path's
// bytes replaced by body (dropped if body is nil): only the TUF checks can tell.
func replaceInBundle(t *testing.T, src, dst, path string, body []byte) {
	t.Helper()
	b := readBundleT(t, src)
	var files []mirror.File
	for _, f := range b.Files {
		if f.Path != path {
			files = append(files, f)
		} else if body != nil {
			files = append(files, mirror.BytesFile(path, f.MediaType, body))
		}
	}
	b.Files = files
	var out bytes.Buffer
	if err := mirror.Write(&out, b); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dst, out.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
}

func dropSignatures(t *testing.T, raw []byte) []byte {
	t.Helper()
	var doc map[string]json.RawMessage
	if err := json.Unmarshal(raw, &doc); err != nil {
		t.Fatal(err)
	}
	doc["signatures"] = json.RawMessage("[]")
	out, err := json.Marshal(doc)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func fetchT(t *testing.T, url string) []byte {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		t.Fatalf("GET %s: %d", url, resp.StatusCode)
	}
	return b
}
