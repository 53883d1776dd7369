package server

import (
	"bytes"
	"encoding/json"
	"net/http"
	"time"

	"github.com/cairn-dev/cairn/api"
	"github.com/cairn-dev/cairn/internal/strictjson"
	"github.com/cairn-dev/cairn/tufrepo"
	"github.com/go-chi/chi/v5"
)

func (s *Server) routeClaims(r chi.Router) {
	r.Get("/admin/claims", s.claimQueue)
	r.Post("/admin/claimed", s.submitClaimed)
	r.Post("/admin/root", s.submitTopLevel)
}

// requireAdmin returns an error unless the request carries an admin token.
func (s *Server) requireAdmin(r *http.Request) error {
	t, err := s.authenticate(r)
	if err != nil {
		return err
	}
	if !t.Admin {
		return api.Errorf(api.CodeForbidden, "token %q is not an admin token", t.Name)
	}
	return nil
}

// claimQueue lists what waits for the admins' next offline signing of claimed: projects
// that may be claimed, and the claimed projects' queued maintainer changes.
func (s *Server) claimQueue(w http.ResponseWriter, r *http.Request) {
	if err := s.requireAdmin(r); err != nil {
		s.writeError(w, r, err)
		return
	}
	var names []string
	if ps, ok := r.URL.Query()["project"]; ok {
		if len(ps) > 1000 {
			s.writeError(w, r, api.Errorf(api.CodeTooMany, "%d ?project= parameters; at most 1000 are allowed", len(ps)))
			return
		}
		for _, p := range ps {
			if err := tufrepo.ValidateProjectName(p); err != nil {
				s.writeError(w, r, err)
				return
			}
		}
		names = ps
	}
	q, err := s.db.ClaimQueue(r.Context(), names)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, q)
}

// adminWrite checks the admin token and ?wait= of an admin upload.
func (s *Server) adminWrite(w http.ResponseWriter, r *http.Request) (time.Duration, bool) {
	if err := s.requireAdmin(r); err != nil {
		s.writeError(w, r, err)
		return 0, false
	}
	wait, err := s.parseWait(r)
	if err != nil {
		s.refuse(w, r, err)
		return 0, false
	}
	return wait, true
}

// answerAdmin waits for version of role to be published and answers 201 with status
// published (setting the snapshot through published), or 202 staged if the wait ended.
func (s *Server) answerAdmin(w http.ResponseWriter, r *http.Request, role string, version int64, wait time.Duration, res any, published func(snapshot int64)) {
	snap, _, err := s.waitPublished(r.Context(), role, version, wait)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	if snap == 0 {
		writeJSON(w, http.StatusAccepted, res)
		return
	}
	published(snap)
	writeJSON(w, http.StatusCreated, res)
}

// submitClaimed takes a new version of claimed signed offline by the admins, and publishes
// it with a recently-claimed that no longer delegates the projects it claims.
func (s *Server) submitClaimed(w http.ResponseWriter, r *http.Request) {
	wait, ok := s.adminWrite(w, r)
	if !ok {
		return
	}
	raw, err := readBody(w, r, 64<<20)
	if err != nil {
		s.refuse(w, r, err)
		return
	}
	nodes, err := claimedNodes(raw)
	if err != nil {
		s.refuse(w, r, err)
		return
	}
	acc, err := s.db.SubmitClaimed(r.Context(), nodes, s.now())
	if err != nil {
		s.refuse(w, r, err)
		return
	}
	s.metrics.observeUpload(nil)
	res := &api.ClaimResult{Version: acc.TopVersion(), Nodes: map[string]int64{}, Moved: acc.Moved, Status: api.StatusStaged}
	for _, n := range acc.Nodes {
		res.Nodes[n.Role] = n.Version
	}
	s.log.Info("claimed nodes accepted", "nodes", res.Nodes, "moved", acc.Moved)
	if res.Moved == nil {
		res.Moved = []string{}
	}
	// The nodes are published together: waiting for one waits for all.
	first := acc.Nodes[0]
	s.answerAdmin(w, r, first.Role, first.Version, wait, res, func(snap int64) {
		res.Status, res.SnapshotVersion = api.StatusPublished, snap
	})
}

// claimedNodes reads an upload of claimed nodes: an api.ClaimedUpload, or one metadata
// document, which is a new version of the claimed top.
func claimedNodes(raw []byte) (map[string][]byte, error) {
	if err := tufrepo.CheckJSONFields(raw, "the claimed upload", strictjson.FieldsOf(api.ClaimedUpload{}).With("signed", "signatures"), api.CodeMalformedMetadata); err != nil {
		return nil, err
	}
	var probe map[string]json.RawMessage
	if err := json.Unmarshal(raw, &probe); err != nil {
		return nil, api.Wrap(api.CodeMalformedMetadata, err, "the claimed upload is not a JSON object: %v", err)
	}
	if _, bundle := probe["nodes"]; !bundle {
		return map[string][]byte{tufrepo.RoleClaimed: raw}, nil
	}
	var up api.ClaimedUpload
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&up); err != nil {
		return nil, api.Wrap(api.CodeMalformedJSON, err, "the claimed upload is not {\"nodes\": {role: metadata}}: %v", err)
	}
	if len(up.Nodes) == 0 {
		return nil, api.Errorf(api.CodeBadRequest, "the claimed upload carries no node")
	}
	return up.Nodes, nil
}

// submitTopLevel takes the next root and/or targets, signed offline by the admins.
func (s *Server) submitTopLevel(w http.ResponseWriter, r *http.Request) {
	wait, ok := s.adminWrite(w, r)
	if !ok {
		return
	}
	var up api.TopLevelUpdate
	if err := decodeJSON(w, r, 4<<20, &up); err != nil {
		s.refuse(w, r, err)
		return
	}
	st, err := s.db.SubmitTopLevel(r.Context(), up, s.publisher.Signers, s.now())
	if err != nil {
		s.refuse(w, r, err)
		return
	}
	s.metrics.observeUpload(nil)
	s.log.Info("top-level metadata accepted", "root", st.Root, "targets", st.Targets)
	res := &api.TopLevelResult{RootVersion: st.Root, TargetsVersion: st.Targets, Status: api.StatusStaged}
	role, v := tufrepo.RoleTargets, st.Targets
	if st.Root > 0 {
		role, v = tufrepo.RoleRoot, st.Root
	}
	s.answerAdmin(w, r, role, v, wait, res, func(snap int64) {
		res.Status, res.SnapshotVersion = api.StatusPublished, snap
	})
}
