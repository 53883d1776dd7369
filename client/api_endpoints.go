package client

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/cairn-dev/cairn/api"
	"github.com/cairn-dev/cairn/internal/retry"
)

// waitQuery asks the server to hold the answer until the submission is published or wait
// has passed; zero or less asks for no waiting.
func waitQuery(wait time.Duration) url.Values {
	if wait <= 0 {
		return nil
	}
	return url.Values{"wait": {wait.String()}}
}

// ValidateSHA256Hex checks that s is a lowercase hex SHA-256 digest.
func ValidateSHA256Hex(s string) error {
	if !api.ValidSHA256Hex(s) {
		return api.Errorf(api.CodeBadRequest, "%q is not a lowercase hex SHA-256 digest", s)
	}
	return nil
}

// PutBlob uploads size bytes from body as the blob with SHA-256 sha256Hex. The server
// checks the digest while it streams. It answers 201 for a new blob and 200 if it already
// had it; both are success.
func (a *API) PutBlob(ctx context.Context, sha256Hex string, body io.Reader, size int64) (api.BlobResult, error) {
	var res api.BlobResult
	if err := ValidateSHA256Hex(sha256Hex); err != nil {
		return res, err
	}
	_, err := a.do(ctx, request{
		method: http.MethodPut, url: a.endpoint(nil, "api", "v1", "blobs", "sha256:"+sha256Hex),
		body: body, size: size, contentType: "application/octet-stream", auth: true, out: &res,
	})
	if err != nil {
		return res, fmt.Errorf("uploading blob sha256:%s (%d bytes): %w", sha256Hex, size, err)
	}
	return res, nil
}

// BlobExists reports whether the server already holds the blob, so that a client can skip
// uploading it.
func (a *API) BlobExists(ctx context.Context, sha256Hex string) (bool, error) {
	if err := ValidateSHA256Hex(sha256Hex); err != nil {
		return false, err
	}
	status, err := a.do(ctx, request{method: http.MethodHead, url: a.endpoint(nil, "api", "v1", "blobs", "sha256:"+sha256Hex), auth: a.token != ""})
	switch {
	case err == nil:
		return true, nil
	case status == http.StatusNotFound:
		return false, nil
	}
	return false, fmt.Errorf("checking blob sha256:%s: %w", sha256Hex, err)
}

// CreateProject registers a project with its maintainers' keys and version 1 of its role
// metadata (req.Metadata, the exact signed bytes). The server holds the answer for up to
// wait until the role is published.
func (a *API) CreateProject(ctx context.Context, req api.CreateProjectRequest, wait time.Duration) (api.SubmitResult, error) {
	var res api.SubmitResult
	body, size, err := jsonBody(req)
	if err != nil {
		return res, fmt.Errorf("encoding project %q: %w", req.Name, err)
	}
	_, err = a.do(ctx, request{
		method: http.MethodPost, url: a.endpoint(waitQuery(wait), "api", "v1", "projects"),
		body: body, size: size, contentType: api.MediaJSON, auth: true, out: &res,
	})
	if err != nil {
		return res, fmt.Errorf("creating project %q: %w", req.Name, err)
	}
	return res, nil
}

