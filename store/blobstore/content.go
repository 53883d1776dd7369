// Package blobstore keeps the bytes of Cairn's blob directory: finished blobs by digest
// (Content, on a file system or in S3), the OCI upload sessions being received (Uploads),
// the metadata files the publisher keeps outside PostgreSQL (MetaDir), and the temporary
// files every write goes through (Temp). It knows nothing of the database: store records
// what is stored, server and oci speak HTTP.
package blobstore

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"time"

	"github.com/cairn-dev/cairn/api"
)

// Content holds finished, verified blobs by digest ("sha256:<hex>", "sha512:<hex>"). Every
// implementation runs the conformance suite in storetest.
type Content interface {
	// Put streams r in as digest, checking while it streams that it is at most max bytes
	// and hashes to digest. It returns the size. A refusal is an *api.Error:
	// CodeTooLarge, CodeDigestMismatch, CodeBadRequest (a malformed digest); on any error
	// nothing is stored and nothing is left behind. Putting a blob that is already
	// stored is harmless: same digest, same bytes.
	Put(ctx context.Context, digest string, r io.Reader, max int64) (int64, error)
	// Ingest moves in, as digest, the complete file at path whose bytes the caller has
	// already checked against digest (and synced: on a file system it is renamed, so it
	// must be on the store's file system). On success path is gone.
	Ingest(ctx context.Context, digest, path string) error
	// Stat returns a blob's size and time; an error matching fs.ErrNotExist (and
	// api.CodeNotFound) if it is not stored.
	Stat(ctx context.Context, digest string) (Info, error)
	// Open returns a reader that can seek (for Range requests) and the blob's size; not
	// found as Stat. A local blob is an *os.File, which http.ServeContent sends with
	// sendfile.
	Open(ctx context.Context, digest string) (io.ReadSeekCloser, int64, error)
	// Delete removes a blob; a missing one is not an error.
	Delete(ctx context.Context, digest string) error
}

// Info describes a stored blob.
type Info struct {
	Size    int64
	ModTime time.Time
}

// Exists reports whether c holds digest.
func Exists(ctx context.Context, c Content, digest string) bool {
	_, err := c.Stat(ctx, digest)
	return err == nil
}

// notStored is the error of a blob that is not there: fs.ErrNotExist for callers that
// test for it, api.CodeNotFound for the answer (without the path, which users must not see).
func notStored(digest string, cause error) error {
	if cause == nil || errors.Is(cause, fs.ErrNotExist) {
		cause = fs.ErrNotExist
	}
	return api.Wrap(api.CodeNotFound, cause, "blob %.140s is not stored", digest)
}

// received is a blob received into a locked temporary file and checked.
type received struct {
	f      *os.File // locked until closed; positioned at its end
	size   int64
	sha256 []byte // the bytes' sha256 (for stores that check it on arrival)
	placed bool   // renamed into place: discard has no name to remove
}

// receive streams r into a new locked file of tmp, at most max bytes, and checks that it
// hashes to digest. On any error the file is gone.
func receive(tmp *Temp, digest string, r io.Reader, max int64) (*received, error) {
	if _, err := api.ParseDigest(digest); err != nil {
		return nil, badDigest(err)
	}
	// Locked while it is written and until it is placed, so garbage collection leaves it
	// alone; one that a killed process left is collected (Temp.RemoveAbandoned).
	f, err := tmp.Create("upload-*")
	if err != nil {
		return nil, fmt.Errorf("creating temporary blob: %w", err)
	}
	n, s256, err := receiveInto(f, digest, r, max)
	if err != nil {
		_ = os.Remove(f.Name())
		f.Close()
		return nil, err
	}
	return &received{f: f, size: n, sha256: s256}, nil
}

func badDigest(err error) error {
	return api.Wrap(api.CodeBadRequest, err, "blob digest must be sha256:<64 lowercase hex digits> (or sha512:<128>): %v", err)
}

// receiveInto streams r into f, at most max bytes, and checks that they hash to digest.
// It returns their length and sha256.
func receiveInto(f *os.File, digest string, r io.Reader, max int64) (int64, []byte, error) {
	d, err := api.ParseDigest(digest)
	if err != nil {
		return 0, nil, badDigest(err)
	}
	algo, h := d.Algorithm, d.Hash()
	s256 := h
	var sink io.Writer = h
	if algo != "sha256" {
		s256 = sha256.New()
		sink = io.MultiWriter(h, s256)
	}
	n, err := io.Copy(io.MultiWriter(f, sink), io.LimitReader(r, max+1))
	if err != nil {
		return 0, nil, fmt.Errorf("receiving blob: %w", err)
	}
	if n > max {
		return 0, nil, api.Errorf(api.CodeTooLarge, "blob is larger than the limit of %d bytes", max)
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != d.Hex {
		return 0, nil, api.Errorf(api.CodeDigestMismatch, "uploaded bytes hash to %s:%s, not %s: check the file and the digest", algo, got, digest)
	}
	return n, s256.Sum(nil), nil
}

// discard removes a received file and drops its lock (removed first: closing first would
// let a collection take it, harmlessly, but count it).
func (r *received) discard() {
	if !r.placed {
		_ = os.Remove(r.f.Name())
	}
	r.f.Close()
}
