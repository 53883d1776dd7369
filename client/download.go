package client

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/cairn-dev/cairn/api"
	"github.com/theupdateframework/go-tuf/v2/metadata"
)

// DownloadedFile is a release file that verified and was placed in the output directory.
type DownloadedFile struct {
	api.File
	LocalPath string `json:"local_path"`
}

// Download fetches the files of one release of project into dir (created if needed) and
// returns them in name order. names, if given, selects files by name. Each file's target
// info is looked up through the verified delegations, the file is streamed into a private
// temporary directory and checked against the signed length and hashes; only when every
// selected file verified are they moved into dir, replacing files of the same name. If
// anything fails, nothing is written to dir.
func (r *Repo) Download(ctx context.Context, project, version, dir string, names ...string) ([]DownloadedFile, error) {
	pr, err := r.ProjectRole(ctx, project)
	if err != nil {
		return nil, err
	}
	return r.DownloadRelease(ctx, pr, version, dir, names...)
}

// DownloadRelease is Download for a role that ProjectRole just returned, without
// refreshing again.
func (r *Repo) DownloadRelease(ctx context.Context, pr *ProjectRole, version, dir string, names ...string) ([]DownloadedFile, error) {
	if r.up == nil {
		return nil, errors.New("downloading: the repository was not refreshed")
	}
	r.fetch.ctx = ctx
	rels := pr.Releases()
	rel, ok := FindRelease(rels, version)
	if !ok {
		return nil, api.Errorf(api.CodeNotFound, "project %q has no release %q in its verified metadata; releases: %s", pr.Name, version, versionList(rels))
	}
	files, err := selectFiles(pr.Name, rel, names)
	if err != nil {
		return nil, err
	}
	tmp, err := os.MkdirTemp("", "cairn-get-")
	if err != nil {
		return nil, fmt.Errorf("creating a temporary directory: %w", err)
	}
	defer os.RemoveAll(tmp)

	out := make([]DownloadedFile, 0, len(files))
	for _, f := range files {
		// Look the path up again through the delegation walk rather than trusting the
		// listing: it confirms the path is routed to this project's role.
		tf, err := r.up.GetTargetInfo(f.Path)
		if err != nil {
			return nil, r.tufError(err, fmt.Sprintf("looking up target %q", f.Path))
		}
		local := filepath.Join(tmp, f.Name)
		if err := r.downloadTarget(ctx, f.Path, tf, local); err != nil {
			return nil, err
		}
		out = append(out, DownloadedFile{File: f, LocalPath: local})
	}
	return placeFiles(out, dir)
}

// selectFiles returns the files of rel named in names, or all of them.
func selectFiles(project string, rel Release, names []string) ([]api.File, error) {
	if len(names) == 0 {
		return rel.Files, nil
	}
	var files []api.File
	for _, n := range names {
		i := slices.IndexFunc(rel.Files, func(f api.File) bool { return f.Name == n })
		if i < 0 {
			return nil, api.Errorf(api.CodeNotFound, "release %s %s has no file %q; files: %s", project, rel.Version, n, fileList(rel.Files))
		}
		files = append(files, rel.Files[i])
	}
	return files, nil
}

// placeFiles moves verified files from their temporary paths into dir.
func placeFiles(files []DownloadedFile, dir string) ([]DownloadedFile, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("creating output directory: %w", err)
	}
	for i := range files {
		dst := filepath.Join(dir, files[i].Name)
		if err := moveFile(files[i].LocalPath, dst); err != nil {
			return files[:i], fmt.Errorf("placing verified file %s: %w", dst, err)
		}
		files[i].LocalPath = dst
	}
	return files, nil
}

// targetURL is where the server stores a target under consistent snapshots:
// "<targets>/<project>/<version>/<sha256>.<filename>". Cairn serves sha256 only, so that
// hash is preferred over go-tuf's random pick of any listed hash.
func (r *Repo) targetURL(path string, tf *metadata.TargetFiles) (string, error) {
	alg := "sha256"
	if _, ok := tf.Hashes[alg]; !ok {
		algs := slices.Sorted(func(yield func(string) bool) {
			for a := range tf.Hashes {
				if !yield(a) {
					return
				}
			}
		})
		if len(algs) == 0 {
			return "", &VerifyError{Code: ExitHashMismatch, Target: path, Detail: "the signed metadata lists no hash for it, so it cannot be verified"}
		}
		alg = algs[0]
	}
	dir, name := "", path
	if i := strings.LastIndexByte(path, '/'); i >= 0 {
		dir, name = path[:i+1], path[i+1:]
	}
	segs := strings.Split(dir+hex.EncodeToString(tf.Hashes[alg])+"."+name, "/")
	for i, s := range segs {
		segs[i] = url.PathEscape(s)
	}
	return r.cfg.Server + "/targets/" + strings.Join(segs, "/"), nil
}