// SubmitRole posts a signed version of a project's role metadata (raw, the exact bytes
// that were signed). The result's Status is api.StatusPublished (201) or api.StatusStaged
// (202, the wait ended before publication). An answer of 503 unavailable means that nothing
// was stored (the publish that was to store it failed, or none started in time): the same
// bytes are sent again as submitRetry says, after the Retry-After the server asked for.
func (a *API) SubmitRole(ctx context.Context, project string, raw []byte, wait time.Duration) (api.SubmitResult, error) {
	res, attempts, err := retry.Do(ctx, submitRetry(), notStored, func(ctx context.Context) (api.SubmitResult, time.Duration, error) {
		var res api.SubmitResult
		var retryAfter time.Duration
		_, err := a.do(ctx, request{
			method: http.MethodPost, url: a.endpoint(waitQuery(wait), "api", "v1", "projects", project, "roles"),
			body: bytes.NewReader(raw), size: int64(len(raw)), contentType: api.MediaJSON, auth: true, out: &res,
			retryAfter: &retryAfter,
		})
		return res, retryAfter, err
	})
	if err != nil && attempts > 1 && api.CodeOf(err) == api.CodeVersionConflict {
		// A 503 can come from a commit whose outcome the server could not know (the
		// connection to PostgreSQL dropped during COMMIT): the version may be ours. It is
		// ours only if the server holds exactly the bytes we sent.
		if mine, ok := a.storedAsSent(ctx, project, raw); ok {
			return mine, nil
		}
	}
	if err != nil {
		return res, fmt.Errorf("submitting role metadata of project %q: %w", project, err)
	}
	return res, nil
}

// storedAsSent reports whether the project's role version in raw is stored with exactly
// raw's bytes, with its status.
func (a *API) storedAsSent(ctx context.Context, project string, raw []byte) (api.SubmitResult, bool) {
	var doc struct {
		Signed struct {
			Version int64 `json:"version"`
		} `json:"signed"`
	}
	if json.Unmarshal(raw, &doc) != nil || doc.Signed.Version < 1 {
		return api.SubmitResult{}, false
	}
	stored, err := a.fetchMetadata(ctx, fmt.Sprintf("%d.%s.json", doc.Signed.Version, project), int64(len(raw)), true)
	if err != nil || !bytes.Equal(stored, raw) {
		return api.SubmitResult{}, false
	}
	res, err := a.RoleStatus(ctx, project, doc.Signed.Version)
	return res, err == nil
}

// submitRetry is how SubmitRole sends again a role version the server answered was not
// stored: 3 tries in all, waiting the server's Retry-After, else 1 s then 2 s, each wait
// between 1 and 5 s.
func submitRetry() retry.Policy {
	return retry.Policy{Attempts: 3, Initial: time.Second, Min: time.Second, Max: 5 * time.Second}
}

// notStored reports whether a submission failed without the server storing anything, so
// that sending the same bytes again is safe: 503 unavailable. Any other answer is final.
func notStored(err error) bool { return api.CodeOf(err) == api.CodeUnavailable }

// RoleStatus returns the publication status of one version of a project role.
func (a *API) RoleStatus(ctx context.Context, project string, version int64) (api.SubmitResult, error) {
	var res api.SubmitResult
	_, err := a.do(ctx, request{
		method: http.MethodGet, url: a.endpoint(nil, "api", "v1", "projects", project, "roles", strconv.FormatInt(version, 10)), out: &res,
	})
	if err != nil {
		return res, fmt.Errorf("reading status of role version %d of project %q: %w", version, project, err)
	}
	return res, nil
}

// WaitPublished polls RoleStatus every poll until the version is published or ctx ends;
// on ctx's end it returns the last status seen together with ctx's error.
func (a *API) WaitPublished(ctx context.Context, project string, version int64, poll time.Duration) (api.SubmitResult, error) {
	if poll <= 0 {
		poll = time.Second
	}
	t := time.NewTicker(poll)
	defer t.Stop()
	var last api.SubmitResult
	for {
		res, err := a.RoleStatus(ctx, project, version)
		if err == nil {
			last = res
			if res.Status == api.StatusPublished {
				return res, nil
			}
		} else if ctx.Err() == nil {
			return last, err
		}
		select {
		case <-ctx.Done():
			return last, fmt.Errorf("waiting for role version %d of project %q to be published: %w", version, project, ctx.Err())
		case <-t.C:
		}
	}
}

