package server

import (
	"context"
	"net/http"
	"time"

	"github.com/cairn-dev/cairn/api"
	"github.com/cairn-dev/cairn/tufrepo"
	"github.com/go-chi/chi/v5"
)

func (s *Server) routeMaintainers(r chi.Router) {
	r.Post("/projects/{name}/maintainers", s.changeMaintainers)
}

// changeMaintainers takes a maintainer change document (the new keys and threshold, signed
// by the current maintainers).
func (s *Server) changeMaintainers(w http.ResponseWriter, r *http.Request) {
	name := chi.URLParam(r, "name")
	t, err := s.authorizeProject(r, name)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	wait, err := s.parseWait(r)
	if err != nil {
		s.refuse(w, r, err)
		return
	}
	raw, err := readBody(w, r, 256<<10)
	if err != nil {
		s.refuse(w, r, err)
		return
	}
	res, err := tufrepo.SubmitMaintainerChange(r.Context(), s.db, name, raw, s.now())
	if err != nil {
		s.refuse(w, r, err)
		return
	}
	s.metrics.observeUpload(nil)
	s.log.Info("maintainer change accepted", "project", name, "version", res.Change.Doc.Version, "status", res.Status, "token", t.Name, "signed_by", res.Change.SignedBy)
	s.answerChange(w, r, name, res, wait)
}

// answerChange answers a maintainer change: an applied change waits (up to wait) for the
// publish of the new recently-claimed metadata.
func (s *Server) answerChange(w http.ResponseWriter, r *http.Request, project string, res *tufrepo.ChangeResult, wait time.Duration) {
	out := api.MaintainerChangeResult{Project: project, Version: res.Change.Doc.Version, Status: res.Status, Signatures: len(res.Change.SignedBy), Threshold: res.Change.Threshold}
	if res.Status != tufrepo.ChangeApplied {
		writeJSON(w, http.StatusAccepted, out)
		return
	}
	s.publisher.Kick()
	ctx, cancel := context.WithTimeout(r.Context(), wait)
	defer cancel()
	for {
		changed := s.cache.Changed()
		p, err := s.db.GetProject(context.WithoutCancel(ctx), project)
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		if p.Delegated {
			// Answer once this replica serves the snapshot that publishes the change.
			snap, _, err := s.db.Heads(context.WithoutCancel(ctx))
			if err != nil {
				s.writeError(w, r, err)
				return
			}
			if h := s.cache.Head(); h != nil && h.snapshot.version >= snap {
				writeJSON(w, http.StatusCreated, out)
				return
			}
		}
		select {
		case <-changed:
		case <-ctx.Done():
			writeJSON(w, http.StatusAccepted, out)
			return
		}
	}
}
