package server

import (
	"context"
	"encoding/hex"
	"mime"
	"net/http"
	"slices"
	"strconv"
	"time"

	"github.com/cairn-dev/cairn/api"
	"github.com/cairn-dev/cairn/tufrepo"
	"github.com/go-chi/chi/v5"
	"github.com/theupdateframework/go-tuf/v2/metadata"
)

func (s *Server) routeProjects(r chi.Router) {
	r.Get("/projects", s.listProjects)
	r.Post("/projects", s.createProject)
	r.Get("/projects/{name}", s.getProject)
	r.Post("/projects/{name}/roles", s.submitRole)
	r.Get("/projects/{name}/roles/{version}", s.roleStatus)
	r.Get("/projects/{name}/pending", s.listPending)
	r.Post("/projects/{name}/pending/{version}/signatures", s.coSign)
	r.Get("/projects/{name}/releases", s.listReleases)
	r.Get("/projects/{name}/releases/{version}", s.getRelease)
}

// delegationFromRequest validates the maintainers' keys and threshold of a new project.
func delegationFromRequest(req *api.CreateProjectRequest) (tufrepo.ProjectDelegation, error) {
	d := tufrepo.ProjectDelegation{Name: req.Name, Keys: map[string]*metadata.Key{}, Threshold: req.Threshold}
	if err := tufrepo.ValidateProjectName(req.Name); err != nil {
		return d, err
	}
	if len(req.Keys) == 0 {
		return d, api.Errorf(api.CodeInvalidKey, "a project needs at least one maintainer key")
	}
	if len(req.Keys) > tufrepo.MaxMaintainerKeys {
		return d, api.Errorf(api.CodeTooMany, "%d maintainer keys given; at most %d are allowed", len(req.Keys), tufrepo.MaxMaintainerKeys)
	}
	for i, k := range req.Keys {
		mk, err := tufrepo.KeyFromAPI(k)
		if err != nil {
			return d, api.Wrap(api.CodeInvalidKey, err, "maintainer key %d: %s", i+1, api.ProblemFor(err).Detail)
		}
		id := tufrepo.KeyID(mk)
		if _, dup := d.Keys[id]; dup {
			return d, api.Errorf(api.CodeInvalidKey, "maintainer key %s is listed twice", id)
		}
		d.Keys[id] = mk
		d.KeyIDs = append(d.KeyIDs, id)
	}
	slices.Sort(d.KeyIDs)
	if req.Threshold < 1 || req.Threshold > len(d.KeyIDs) {
		return d, api.Errorf(api.CodeInvalidThreshold, "threshold %d is not between 1 and the number of maintainer keys (%d)", req.Threshold, len(d.KeyIDs))
	}
	return d, nil
}

