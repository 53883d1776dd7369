package client

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/cairn-dev/cairn/api"
	"github.com/cairn-dev/cairn/internal/strictjson"
	"github.com/cairn-dev/cairn/mirror"
	"github.com/cairn-dev/cairn/tufrepo"
	"github.com/theupdateframework/go-tuf/v2/metadata/trustedmetadata"
)

// OCI artifacts in mirror bundles (package mirror, oci.go): the export reads them from
// the registry's /v2/ like any OCI client, and VerifyBundle checks them offline.

// ociAccept is every manifest media type a mirror carries.
var ociAccept = strings.Join([]string{mirror.OCIImageManifest, mirror.OCIImageIndex, mirror.DockerManifest, mirror.DockerManifestLst}, ", ")

// ociExport is one export's walk of the registry's OCI repositories.
type ociExport struct {
	r        *Repo
	ctx      context.Context
	staging  string
	maxItems int   // manifests and blobs, all repositories together
	maxBytes int64 // blob bytes, all repositories together
	items    int
	bytes    int64
	files    []mirror.File
	blobs    map[string]string // sha256 hex → staged path (one download per digest)
	done     map[string]bool   // bundle paths of the blobs already added
}

func (x *ociExport) auth(req *http.Request) {
	req.Header.Set("User-Agent", x.r.cfg.UserAgent)
	if x.r.cfg.OCIToken != "" {
		// Registries take a Cairn token as the password of Basic auth (any user name).
		req.Header.Set("Authorization", "Basic "+base64.StdEncoding.EncodeToString([]byte("cairn:"+x.r.cfg.OCIToken)))
	}
}

// get reads a bounded response; notFound is true for 404.
func (x *ociExport) get(u, accept string, max int64) (body []byte, hdr http.Header, notFound bool, err error) {
	req, err := http.NewRequestWithContext(x.ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, nil, false, err
	}
	x.auth(req)
	if accept != "" {
		req.Header.Set("Accept", accept)
	}
	resp, err := x.r.cfg.HTTPClient.Do(req)
	if te := asTimeout(err); te != nil {
		return nil, nil, false, te
	}
	if err != nil {
		return nil, nil, false, fmt.Errorf("exporting OCI artifacts: %s: %w", u, err)
	}
	defer resp.Body.Close()
	switch resp.StatusCode {
	case http.StatusOK:
	case http.StatusNotFound:
		return nil, nil, true, nil
	case http.StatusUnauthorized, http.StatusForbidden:
		return nil, nil, false, api.Errorf(api.CodeUnauthorized, "exporting OCI artifacts: the registry refuses %s (HTTP %d): give a token with read access (--token or CAIRN_TOKEN)", u, resp.StatusCode)
	default:
		return nil, nil, false, fmt.Errorf("exporting OCI artifacts: %s: the registry answered %d %s", u, resp.StatusCode, http.StatusText(resp.StatusCode))
	}
	b, err := io.ReadAll(io.LimitReader(resp.Body, max+1))
	if err != nil {
		return nil, nil, false, fmt.Errorf("exporting OCI artifacts: reading %s: %w", u, err)
	}
	if int64(len(b)) > max {
		return nil, nil, false, api.Errorf(api.CodeTooLarge, "exporting OCI artifacts: %s is more than %d bytes", u, max)
	}
	return b, resp.Header, false, nil
}

func (x *ociExport) count(n int64) error {
	x.items++
	x.bytes += n
	if x.items > x.maxItems || x.bytes > x.maxBytes {
		return api.Errorf(api.CodeTooLarge, "the export's OCI artifacts would be more than %d manifests and blobs or %d bytes: select fewer projects, or raise --max-files / --max-bundle-size", x.maxItems, x.maxBytes)
	}
	return nil
}

