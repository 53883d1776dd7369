package oci

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"net/http"
	"os"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/cairn-dev/cairn/api"
	"github.com/cairn-dev/cairn/store"
	"github.com/cairn-dev/cairn/store/blobstore"
)

// parseDigest checks a digest from a URL or query, answering DIGEST_INVALID.
func parseDigest(d string) (string, error) {
	if _, err := api.ParseDigest(d); err != nil {
		return "", errorf(api.CodeOCIDigestInvalid, map[string]string{"digest": truncate(d, 200)}, "%v", err)
	}
	return d, nil
}

func blobLocation(repo, digest string) string { return "/v2/" + repo + "/blobs/" + digest }

func uploadLocation(repo, id string) string { return "/v2/" + repo + "/blobs/uploads/" + id }

// rangeHeader is the Range of an upload session holding size bytes. An empty session
// says 0-0, as the reference registry does.
func rangeHeader(size int64) string {
	if size == 0 {
		return "0-0"
	}
	return fmt.Sprintf("0-%d", size-1)
}

func newUploadID() (string, error) {
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	return hex.EncodeToString(b), nil
}

// tooLarge answers a body over the blob limit.
func (g *Registry) tooLarge(got int64) error {
	if got > 0 {
		return errorf(api.CodeOCIBlobTooLarge, map[string]int64{"limit": g.cfg.MaxBlobSize, "size": got}, "the blob is %d bytes; this registry accepts at most %d bytes per blob", got, g.cfg.MaxBlobSize)
	}
	return errorf(api.CodeOCIBlobTooLarge, map[string]int64{"limit": g.cfg.MaxBlobSize}, "the blob is larger than this registry's limit of %d bytes", g.cfg.MaxBlobSize)
}

// appendErr turns a Session.Append failure into an answer.
func (g *Registry) appendErr(err error) error {
	switch {
	case api.CodeOf(err) == api.CodeTooLarge:
		return g.tooLarge(0)
	case errors.Is(err, os.ErrNotExist):
		return errorf(api.CodeOCIUploadUnknown, nil, "the upload session has ended: start a new upload with POST")
	}
	var me *http.MaxBytesError
	if errors.As(err, &me) {
		return g.tooLarge(0)
	}
	return fmt.Errorf("receiving blob data: %w", err)
}

func commitErr(err error, digest string) error {
	var e *api.Error
	if errors.As(err, &e) && e.Code == api.CodeDigestMismatch {
		return errorf(api.CodeDigestMismatch, map[string]string{"digest": digest}, "digest mismatch: %s: nothing was stored; check the data and the digest", e.Detail)
	}
	return err
}

// startUpload is POST /v2/<name>/blobs/uploads/: a mount (?mount=&from=), a monolithic
// upload (?digest= with the body), or a new upload session.
func (g *Registry) startUpload(w http.ResponseWriter, r *http.Request, repo, _ string) {
	if _, ok := g.authorize(w, r, repo, accessPush); !ok {
		return
	}
	q := r.URL.Query()
	if m := q.Get("mount"); m != "" {
		dig, err := parseDigest(m)
		if err != nil {
			g.fail(w, r, err)
			return
		}
		from := q.Get("from")
		if from != "" && (len(from) > maxNameLen || !nameRE.MatchString(from)) {
			g.fail(w, r, errorf(api.CodeOCINameInvalid, map[string]string{"from": truncate(from, 300)}, "mount source repository %q is not a valid name", truncate(from, 300)))
			return
		}
		_, ok, err := g.db.OCIMountBlob(r.Context(), repo, from, dig, func() bool {
			return blobstore.Exists(r.Context(), g.blobs.Content, dig)
		})
		if err != nil {
			g.fail(w, r, err)
			return
		}
		if ok {
			w.Header().Set("Location", blobLocation(repo, dig))
			w.Header().Set("Docker-Content-Digest", dig)
			w.WriteHeader(http.StatusCreated)
			return
		}
		// Not mountable: the spec says to fall back to an upload session.
	}
	if d, ok := q["digest"]; ok {
		dig, err := parseDigest(d[0])
		if err != nil {
			g.fail(w, r, err)
			return
		}
		if r.ContentLength > g.cfg.MaxBlobSize {
			g.fail(w, r, g.tooLarge(r.ContentLength))
			return
		}
		if err := g.storeMonolithic(r.Context(), repo, dig, r.Body); err != nil {
			g.fail(w, r, err)
			return
		}
		w.Header().Set("Location", blobLocation(repo, dig))
		w.Header().Set("Docker-Content-Digest", dig)
		w.WriteHeader(http.StatusCreated)
		return
	}
	id, err := g.db.OCICreateUpload(r.Context(), repo, g.blobs.Uploads.Create)
	if err != nil {
		g.fail(w, r, err)
		return
	}
	w.Header().Set("Location", uploadLocation(repo, id))
	w.Header().Set("Range", "0-0")
	w.Header().Set("Docker-Upload-UUID", id)
	w.Header().Set("Content-Length", "0")
	w.WriteHeader(http.StatusAccepted)
}

