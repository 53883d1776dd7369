package server

import (
	"net/http"
	"strings"

	"github.com/cairn-dev/cairn/api"
	"github.com/cairn-dev/cairn/store/blobstore"
	"github.com/go-chi/chi/v5"
)

func (s *Server) routeBlobs(r chi.Router) {
	r.Put("/blobs/{digest}", s.putBlob)
	r.Head("/blobs/{digest}", s.headBlob)
}

func blobDigest(r *http.Request) (string, error) {
	d := chi.URLParam(r, "digest")
	sum, ok := strings.CutPrefix(d, "sha256:")
	if !ok || !api.ValidSHA256Hex(sum) {
		return "", api.Errorf(api.CodeBadRequest, "blob digest %.80q must be sha256:<64 lowercase hex digits>", d)
	}
	return sum, nil
}

// putBlob stores a release file by its digest. It is idempotent: a blob that is already
// stored answers 200 without reading the body again.
func (s *Server) putBlob(w http.ResponseWriter, r *http.Request) {
	t, err := s.authenticate(r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	if !t.Admin && !t.CanCreate && len(t.Projects) == 0 {
		s.writeError(w, r, api.Errorf(api.CodeForbidden, "token %q has no project to upload to", t.Name))
		return
	}
	sum, err := blobDigest(r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	if r.ContentLength > s.cfg.MaxBlobSize {
		s.writeError(w, r, api.Errorf(api.CodeTooLarge, "blob is %d bytes; the limit is %d", r.ContentLength, s.cfg.MaxBlobSize))
		return
	}
	// Already stored (recorded, and its bytes present) is answered without reading the body.
	// A new blob is the common case: with local storage a stat says so without a database
	// round trip; with a remote store the row is the cheaper question, so it comes first.
	content, digest := s.blobs.Content, "sha256:"+sum
	_, local := s.blobs.Local()
	if present := local && blobstore.Exists(r.Context(), content, digest); present || !local {
		if size, ok, err := s.db.BlobSize(r.Context(), sum); err != nil {
			s.writeError(w, r, err)
			return
		} else if ok && (present || blobstore.Exists(r.Context(), content, digest)) {
			writeJSON(w, http.StatusOK, api.BlobResult{Digest: "sha256:" + sum, Size: size})
			return
		}
	}
	size, err := content.Put(r.Context(), digest, r.Body, s.cfg.MaxBlobSize)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	// One statement and commit for the PUTs that arrive together; answered once committed.
	created, err := s.db.RecordBlobGrouped(r.Context(), sum, size)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	status := http.StatusOK
	if created {
		status = http.StatusCreated
	}
	writeJSON(w, status, api.BlobResult{Digest: "sha256:" + sum, Size: size, Created: created})
}

func (s *Server) headBlob(w http.ResponseWriter, r *http.Request) {
	sum, err := blobDigest(r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	_, ok, err := s.db.BlobSize(r.Context(), sum)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	if !ok || !blobstore.Exists(r.Context(), s.blobs.Content, "sha256:"+sum) {
		w.WriteHeader(http.StatusNotFound)
		return
	}
	w.WriteHeader(http.StatusOK)
}