// repo exports one repository: every tag, every manifest the tags reach (index children
// included), every referrer of those (recursively: a signature of an SBOM), and every blob
// they reference. A repository the registry does not have gives nothing.
func (x *ociExport) repo(name string) error {
	if err := mirror.CheckOCIRepoName(name); err != nil {
		return err
	}
	base := x.r.cfg.Server + "/v2/" + name
	rec := &mirror.OCIRepository{Name: name, Tags: map[string]string{}}
	var tags []string
	last := ""
	for page := 0; ; page++ {
		if page > 1000 {
			return api.Errorf(api.CodeTooMany, "exporting OCI repository %s: more than 1000 pages of tags", name)
		}
		u := base + "/tags/list?n=1000"
		if last != "" {
			u += "&last=" + url.QueryEscape(last)
		}
		b, _, nf, err := x.get(u, "", 16<<20)
		if err != nil {
			return err
		}
		if nf {
			if page == 0 {
				return nil // no such repository (a project with nothing published over OCI)
			}
			break
		}
		var tl struct {
			Tags []string `json:"tags"`
		}
		if err := strictjson.Check(b, strictjson.FieldsOf(tl)); err != nil {
			return fmt.Errorf("exporting OCI repository %s: the tag list has more than one reading: %w", name, err)
		}
		if err := json.Unmarshal(b, &tl); err != nil {
			return fmt.Errorf("exporting OCI repository %s: the tag list does not parse: %w", name, err)
		}
		if len(tl.Tags) == 0 || tl.Tags[len(tl.Tags)-1] == last {
			break
		}
		tags = append(tags, tl.Tags...)
		last = tl.Tags[len(tl.Tags)-1]
		if len(tl.Tags) < 1000 {
			break
		}
	}
	slices.Sort(tags)
	tags = slices.Compact(tags)
	manifests := map[string][]byte{} // digest → bytes
	var queue []string
	fetch := func(ref string) (string, error) {
		b, hdr, nf, err := x.get(base+"/manifests/"+ref, ociAccept, mirror.MaxOCIManifest)
		if err != nil {
			return "", err
		}
		if nf {
			return "", fmt.Errorf("exporting OCI repository %s: manifest %s vanished while it was exported: export again", name, ref)
		}
		sum := sha256.Sum256(b)
		d := "sha256:" + hex.EncodeToString(sum[:])
		if strings.HasPrefix(ref, "sha256:") && ref != d {
			return "", &VerifyError{Code: ExitHashMismatch, Target: name + "@" + ref, Detail: fmt.Sprintf("the registry's manifest %s@%s has digest %s", name, ref, d)}
		}
		if _, ok := manifests[d]; ok {
			return d, nil
		}
		mt, _, _ := strings.Cut(hdr.Get("Content-Type"), ";")
		mt = strings.TrimSpace(mt)
		if _, err := mirror.ParseOCIManifest(b, mt); err != nil {
			return "", fmt.Errorf("exporting OCI repository %s: manifest %s: %w", name, ref, err)
		}
		if err := x.count(0); err != nil {
			return "", err
		}
		manifests[d] = b
		rec.Manifests = append(rec.Manifests, mirror.OCIManifestRef{Digest: d, MediaType: mt})
		queue = append(queue, d)
		return d, nil
	}
	for _, t := range tags {
		if mirror.CheckOCITag(t) != nil {
			return fmt.Errorf("exporting OCI repository %s: the registry lists tag %.140q, which is not a valid tag", name, t)
		}
		d, err := fetch(t)
		if err != nil {
			return err
		}
		rec.Tags[t] = d
	}
	for len(queue) > 0 {
		d := queue[0]
		queue = queue[1:]
		e, _ := recManifest(rec, d)
		m, _ := mirror.ParseOCIManifest(manifests[d], e.MediaType)
		for _, c := range m.Manifests {
			if !mirror.IsOCIDigest(c.Digest) {
				return fmt.Errorf("exporting OCI repository %s: manifest %s lists %.80s: only sha256 digests are carried by bundles", name, d, c.Digest)
			}
			if _, ok := manifests[c.Digest]; !ok {
				if _, err := fetch(c.Digest); err != nil {
					return err
				}
			}
		}
		for _, bl := range m.Blobs() {
			if err := x.blob(name, base, bl); err != nil {
				return err
			}
		}
		b, _, nf, err := x.get(base+"/referrers/"+d, "", 16<<20)
		if err != nil {
			return err
		}
		if nf {
			continue
		}
		var idx struct {
			Manifests []mirror.OCIDescriptor `json:"manifests"`
		}
		if err := strictjson.Check(b, strictjson.FieldsOf(idx)); err != nil {
			return fmt.Errorf("exporting OCI repository %s: the referrers of %s have more than one reading: %w", name, d, err)
		}
		if err := json.Unmarshal(b, &idx); err != nil {
			return fmt.Errorf("exporting OCI repository %s: the referrers of %s do not parse: %w", name, d, err)
		}
		for _, rd := range idx.Manifests {
			if !mirror.IsOCIDigest(rd.Digest) {
				return fmt.Errorf("exporting OCI repository %s: referrer %.80s of %s: only sha256 digests are carried by bundles", name, rd.Digest, d)
			}
			if _, ok := manifests[rd.Digest]; !ok {
				if _, err := fetch(rd.Digest); err != nil {
					return err
				}
			}
		}
	}
	for d, b := range manifests {
		x.files = append(x.files, mirror.BytesFile("v2/"+name+"/manifests/"+d, mirror.MediaTypeOCIManifest, b))
	}
	raw, err := rec.Encode()
	if err != nil {
		return fmt.Errorf("encoding the OCI repository record of %s: %w", name, err)
	}
	x.files = append(x.files, mirror.BytesFile("v2/"+name+"/"+mirror.OCIRepositoryFile, mirror.MediaTypeOCIRepository, raw))
	return nil
}

