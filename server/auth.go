package server

import (
	"net/http"
	"strings"

	"github.com/cairn-dev/cairn/api"
	"github.com/cairn-dev/cairn/store"
)

// authenticate returns the token of a request's "Authorization: Bearer" header.
func (s *Server) authenticate(r *http.Request) (*store.Token, error) {
	h := r.Header.Get("Authorization")
	if h == "" {
		return nil, api.Errorf(api.CodeUnauthorized, "this request needs a token: send \"Authorization: Bearer <token>\" (cairn: 'cairn login' or CAIRN_TOKEN)")
	}
	scheme, tok, ok := strings.Cut(h, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") || tok == "" {
		return nil, api.Errorf(api.CodeUnauthorized, "the Authorization header must be \"Bearer <token>\"")
	}
	return s.db.Authenticate(r.Context(), strings.TrimSpace(tok))
}

// authorizeProject returns the token if it may write to project.
func (s *Server) authorizeProject(r *http.Request, project string) (*store.Token, error) {
	t, err := s.authenticate(r)
	if err != nil {
		return nil, err
	}
	if !t.MayWrite(project) {
		return nil, api.Errorf(api.CodeForbidden, "token %q may not write to project %q: use a token scoped to it", t.Name, project)
	}
	return t, nil
}
