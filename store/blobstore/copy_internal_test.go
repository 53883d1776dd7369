package blobstore

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"
	"testing/iotest"
)

// copyHashed writes and hashes exactly the bytes it read, whatever the sizes of the
// reads, at the file's offset; an end of the body is io.EOF (success) and a body cut
// short keeps its error, so that Append cuts the file back.
func TestCopyHashed(t *testing.T) {
	data := bytes.Repeat([]byte("0123456789abcdef"), 3*copyBufSize/16+1001) // 3 buffers and a tail
	cut := errors.New("connection reset")
	for _, tc := range []struct {
		name    string
		off     int64
		r       func() io.Reader
		want    int64 // bytes written
		wantErr error
	}{
		{"one read per buffer", 0, func() io.Reader { return bytes.NewReader(data) }, int64(len(data)), nil},
		{"short reads", 0, func() io.Reader { return iotest.HalfReader(bytes.NewReader(data)) }, int64(len(data)), nil},
		{"one byte at a time", 0, func() io.Reader { return iotest.OneByteReader(bytes.NewReader(data[:5000])) }, 5000, nil},
		{"data with the end", 0, func() io.Reader { return iotest.DataErrReader(bytes.NewReader(data)) }, int64(len(data)), nil},
		{"empty", 0, func() io.Reader { return bytes.NewReader(nil) }, 0, nil},
		{"after a first chunk", 12345, func() io.Reader { return bytes.NewReader(data) }, int64(len(data)), nil},
		{"cut short", 0, func() io.Reader {
			return io.MultiReader(bytes.NewReader(data[:copyBufSize+7]), iotest.ErrReader(io.ErrUnexpectedEOF))
		}, copyBufSize + 7, io.ErrUnexpectedEOF},
		{"fails", 0, func() io.Reader { return io.MultiReader(bytes.NewReader(data[:10]), iotest.ErrReader(cut)) }, 10, cut},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f, err := os.Create(filepath.Join(t.TempDir(), "upload"))
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			head := bytes.Repeat([]byte{'h'}, int(tc.off))
			if _, err := f.Write(head); err != nil {
				t.Fatal(err)
			}
			h := sha256.New()
			h.Write(head)
			n, err := copyHashed(f, tc.off, tc.r(), h, make([]byte, copyBufSize))
			if n != tc.want || !errors.Is(err, tc.wantErr) {
				t.Fatalf("copyHashed = %d, %v; want %d, %v", n, err, tc.want, tc.wantErr)
			}
			got, err := os.ReadFile(f.Name())
			if err != nil {
				t.Fatal(err)
			}
			want := append(head, data[:tc.want]...)
			if !bytes.Equal(got, want) {
				t.Fatalf("the file holds %d bytes, not the %d read", len(got), len(want))
			}
			if sum := sha256.Sum256(want); !bytes.Equal(h.Sum(nil), sum[:]) {
				t.Fatal("the hash is not that of the bytes written")
			}
		})
	}
}
