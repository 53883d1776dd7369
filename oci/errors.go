package oci

import (
	"encoding/json"
	"net/http"

	"github.com/cairn-dev/cairn/api"
	"github.com/cairn-dev/cairn/internal/faults"
)

// errorf builds a refusal of the registry: code is a registered code with an OCI answer
// (api.Registry), which fixes the HTTP status and the spec's error code; detail is the
// spec's structured detail (nil for none).
func errorf(code api.Code, detail any, format string, args ...any) *api.Error {
	return api.OCIErrorf(code, detail, format, args...)
}

// fail writes err as a spec error document (api.OCIAnswerFor). Errors without an OCI code
// in the registry are logged and answered 500 without their text, which may name
// internals, unless they are a dependency failing.
func (g *Registry) fail(w http.ResponseWriter, r *http.Request, err error) {
	if ci, ok := api.Lookup(api.CodeOf(err)); !ok || ci.OCI == "" || ci.Code == api.CodeInternal {
		// A dependency failing (database down, disk full, blob directory read-only) is
		// answered 503 with Retry-After, the distribution registry's UNAVAILABLE code: the
		// client may push again later. Logged once per cause, not per request.
		if f, ok := g.cfg.Faults.Diagnose(r.Context(), err); ok && r.Context().Err() == nil {
			g.cfg.Faults.Report(f, err, "method", r.Method, "path", r.URL.Path)
			w.Header().Set("Retry-After", faults.RetryAfterHeader(f.RetryAfter))
			err = api.Errorf(api.CodeUnavailable, "%s", f.Detail)
		} else {
			if r.Context().Err() == nil {
				g.log.Error("OCI request failed", "method", r.Method, "path", r.URL.Path, "err", err)
			}
			err = api.Errorf(api.CodeInternal, "%s", api.OCIInternalMessage)
		}
	}
	status, doc := api.OCIAnswerFor(err)
	if status == http.StatusUnauthorized && w.Header().Get("WWW-Authenticate") == "" {
		g.challenge(w, r, "", accessPull)
	}
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Del("Content-Length")
	h.Del("Docker-Content-Digest")
	w.WriteHeader(status)
	if r.Method == http.MethodHead {
		return
	}
	_ = json.NewEncoder(w).Encode(doc)
}
