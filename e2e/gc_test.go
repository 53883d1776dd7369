package e2e

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
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
// waits until the server (process pid) has written that half to a file without a name in
// blobDir/tmp (O_TMPFILE: /proc shows it as "<dir>/#<inode> (deleted)"). finish sends the
// rest and returns the status.
func halfUpload(t *testing.T, base, token, blobDir string, pid int, content []byte) (finish func() int) {
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
	fds := fmt.Sprintf("/proc/%d/fd", pid)
	prefix := filepath.Join(blobDir, "tmp") + "/#"
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("process %d holds no unnamed file of %d bytes in %s/tmp", pid, half, blobDir)
		}
		ents, _ := os.ReadDir(fds)
		found := false
		for _, e := range ents {
			target, err := os.Readlink(filepath.Join(fds, e.Name()))
			if err != nil || !strings.HasPrefix(target, prefix) || !strings.HasSuffix(target, " (deleted)") {
				continue
			}
			if fi, err := os.Stat(filepath.Join(fds, e.Name())); err == nil && fi.Size() == int64(half) {
				found = true
			}
		}
		if found {
			break
		}
	}
	return func() int {
		_, _ = pw.Write(content[half:])
		pw.Close()
		return <-status
	}
}

// uploadFiles lists the upload-* files in blobDir/tmp.
func uploadFiles(t *testing.T, blobDir string) []string {
	t.Helper()
	ents, err := os.ReadDir(filepath.Join(blobDir, "tmp"))
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), "upload-") {
			out = append(out, e.Name())
		}
	}
	return out
}

// TestGCCollectsUploadOfKilledServer: a cairnd process killed (kill -9) in the middle of a
// release-file upload leaves nothing in <blob-dir>/tmp: the file has no name until it is
// complete and synced, and the kernel frees it with the process. A temporary file that a
// writer without unnamed files (another file system, an older cairnd) left there is
// removed and reported by `cairnd gc --grace 0s`, while another replica on the same blob
// directory is in the middle of an upload of its own, which completes. (A named file of a
// live writer is kept under its lock: store/blobstore's TestAbandonedTempFilesCollectedLiveKept.)
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
	halfUpload(t, "http://"+addr, r.AdminToken, blobDir, cmd.Process.Pid, bytes.Repeat([]byte("dies half-way "), 4096))
	if err := cmd.Process.Kill(); err != nil { // SIGKILL: no deferred cleanup runs
		t.Fatal(err)
	}
	<-done
	if left := uploadFiles(t, blobDir); len(left) != 0 {
		t.Fatalf("the killed server's partial upload left %v in tmp/", left)
	}

	// What a killed writer of a named temporary file leaves: old, unlocked.
	dead := "upload-" + strings.Repeat("d", 16)
	deadPath := filepath.Join(blobDir, "tmp", dead)
	if err := os.WriteFile(deadPath, bytes.Repeat([]byte("half "), 1000), 0o600); err != nil {
		t.Fatal(err)
	}
	old := time.Now().Add(-time.Hour)
	if err := os.Chtimes(deadPath, old, old); err != nil {
		t.Fatal(err)
	}

	content := bytes.Repeat([]byte("lives through gc "), 4096)
	finish := halfUpload(t, r.URL, r.AdminToken, blobDir, os.Getpid(), content)

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
	if rep.TempFiles != 1 || rep.TempBytes != 5000 || rep.TempInUse != 0 {
		t.Errorf("gc report: %d abandoned temporary files (%d bytes), %d in use; want 1, 5000, 0\n%s", rep.TempFiles, rep.TempBytes, rep.TempInUse, errOut.String())
	}
	if !strings.Contains(errOut.String(), "1 abandoned temporary file(s)") {
		t.Errorf("gc summary does not report the abandoned file: %s", errOut.String())
	}
	if _, err := os.Stat(deadPath); !os.IsNotExist(err) {
		t.Errorf("the abandoned file %s is still there (%v)", dead, err)
	}
	if st := finish(); st != http.StatusCreated {
		t.Fatalf("the live upload answered %d after gc, want 201", st)
	}
	sum := sha256.Sum256(content)
	if resp := r.Do(t, http.MethodHead, "/api/v1/blobs/sha256:"+hex.EncodeToString(sum[:]), r.AdminToken, "", nil); resp.Status != http.StatusOK {
		t.Fatalf("HEAD of the live upload's blob: %d", resp.Status)
	}
}
