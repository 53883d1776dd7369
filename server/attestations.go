package server

import (
	"bytes"
	"context"
	"fmt"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/cairn-dev/cairn/api"
	"github.com/cairn-dev/cairn/attest"
	"github.com/cairn-dev/cairn/store"
	"github.com/cairn-dev/cairn/tufrepo"
	"github.com/go-chi/chi/v5"
)

// Attestations (issue #12): Sigstore bundles about published release files, verified
// against the repository's Sigstore trusted root (attest.Verify) before they are stored.
// Anyone with a token may attach one; everyone may read them.

func (s *Server) routeAttestations(r chi.Router) {
	r.Post("/attestations/{sha256}", s.postAttestation)
	r.Get("/attestations/{sha256}", s.listAttestations)
	r.Get("/attestations/{sha256}/summary", s.attestationSummary)
	r.Get("/attestations/{sha256}/{bundle}", s.getAttestation)
}

func (s *Server) trustedRoot() (*attest.TrustedRoot, error) {
	if s.cfg.SigstoreTrustedRoot == nil {
		return nil, api.Errorf(api.CodeAttestationsOff, "this repository has no Sigstore trusted root configured (cairnd --sigstore-trusted-root), so it takes no attestations")
	}
	return s.cfg.SigstoreTrustedRoot, nil
}

// postAttestation verifies a bundle and stores it. Nothing is stored unless every check
// passed: size, one reading, media type, subject, log inclusion, certificate or maintainer
// key, and signature (attest.VerifyWithKeys), then published file, duplicate and count
// (store.AddAttestation).
func (s *Server) postAttestation(w http.ResponseWriter, r *http.Request) {
	if _, err := s.authenticate(r); err != nil {
		s.writeError(w, r, err)
		return
	}
	tr, err := s.trustedRoot()
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	if ct := r.Header.Get("Content-Type"); ct != "" {
		mt, _, err := mime.ParseMediaType(ct)
		if err != nil || (mt != api.MediaSigstoreBundle && mt != "application/json") {
			s.writeError(w, r, api.Errorf(api.CodeUnsupported, "Content-Type %.100q is not accepted: send %s (or application/json)", ct, api.MediaSigstoreBundle))
			return
		}
	}
	body, err := readBody(w, r, attest.MaxBundleBytes)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	file := chi.URLParam(r, "sha256")
	keys, err := s.attestationKeys(r.Context(), file)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	v, err := attest.VerifyWithKeys(tr, body, file, keys)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	a, err := s.db.AddAttestation(r.Context(), store.NewAttestation{Attestation: v.Attestation, Bundle: v.Bundle, SignatureSHA256: v.SignatureSHA256, TrustedRootSHA256: tr.SHA256})
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	w.Header().Set("Location", "/api/v1/attestations/"+a.FileSHA256+"/"+a.BundleSHA256)
	writeJSON(w, http.StatusCreated, a)
}

// attestationKeys are the keys a key-based attestation of file may be signed with: the
// current maintainer keys of every project whose published releases contain it (none for
// a file no published release has: store.AddAttestation then refuses it as not_found).
func (s *Server) attestationKeys(ctx context.Context, file string) (attest.MaintainerKeys, error) {
	if !api.ValidSHA256Hex(file) {
		return nil, nil // attest.Verify names the bad digest
	}
	projects, err := s.db.AttestationKeys(ctx, file)
	if err != nil {
		return nil, err
	}
	keys := attest.MaintainerKeys{}
	for _, p := range projects {
		if err := tufrepo.AttestationKeys(keys, p.Project, p.KeyIDs, p.Keys); err != nil {
			return nil, fmt.Errorf("reading the maintainer keys of %s: %w", p.Project, err)
		}
	}
	return keys, nil
}

func (s *Server) listAttestations(w http.ResponseWriter, r *http.Request) {
	limit, err := pageLimit(r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	var after int64
	if q := r.URL.Query().Get("after"); q != "" {
		if after, err = strconv.ParseInt(q, 10, 64); err != nil || after < 0 {
			s.writeError(w, r, api.Errorf(api.CodeBadRequest, "after must be a non-negative integer (the next value of the previous page)"))
			return
		}
	}
	file := chi.URLParam(r, "sha256")
	as, err := s.db.Attestations(r.Context(), file, after, limit)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	page := api.AttestationList{FileSHA256: file, Attestations: as}
	if page.Attestations == nil {
		page.Attestations = []api.Attestation{}
	}
	if len(as) == limit {
		page.Next = as[len(as)-1].Seq
	}
	writeJSON(w, http.StatusOK, page)
}

func (s *Server) attestationSummary(w http.ResponseWriter, r *http.Request) {
	sum, err := s.db.AttestationSummary(r.Context(), chi.URLParam(r, "sha256"))
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, sum)
}

// getAttestation serves the exact bundle bytes that were verified and stored.
func (s *Server) getAttestation(w http.ResponseWriter, r *http.Request) {
	_, raw, err := s.db.AttestationBundle(r.Context(), chi.URLParam(r, "sha256"), chi.URLParam(r, "bundle"))
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	w.Header().Set("Content-Type", api.MediaSigstoreBundle)
	// Content-addressed: the URL names the bytes' sha256.
	w.Header().Set("Cache-Control", "public, max-age=31536000, immutable")
	w.Header().Set("Content-Length", strconv.Itoa(len(raw)))
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(raw)
}

// publishTrustedRoot records the configured trusted root as the repository's current one
// and, if that changed it, has the publisher list it (tufrepo.SigstoreTrustedRootTarget in
// the top recently-claimed node). Every replica runs it at start with its own
// configuration: replicas must be configured with the same file, or each start makes its
// own current.
func (s *Server) publishTrustedRoot(ctx context.Context) error {
	if s.cfg.SigstoreTrustedRoot == nil {
		return nil
	}
	changed, err := s.db.SetSigstoreTrustedRoot(ctx, s.cfg.SigstoreTrustedRoot.Raw)
	if err != nil {
		return err
	}
	if changed {
		s.log.Info("publishing a new Sigstore trusted root", "target", tufrepo.SigstoreTrustedRootTarget, "sha256", s.cfg.SigstoreTrustedRoot.SHA256)
		if s.cfg.RunPublisher {
			s.publisher.Kick()
		}
	}
	return nil
}

// getOwnTarget serves one of the repository's own targets: a trusted root it published at
// /targets/_cairn/sigstore/<sha256>.trusted_root.json, an attestation index at
// /targets/_cairn/attestations/<sha256>.<file sha256>.json.
func (s *Server) getOwnTarget(w http.ResponseWriter, r *http.Request, path, sum string) {
	if !api.ValidSHA256Hex(sum) {
		s.writeError(w, r, errNotFound(r.URL.Path))
		return
	}
	var raw []byte
	var err error
	switch name, isIndex := strings.CutPrefix(path, tufrepo.AttestationIndexPrefix); {
	case path == tufrepo.SigstoreTrustedRootTarget:
		raw, err = s.db.SigstoreTrustedRootBytes(r.Context(), sum)
	case isIndex && strings.HasSuffix(name, ".json") && api.ValidSHA256Hex(strings.TrimSuffix(name, ".json")):
		raw, err = s.db.AttestationIndexBytes(r.Context(), strings.TrimSuffix(name, ".json"), sum)
	default:
		err = errNotFound(r.URL.Path)
	}
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	hd := w.Header()
	hd.Set("Content-Type", "application/octet-stream")
	hd.Set("Cache-Control", cacheImmutable)
	hd.Set("ETag", `"sha256:`+sum+`"`)
	http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(raw))
}
