package server

import (
	"net/http"
	"strconv"

	"github.com/cairn-dev/cairn/api"
	"github.com/go-chi/chi/v5"
)

func (s *Server) routeLog(r chi.Router) {
	r.Get("/log", s.getLog)
	r.Get("/status", s.status)
}

// getLog pages through the audit log, oldest first: ?after=<seq>&limit=<n>.
func (s *Server) getLog(w http.ResponseWriter, r *http.Request) {
	limit, err := pageLimit(r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	after, err := pageAfter(r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	entries, err := s.db.AuditPage(r.Context(), after, limit)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	page := api.LogPage{Entries: entries}
	if page.Entries == nil {
		page.Entries = []api.LogEntry{}
	}
	if len(entries) == limit {
		page.Next = strconv.FormatInt(entries[len(entries)-1].Seq, 10)
	}
	writeJSON(w, http.StatusOK, page)
}

// pageAfter reads ?after=<seq>, the "next" of the previous page (0 when absent).
func pageAfter(r *http.Request) (int64, error) {
	q := r.URL.Query().Get("after")
	if q == "" {
		return 0, nil
	}
	after, err := strconv.ParseInt(q, 10, 64)
	if err != nil || after < 0 {
		return 0, api.Errorf(api.CodeBadRequest, "after must be a non-negative sequence number (the next of the previous page)")
	}
	return after, nil
}