func recManifest(rec *mirror.OCIRepository, d string) (mirror.OCIManifestRef, bool) {
	for _, e := range rec.Manifests {
		if e.Digest == d {
			return e, true
		}
	}
	return mirror.OCIManifestRef{}, false
}

// blob stages one blob of repo (once per digest and repository), checking its size and
// digest as it streams.
func (x *ociExport) blob(repo, base string, d mirror.OCIDescriptor) error {
	if !mirror.IsOCIDigest(d.Digest) {
		return fmt.Errorf("exporting OCI repository %s: blob %.80s: only sha256 digests are carried by bundles", repo, d.Digest)
	}
	p := "v2/" + repo + "/blobs/" + d.Digest
	if x.done[p] {
		return nil
	}
	x.done[p] = true
	if d.Size < 0 {
		return fmt.Errorf("exporting OCI repository %s: blob %s has a negative size", repo, d.Digest)
	}
	hexd := strings.TrimPrefix(d.Digest, "sha256:")
	if err := x.count(d.Size); err != nil {
		return err
	}
	local, ok := x.blobs[hexd]
	if !ok {
		req, err := http.NewRequestWithContext(x.ctx, http.MethodGet, base+"/blobs/"+d.Digest, nil)
		if err != nil {
			return err
		}
		x.auth(req)
		resp, err := x.r.cfg.HTTPClient.Do(req)
		if err != nil {
			return fmt.Errorf("exporting OCI blob %s@%s: %w", repo, d.Digest, err)
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("exporting OCI blob %s@%s: the registry answered %d", repo, d.Digest, resp.StatusCode)
		}
		local = filepath.Join(x.staging, "oci-"+hexd)
		f, err := os.OpenFile(local, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
		if err != nil {
			return fmt.Errorf("staging OCI blob %s: %w", d.Digest, err)
		}
		h := sha256.New()
		n, err := io.Copy(io.MultiWriter(f, h), io.LimitReader(resp.Body, d.Size+1))
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return fmt.Errorf("exporting OCI blob %s@%s: %w", repo, d.Digest, err)
		}
		if got := "sha256:" + hex.EncodeToString(h.Sum(nil)); n != d.Size || got != d.Digest {
			return &VerifyError{Code: ExitHashMismatch, Target: repo + "@" + d.Digest, Detail: fmt.Sprintf("the registry sent %d bytes with digest %s for blob %s of %d bytes", n, got, d.Digest, d.Size)}
		}
		x.blobs[hexd] = local
	}
	x.files = append(x.files, mirror.OpenerFile(p, mirror.MediaTypeOCIBlob, d.Size, hexd, func() (io.ReadCloser, error) { return os.Open(local) }))
	return nil
}

