package oci

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"

	"github.com/cairn-dev/cairn/api"
	"github.com/cairn-dev/cairn/internal/faults"
	"github.com/cairn-dev/cairn/store"
)

// ociError is an answer in the distribution spec's error format:
// {"errors":[{"code":"…","message":"…","detail":…}]}.
type ociError struct {
	Status  int
	Code    string
	Message string
	Detail  any
}

func (e *ociError) Error() string { return e.Code + ": " + e.Message }

func errorf(status int, code string, detail any, format string, args ...any) *ociError {
	return &ociError{Status: status, Code: code, Message: fmt.Sprintf(format, args...), Detail: detail}
}

// statusOf gives the HTTP status of a spec error code that the store returned.
var statusOf = map[string]int{
	"BLOB_UNKNOWN":          http.StatusNotFound,
	"BLOB_UPLOAD_INVALID":   http.StatusBadRequest,
	"BLOB_UPLOAD_UNKNOWN":   http.StatusNotFound,
	"DIGEST_INVALID":        http.StatusBadRequest,
	"MANIFEST_BLOB_UNKNOWN": http.StatusBadRequest,
	"MANIFEST_INVALID":      http.StatusBadRequest,
	"MANIFEST_UNKNOWN":      http.StatusNotFound,
	"NAME_INVALID":          http.StatusBadRequest,
	"NAME_UNKNOWN":          http.StatusNotFound,
	"SIZE_INVALID":          http.StatusBadRequest,
	"UNAUTHORIZED":          http.StatusUnauthorized,
	"DENIED":                http.StatusForbidden,
	"UNSUPPORTED":           http.StatusMethodNotAllowed,
	"TOOMANYREQUESTS":       http.StatusTooManyRequests,
}

type wireError struct {
	Code    string `json:"code"`
	Message string `json:"message"`
	Detail  any    `json:"detail,omitempty"`
}

// fail writes err as a spec error document. Errors without a spec code are logged and
// answered 500 without their text, which may name internals.
func (g *Registry) fail(w http.ResponseWriter, r *http.Request, err error) {
	var oe *ociError
	var se *store.OCIError
	var ae *api.Error
	switch {
	case errors.As(err, &oe):
	case errors.As(err, &se):
		st, ok := statusOf[se.Code]
		if !ok {
			st = http.StatusBadRequest
		}
		oe = &ociError{Status: st, Code: se.Code, Message: se.Message, Detail: se.Detail}
	case errors.As(err, &ae) && ae.Code == api.CodeUnauthorized:
		oe = &ociError{Status: http.StatusUnauthorized, Code: "UNAUTHORIZED", Message: ae.Detail}
	case errors.As(err, &ae) && ae.Code == api.CodeForbidden:
		oe = &ociError{Status: http.StatusForbidden, Code: "DENIED", Message: ae.Detail}
	case errors.As(err, &ae) && ae.Code == api.CodeTooSlow:
		// The body was cut off for its pace (server/limits.go); the spec has no code for it.
		oe = &ociError{Status: http.StatusRequestTimeout, Code: "REQUEST_TIMEOUT", Message: ae.Detail}
	default:
		// A dependency failing (database down, disk full, blob directory read-only) is
		// answered 503 with Retry-After, the distribution registry's UNAVAILABLE code: the
		// client may push again later. Logged once per cause, not per request.
		if f, ok := g.cfg.Faults.Diagnose(r.Context(), err); ok && r.Context().Err() == nil {
			g.cfg.Faults.Report(f, err, "method", r.Method, "path", r.URL.Path)
			w.Header().Set("Retry-After", faults.RetryAfterHeader(f.RetryAfter))
			oe = &ociError{Status: http.StatusServiceUnavailable, Code: "UNAVAILABLE", Message: f.Detail}
			break
		}
		if r.Context().Err() == nil {
			g.log.Error("OCI request failed", "method", r.Method, "path", r.URL.Path, "err", err)
		}
		oe = &ociError{Status: http.StatusInternalServerError, Code: "UNKNOWN", Message: "internal error; the server log has the details"}
	}
	if oe.Status == http.StatusUnauthorized && w.Header().Get("WWW-Authenticate") == "" {
		g.challenge(w, r, "", accessPull)
	}
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Del("Content-Length")
	h.Del("Docker-Content-Digest")
	w.WriteHeader(oe.Status)
	if r.Method == http.MethodHead {
		return
	}
	_ = json.NewEncoder(w).Encode(map[string][]wireError{"errors": {{Code: oe.Code, Message: oe.Message, Detail: oe.Detail}}})
}
