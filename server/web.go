package server

import (
	"context"

	"github.com/cairn-dev/cairn/api"
	"github.com/cairn-dev/cairn/store"
	"github.com/cairn-dev/cairn/web"
	"github.com/go-chi/chi/v5"
)

// routeWeb mounts the web UI (package web) at /, reading the published head and
// metadata from this replica's cache.
func (s *Server) routeWeb(r chi.Router, db *store.DB) {
	cfg := web.Config{ExternalURL: s.cfg.ExternalURL, TlogURL: s.cfg.TransparencyLog.URL, TlogKey: s.cfg.TransparencyLog.LogKey}
	web.New(cfg, db, webSource{s}, s.log.With("component", "web"), s.now).Register(r)
}

// webSource is the Server as the web UI's web.Source.
type webSource struct{ s *Server }

func (w webSource) Head() (web.Head, bool) {
	h := w.s.cache.Head()
	if h == nil {
		return web.Head{}, false
	}
	return web.Head{Timestamp: h.timestamp.version, Snapshot: h.snapshot.version, Root: h.root.version}, true
}

func (w webSource) Metadata(ctx context.Context, role string, version int64) ([]byte, error) {
	if h := w.s.cache.Head(); h != nil {
		switch {
		case role == "timestamp" && version == h.timestamp.version:
			return h.timestamp.raw, nil
		case role == "snapshot" && version == h.snapshot.version:
			return h.snapshot.raw, nil
		case role == "root" && version == h.root.version:
			return h.root.raw, nil
		}
	}
	f, err := w.s.cache.get(ctx, role, version)
	if err != nil {
		return nil, err
	}
	return f.raw, nil
}

func (w webSource) Status() []api.RoleExpiry { return w.s.roleExpiries() }
