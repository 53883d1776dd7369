package clienttest

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"

	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/cairn-dev/cairn/api"
	"github.com/cairn-dev/cairn/tufrepo"
	"github.com/theupdateframework/go-tuf/v2/metadata"
)

func (s *Server) routes() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /metadata/{file}", s.getMetadata)
	mux.HandleFunc("GET /targets/{project}/{version}/{file}", s.getTarget)
	mux.HandleFunc("PUT /api/v1/blobs/{digest}", s.putBlob)
	mux.HandleFunc("HEAD /api/v1/blobs/{digest}", s.headBlob)
	mux.HandleFunc("POST /api/v1/projects", s.createProject)
	mux.HandleFunc("POST /api/v1/projects/{name}/roles", s.submitRole)
	mux.HandleFunc("GET /api/v1/projects/{name}/roles/{version}", s.roleStatus)
	mux.HandleFunc("GET /api/v1/log", s.getLog)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		s.requests = append(s.requests, r.Method+" "+r.URL.Path)
		s.mu.Unlock()
		mux.ServeHTTP(w, r)
	})
}

func writeProblem(w http.ResponseWriter, err error) {
	p := api.ProblemFor(err)
	w.Header().Set("Content-Type", api.MediaProblem)
	w.WriteHeader(p.Status)
	json.NewEncoder(w).Encode(p)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", api.MediaJSON)
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

func (s *Server) authorized(w http.ResponseWriter, r *http.Request) bool {
	if r.Header.Get("Authorization") != "Bearer "+s.Token {
		writeProblem(w, api.Errorf(api.CodeUnauthorized, "a valid bearer token is required"))
		return false
	}
	return true
}

func (s *Server) serveTampered(w http.ResponseWriter, name string, body []byte) {
	if s.tamper != nil {
		body = s.tamper(name, body)
	}
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.Write(body)
}

func (s *Server) getMetadata(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	name := r.PathValue("file")
	body, ok := s.files[name]
	if !ok {
		http.NotFound(w, r)
		return
	}
	w.Header().Set("Content-Type", api.MediaJSON)
	s.serveTampered(w, name, body)
}

func (s *Server) getTarget(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	sum, _, ok := strings.Cut(r.PathValue("file"), ".")
	body, found := s.blobs[sum]
	if !ok || !found {
		http.NotFound(w, r)
		return
	}
	w.Header().Set("Content-Type", "application/octet-stream")
	s.serveTampered(w, strings.TrimPrefix(r.URL.Path, "/targets/"), body)
}

func blobDigest(r *http.Request) (string, error) {
	h, ok := strings.CutPrefix(r.PathValue("digest"), "sha256:")
	if b, err := hex.DecodeString(h); !ok || err != nil || len(b) != 32 {
		return "", api.Errorf(api.CodeBadRequest, "digest must be sha256:<64 hex digits>")
	}
	return h, nil
}

func (s *Server) putBlob(w http.ResponseWriter, r *http.Request) {
	if !s.authorized(w, r) {
		return
	}
	h, err := blobDigest(r)
	if err != nil {
		writeProblem(w, err)
		return
	}
	body, err := io.ReadAll(r.Body)
	if err != nil {
		writeProblem(w, api.Errorf(api.CodeBadRequest, "reading body: %v", err))
		return
	}
	sum := sha256.Sum256(body)
	if hex.EncodeToString(sum[:]) != h {
		writeProblem(w, api.Errorf(api.CodeDigestMismatch, "the body's sha256 is %x, not %s", sum, h))
		return
	}
	s.mu.Lock()
	_, had := s.blobs[h]
	s.blobs[h] = body
	s.mu.Unlock()
	status := http.StatusCreated
	if had {
		status = http.StatusOK
	}
	writeJSON(w, status, api.BlobResult{Digest: "sha256:" + h, Size: int64(len(body)), Created: !had})
}

func (s *Server) headBlob(w http.ResponseWriter, r *http.Request) {
	h, err := blobDigest(r)
	if err != nil {
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	s.mu.Lock()
	_, ok := s.blobs[h]
	s.mu.Unlock()
	if !ok {
		w.WriteHeader(http.StatusNotFound)
		return
	}
	w.WriteHeader(http.StatusOK)
}

// blobSizes answers tufrepo.ValidateProjectRole; s.mu must be held.
func (s *Server) blobSizes(sums []string) (map[string]int64, error) {
	out := map[string]int64{}
	for _, h := range sums {
		if b, ok := s.blobs[h]; ok {
			out[h] = int64(len(b))
		}
	}
	return out, nil
}

func (s *Server) delegation(p *project) tufrepo.ProjectDelegation {
	return tufrepo.ProjectDelegation{Name: p.name, Keys: p.keys, KeyIDs: p.keyIDs, Threshold: p.threshold}
}

func (s *Server) createProject(w http.ResponseWriter, r *http.Request) {
	if !s.authorized(w, r) {
		return
	}
	var req api.CreateProjectRequest
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
		writeProblem(w, api.Errorf(api.CodeMalformedJSON, "request body: %v", err))
		return
	}
	if err := tufrepo.ValidateProjectName(req.Name); err != nil {
		writeProblem(w, err)
		return
	}
	p := &project{name: req.Name, keys: map[string]*metadata.Key{}, threshold: req.Threshold, files: map[string]tufrepo.PublishedFile{}}
	for _, k := range req.Keys {
		mk, err := tufrepo.KeyFromAPI(k)
		if err != nil {
			writeProblem(w, err)
			return
		}
		id := tufrepo.KeyID(mk)
		if _, dup := p.keys[id]; !dup {
			p.keyIDs = append(p.keyIDs, id)
		}
		p.keys[id] = mk
	}
	slices.Sort(p.keyIDs)
	if req.Threshold < 1 || req.Threshold > len(p.keyIDs) {
		writeProblem(w, api.Errorf(api.CodeInvalidThreshold, "threshold %d is not between 1 and the %d keys given", req.Threshold, len(p.keyIDs)))
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.projects[req.Name]; ok {
		writeProblem(w, api.Errorf(api.CodeProjectExists, "project %q exists", req.Name))
		return
	}
	acc, err := tufrepo.ValidateProjectRole(req.Metadata, tufrepo.ProjectState{Delegation: s.delegation(p)}, time.Now(), s.blobSizes)
	if err != nil {
		writeProblem(w, err)
		return
	}
	s.projects[req.Name] = p
	s.setRoleLocked(p, acc.Raw)
	writeJSON(w, http.StatusCreated, s.resultLocked(p, acc.Version))
}

func (s *Server) resultLocked(p *project, version int64) api.SubmitResult {
	res := api.SubmitResult{Project: p.name, RoleVersion: version, Status: api.StatusStaged}
	if p.version >= version {
		res.Status = api.StatusPublished
		res.SnapshotVersion = s.versions[tufrepo.RoleSnapshot]
		res.TimestampVersion = s.versions[tufrepo.RoleTimestamp]
	}
	return res
}

func (s *Server) submitRole(w http.ResponseWriter, r *http.Request) {
	if !s.authorized(w, r) {
		return
	}
	raw, err := io.ReadAll(r.Body)
	if err != nil {
		writeProblem(w, api.Errorf(api.CodeBadRequest, "reading body: %v", err))
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	p := s.projects[r.PathValue("name")]
	if p == nil {
		writeProblem(w, api.Errorf(api.CodeNotFound, "no project %q", r.PathValue("name")))
		return
	}
	current := p.version
	if p.staged != nil {
		current = p.staged.Version
	}
	acc, err := tufrepo.ValidateProjectRole(raw, tufrepo.ProjectState{Delegation: s.delegation(p), CurrentVersion: current, Files: p.files}, time.Now(), s.blobSizes)
	if err != nil {
		writeProblem(w, err)
		return
	}
	if s.stage {
		p.staged = acc
		writeJSON(w, http.StatusAccepted, s.resultLocked(p, acc.Version))
		return
	}
	s.setRoleLocked(p, acc.Raw)
	writeJSON(w, http.StatusCreated, s.resultLocked(p, acc.Version))
}

func (s *Server) roleStatus(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	p := s.projects[r.PathValue("name")]
	v, err := strconv.ParseInt(r.PathValue("version"), 10, 64)
	if p == nil || err != nil || (v > p.version && (p.staged == nil || p.staged.Version != v)) {
		writeProblem(w, api.Errorf(api.CodeNotFound, "no such role version"))
		return
	}
	if p.staged != nil && p.staged.Version == v {
		// Publish on the first poll, so that a client sees "staged" once and then "published".
		acc := p.staged
		p.staged = nil
		res := s.resultLocked(p, v)
		s.setRoleLocked(p, acc.Raw)
		writeJSON(w, http.StatusOK, res)
		return
	}
	writeJSON(w, http.StatusOK, s.resultLocked(p, v))
}

func (s *Server) getLog(w http.ResponseWriter, r *http.Request) {
	after, _ := strconv.ParseInt(r.URL.Query().Get("after"), 10, 64)
	limit, _ := strconv.Atoi(r.URL.Query().Get("limit"))
	if limit <= 0 || limit > 100 {
		limit = 100
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	page := api.LogPage{Entries: []api.LogEntry{}}
	for _, e := range s.log {
		if e.Seq > after && len(page.Entries) < limit {
			page.Entries = append(page.Entries, e)
		}
	}
	if n := len(page.Entries); n == limit {
		page.Next = strconv.FormatInt(page.Entries[n-1].Seq, 10)
	}
	writeJSON(w, http.StatusOK, page)
}