// storeMonolithic stores a whole blob sent in one request, through a private upload
// file that is removed on every path.
func (g *Registry) storeMonolithic(ctx context.Context, repo, dig string, body io.Reader) error {
	id, err := newUploadID()
	if err != nil {
		return err
	}
	// The lock is held while the body streams, so garbage collection leaves the file alone.
	up, err := g.blobs.Uploads.CreateLocked(id)
	if err != nil {
		return err
	}
	defer up.Close()
	defer func() { _ = up.Remove() }()
	n, h, err := up.Append(0, body, g.cfg.MaxBlobSize)
	if err != nil {
		return g.appendErr(err)
	}
	err = g.db.OCILinkBlob(ctx, repo, dig, n, func() error {
		_, err := up.Commit(ctx, dig, h)
		return err
	})
	return commitErr(err, dig)
}

// uploadSession checks the form of a session ID in a URL.
func (g *Registry) uploadSession(w http.ResponseWriter, r *http.Request, repo, id string) bool {
	if !blobstore.ValidUploadID(id) {
		g.fail(w, r, errorf(api.CodeOCIUploadUnknown, nil, "upload %q is not a session of this registry: start one with POST /v2/%s/blobs/uploads/", truncate(id, 80), repo))
		return false
	}
	return true
}

func (g *Registry) unknownUpload(repo string) error {
	return errorf(api.CodeOCIUploadUnknown, nil, "no upload session with this ID in %s (it completed, was cancelled, or expired after %s): start a new one with POST /v2/%s/blobs/uploads/", repo, g.cfg.UploadTTL, repo)
}

// uploadStatus is GET on a session: how many bytes it holds.
func (g *Registry) uploadStatus(w http.ResponseWriter, r *http.Request, repo, id string) {
	if _, ok := g.authorize(w, r, repo, accessPush); !ok || !g.uploadSession(w, r, repo, id) {
		return
	}
	u, err := g.db.OCIGetUpload(r.Context(), repo, id, g.cfg.UploadTTL)
	if err != nil {
		g.fail(w, r, err)
		return
	}
	if u == nil {
		g.fail(w, r, g.unknownUpload(repo))
		return
	}
	w.Header().Set("Location", uploadLocation(repo, id))
	w.Header().Set("Range", rangeHeader(u.Size))
	w.Header().Set("Docker-Upload-UUID", id)
	w.WriteHeader(http.StatusNoContent)
}

var contentRangeRE = regexp.MustCompile(`^(?:bytes[ =])?([0-9]{1,18})-([0-9]{1,18})$`)

