package client

import (
	"context"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"

	"github.com/cairn-dev/cairn/api"
)

// CheckFetchURL allows https:// anywhere and http:// only to a loopback host.
func CheckFetchURL(raw string) (*url.URL, error) {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		return nil, api.Errorf(api.CodeBadRequest, "%.200q is not an absolute URL", raw)
	}
	switch u.Scheme {
	case "https":
		return u, nil
	case "http":
		host := u.Hostname()
		if ip := net.ParseIP(host); host == "localhost" || (ip != nil && ip.IsLoopback()) {
			return u, nil
		}
		return nil, api.Errorf(api.CodeBadRequest, "%s: plain HTTP is allowed only to a loopback address; use https://", raw)
	}
	return nil, api.Errorf(api.CodeBadRequest, "%s: only https:// (and http:// to loopback) URLs are fetched", raw)
}

// FetchToTemp downloads u into a new temporary file in dir (at most max bytes) and checks
// its digest; on any failure the file is removed. The caller moves the file into place
// (or copies it out) and removes it. A digest mismatch is a VerifyError with
// ExitHashMismatch.
func FetchToTemp(ctx context.Context, hc *http.Client, u *url.URL, want api.Digest, dir string, max int64) (string, int64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return "", 0, err
	}
	resp, err := hc.Do(req)
	if te := asTimeout(err); te != nil {
		return "", 0, te
	}
	if err != nil {
		return "", 0, fmt.Errorf("GET %s: %w", u, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return "", 0, api.Errorf(api.CodeNotFound, "GET %s: %s", u, resp.Status)
	}
	if resp.ContentLength > max {
		return "", 0, &VerifyError{Code: ExitPolicy, Target: u.String(), Detail: fmt.Sprintf("it is %d bytes; at most %d are fetched (--max-size)", resp.ContentLength, max)}
	}
	f, err := os.CreateTemp(dir, ".cairn-fetch-*")
	if err != nil {
		return "", 0, fmt.Errorf("creating a temporary file in %s: %w", dir, err)
	}
	ok := false
	defer func() {
		if !ok {
			f.Close()
			os.Remove(f.Name())
		}
	}()
	h := want.Hash()
	n, err := io.Copy(io.MultiWriter(f, h), io.LimitReader(resp.Body, max+1))
	if te := asTimeout(err); te != nil {
		return "", 0, te
	}
	if err != nil {
		return "", 0, fmt.Errorf("downloading %s: %w", u, err)
	}
	if n > max {
		return "", 0, &VerifyError{Code: ExitPolicy, Target: u.String(), Detail: fmt.Sprintf("it is larger than %d bytes (--max-size)", max)}
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != want.Hex {
		return "", 0, &VerifyError{Code: ExitHashMismatch, Target: u.String(), Detail: fmt.Sprintf("its %s is %s, not the %s asked for; nothing was written", want.Algorithm, got, want.Hex)}
	}
	if err := f.Sync(); err != nil {
		return "", 0, err
	}
	if err := f.Close(); err != nil {
		return "", 0, err
	}
	ok = true
	return f.Name(), n, nil
}