func (s *Server) createProject(w http.ResponseWriter, r *http.Request) {
	t, err := s.authenticate(r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	if !t.CanCreate {
		s.writeError(w, r, api.Errorf(api.CodeForbidden, "token %q may not create projects: use a token created with --can-create", t.Name))
		return
	}
	wait, err := s.parseWait(r)
	if err != nil {
		s.refuse(w, r, err)
		return
	}
	var req api.CreateProjectRequest
	if err := decodeJSON(w, r, tufrepo.MaxCreateRequestSize, &req); err != nil {
		s.refuse(w, r, err)
		return
	}
	d, err := delegationFromRequest(&req)
	if err != nil {
		s.refuse(w, r, err)
		return
	}
	now := s.now()
	acc, err := tufrepo.CreateProject(r.Context(), s.db, d, t.ID, req.Metadata, now)
	if err != nil {
		s.refuse(w, r, err)
		return
	}
	s.metrics.observeUpload(nil)
	s.log.Info("project created", "project", d.Name, "token", t.Name, "keys", d.KeyIDs, "threshold", d.Threshold, "complete", acc.Complete())
	s.answerSubmit(w, r, d.Name, acc, wait)
}

// refuse answers a refused write and counts it.
func (s *Server) refuse(w http.ResponseWriter, r *http.Request, err error) {
	s.metrics.observeUpload(err)
	s.writeError(w, r, err)
}

func (s *Server) submitRole(w http.ResponseWriter, r *http.Request) {
	name := chi.URLParam(r, "name")
	t, err := s.authorizeProject(r, name)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	if ct := r.Header.Get("Content-Type"); ct != "" {
		if mt, _, err := mime.ParseMediaType(ct); err != nil || mt != api.MediaJSON {
			s.refuse(w, r, api.Errorf(api.CodeUnsupported, "content type %q is not accepted: send the signed metadata as %s", ct, api.MediaJSON))
			return
		}
	}
	wait, err := s.parseWait(r)
	if err != nil {
		s.refuse(w, r, err)
		return
	}
	raw, err := readBody(w, r, tufrepo.MaxProjectRoleBytes)
	if err != nil {
		s.refuse(w, r, err)
		return
	}
	now := s.now()
	if s.cfg.RunPublisher {
		// Group commit: validate here against the project as it is, and let the publisher
		// store the version in its own transaction (DESIGN.md "Uploads: group commit").
		// The document is read first so that its blobs are looked up in the same query
		// as the project (one round trip); its errors still come after "no such project".
		prop := tufrepo.ReadProposal(raw, name)
		paths, sums := prop.TargetSums()
		st, blobs, err := s.db.UploadStateWithBlobs(r.Context(), name, paths, sums)
		if err != nil {
			s.refuse(w, r, err)
			return
		}
		acc, err := tufrepo.ValidateRead(prop, st, now, blobs)
		if err != nil {
			s.refuse(w, r, err)
			return
		}
		if acc.Complete() && wait > 0 {
			sub := tufrepo.NewSubmission(name, st.CurrentVersion, acc)
			sub.Base = st.Files
			s.submitToPublisher(w, r, t.Name, sub, wait)
			return
		}
		// A proposal waits for co-signers: stored now, under the project's row lock.
	}
	acc, err := tufrepo.SubmitRole(r.Context(), s.db, name, raw, now)
	if err != nil {
		s.refuse(w, r, err)
		return
	}
	s.metrics.observeUpload(nil)
	s.log.Info("project role accepted", "project", name, "version", acc.Version, "files", len(acc.NewFiles), "token", t.Name, "signed_by", acc.SignedBy, "complete", acc.Complete())
	s.answerSubmit(w, r, name, acc, wait)
}

// submitToPublisher hands a complete, validated role version to this replica's publisher
// and answers from the publish that stores it: 201 published (once this replica serves
// the snapshot), its refusal (version_conflict when another upload of the same version
// won), or 503 if nothing was stored (the publish failed, or none started within wait).
func (s *Server) submitToPublisher(w http.ResponseWriter, r *http.Request, token string, sub *tufrepo.Submission, wait time.Duration) {
	acc := sub.Accepted
	res := api.SubmitResult{Project: sub.Project, RoleVersion: acc.Version, Status: api.StatusStaged}
	ctx, cancel := context.WithTimeout(r.Context(), wait)
	defer cancel()
	out := s.publisher.Submit(ctx, sub)
	if out.Err != nil {
		if api.CodeOf(out.Err) == api.CodeUnavailable {
			w.Header().Set("Retry-After", "1")
		}
		s.refuse(w, r, out.Err)
		return
	}
	s.metrics.observeUpload(nil)
	s.log.Info("project role published", "project", sub.Project, "version", acc.Version, "files", len(acc.NewFiles), "token", token, "signed_by", acc.SignedBy, "snapshot", out.Snapshot)
	// Answer once this replica serves the snapshot, so a client that asks it next sees it.
	for {
		changed := s.cache.Changed()
		if h := s.cache.Head(); h != nil && h.snapshot.version >= out.Snapshot {
			res.Status, res.SnapshotVersion, res.TimestampVersion = api.StatusPublished, out.Snapshot, h.timestamp.version
			writeJSON(w, http.StatusCreated, res)
			return
		}
		select {
		case <-changed:
		case <-ctx.Done():
			writeJSON(w, http.StatusAccepted, res)
			return
		}
	}
}

// parseWait reads ?wait= (a Go duration, default 30s, capped by MaxSubmitWait). It is
// parsed before anything is stored, so a bad value refuses the whole request.
func (s *Server) parseWait(r *http.Request) (time.Duration, error) {
	q := r.URL.Query().Get("wait")
	if q == "" {
		return min(30*time.Second, s.cfg.MaxSubmitWait), nil
	}
	d, err := time.ParseDuration(q)
	if err != nil || d < 0 {
		return 0, api.Errorf(api.CodeBadRequest, "wait=%.40q is not a duration such as 10s or 500ms", q)
	}
	return min(d, s.cfg.MaxSubmitWait), nil
}

// answerSubmit answers an accepted role version. A proposal that needs co-signers is 202
// "pending" at once; a complete version kicks the publisher and waits up to wait until it
// is in a published snapshot: 201 if it is, 202 "staged" if the wait ended first.
func (s *Server) answerSubmit(w http.ResponseWriter, r *http.Request, project string, acc *tufrepo.AcceptedRole, wait time.Duration) {
	version := acc.Version
	if !acc.Complete() {
		writeJSON(w, http.StatusAccepted, api.SubmitResult{Project: project, RoleVersion: version, Status: api.StatusPending, Signatures: len(acc.SignedBy), Threshold: acc.Threshold})
		return
	}
	res := api.SubmitResult{Project: project, RoleVersion: version, Status: api.StatusStaged}
	snap, tsv, err := s.waitPublished(r.Context(), project, version, wait)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	if snap == 0 {
		writeJSON(w, http.StatusAccepted, res)
		return
	}
	res.Status, res.SnapshotVersion, res.TimestampVersion = api.StatusPublished, snap, tsv
	writeJSON(w, http.StatusCreated, res)
}

// waitPublished kicks the publisher and waits up to wait until version of role is in a
// published snapshot that this replica serves (so a client that asks it next sees it). It
// returns the snapshot and timestamp versions, or 0 if the wait ended first.
func (s *Server) waitPublished(ctx context.Context, role string, version int64, wait time.Duration) (snap, ts int64, err error) {
	s.publisher.Kick()
	ctx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	for {
		changed := s.cache.Changed()
		snap, err := s.db.MetadataStatus(context.WithoutCancel(ctx), role, version)
		if err != nil {
			return 0, 0, err
		}
		if h := s.cache.Head(); snap > 0 && h != nil && h.snapshot.version >= snap {
			return snap, h.timestamp.version, nil
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return 0, 0, nil
		}
	}
}

func (s *Server) roleStatus(w http.ResponseWriter, r *http.Request) {
	name := chi.URLParam(r, "name")
	v, err := strconv.ParseInt(chi.URLParam(r, "version"), 10, 64)
	if err != nil || v < 1 {
		s.writeError(w, r, api.Errorf(api.CodeBadRequest, "role version must be a positive integer"))
		return
	}
	snap, err := s.db.RoleStatus(r.Context(), name, v)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	res := api.SubmitResult{Project: name, RoleVersion: v, Status: api.StatusStaged}
	if snap > 0 {
		res.Status, res.SnapshotVersion = api.StatusPublished, snap
	}
	writeJSON(w, http.StatusOK, res)
}

// pageLimit reads ?limit= (default 100, at most 1000).
func pageLimit(r *http.Request) (int, error) {
	q := r.URL.Query().Get("limit")
	if q == "" {
		return 100, nil
	}
	n, err := strconv.Atoi(q)
	if err != nil || n < 1 || n > 1000 {
		return 0, api.Errorf(api.CodeBadRequest, "limit must be between 1 and 1000")
	}
	return n, nil
}

func (s *Server) listProjects(w http.ResponseWriter, r *http.Request) {
	limit, err := pageLimit(r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	ps, err := s.db.ListProjects(r.Context(), r.URL.Query().Get("cursor"), limit)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	out := api.ProjectList{Projects: ps}
	if out.Projects == nil {
		out.Projects = []api.Project{}
	}
	if len(ps) == limit {
		out.Next = ps[len(ps)-1].Name
	}
	writeJSON(w, http.StatusOK, out)
}

func (s *Server) getProject(w http.ResponseWriter, r *http.Request) {
	p, err := s.db.GetProject(r.Context(), chi.URLParam(r, "name"))
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, p)
}

func (s *Server) listReleases(w http.ResponseWriter, r *http.Request) {
	rl, err := s.db.Releases(r.Context(), chi.URLParam(r, "name"))
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, rl)
}