// chunkRange parses an upload's Content-Range ("start-end", inclusive); ok is false if
// there is none.
func chunkRange(r *http.Request) (start, end int64, ok bool, err error) {
	h := r.Header.Get("Content-Range")
	if h == "" {
		return 0, 0, false, nil
	}
	m := contentRangeRE.FindStringSubmatch(strings.TrimSpace(h))
	if m == nil {
		return 0, 0, false, errorf(api.CodeOCIRangeInvalid, map[string]string{"content-range": truncate(h, 100)}, "Content-Range %q is not <start>-<end>", truncate(h, 100))
	}
	start, _ = strconv.ParseInt(m[1], 10, 64)
	end, _ = strconv.ParseInt(m[2], 10, 64)
	if end < start {
		return 0, 0, false, errorf(api.CodeOCIRangeInvalid, map[string]string{"content-range": h}, "Content-Range %q ends before it starts", h)
	}
	if r.ContentLength >= 0 && r.ContentLength != end-start+1 {
		return 0, 0, false, errorf(api.CodeOCISizeInvalid, map[string]int64{"content-length": r.ContentLength, "range-length": end - start + 1}, "Content-Length %d does not match Content-Range %q (%d bytes)", r.ContentLength, h, end-start+1)
	}
	return start, end, true, nil
}

// outOfOrder is a chunk that does not start where the session ends.
type outOfOrder struct {
	size  int64
	start int64
}

func (e *outOfOrder) Error() string { return "out of order chunk" }

// receiveChunk appends the request body to a session holding size bytes, checking its
// Content-Range; on a refusal the file is cut back to size. It returns the new size and
// the sha256 of the bytes so far (nil if unknown).
func (g *Registry) receiveChunk(r *http.Request, up *blobstore.Session, size int64) (int64, hash.Hash, error) {
	start, end, ranged, err := chunkRange(r)
	if err != nil {
		return 0, nil, err
	}
	if ranged && start != size {
		return 0, nil, &outOfOrder{size: size, start: start}
	}
	n, h, err := up.Append(size, r.Body, g.cfg.MaxBlobSize)
	if err != nil {
		return 0, nil, g.appendErr(err)
	}
	if ranged && n-size != end-start+1 {
		if err := up.Truncate(size); err != nil {
			return 0, nil, err
		}
		return 0, nil, errorf(api.CodeOCISizeInvalid, nil, "the chunk has %d bytes but Content-Range says %d", n-size, end-start+1)
	}
	return n, h, nil
}

func (g *Registry) chunkFail(w http.ResponseWriter, r *http.Request, repo, id string, err error) {
	var oo *outOfOrder
	if errors.As(err, &oo) {
		w.Header().Set("Location", uploadLocation(repo, id))
		w.Header().Set("Range", rangeHeader(oo.size))
		w.Header().Set("Docker-Upload-UUID", id)
		g.fail(w, r, errorf(api.CodeOCIRangeInvalid, map[string]int64{"expected_start": oo.size, "start": oo.start},
			"this chunk starts at byte %d but the session holds %d bytes: send the chunk that starts at %d (GET the upload URL for its state)", oo.start, oo.size, oo.size))
		return
	}
	g.fail(w, r, err)
}

// lockedSession takes a session's file lock (waiting for another request that writes to
// it, for as long as this request lives) and reads the session afresh. Chunks of one
// session are written one at a time under that lock, without a database transaction open
// while the client streams (a slow client must not hold a pool connection); the size is
// then recorded only if it is still the one the chunk was written after.
func (g *Registry) lockedSession(r *http.Request, repo, id string) (*store.OCIUpload, *blobstore.Session, error) {
	up, err := g.blobs.Uploads.Lock(r.Context(), id)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil, g.unknownUpload(repo)
	}
	if err != nil {
		return nil, nil, err
	}
	u, err := g.db.OCIGetUpload(r.Context(), repo, id, g.cfg.UploadTTL)
	if err == nil && u == nil {
		err = g.unknownUpload(repo)
	}
	if err != nil {
		up.Close()
		return nil, nil, err
	}
	return u, up, nil
}

