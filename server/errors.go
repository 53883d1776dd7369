package server

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"

	"github.com/cairn-dev/cairn/api"
	"github.com/cairn-dev/cairn/internal/faults"
	"github.com/cairn-dev/cairn/internal/strictjson"
	"github.com/cairn-dev/cairn/store"
	"github.com/cairn-dev/cairn/tufrepo"
)

// writeError answers with a problem document and returns its status. Only internal errors
// are logged: the others are the client's to fix and are fully described in the response.
//
// An error that is a dependency failing (the database unreachable, a disk full, the blob
// directory read-only or not writable: faults.Classify) is not the server's bug nor the
// client's: it is answered 503 unavailable with Retry-After, and logged once per cause a
// minute, since during an outage every request fails alike.
func (s *Server) writeError(w http.ResponseWriter, r *http.Request, err error) int {
	if api.CodeOf(err) == api.CodeInternal {
		if f, ok := s.faults.Diagnose(r.Context(), err); ok && r.Context().Err() == nil {
			s.faults.Report(f, err, "method", r.Method, "path", r.URL.Path)
			w.Header().Set("Retry-After", faults.RetryAfterHeader(f.RetryAfter))
			err = api.Wrap(api.CodeUnavailable, err, "%s", f.Detail)
		}
	}
	p := api.ProblemFor(err)
	if p.Code == api.CodeInternal {
		s.log.Error("internal error", "method", r.Method, "path", r.URL.Path, "err", err)
	}
	if p.Code == api.CodeUnauthorized {
		w.Header().Set("WWW-Authenticate", `Bearer realm="cairn"`)
	}
	w.Header().Set("Content-Type", api.MediaProblem)
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(p.Status)
	_ = json.NewEncoder(w).Encode(p)
	return p.Status
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", api.MediaJSON)
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// decodeJSON reads a JSON body of at most max bytes into v. The body must have one reading
// for every JSON parser (ambiguous_json otherwise: duplicate or case-variant keys, invalid
// UTF-8, unsafe integers), and unknown fields and trailing data are refused.
func decodeJSON(w http.ResponseWriter, r *http.Request, max int64, v any) error {
	body, err := readBody(w, r, max)
	if err != nil {
		return err
	}
	if err := tufrepo.CheckJSONFields(body, "the request body", strictjson.FieldsOf(v), api.CodeMalformedJSON); err != nil {
		return err
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return api.Wrap(api.CodeMalformedJSON, err, "request body is not valid JSON of the expected shape: %v", err)
	}
	return nil
}

// readBody reads a body of at most max bytes.
func readBody(w http.ResponseWriter, r *http.Request, max int64) ([]byte, error) {
	if r.ContentLength > max {
		return nil, api.Errorf(api.CodeTooLarge, "request body is %d bytes; at most %d are allowed", r.ContentLength, max)
	}
	b, err := readAll(http.MaxBytesReader(w, r.Body, max), r.ContentLength)
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		return nil, api.Errorf(api.CodeTooLarge, "request body is larger than %d bytes", max)
	}
	var ae *api.Error
	if errors.As(err, &ae) {
		return nil, err // the body was too slow (limits.go): say so
	}
	if err != nil {
		return nil, api.Wrap(api.CodeBadRequest, err, "reading request body failed")
	}
	return b, nil
}

// readAll is io.ReadAll into a buffer sized from the request's Content-Length (already
// bounded by the caller), so that a role upload is read with one allocation instead of a
// chain of doublings and copies.
func readAll(r io.Reader, length int64) ([]byte, error) {
	if length <= 0 {
		return io.ReadAll(r)
	}
	b := make([]byte, 0, length+1) // +1: io.EOF is seen without growing
	for {
		n, err := r.Read(b[len(b):cap(b)])
		b = b[:len(b)+n]
		if err == io.EOF {
			return b, nil
		}
		if err != nil {
			return b, err
		}
		if len(b) == cap(b) {
			b = append(b, 0)[:len(b)] // the body is longer than announced: let it grow
		}
	}
}

// pinger is db's Ping, for faults.Reporter; nil without a database.
func pinger(db *store.DB) func(context.Context) error {
	if db == nil {
		return nil
	}
	return db.Ping
}