func (s *Server) getRelease(w http.ResponseWriter, r *http.Request) {
	name, version := chi.URLParam(r, "name"), chi.URLParam(r, "version")
	rl, err := s.db.Releases(r.Context(), name)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	for _, rel := range rl.Releases {
		if rel.Version == version {
			writeJSON(w, http.StatusOK, rel)
			return
		}
	}
	s.writeError(w, r, api.Errorf(api.CodeNotFound, "project %q has no release %q", name, version))
}

func (s *Server) listPending(w http.ResponseWriter, r *http.Request) {
	pl, err := s.db.Proposals(r.Context(), chi.URLParam(r, "name"), s.now())
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, pl)
}

// coSign adds a maintainer's signature to a proposal. Like any write it needs a token for
// the project; the signature itself is what authorises the change.
func (s *Server) coSign(w http.ResponseWriter, r *http.Request) {
	name := chi.URLParam(r, "name")
	t, err := s.authorizeProject(r, name)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	version, err := strconv.ParseInt(chi.URLParam(r, "version"), 10, 64)
	if err != nil || version < 1 {
		s.refuse(w, r, api.Errorf(api.CodeBadRequest, "proposal version must be a positive integer"))
		return
	}
	wait, err := s.parseWait(r)
	if err != nil {
		s.refuse(w, r, err)
		return
	}
	var req api.CoSignRequest
	if err := decodeJSON(w, r, 4096, &req); err != nil {
		s.refuse(w, r, err)
		return
	}
	sig, err := hex.DecodeString(req.Sig)
	if err != nil || len(sig) == 0 || len(sig) > 512 || !api.ValidSHA256Hex(req.KeyID) {
		s.refuse(w, r, api.Errorf(api.CodeMalformedJSON, "keyid must be 64 lowercase hex digits and sig a hex signature"))
		return
	}
	now := s.now()
	if r.URL.Query().Get("kind") == api.KindMaintainers {
		res, err := tufrepo.CoSignMaintainerChange(r.Context(), s.db, name, version, metadata.Signature{KeyID: req.KeyID, Signature: sig}, now)
		if err != nil {
			s.refuse(w, r, err)
			return
		}
		s.metrics.observeUpload(nil)
		s.log.Info("maintainer change co-signed", "project", name, "version", version, "key", req.KeyID, "token", t.Name, "status", res.Status)
		s.answerChange(w, r, name, res, wait)
		return
	}
	if k := r.URL.Query().Get("kind"); k != "" && k != api.KindRole {
		s.refuse(w, r, api.Errorf(api.CodeBadRequest, "kind must be %q or %q", api.KindRole, api.KindMaintainers))
		return
	}
	acc, err := tufrepo.CoSignRole(r.Context(), s.db, name, version, metadata.Signature{KeyID: req.KeyID, Signature: sig}, now)
	if err != nil {
		s.refuse(w, r, err)
		return
	}
	s.metrics.observeUpload(nil)
	s.log.Info("proposal co-signed", "project", name, "version", version, "key", req.KeyID, "token", t.Name, "signatures", len(acc.SignedBy), "threshold", acc.Threshold)
	s.answerSubmit(w, r, name, acc, wait)
}
