package store_test

import (
	"bytes"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/hex"
	"os"
	"path/filepath"
	"testing"

	"github.com/cairn-dev/cairn/api"
	"github.com/cairn-dev/cairn/store"
)

func TestParseDigest(t *testing.T) {
	h64, h128 := hex.EncodeToString(make([]byte, 32)), hex.EncodeToString(make([]byte, 64))
	for d, ok := range map[string]bool{
		"sha256:" + h64:            true,
		"sha512:" + h128:           true,
		"sha256:" + h128:           false,
		"sha512:" + h64:            false,
		"sha256:" + "AB" + h64[2:]: false, // uppercase
		"md5:0123":                 false,
		"sha256" + h64:             false,
		"sha256:../../etc/passwd":  false,
		"":                         false,
	} {
		if _, _, err := store.ParseDigest(d); (err == nil) != ok {
			t.Errorf("ParseDigest(%q): %v, want ok=%v", d, err, ok)
		}
	}
}

// TestUploadHashState: chunks hashed as they arrive give the digest without a re-read; a
// stale or damaged state file, a refused chunk and sha512 fall back to hashing the file.
func TestUploadHashState(t *testing.T) {
	b, err := store.NewFSBlobs(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	data := bytes.Repeat([]byte("0123456789abcdef"), 4096) // 64 KiB
	s256 := sha256.Sum256(data)
	s512 := sha512.Sum512(data)
	d256, d512 := "sha256:"+hex.EncodeToString(s256[:]), "sha512:"+hex.EncodeToString(s512[:])

	upload := func(id string, damage func(state string)) {
		t.Helper()
		if err := b.CreateUpload(id); err != nil {
			t.Fatal(err)
		}
		size := int64(0)
		for i := 0; i < len(data); i += 10000 {
			end := min(i+10000, len(data))
			n, h, err := b.AppendUpload(id, size, bytes.NewReader(data[i:end]), 1<<20)
			if err != nil {
				t.Fatal(err)
			}
			b.SaveUploadHash(id, n, h)
			size = n
		}
		if damage != nil {
			p, _ := b.UploadPath(id)
			damage(p + ".sha256")
		}
	}
	check := func(id, digest string) {
		t.Helper()
		n, err := b.CommitUpload(t.Context(), id, digest, nil)
		if err != nil || n != int64(len(data)) {
			t.Fatalf("commit %s: %d %v", digest, n, err)
		}
		f, err := b.OpenDigest(t.Context(), digest)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		var got bytes.Buffer
		_, _ = got.ReadFrom(f)
		if !bytes.Equal(got.Bytes(), data) {
			t.Fatal("stored bytes differ")
		}
		if err := b.RemoveDigest(t.Context(), digest); err != nil {
			t.Fatal(err)
		}
	}
	upload("00000000000000000000000000000001", nil)
	check("00000000000000000000000000000001", d256)
	upload("00000000000000000000000000000002", func(st string) { _ = os.WriteFile(st, []byte("garbage state"), 0o600) })
	check("00000000000000000000000000000002", d256)
	upload("00000000000000000000000000000003", func(st string) { _ = os.Remove(st) })
	check("00000000000000000000000000000003", d256)
	upload("00000000000000000000000000000004", nil)
	check("00000000000000000000000000000004", d512)

	// A wrong digest leaves the upload as it was; a refused chunk is cut off and the state
	// still describes the recorded size, so the upload completes correctly afterwards.
	id := "00000000000000000000000000000005"
	upload(id, nil)
	if _, err := b.CommitUpload(t.Context(), id, "sha256:"+hex.EncodeToString(make([]byte, 32)), nil); api.CodeOf(err) != api.CodeDigestMismatch {
		t.Fatalf("wrong digest: %v", err)
	}
	if _, _, err := b.AppendUpload(id, int64(len(data)), bytes.NewReader(make([]byte, 2<<20)), 1<<20); api.CodeOf(err) != api.CodeTooLarge {
		t.Fatalf("over-limit chunk: %v", err)
	}
	n, _, err := b.AppendUpload(id, int64(len(data)), bytes.NewReader([]byte("extra")), 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	if err := b.TruncateUpload(id, int64(len(data))); err != nil || n != int64(len(data))+5 {
		t.Fatal(err)
	}
	check(id, d256)
	if files, _ := filepath.Glob(filepath.Join(b.Dir, "uploads", "*")); len(files) != 0 {
		t.Errorf("upload files left behind: %v", files)
	}
}
