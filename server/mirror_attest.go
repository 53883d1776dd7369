package server

import (
	"encoding/json"
	"errors"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/cairn-dev/cairn/api"
	"github.com/cairn-dev/cairn/mirror"
	"github.com/cairn-dev/cairn/store"
)

// serveAttestations answers GET /api/v1/attestations/{sha256} (the list, paged like the
// live server's, from the records the bundles carried, by seq) and
// /api/v1/attestations/{sha256}/{bundle sha256} (the exact bundle bytes). Every record and
// bundle was verified on import (client.VerifyBundle): the bundle against the TUF-delivered
// trusted root, the record against the bundle. Clients verify the bundles again anyway.
func (m *Mirror) serveAttestations(w http.ResponseWriter, r *http.Request, rest string) {
	file, bundle, one := strings.Cut(rest, "/")
	if !api.ValidSHA256Hex(file) || (one && !api.ValidSHA256Hex(bundle)) {
		m.writeError(w, api.Errorf(api.CodeNotFound, "this read-only mirror serves /api/v1/attestations/<file sha256> and /api/v1/attestations/<file sha256>/<bundle sha256> (64 lowercase hex digits each); %.200q is neither", r.URL.Path))
		return
	}
	if one {
		rel := mirror.AttestationPath(file, bundle, false)
		if _, err := os.Stat(filepath.Join(m.dir, filepath.FromSlash(rel))); err != nil {
			m.writeError(w, api.Errorf(api.CodeNotFound, "this read-only mirror holds no attestation %s of sha256:%s (its bundles carried only attestations committed when they were exported)", bundle, file))
			return
		}
		m.serveFile(w, r, rel, api.MediaSigstoreBundle, cacheImmutable)
		return
	}
	limit, err := pageLimit(r)
	if err != nil {
		m.writeError(w, err)
		return
	}
	var after int64
	if q := r.URL.Query().Get("after"); q != "" {
		if after, err = strconv.ParseInt(q, 10, 64); err != nil || after < 0 {
			m.writeError(w, api.Errorf(api.CodeBadRequest, "after must be a non-negative integer (the next value of the previous page)"))
			return
		}
	}
	recs, err := m.attestationRecords(file)
	if err != nil {
		m.log.Error("reading the mirror's attestations", "file", file, "err", err)
		m.writeError(w, api.Errorf(api.CodeInternal, "internal error"))
		return
	}
	page := api.AttestationList{FileSHA256: file, Attestations: []api.Attestation{}}
	for _, a := range recs {
		if a.Seq <= after {
			continue
		}
		page.Attestations = append(page.Attestations, a)
		if len(page.Attestations) == limit {
			page.Next = a.Seq
			break
		}
	}
	writeJSON(w, http.StatusOK, page)
}

// attestationRecords reads the records of a file's attestations, by seq (at most
// store.MaxAttestationsPerFile, as the origin keeps).
func (m *Mirror) attestationRecords(file string) ([]api.Attestation, error) {
	dir := filepath.Join(m.dir, "attestations", file)
	ents, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var out []api.Attestation
	for _, e := range ents {
		if _, b, record, err := mirror.AttestationName("attestations/" + file + "/" + e.Name()); err != nil || !record || !e.Type().IsRegular() {
			continue
		} else if len(out) >= store.MaxAttestationsPerFile {
			break
		} else {
			raw, err := os.ReadFile(filepath.Join(dir, e.Name()))
			if err != nil {
				return nil, err
			}
			var a api.Attestation
			if err := json.Unmarshal(raw, &a); err != nil || a.BundleSHA256 != b {
				return nil, errors.New("attestation record " + e.Name() + " is malformed")
			}
			out = append(out, a)
		}
	}
	slices.SortFunc(out, func(x, y api.Attestation) int {
		switch {
		case x.Seq < y.Seq:
			return -1
		case x.Seq > y.Seq:
			return 1
		}
		return strings.Compare(x.BundleSHA256, y.BundleSHA256)
	})
	return out, nil
}
