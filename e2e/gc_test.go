package e2e

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cairn-dev/cairn/internal/testdb"
	"github.com/cairn-dev/cairn/internal/testrepo"
	"github.com/cairn-dev/cairn/store"
)

// halfUpload starts PUT /api/v1/blobs of content against base, sends half of it, and
// waits until the server has written that half to a temporary file in blobDir/tmp, which
// it returns. finish sends the rest and returns the status.
func halfUpload(t *testing.T, base, token, blobDir string, content []byte, exclude ...string) (tmp string, finish func() int) {
	t.Helper()
	sum := sha256.Sum256(content)
	pr, pw := io.Pipe()
	req, err := http.NewRequest(http.MethodPut, base+"/api/v1/blobs/sha256:"+hex.EncodeToString(sum[:]), pr)
	if err != nil {
		t.Fatal(err)
	}
	req.ContentLength = int64(len(content))
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/octet-stream")
	status := make(chan int, 1)
	go func() {
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			status <- 0
			return
		}
		resp.Body.Close()
		status <- resp.StatusCode
	}()
	half := len(content) / 2
	if _, err := pw.Write(content[:half]); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(20 * time.Second); tmp == ""; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("no temporary file of %d bytes appeared in %s/tmp", half, blobDir)
		}
		ents, _ := os.ReadDir(filepath.Join(blobDir, "tmp"))
		for _, e := range ents {
			if fi, err := e.Info(); err == nil && strings.HasPrefix(e.Name(), "upload-") && fi.Size() == int64(half) && !strings.Contains(strings.Join(exclude, " "), e.Name()) {
				tmp = e.Name()
			}
		}
	}
	return tmp, func() int {
		_, _ = pw.Write(content[half:])
		pw.Close()
		return <-status
	}
}

// TestGCCollectsUploadOfKilledServer: a cairnd process killed (kill -9) in the middle of
// an upload leaves its partial file in <blob-dir>/tmp. `cairnd gc --grace 0s` removes it
// and reports it, while another replica on the same blob directory is in the middle of an
// upload of its own: that file is kept, and that upload completes.
func TestGCCollectsUploadOfKilledServer(t *testing.T) {
	bin := buildCairnd(t)
	u, drop, err := testdb.Create("e2e_" + t.Name())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(drop)
	r := testrepo.Boot(t, u, nil) // the replica that lives
	blobDir := filepath.Join(r.Dir, "blobs")

	addr := freeAddr(t)
	cmd := exec.Command(bin, "serve", "--dev", "--data-dir", r.Dir, "--database-url", u, "--listen", addr, "--log-level", "warn")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	waitUp(t, "http://"+addr, done)
	dead, _ := halfUpload(t, "http://"+addr, r.AdminToken, blobDir, bytes.Repeat([]byte("dies half-way "), 4096))
	if err := cmd.Process.Kill(); err != nil { // SIGKILL: no deferred cleanup runs
		t.Fatal(err)
	}
	<-done
	if _, err := os.Stat(filepath.Join(blobDir, "tmp", dead)); err != nil {
		t.Fatalf("the killed server's partial upload is not there: %v", err)
	}

	content := bytes.Repeat([]byte("lives through gc "), 4096)
	live, finish := halfUpload(t, r.URL, r.AdminToken, blobDir, content, dead)

	gc := exec.Command(bin, "gc", "--data-dir", r.Dir, "--database-url", u, "--grace", "0s")
	var out, errOut bytes.Buffer
	gc.Stdout, gc.Stderr = &out, &errOut
	if err := gc.Run(); err != nil {
		t.Fatalf("cairnd gc: %v\n%s", err, errOut.String())
	}
	var rep store.OCIGCReport
	if err := json.Unmarshal(out.Bytes(), &rep); err != nil {
		t.Fatalf("gc report %q: %v", out.String(), err)
	}
	if rep.TempFiles != 1 || rep.TempInUse != 1 || rep.TempBytes == 0 {
		t.Errorf("gc report: %d abandoned temporary files (%d bytes), %d in use; want 1, >0, 1\n%s", rep.TempFiles, rep.TempBytes, rep.TempInUse, errOut.String())
	}
	if !strings.Contains(errOut.String(), "1 abandoned temporary file(s)") {
		t.Errorf("gc summary does not report the abandoned file: %s", errOut.String())
	}
	if _, err := os.Stat(filepath.Join(blobDir, "tmp", dead)); !os.IsNotExist(err) {
		t.Errorf("the killed server's partial upload %s is still there (%v)", dead, err)
	}
	if _, err := os.Stat(filepath.Join(blobDir, "tmp", live)); err != nil {
		t.Fatalf("gc removed the live upload's file %s: %v", live, err)
	}
	if st := finish(); st != http.StatusCreated {
		t.Fatalf("the live upload answered %d after gc, want 201", st)
	}
	sum := sha256.Sum256(content)
	if resp := r.Do(t, http.MethodHead, "/api/v1/blobs/sha256:"+hex.EncodeToString(sum[:]), r.AdminToken, "", nil); resp.Status != http.StatusOK {
		t.Fatalf("HEAD of the live upload's blob: %d", resp.Status)
	}
}
