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
	var after int64
	if q := r.URL.Query().Get("after"); q != "" {
		after, err = strconv.ParseInt(q, 10, 64)
		if err != nil || after < 0 {
			s.writeError(w, r, api.Errorf(api.CodeBadRequest, "after must be a non-negative sequence number"))
			return
		}
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