// patchUpload is PATCH on a session: a chunk (with Content-Range) or a stream (without).
func (g *Registry) patchUpload(w http.ResponseWriter, r *http.Request, repo, id string) {
	if _, ok := g.authorize(w, r, repo, accessPush); !ok || !g.uploadSession(w, r, repo, id) {
		return
	}
	u, up, err := g.lockedSession(r, repo, id)
	if err != nil {
		g.fail(w, r, err)
		return
	}
	defer up.Close()
	n, h, err := g.receiveChunk(r, up, u.Size)
	if err != nil {
		g.chunkFail(w, r, repo, id, err)
		return
	}
	ok, err := g.db.OCISetUploadSize(r.Context(), id, u.Size, n)
	if err != nil || !ok {
		_ = up.Truncate(u.Size)
		if err == nil {
			err = g.unknownUpload(repo)
		}
		g.fail(w, r, err)
		return
	}
	up.SaveHash(n, h)
	w.Header().Set("Location", uploadLocation(repo, id))
	w.Header().Set("Range", rangeHeader(n))
	w.Header().Set("Docker-Upload-UUID", id)
	w.Header().Set("Content-Length", "0")
	w.WriteHeader(http.StatusAccepted)
}

// putUpload is PUT on a session with ?digest=: the last chunk (optional), then the
// digest check; the blob is stored and linked, and the session ends. A wrong digest
// stores nothing and leaves the session as it was before this request.
func (g *Registry) putUpload(w http.ResponseWriter, r *http.Request, repo, id string) {
	if _, ok := g.authorize(w, r, repo, accessPush); !ok || !g.uploadSession(w, r, repo, id) {
		return
	}
	d := r.URL.Query().Get("digest")
	if d == "" {
		g.fail(w, r, errorf(api.CodeOCIDigestInvalid, nil, "completing an upload needs ?digest=<algorithm>:<hex> of the whole blob"))
		return
	}
	dig, err := parseDigest(d)
	if err != nil {
		g.fail(w, r, err)
		return
	}
	u, up, err := g.lockedSession(r, repo, id)
	if err != nil {
		g.fail(w, r, err)
		return
	}
	defer up.Close()
	n := u.Size
	var h hash.Hash
	if r.ContentLength != 0 {
		if n, h, err = g.receiveChunk(r, up, u.Size); err != nil {
			g.chunkFail(w, r, repo, id, err)
			return
		}
	}
	found, err := g.db.OCIFinishUpload(r.Context(), repo, id, u.Size, dig, n, func() error {
		_, err := up.Commit(r.Context(), dig, h)
		return err
	})
	if err != nil || !found {
		if n != u.Size { // the last chunk goes too: the session is as before this request
			_ = up.Truncate(u.Size)
		}
		if err == nil {
			err = g.unknownUpload(repo)
		}
		g.fail(w, r, commitErr(err, dig))
		return
	}
	w.Header().Set("Location", blobLocation(repo, dig))
	w.Header().Set("Docker-Content-Digest", dig)
	w.Header().Set("Content-Length", "0")
	w.WriteHeader(http.StatusCreated)
}

// cancelUpload is DELETE on a session.
func (g *Registry) cancelUpload(w http.ResponseWriter, r *http.Request, repo, id string) {
	if _, ok := g.authorize(w, r, repo, accessPush); !ok || !g.uploadSession(w, r, repo, id) {
		return
	}
	found, err := g.db.OCIDeleteUpload(r.Context(), repo, id)
	if err != nil {
		g.fail(w, r, err)
		return
	}
	if !found {
		g.fail(w, r, g.unknownUpload(repo))
		return
	}
	if err := g.blobs.Uploads.Remove(id); err != nil {
		g.log.Warn("removing a cancelled upload's file", "err", err)
	}
	w.WriteHeader(http.StatusNoContent)
}

