package server

import (
	"context"
	"net/http"
	"time"

	"github.com/cairn-dev/cairn/api"
	"github.com/cairn-dev/cairn/tufrepo"
)

func (s *Server) healthz(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, api.Health{Status: "ok", Checks: map[string]string{}})
}

// readyz reports whether this replica should get traffic: the database answers, the
// published timestamp has not expired, and (where this replica publishes) the last
// publish, which exercises the online signers, succeeded.
func (s *Server) readyz(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	h := api.Health{Status: "ok", Checks: map[string]string{}}
	fail := func(k, v string) { h.Status, h.Checks[k] = "unavailable", v }
	if err := s.db.Ping(ctx); err != nil {
		fail("database", "unreachable: "+err.Error())
	} else {
		h.Checks["database"] = "ok"
	}
	now := s.now()
	if hd := s.cache.Head(); hd == nil {
		fail("timestamp", "no published metadata loaded")
	} else {
		for role, exp := range hd.expires {
			left := exp.Sub(now)
			switch {
			case left <= 0:
				if role == tufrepo.RoleTimestamp {
					fail(role, "expired at "+exp.UTC().Format(time.RFC3339))
				} else {
					h.Checks[role] = "expired at " + exp.UTC().Format(time.RFC3339)
				}
			default:
				h.Checks[role] = "expires in " + left.Truncate(time.Second).String()
			}
		}
	}
	if s.cfg.RunPublisher {
		s.mu.Lock()
		err := s.lastPublish
		s.mu.Unlock()
		if err != nil {
			fail("publisher", "last publish failed: "+err.Error())
		} else {
			h.Checks["publisher"] = "ok"
		}
	}
	status := http.StatusOK
	if h.Status != "ok" {
		status = http.StatusServiceUnavailable
	}
	writeJSON(w, status, h)
}
