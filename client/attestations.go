package client

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/cairn-dev/cairn/api"
	"github.com/cairn-dev/cairn/attest"
	"github.com/cairn-dev/cairn/internal/strictjson"
	"github.com/cairn-dev/cairn/tufrepo"
	"github.com/theupdateframework/go-tuf/v2/metadata"
)

// ErrAttestationWithheld: the attestation index committed in TUF metadata lists a bundle
// that the server's list leaves out (or will not serve): the server hides an attestation.
var ErrAttestationWithheld = errors.New("the server withholds an attestation that the signed attestation index lists")

// maxIndexBytes bounds an index target: 10,000 bundles of ~70 bytes each.
const maxIndexBytes = 1 << 20

// loadTarget looks a target up through the verified metadata and downloads it into
// memory (at most max bytes), checking length and hashes. found is false when the
// verified metadata does not list it.
func (r *Repo) loadTarget(ctx context.Context, path string, max int64) (raw []byte, found bool, err error) {
	if err := r.Refresh(ctx); err != nil {
		return nil, false, err
	}
	r.fetch.ctx = ctx
	tf, err := r.up.GetTargetInfo(path)
	if err != nil {
		if isTargetNotFound(err) {
			return nil, false, nil
		}
		return nil, false, r.tufError(err, fmt.Sprintf("looking up %s", path))
	}
	if tf.Length > max {
		return nil, false, &VerifyError{Code: ExitPolicy, Target: path, Detail: fmt.Sprintf("the signed metadata lists it with %d bytes; at most %d are accepted", tf.Length, max)}
	}
	dir, err := os.MkdirTemp("", "cairn-target-")
	if err != nil {
		return nil, false, fmt.Errorf("downloading %s: %w", path, err)
	}
	defer os.RemoveAll(dir)
	local := filepath.Join(dir, "target")
	if err := r.downloadTarget(ctx, path, tf, local); err != nil {
		return nil, false, err
	}
	raw, err = os.ReadFile(local)
	if err != nil {
		return nil, false, fmt.Errorf("reading downloaded %s: %w", path, err)
	}
	return raw, true, nil
}

// SigstoreTrustedRoot returns the repository's Sigstore trusted root, obtained through TUF
// (the target _cairn/sigstore/trusted_root.json): ErrNotFound-coded if the repository
// publishes none.
func (r *Repo) SigstoreTrustedRoot(ctx context.Context) (*attest.TrustedRoot, error) {
	raw, found, err := r.loadTarget(ctx, tufrepo.SigstoreTrustedRootTarget, attest.MaxTrustedRootBytes)
	if err != nil {
		return nil, err
	}
	if !found {
		return nil, api.Errorf(api.CodeAttestationsOff, "%s publishes no Sigstore trusted root (%s): it takes no attestations", r.cfg.Server, tufrepo.SigstoreTrustedRootTarget)
	}
	tr, err := attest.ParseTrustedRoot(raw)
	if err != nil {
		return nil, &VerifyError{Code: ExitMalformed, Target: tufrepo.SigstoreTrustedRootTarget, Detail: "it is signed but cannot be read", Err: err}
	}
	return tr, nil
}

// AttestationIndex returns the committed index of a file's attestations as of the
// verified snapshot; an empty index if the metadata lists none.
func (r *Repo) AttestationIndex(ctx context.Context, fileSHA256 string) (*tufrepo.AttestationIndex, error) {
	path := tufrepo.AttestationIndexTarget(fileSHA256)
	raw, found, err := r.loadTarget(ctx, path, maxIndexBytes)
	if err != nil {
		return nil, err
	}
	if !found {
		return &tufrepo.AttestationIndex{FileSHA256: fileSHA256, Bundles: []string{}}, nil
	}
	if err := strictjson.Check(raw, strictjson.FieldsOf(tufrepo.AttestationIndex{})); err != nil {
		return nil, &VerifyError{Code: ExitMalformed, Target: path, Detail: "the index cannot be read one way only", Err: err}
	}
	var idx tufrepo.AttestationIndex
	if err := json.Unmarshal(raw, &idx); err != nil || idx.FileSHA256 != fileSHA256 {
		return nil, &VerifyError{Code: ExitMalformed, Target: path, Detail: fmt.Sprintf("the index is not the index of sha256:%s", fileSHA256), Err: err}
	}
	return &idx, nil
}

