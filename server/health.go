package server

import (
	"context"
	"fmt"
	"net/http"
	"time"

	"github.com/cairn-dev/cairn/api"
	"github.com/cairn-dev/cairn/tufrepo"
)

// Offline roles warn this long before they expire.
const offlineWarning = 30 * 24 * time.Hour

// roleExpiries lists every top-level and delegating role with its expiry and a warning
// when it expires soon.
func (s *Server) roleExpiries() []api.RoleExpiry {
	h := s.cache.Head()
	if h == nil {
		return nil
	}
	now := s.now()
	var out []api.RoleExpiry
	for _, r := range []struct {
		role string
		life time.Duration // 0 for offline roles
	}{{tufrepo.RoleRoot, 0}, {tufrepo.RoleTargets, 0}, {tufrepo.RoleClaimed, 0}, {tufrepo.RoleRecentlyClaimed, tufrepo.RecentlyClaimedExpiry}, {tufrepo.RoleSnapshot, tufrepo.SnapshotExpiry}, {tufrepo.RoleTimestamp, tufrepo.TimestampExpiry}} {
		e := api.RoleExpiry{Role: r.role, Version: h.versions[r.role], Expires: h.expires[r.role].UTC(), SignedBy: "offline"}
		left := e.Expires.Sub(now)
		switch {
		case left <= 0:
			e.Warning = "expired: clients refuse the repository until it is re-signed"
		case r.life == 0 && left < offlineWarning:
			e.Warning = "expires in " + humanDuration(left) + ": admins must re-sign it (" + resignCommand(r.role) + ")"
		case r.life > 0 && left < r.life/4:
			e.Warning = "expires in " + left.Truncate(time.Second).String() + ": the publisher has not re-signed it; check /readyz and the logs"
		}
		if r.life > 0 {
			e.SignedBy = "online"
		}
		out = append(out, e)
	}
	return out
}

// queueStall is how long an upload may wait for its publish before /readyz reports the
// publisher stalled: a publish takes milliseconds to a second or two at a million projects.
const queueStall = 5 * time.Second

// lastPublishAge is how long ago the timestamp this replica serves was signed (by any
// replica), and its version. With uploads flowing it stays under a second; without, it
// grows to half the timestamp's lifetime, when the publisher re-signs it.
func (s *Server) lastPublishAge() (time.Duration, int64, bool) {
	h := s.cache.Head()
	if h == nil {
		return 0, 0, false
	}
	signed := h.timestamp.expires.Add(-tufrepo.TimestampExpiry)
	return max(0, s.now().Sub(signed)), h.timestamp.version, true
}

// humanDuration renders a duration for people: days above two days, else hours/minutes.
func humanDuration(d time.Duration) string {
	if d >= 48*time.Hour {
		return fmt.Sprintf("%d days", int(d.Hours()/24))
	}
	return d.Truncate(time.Minute).String()
}

// resignCommand names the command that re-signs an offline role.
func resignCommand(role string) string {
	switch role {
	case tufrepo.RoleRoot:
		return "cairn admin root rotate"
	case tufrepo.RoleTargets:
		return "cairn admin targets resign"
	default:
		return "cairn admin claim --renew"
	}
}

func (s *Server) status(w http.ResponseWriter, r *http.Request) {
	roles := s.roleExpiries()
	if roles == nil {
		s.writeError(w, r, api.Errorf(api.CodeNotBootstrapped, "no published metadata is loaded yet"))
		return
	}
	writeJSON(w, http.StatusOK, api.RepositoryStatus{Roles: roles})
}

func (s *Server) healthz(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, api.Health{Status: "ok", Checks: map[string]string{}})
}

// readyz reports whether this replica should get traffic: the database answers and the
// published timestamp has not expired. It also reports whether the blob store can be
// written and, where this replica publishes, the last publish and each online signer;
// their failures make it "degraded", not unready.
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
	// A replica that has not confirmed its head for MaxStaleness serves no timestamp
	// (getMetadata): take it out of rotation too.
	if age, stale := s.stale(); stale {
		fail("metadata", fmt.Sprintf("STALE: head last confirmed against the database %s ago (limit %s); timestamp.json answers 503", age.Truncate(time.Millisecond), s.cfg.MaxStaleness))
	} else {
		h.Checks["metadata"] = "head confirmed " + age.Truncate(time.Millisecond).String() + " ago"
	}
	if age, v, ok := s.lastPublishAge(); ok {
		h.Checks["last_publish"] = fmt.Sprintf("%s ago (timestamp version %d)", age.Truncate(time.Second), v)
	}
	if roles := s.roleExpiries(); roles == nil {
		fail("timestamp", "no published metadata loaded")
	} else {
		for _, e := range roles {
			switch {
			case !e.Expires.After(s.now()) && e.Role == tufrepo.RoleTimestamp:
				fail(e.Role, "expired at "+e.Expires.Format(time.RFC3339))
			case e.Warning != "":
				h.Checks[e.Role] = "WARNING: " + e.Warning
			default:
				h.Checks[e.Role] = "expires in " + e.Expires.Sub(s.now()).Truncate(time.Second).String()
			}
		}
	}
	degrade := func() {
		if h.Status == "ok" {
			h.Status = "degraded"
		}
	}
	// A blob store that cannot be written (disk full, read-only, permission denied) fails
	// every upload, with 503 and Retry-After; it degrades the replica but leaves it ready,
	// for the same reason as a failing publisher below: downloads still work, and a shared
	// blob directory would take every replica out at once.
	if s.blobs != nil {
		if err := s.blobs.Temp.CheckWritable(); err != nil {
			degrade()
			h.Checks["blob_store"] = "NOT WRITABLE: uploads answer 503: " + err.Error()
		} else {
			h.Checks["blob_store"] = "writable"
		}
	}
	if s.cfg.RunPublisher {
		// A failing publisher (KMS down, HSM restarting) degrades the replica but leaves it
		// ready: the metadata it serves stays valid until the timestamp expires (checked
		// above), and taking every replica out of service would turn a signing outage into
		// a download outage. Alert on cairn_signer_healthy and cairn_publishes_total.
		s.mu.Lock()
		err := s.lastPublish
		s.mu.Unlock()
		switch q := s.publisher.QueueAge(); {
		case err != nil:
			degrade()
			h.Checks["publisher"] = "FAILING: last publish failed (retried at the next kick or interval): " + err.Error()
		case q > queueStall:
			// Uploads wait for a publish that does not come: the publisher lock is held
			// elsewhere (another replica's publish, or one that froze and that PostgreSQL
			// has not yet ended), or the database is slow.
			degrade()
			h.Checks["publisher"] = fmt.Sprintf("STALLED: an upload has waited %s for a publish", q.Truncate(time.Millisecond))
		default:
			h.Checks["publisher"] = "ok"
		}
		for k, v := range s.signing.checks() {
			h.Checks[k] = v
		}
	}
	status := http.StatusOK
	if h.Status == "unavailable" {
		status = http.StatusServiceUnavailable
	}
	writeJSON(w, status, h)
}