// ListProjects returns one page of projects; pass the previous page's Next as cursor.
func (a *API) ListProjects(ctx context.Context, limit int, cursor string) (api.ProjectList, error) {
	var res api.ProjectList
	q := url.Values{}
	if limit > 0 {
		q.Set("limit", strconv.Itoa(limit))
	}
	if cursor != "" {
		q.Set("cursor", cursor)
	}
	if _, err := a.do(ctx, request{method: http.MethodGet, url: a.endpoint(q, "api", "v1", "projects"), out: &res}); err != nil {
		return res, fmt.Errorf("listing projects: %w", err)
	}
	return res, nil
}

// Project returns what the server reports about a project. It is not verified: use Repo
// for anything a decision depends on.
func (a *API) Project(ctx context.Context, name string) (api.Project, error) {
	var res api.Project
	if _, err := a.do(ctx, request{method: http.MethodGet, url: a.endpoint(nil, "api", "v1", "projects", name), out: &res}); err != nil {
		return res, fmt.Errorf("reading project %q: %w", name, err)
	}
	return res, nil
}

// Releases returns the server's (unverified) list of a project's releases.
func (a *API) Releases(ctx context.Context, name string) (api.ReleaseList, error) {
	var res api.ReleaseList
	if _, err := a.do(ctx, request{method: http.MethodGet, url: a.endpoint(nil, "api", "v1", "projects", name, "releases"), out: &res}); err != nil {
		return res, fmt.Errorf("listing releases of project %q: %w", name, err)
	}
	return res, nil
}

// Release returns the server's (unverified) description of one release.
func (a *API) Release(ctx context.Context, name, version string) (api.Release, error) {
	var res api.Release
	if _, err := a.do(ctx, request{method: http.MethodGet, url: a.endpoint(nil, "api", "v1", "projects", name, "releases", version), out: &res}); err != nil {
		return res, fmt.Errorf("reading release %s %s: %w", name, version, err)
	}
	return res, nil
}

// Log returns up to limit audit log entries with Seq > after, oldest first.
func (a *API) Log(ctx context.Context, after int64, limit int) (api.LogPage, error) {
	var res api.LogPage
	q := url.Values{"after": {strconv.FormatInt(after, 10)}}
	if limit > 0 {
		q.Set("limit", strconv.Itoa(limit))
	}
	if _, err := a.do(ctx, request{method: http.MethodGet, url: a.endpoint(q, "api", "v1", "log"), out: &res}); err != nil {
		return res, fmt.Errorf("reading the audit log after entry %d: %w", after, err)
	}
	return res, nil
}

// maxMetadataFile bounds a metadata file fetched outside the TUF updater (a root for
// trust on first use); it matches go-tuf's default root limit.
const maxMetadataFile = 512000

// Metadata fetches a raw file from /metadata/, e.g. "1.root.json". The bytes are NOT
// verified; they are meant for trust on first use, which the caller must make explicit.
func (a *API) Metadata(ctx context.Context, name string) ([]byte, error) {
	return a.fetchMetadata(ctx, name, maxMetadataFile, false)
}

// fetchMetadata GETs /metadata/<name>, at most max bytes; with missingOK, (nil, nil) for
// a 404.
func (a *API) fetchMetadata(ctx context.Context, name string, max int64, missingOK bool) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, a.endpoint(nil, "metadata", name), nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("User-Agent", a.ua)
	resp, err := a.hc.Do(req)
	if te := asTimeout(err); te != nil {
		return nil, te
	}
	if err != nil {
		return nil, fmt.Errorf("fetching metadata %s: %w", name, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusNotFound && missingOK {
		return nil, nil
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("fetching metadata %s: %w", name, responseError(resp))
	}
	b, err := io.ReadAll(io.LimitReader(resp.Body, max+1))
	if te := asTimeout(err); te != nil {
		return nil, te
	}
	if err != nil {
		return nil, fmt.Errorf("fetching metadata %s: %w", name, err)
	}
	if int64(len(b)) > max {
		return nil, api.Errorf(api.CodeTooLarge, "metadata %s is larger than %d bytes", name, max)
	}
	return b, nil
}