// getBlob is GET and HEAD of a blob, with Range support.
func (g *Registry) getBlob(w http.ResponseWriter, r *http.Request, repo, d string) {
	if _, ok := g.authorize(w, r, repo, accessPull); !ok {
		return
	}
	dig, err := parseDigest(d)
	if err != nil {
		g.fail(w, r, err)
		return
	}
	_, ok, err := g.db.OCIBlobInRepo(r.Context(), repo, dig)
	var data []byte
	if err == nil && !ok {
		// A release's files (and its empty config) are blobs of the project repository
		// without being linked into it: reads never write (see releases.go).
		ok, data, err = g.releaseBlob(r.Context(), repo, dig)
	}
	if err == nil && !ok {
		// The bundle of a committed attestation: the layer of a release's referrer.
		data, err = g.attestationBlob(r.Context(), repo, dig)
		ok = data != nil
	}
	if err != nil {
		g.fail(w, r, err)
		return
	}
	unknown := errorf(api.CodeOCIBlobUnknown, map[string]string{"digest": dig}, "blob %s is not in repository %s", dig, repo)
	if !ok {
		g.fail(w, r, unknown)
		return
	}
	h := w.Header()
	if data != nil {
		h.Set("Docker-Content-Digest", dig)
		h.Set("Content-Type", "application/octet-stream")
		h.Set("ETag", `"`+dig+`"`)
		h.Set("Cache-Control", "max-age=31536000, immutable")
		http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(data))
		return
	}
	f, _, err := g.blobs.Content.Open(r.Context(), dig)
	if errors.Is(err, os.ErrNotExist) {
		// Garbage collection may have taken the link and the file since the lookup; a
		// link that is still there without its file is damage worth a log line.
		if _, still, err := g.db.OCIBlobInRepo(r.Context(), repo, dig); err == nil && still {
			g.log.Error("OCI blob recorded but its file is missing", "digest", dig, "repo", repo)
		}
		g.fail(w, r, unknown)
		return
	}
	if err != nil {
		g.fail(w, r, fmt.Errorf("opening blob %s: %w", dig, err))
		return
	}
	defer f.Close()
	h.Set("Docker-Content-Digest", dig)
	h.Set("Content-Type", "application/octet-stream")
	h.Set("ETag", `"`+dig+`"`)
	h.Set("Cache-Control", "max-age=31536000, immutable")
	http.ServeContent(withSendfile(w), r, "", time.Time{}, f)
}

// sendfileWriter lets http.ServeContent reach the connection's ReadFrom (sendfile) through
// middleware wrappers that forward only Write, while headers and status still go through
// the wrappers (which record them).
type sendfileWriter struct {
	http.ResponseWriter
	rf io.ReaderFrom
}

func (w sendfileWriter) ReadFrom(r io.Reader) (int64, error) { return w.rf.ReadFrom(r) }

func withSendfile(w http.ResponseWriter) http.ResponseWriter {
	inner := w
	for {
		if rf, ok := inner.(io.ReaderFrom); ok {
			if inner == w {
				return w
			}
			return sendfileWriter{ResponseWriter: w, rf: rf}
		}
		u, ok := inner.(interface{ Unwrap() http.ResponseWriter })
		if !ok {
			return w
		}
		inner = u.Unwrap()
	}
}

// deleteBlob unlinks a blob from a repository (the bytes go at garbage collection).
func (g *Registry) deleteBlob(w http.ResponseWriter, r *http.Request, repo, d string) {
	if _, ok := g.authorize(w, r, repo, accessDelete); !ok {
		return
	}
	dig, err := parseDigest(d)
	if err != nil {
		g.fail(w, r, err)
		return
	}
	// A release's files cannot be unlinked (the empty config of release manifests is
	// anyone's to push and unlink, so it is not checked).
	if rel, _, err := g.releaseBlob(r.Context(), repo, dig); err != nil {
		g.fail(w, r, err)
		return
	} else if rel && dig != emptyDigest {
		g.fail(w, r, errorf(api.CodeOCIReleaseImmutable, map[string]string{"digest": dig}, "blob %s is part of a published release of %s: releases are immutable (yank the release with `cairn yank` instead)", dig, repo))
		return
	}
	found, err := g.db.OCIUnlinkBlob(r.Context(), repo, dig)
	if err != nil {
		g.fail(w, r, err)
		return
	}
	if !found {
		g.fail(w, r, errorf(api.CodeOCIBlobUnknown, map[string]string{"digest": dig}, "blob %s is not in repository %s", dig, repo))
		return
	}
	w.WriteHeader(http.StatusAccepted)
}
