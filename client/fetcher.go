package client

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/cairn-dev/cairn/api"
	"github.com/cairn-dev/cairn/tufrepo"
	"github.com/theupdateframework/go-tuf/v2/metadata"
)

// fetch is one metadata download the updater made.
type fetch struct {
	role string
	url  string
	body []byte // nil if the download failed
}

// recordingFetcher implements go-tuf's fetcher.Fetcher with the caller's context and HTTP
// client, and remembers the metadata it downloaded. go-tuf reports a bad signature only as
// "not enough signatures for <role>"; the recorded bytes let Repo tell an invalid
// signature from a signature by an untrusted key, and name the file that failed.
type recordingFetcher struct {
	ctx         context.Context // replaced by each Repo call; Repo is not for concurrent use
	hc          *http.Client
	ua          string
	metadataURL string
	fetches     []fetch
}

// maxRecorded bounds the history; an updater run fetches a handful of files.
const maxRecorded = 64

// DownloadFile downloads urlPath, reading at most maxLength bytes, as go-tuf requires.
func (f *recordingFetcher) DownloadFile(urlPath string, maxLength int64, _ time.Duration) ([]byte, error) {
	ctx := f.ctx
	if ctx == nil {
		ctx = context.Background()
	}
	body, err := f.get(ctx, urlPath, maxLength)
	role, isMeta := f.roleOf(urlPath)
	if err == nil && isMeta {
		// Metadata that JSON parsers could read differently is refused before go-tuf reads
		// it: a JavaScript client of the same repository might verify another reading.
		if cerr := tufrepo.CheckJSON(body, fmt.Sprintf("%s metadata (%s)", role, urlPath)); cerr != nil {
			err = &VerifyError{Code: ExitMalformed, Role: role, Detail: api.ProblemFor(cerr).Detail, Err: cerr}
		}
	}
	if isMeta {
		if len(f.fetches) == maxRecorded {
			f.fetches = f.fetches[1:]
		}
		f.fetches = append(f.fetches, fetch{role: role, url: urlPath, body: body})
	}
	return body, err
}

func (f *recordingFetcher) get(ctx context.Context, urlPath string, maxLength int64) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, urlPath, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("User-Agent", f.ua)
	resp, err := f.hc.Do(req)
	if te := asTimeout(err); te != nil {
		return nil, te // it names the file and the server
	}
	if err != nil {
		return nil, fmt.Errorf("fetching %s: %w", urlPath, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, &metadata.ErrDownloadHTTP{StatusCode: resp.StatusCode, URL: urlPath}
	}
	if resp.ContentLength > maxLength {
		return nil, &metadata.ErrDownloadLengthMismatch{Msg: fmt.Sprintf("%s is %d bytes, more than the %d expected", urlPath, resp.ContentLength, maxLength)}
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxLength+1))
	if te := asTimeout(err); te != nil {
		return nil, te
	}
	if err != nil {
		return nil, fmt.Errorf("fetching %s: %w", urlPath, err)
	}
	if int64(len(body)) > maxLength {
		return nil, &metadata.ErrDownloadLengthMismatch{Msg: fmt.Sprintf("%s is longer than the %d bytes expected", urlPath, maxLength)}
	}
	return body, nil
}

// roleOf names the role of a metadata URL: "<base>/<N>.<role>.json" or "<base>/<role>.json".
func (f *recordingFetcher) roleOf(urlPath string) (string, bool) {
	name, ok := strings.CutPrefix(urlPath, strings.TrimRight(f.metadataURL, "/")+"/")
	if !ok {
		return "", false
	}
	name, ok = strings.CutSuffix(name, ".json")
	if !ok {
		return "", false
	}
	if unesc, err := url.PathUnescape(name); err == nil {
		name = unesc
	}
	// With consistent snapshots every file but timestamp.json is versioned; strip "<N>.".
	if v, rest, ok := strings.Cut(name, "."); ok {
		if _, err := strconv.ParseUint(v, 10, 63); err == nil {
			name = rest
		}
	}
	return name, true
}

// last returns the most recent fetch, if any.
func (f *recordingFetcher) last() (fetch, bool) {
	if len(f.fetches) == 0 {
		return fetch{}, false
	}
	return f.fetches[len(f.fetches)-1], true
}

// lastBody returns the most recently downloaded bytes of role.
func (f *recordingFetcher) lastBody(role string) ([]byte, string) {
	for i := len(f.fetches) - 1; i >= 0; i-- {
		if fe := f.fetches[i]; fe.role == role && fe.body != nil {
			return fe.body, fe.url
		}
	}
	return nil, ""
}