// AttestationsOf lists every attestation the server has for a file, following pages
// (at most store.MaxAttestationsPerFile; the server's reading, not verified).
func (a *API) AttestationsOf(ctx context.Context, fileSHA256 string) ([]api.Attestation, error) {
	var out []api.Attestation
	var after int64
	for {
		var page api.AttestationList
		q := url.Values{"limit": {"1000"}}
		if after > 0 {
			q.Set("after", strconv.FormatInt(after, 10))
		}
		if _, err := a.do(ctx, request{method: http.MethodGet, url: a.endpoint(q, "api", "v1", "attestations", fileSHA256), out: &page}); err != nil {
			return nil, fmt.Errorf("listing the attestations of sha256:%s: %w", fileSHA256, err)
		}
		out = append(out, page.Attestations...)
		if page.Next == 0 || page.Next <= after || len(out) > 10000 {
			return out, nil
		}
		after = page.Next
	}
}

// AttestationBundle fetches a stored bundle's bytes and checks they are the ones named.
func (a *API) AttestationBundle(ctx context.Context, fileSHA256, bundleSHA256 string) ([]byte, error) {
	u := a.endpoint(nil, "api", "v1", "attestations", fileSHA256, bundleSHA256)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("User-Agent", a.ua)
	resp, err := a.hc.Do(req)
	if te := asTimeout(err); te != nil {
		return nil, te
	}
	if err != nil {
		return nil, fmt.Errorf("GET %s: %w", u, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("fetching attestation %s: %w", bundleSHA256, responseError(resp))
	}
	raw, err := io.ReadAll(io.LimitReader(resp.Body, attest.MaxBundleBytes+1))
	if err != nil {
		return nil, fmt.Errorf("fetching attestation %s: %w", bundleSHA256, err)
	}
	sum := sha256.Sum256(raw)
	if hex.EncodeToString(sum[:]) != bundleSHA256 {
		return nil, &VerifyError{Code: ExitHashMismatch, Target: "attestation " + bundleSHA256, Detail: fmt.Sprintf("the server sent %d bytes with sha256 %x", len(raw), sum)}
	}
	return raw, nil
}

// PostAttestation attaches a bundle to a published release file.
func (a *API) PostAttestation(ctx context.Context, fileSHA256 string, bundle []byte) (api.Attestation, error) {
	var res api.Attestation
	_, err := a.do(ctx, request{method: http.MethodPost, url: a.endpoint(nil, "api", "v1", "attestations", fileSHA256), body: bytes.NewReader(bundle), size: int64(len(bundle)), contentType: api.MediaSigstoreBundle, auth: true, out: &res})
	if err != nil {
		return res, fmt.Errorf("attaching an attestation to sha256:%s: %w", fileSHA256, err)
	}
	return res, nil
}

// VerifiedAttestation is one bundle verified on this machine.
type VerifiedAttestation struct {
	api.Attestation
	// Committed: the bundle is in the signed index of the verified snapshot. Bundles posted
	// after that snapshot are verified but not yet committed.
	Committed bool `json:"committed"`
	// MaintainerBound: the maintainers bound it to the file at upload, in the target's
	// signed custom data (cairn upload --attest).
	MaintainerBound bool `json:"maintainer_bound,omitempty"`
}

// AttestationSet is a file's attestations, every one verified offline against the trusted
// root obtained through TUF, and checked complete against the signed index.
type AttestationSet struct {
	FileSHA256        string                `json:"file_sha256"`
	SnapshotVersion   int64                 `json:"snapshot_version"`
	TrustedRootSHA256 string                `json:"trusted_root_sha256"`
	Committed         int                   `json:"committed"` // bundles the signed index lists
	Attestations      []VerifiedAttestation `json:"attestations"`
	// Refused are bundles the server lists that do not verify here (never counted).
	Refused []RefusedAttestation `json:"refused,omitempty"`
}

// RefusedAttestation is a listed bundle that failed verification on this machine.
type RefusedAttestation struct {
	BundleSHA256 string `json:"bundle_sha256"`
	Reason       string `json:"reason"`
}

// VerifyAttestations gathers and verifies a file's attestations. Every bundle of the
// signed index must be in the server's list and verify (ErrAttestationWithheld, exit 4,
// if the list leaves one out; a committed bundle that does not verify is an error too:
// the index only ever lists bundles the server verified). Listed bundles not yet
// committed are verified as well; those that fail are reported in Refused.
func VerifyAttestations(ctx context.Context, repo *Repo, a *API, fileSHA256 string) (*AttestationSet, error) {
	return VerifyFileAttestations(ctx, repo, a, api.File{SHA256: fileSHA256})
}

// VerifyFileAttestations is VerifyAttestations for a release file from verified metadata:
// the bundles its maintainers bound at upload (f.Attestations, from the signed target's
// custom data) are required like committed ones, and marked MaintainerBound.
func VerifyFileAttestations(ctx context.Context, repo *Repo, a *API, f api.File) (*AttestationSet, error) {
	fileSHA256 := f.SHA256
	if err := ValidateSHA256Hex(fileSHA256); err != nil {
		return nil, err
	}
	tr, err := repo.SigstoreTrustedRoot(ctx)
	if err != nil {
		return nil, err
	}
	idx, err := repo.AttestationIndex(ctx, fileSHA256)
	if err != nil {
		return nil, err
	}
	listed, err := a.AttestationsOf(ctx, fileSHA256)
	if err != nil {
		return nil, err
	}
	set := &AttestationSet{FileSHA256: fileSHA256, SnapshotVersion: repo.SnapshotVersion(), TrustedRootSHA256: tr.SHA256, Committed: len(idx.Bundles), Attestations: []VerifiedAttestation{}}
	inList := map[string]bool{}
	for _, l := range listed {
		inList[l.BundleSHA256] = true
	}
	for _, b := range idx.Bundles {
		if !inList[b] {
			return nil, &VerifyError{Code: ExitPolicy, Target: tufrepo.AttestationIndexTarget(fileSHA256), Err: ErrAttestationWithheld,
				Detail: fmt.Sprintf("snapshot %d commits attestation %s of sha256:%s, which the server's list leaves out", set.SnapshotVersion, b, fileSHA256)}
		}
	}
	for _, b := range f.Attestations {
		if !inList[b] {
			return nil, &VerifyError{Code: ExitPolicy, Target: f.Path, Err: ErrAttestationWithheld,
				Detail: fmt.Sprintf("the maintainers bound attestation %s to it at upload (signed target custom data), and the server's list leaves it out", b)}
		}
	}
	order := slices.Clone(idx.Bundles)
	for _, b := range f.Attestations {
		if !slices.Contains(order, b) {
			order = append(order, b)
		}
	}
	for _, l := range listed {
		if !slices.Contains(order, l.BundleSHA256) {
			order = append(order, l.BundleSHA256)
		}
	}
	keys := maintainerKeysOnce(ctx, repo, f)
	for _, b := range order {
		committed := slices.Contains(idx.Bundles, b)
		bound := slices.Contains(f.Attestations, b)
		raw, err := a.AttestationBundle(ctx, fileSHA256, b)
		if err == nil {
			var v *attest.Verified
			if v, err = keys.verify(tr, raw, fileSHA256); err == nil {
				set.Attestations = append(set.Attestations, VerifiedAttestation{Attestation: v.Attestation, Committed: committed, MaintainerBound: bound})
				continue
			}
			if errors.Is(err, errNoProjectKeys) {
				return nil, err
			}
		}
		// A committed key-based bundle whose key the verified delegation does not list
		// (any more: maintainers rotate keys) is served, so nothing is withheld; it is
		// just not trusted here.
		if (committed || bound) && api.CodeOf(err) != api.CodeAttestationKeyUnknown {
			return nil, &VerifyError{Code: ExitPolicy, Target: "attestation " + b, Err: ErrAttestationWithheld,
				Detail: fmt.Sprintf("snapshot %d commits it, but it cannot be fetched and verified", set.SnapshotVersion)}
		}
		set.Refused = append(set.Refused, RefusedAttestation{BundleSHA256: b, Reason: err.Error()})
	}
	return set, nil
}

// errNoProjectKeys marks a failure to load the project's verified delegation: an error of
// this machine or the repository, not a refusal of one bundle.
var errNoProjectKeys = errors.New("the maintainer keys of the project could not be read from verified metadata")

// projectKeys verifies bundles about one file with the maintainer keys of the file's
// project, as its TUF delegation lists them in verified metadata (never as the server
// says). The delegation is loaded at the first key-based bundle only: most files have none,
// and loading it refreshes the metadata.
type projectKeys struct {
	ctx     context.Context
	repo    *Repo
	project string // "" for a file known only by digest: key-based bundles are refused
	keys    attest.MaintainerKeys
	loaded  bool
}

func maintainerKeysOnce(ctx context.Context, repo *Repo, f api.File) *projectKeys {
	project, _, _ := strings.Cut(f.Path, "/")
	return &projectKeys{ctx: ctx, repo: repo, project: project}
}

// verify is attest.VerifyWithKeys with the project's keys.
func (p *projectKeys) verify(tr *attest.TrustedRoot, raw []byte, fileSHA256 string) (*attest.Verified, error) {
	v, err := attest.VerifyWithKeys(tr, raw, fileSHA256, p.keys)
	if api.CodeOf(err) != api.CodeAttestationKeyUnknown || p.loaded || p.project == "" {
		return v, err
	}
	p.loaded = true
	pr, kerr := p.repo.ProjectRole(p.ctx, p.project)
	if kerr != nil {
		return nil, fmt.Errorf("%w: %w", errNoProjectKeys, kerr)
	}
	p.keys = attest.MaintainerKeys{}
	if kerr := tufrepo.AttestationKeys(p.keys, pr.Name, pr.KeyIDs, pr.Keys); kerr != nil {
		return nil, fmt.Errorf("%w: %w", errNoProjectKeys, kerr)
	}
	return attest.VerifyWithKeys(tr, raw, fileSHA256, p.keys)
}

// Identities returns the distinct verified signer identities, sorted.
func (s *AttestationSet) Identities() []api.SignerIdentity {
	seen := map[api.SignerIdentity]bool{}
	var out []api.SignerIdentity
	for _, a := range s.Attestations {
		if !seen[a.Identity] {
			seen[a.Identity] = true
			out = append(out, a.Identity)
		}
	}
	slices.SortFunc(out, func(a, b api.SignerIdentity) int {
		if a.SAN != b.SAN {
			return strings.Compare(a.SAN, b.SAN)
		}
		return strings.Compare(a.Issuer, b.Issuer)
	})
	return out
}

// BindAttestations records, in the custom data of the targets of next (a project role
// version being written), the sha256 of each bundle bound to them: path → bundle digests.
// The maintainers' signature over the role then covers them. Only targets next adds may
// be given (published targets are immutable).
func BindAttestations(next *metadata.Metadata[metadata.TargetsType], bound map[string][]string) error {
	for path, digests := range bound {
		tf := next.Signed.Targets[path]
		if tf == nil {
			return api.Errorf(api.CodeBadRequest, "cannot bind attestations to %q: the new role version does not list it", path)
		}
		var c map[string]json.RawMessage
		if tf.Custom != nil {
			if err := json.Unmarshal(*tf.Custom, &c); err != nil {
				return fmt.Errorf("reading the custom data of %s: %w", path, err)
			}
		}
		if c == nil {
			c = map[string]json.RawMessage{}
		}
		d := slices.Clone(digests)
		slices.Sort(d)
		d = slices.Compact(d)
		list, err := json.Marshal(d)
		if err != nil {
			return err
		}
		c["attestations"] = list
		raw, err := json.Marshal(c)
		if err != nil {
			return err
		}
		if len(raw) > tufrepo.MaxCustomBytes {
			return api.Errorf(api.CodeTooLarge, "binding %d attestations to %s makes its custom data %d bytes; at most %d are allowed", len(d), path, len(raw), tufrepo.MaxCustomBytes)
		}
		msg := json.RawMessage(raw)
		tf.Custom = &msg
	}
	return nil
}