// verifyBundleOCI checks the bundle's OCI files offline, after its TUF metadata verified:
// each repository belongs to a project whose role verified; its record parses, names
// only manifests the bundle carries (whose bytes the bundle reader hashed against their
// names), under valid tags; every manifest parses as the media type the record gives,
// and every blob and child manifest it references is in the repository with the size
// its descriptor says; no OCI file is left unreferenced. Release tags are bound to TUF
// (DESIGN.md "OCI registry"): in a project's repository, the tag of each release the
// verified role lists must resolve to api.ReleaseManifest of that release, byte for
// byte, and any manifest of the release artifact type anywhere must be one of them.
// It returns the numbers of repositories and manifests checked.
func verifyBundleOCI(b *mirror.Bundle, trusted *trustedmetadata.TrustedMetadata) (repos, manifests int, err error) {
	type repoFiles struct {
		record    *mirror.File
		manifests map[string]mirror.File
		blobs     map[string]mirror.File
	}
	byRepo := map[string]*repoFiles{}
	for i, f := range b.Files {
		switch f.MediaType {
		case mirror.MediaTypeOCIManifest, mirror.MediaTypeOCIBlob, mirror.MediaTypeOCIRepository:
		default:
			continue
		}
		repo, kind, d, err := mirror.OCIPath(f.Path)
		if err != nil {
			return 0, 0, &VerifyError{Code: ExitMalformed, Detail: "bundle file " + f.Path + ": " + api.ProblemFor(err).Detail, Err: err}
		}
		rf := byRepo[repo]
		if rf == nil {
			rf = &repoFiles{manifests: map[string]mirror.File{}, blobs: map[string]mirror.File{}}
			byRepo[repo] = rf
		}
		switch kind {
		case "repository":
			rf.record = &b.Files[i]
		case "manifests":
			rf.manifests[d] = f
		case "blobs":
			rf.blobs[d] = f
		}
	}
	// The releases the verified roles list, by project and tag: the manifest each tag
	// must resolve to.
	releaseDigests := func(project string) map[string][]string {
		md := trusted.Targets[project]
		if md == nil {
			return nil
		}
		files := map[string][]api.ReleaseFile{}
		for tp, tf := range md.Signed.Targets {
			version, file, err := tufrepo.SplitTargetPath(project, tp)
			if err != nil {
				continue
			}
			files[version] = append(files[version], api.ReleaseFile{Name: file, Length: tf.Length, SHA256: hex.EncodeToString(tf.Hashes["sha256"])})
		}
		out := map[string][]string{}
		for v, fs := range files {
			sum := sha256.Sum256(api.ReleaseManifest(project, v, fs))
			t := api.ReleaseTag(v)
			out[t] = append(out[t], "sha256:"+hex.EncodeToString(sum[:]))
		}
		return out
	}
	names := make([]string, 0, len(byRepo))
	for n := range byRepo {
		names = append(names, n)
	}
	slices.Sort(names)
	for _, name := range names {
		rf := byRepo[name]
		project, _, _ := strings.Cut(name, "/")
		fail := func(code ExitCode, format string, args ...any) error {
			return &VerifyError{Code: code, Role: project, Target: name, Detail: fmt.Sprintf("OCI repository %s: ", name) + fmt.Sprintf(format, args...)}
		}
		if md := trusted.Targets[project]; md == nil || tufrepo.IsReservedRole(project) {
			return 0, 0, fail(ExitPolicy, "the bundle carries it, but project %s's role is not among the bundle's verified metadata", project)
		}
		if rf.record == nil {
			return 0, 0, fail(ExitMalformed, "the bundle has its files but no %s", mirror.OCIRepositoryFile)
		}
		raw, err := rf.record.ReadAll(maxBundleMetadata)
		if err != nil {
			return 0, 0, bundleError(err, project, rf.record.Path, "unreadable")
		}
		rec, err := mirror.ParseOCIRepository(raw)
		if err != nil {
			return 0, 0, fail(ExitMalformed, "%s", api.ProblemFor(err).Detail)
		}
		if rec.Name != name {
			return 0, 0, fail(ExitPolicy, "its record names repository %.120q", rec.Name)
		}
		releases := releaseDigests(project)
		usedBlobs := map[string]bool{}
		parsed := map[string]*mirror.OCIManifest{}
		for _, e := range rec.Manifests {
			f, ok := rf.manifests[e.Digest]
			if !ok {
				return 0, 0, fail(ExitPolicy, "its record lists manifest %.80s, which the bundle does not carry (dropped after export)", e.Digest)
			}
			mb, err := f.ReadAll(mirror.MaxOCIManifest)
			if err != nil {
				return 0, 0, bundleError(err, project, f.Path, "unreadable")
			}
			m, err := mirror.ParseOCIManifest(mb, e.MediaType)
			if err != nil {
				return 0, 0, fail(CodeExit(api.CodeOf(err)), "manifest %s: %s", e.Digest, api.ProblemFor(err).Detail)
			}
			parsed[e.Digest] = m
		}
		for d := range rf.manifests {
			if _, ok := parsed[d]; !ok {
				return 0, 0, fail(ExitPolicy, "the bundle carries manifest %s, which its record does not list (added after export)", d)
			}
		}
		for _, e := range rec.Manifests {
			m := parsed[e.Digest]
			for _, c := range m.Manifests {
				cm, ok := rf.manifests[c.Digest]
				if !ok {
					return 0, 0, fail(ExitPolicy, "index %s lists manifest %.80s, which the bundle does not carry", e.Digest, c.Digest)
				}
				if cm.Size != c.Size {
					return 0, 0, fail(ExitHashMismatch, "index %s lists manifest %s of %d bytes; the bundle's is %d bytes", e.Digest, c.Digest, c.Size, cm.Size)
				}
			}
			for _, bl := range m.Blobs() {
				bf, ok := rf.blobs[bl.Digest]
				if !ok {
					return 0, 0, fail(ExitPolicy, "manifest %s references blob %.80s, which the bundle does not carry (dropped after export)", e.Digest, bl.Digest)
				}
				if bf.Size != bl.Size {
					return 0, 0, fail(ExitHashMismatch, "manifest %s references blob %s of %d bytes; the bundle's is %d bytes", e.Digest, bl.Digest, bl.Size, bf.Size)
				}
				usedBlobs[bl.Digest] = true
			}
			// A release manifest is TUF's: it must be one the verified role implies.
			if m.ArtifactType == api.ArtifactTypeRelease {
				if p := m.Annotations["dev.cairn.project"]; p != project {
					return 0, 0, fail(ExitPolicy, "manifest %s is a release manifest of project %.80q, not of %s", e.Digest, p, project)
				}
				v := m.Annotations["org.opencontainers.image.version"]
				if !slices.Contains(releases[api.ReleaseTag(v)], e.Digest) {
					return 0, 0, fail(ExitHashMismatch, "manifest %s is a release manifest of %s %.80s, but the release the verified role lists implies another manifest (or none): it was altered", e.Digest, project, v)
				}
			}
		}
		for d := range rf.blobs {
			if !usedBlobs[d] {
				return 0, 0, fail(ExitPolicy, "the bundle carries blob %s, which no manifest of the repository references (added after export)", d)
			}
		}
		for t, d := range rec.Tags {
			if err := mirror.CheckOCITag(t); err != nil {
				return 0, 0, fail(ExitMalformed, "%s", api.ProblemFor(err).Detail)
			}
			if _, ok := parsed[d]; !ok {
				return 0, 0, fail(ExitPolicy, "tag %s names manifest %.80s, which its record does not list", t, d)
			}
		}
		if name == project {
			for t, ds := range releases {
				if mirror.CheckOCITag(t) != nil {
					continue // a version longer than a tag may be is not served over OCI
				}
				got, ok := rec.Tags[t]
				if !ok {
					return 0, 0, fail(ExitPolicy, "the verified role lists the release of tag %s, but the repository's record has no such tag (dropped after export)", t)
				}
				if !slices.Contains(ds, got) {
					return 0, 0, fail(ExitHashMismatch, "tag %s resolves to %s, but the release the verified role lists implies %s: the tag does not match what the maintainers signed", t, got, strings.Join(ds, " or "))
				}
			}
		}
		repos++
		manifests += len(parsed)
	}
	return repos, manifests, nil
}
