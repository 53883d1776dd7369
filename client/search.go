package client

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/cairn-dev/cairn/api"
	"github.com/cairn-dev/cairn/tufrepo"
)

// SearchParams are GET /api/v1/search's filters; zero fields are left out.
type SearchParams struct {
	Prefix, KeyID, SHA256 string
	After, Before         time.Time
	Limit                 int
	Cursor                string
}

// Search asks the server's search index. The answer is unverified (api.SearchNote):
// VerifySearch checks it through TUF.
func (a *API) Search(ctx context.Context, p SearchParams) (api.SearchResult, error) {
	var res api.SearchResult
	q := url.Values{}
	for k, v := range map[string]string{"q": p.Prefix, "key": p.KeyID, "sha256": p.SHA256, "cursor": p.Cursor} {
		if v != "" {
			q.Set(k, v)
		}
	}
	if !p.After.IsZero() {
		q.Set("published_after", p.After.UTC().Format(time.RFC3339))
	}
	if !p.Before.IsZero() {
		q.Set("published_before", p.Before.UTC().Format(time.RFC3339))
	}
	if p.Limit > 0 {
		q.Set("limit", strconv.Itoa(p.Limit))
	}
	if _, err := a.do(ctx, request{method: http.MethodGet, url: a.endpoint(q, "api", "v1", "search"), out: &res}); err != nil {
		return res, fmt.Errorf("searching: %w", err)
	}
	return res, nil
}

// Verified says what TUF verification made of one search result.
type Verified struct {
	OK     bool   `json:"verified"`
	Detail string `json:"detail"`
}

// maxVerifiedProjects bounds how many projects VerifySearch walks to per page.
const maxVerifiedProjects = 100

// VerifySearch checks each result of res through the TUF updater: a file must be listed,
// with the same length and sha256, by the project's verified role; a project found by
// key must delegate to that key in the verified metadata; a project found by name must be
// delegated at all. It returns one Verified per result, in order (projects, then files).
// A result the verified metadata contradicts is not an error: it is reported as not
// verified, since the index is only a pointer.
func (r *Repo) VerifySearch(ctx context.Context, res api.SearchResult, keyID string) ([]Verified, error) {
	roles := map[string]*ProjectRole{}
	fail := map[string]string{}
	role := func(project string) (*ProjectRole, string, error) {
		if pr, ok := roles[project]; ok {
			return pr, "", nil
		}
		if why, ok := fail[project]; ok {
			return nil, why, nil
		}
		if len(roles)+len(fail) >= maxVerifiedProjects {
			return nil, fmt.Sprintf("not checked: more than %d projects on one page; ask for a smaller --limit", maxVerifiedProjects), nil
		}
		pr, err := r.ProjectRole(ctx, project)
		if err != nil {
			if api.CodeOf(err) == api.CodeNotFound {
				fail[project] = "the verified metadata does not delegate to this project"
				return nil, fail[project], nil
			}
			var ve *VerifyError
			if errors.As(err, &ve) {
				fail[project] = "verification failed: " + ve.Error()
				return nil, fail[project], nil
			}
			return nil, "", err
		}
		roles[project] = pr
		return pr, "", nil
	}
	var out []Verified
	for _, p := range res.Projects {
		pr, why, err := role(p.Name)
		if err != nil {
			return nil, err
		}
		switch {
		case pr == nil:
			out = append(out, Verified{Detail: why})
		case keyID != "" && !pr.TrustsKey(keyID):
			out = append(out, Verified{Detail: fmt.Sprintf("the verified delegation (role version %d) does not list key %s", pr.Version(), short(keyID))})
		default:
			out = append(out, Verified{OK: true, Detail: fmt.Sprintf("role version %d, threshold %d of %d keys, through snapshot %d", pr.Version(), pr.Threshold, len(pr.KeyIDs), pr.SnapshotVersion)})
		}
	}
	for _, f := range res.Files {
		pr, why, err := role(f.Project)
		if err != nil {
			return nil, err
		}
		if pr == nil {
			out = append(out, Verified{Detail: why})
			continue
		}
		tf, ok := pr.Metadata.Signed.Targets[tufrepo.TargetPath(f.Project, f.Version, f.File)]
		switch {
		case !ok:
			out = append(out, Verified{Detail: fmt.Sprintf("role version %d of %s does not list %s", pr.Version(), f.Project, f.Path)})
		case tf.Length != f.Length || hex.EncodeToString(tf.Hashes["sha256"]) != f.SHA256:
			out = append(out, Verified{Detail: fmt.Sprintf("the signed role lists %d bytes with sha256 %s, not what the index says", tf.Length, hex.EncodeToString(tf.Hashes["sha256"]))})
		default:
			out = append(out, Verified{OK: true, Detail: fmt.Sprintf("listed by role version %d of %s", pr.Version(), f.Project)})
		}
	}
	return out, nil
}