// downloadTarget streams the target to local, hashing as it goes, and removes it unless
// its length and every listed hash match.
func (r *Repo) downloadTarget(ctx context.Context, path string, tf *metadata.TargetFiles, local string) error {
	u, err := r.targetURL(path, tf)
	if err != nil {
		return err
	}
	return r.downloadTargetFrom(ctx, u, nil, path, tf, local)
}

// downloadTargetFrom is downloadTarget from URL u (with extra request headers hdr).
func (r *Repo) downloadTargetFrom(ctx context.Context, u string, hdr http.Header, path string, tf *metadata.TargetFiles, local string) (err error) {
	hashers := map[string]hash.Hash{}
	for alg := range tf.Hashes {
		switch alg {
		case "sha256":
			hashers[alg] = sha256.New()
		case "sha512":
			hashers[alg] = sha512.New()
		default:
			return &VerifyError{Code: ExitHashMismatch, Target: path, Detail: fmt.Sprintf("the signed metadata lists hash algorithm %q, which cannot be checked", alg)}
		}
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return err
	}
	for k, v := range hdr {
		req.Header[k] = v
	}
	req.Header.Set("User-Agent", r.cfg.UserAgent)
	resp, err := r.cfg.HTTPClient.Do(req)
	if te := asTimeout(err); te != nil {
		return fmt.Errorf("downloading target %q: %w", path, te)
	}
	if err != nil {
		return fmt.Errorf("downloading target %q: %w", path, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("downloading target %q from %s: server answered %d %s", path, u, resp.StatusCode, http.StatusText(resp.StatusCode))
	}
	f, err := os.OpenFile(local, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o644)
	if err != nil {
		return fmt.Errorf("downloading target %q: %w", path, err)
	}
	defer func() {
		if cerr := f.Close(); err == nil && cerr != nil {
			err = fmt.Errorf("writing %s: %w", local, cerr)
		}
		if err != nil {
			os.Remove(local)
		}
	}()
	ws := []io.Writer{f}
	for _, h := range hashers {
		ws = append(ws, h)
	}
	var body io.Reader = resp.Body
	if r.cfg.Progress != nil {
		var done func(ok bool)
		body, done = r.cfg.Progress(path, tf.Length, body)
		defer func() { done(err == nil) }()
	}
	// Read one byte more than signed: a longer file is caught without reading it all.
	n, err := io.Copy(io.MultiWriter(ws...), io.LimitReader(body, tf.Length+1))
	if err != nil {
		return fmt.Errorf("downloading target %q: %w", path, err)
	}
	if n != tf.Length {
		return &VerifyError{Code: ExitHashMismatch, Target: path, Detail: fmt.Sprintf("the server sent %s bytes, the signed metadata says %d", lengthText(n, tf.Length), tf.Length)}
	}
	for alg, h := range hashers {
		if got := h.Sum(nil); !bytes.Equal(got, tf.Hashes[alg]) {
			return &VerifyError{Code: ExitHashMismatch, Target: path, Detail: fmt.Sprintf("its %s is %x, the signed metadata says %x", alg, got, []byte(tf.Hashes[alg]))}
		}
	}
	return nil
}

func lengthText(n, want int64) string {
	if n > want {
		return fmt.Sprintf("more than %d", want)
	}
	return fmt.Sprint(n)
}

// moveFile renames src to dst, copying through a temporary file beside dst when they are
// on different file systems, so dst never holds a partial file.
func moveFile(src, dst string) error {
	if err := os.Rename(src, dst); err == nil {
		return nil
	}
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	tmp, err := os.CreateTemp(filepath.Dir(dst), ".cairn-"+filepath.Base(dst)+"-*")
	if err != nil {
		return err
	}
	if _, err := io.Copy(tmp, in); err != nil {
		tmp.Close()
		os.Remove(tmp.Name())
		return err
	}
	if err := tmp.Chmod(0o644); err != nil {
		tmp.Close()
		os.Remove(tmp.Name())
		return err
	}
	if err := tmp.Close(); err != nil {
		os.Remove(tmp.Name())
		return err
	}
	if err := os.Rename(tmp.Name(), dst); err != nil {
		os.Remove(tmp.Name())
		return err
	}
	return nil
}

func versionList(rs []Release) string {
	if len(rs) == 0 {
		return "(none)"
	}
	vs := make([]string, len(rs))
	for i, r := range rs {
		vs[i] = r.Version
	}
	return strings.Join(vs, ", ")
}

func fileList(fs []api.File) string {
	ns := make([]string, len(fs))
	for i, f := range fs {
		ns[i] = f.Name
	}
	return strings.Join(ns, ", ")
}
