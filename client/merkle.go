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

	"github.com/cairn-dev/cairn/api"
	"github.com/cairn-dev/cairn/tufrepo"
	"github.com/cairn-dev/cairn/tufrepo/merkle"
	"github.com/theupdateframework/go-tuf/v2/metadata"
	"github.com/theupdateframework/go-tuf/v2/metadata/trustedmetadata"
)

// Errors of the Merkle snapshot path (DESIGN.md "Merkle snapshot"), each wrapped in a
// *VerifyError that names the role, version and timestamp. None of them falls back to the
// classic snapshot: a proof that fails is an attack or a broken server, not an old one.
var (
	// ErrMerkleProof: the inclusion proof does not lead to the root the verified
	// timestamp signed (a proof from another tree: mix-and-match), or is malformed.
	ErrMerkleProof = errors.New("the Merkle inclusion proof does not verify against the signed timestamp")
	// ErrMerkleRollback: the tree lists an older version of a role than this client
	// trusted before, or the same version with other bytes.
	ErrMerkleRollback = errors.New("the Merkle snapshot rolls a role back")
	// ErrMerkleMissingRole: the tree has no leaf for a role that a verified role delegates.
	ErrMerkleMissingRole = errors.New("the Merkle snapshot does not list a delegated role")
	// ErrMerkleLeafMismatch: the role's bytes differ from what its leaf commits to (a
	// same-version swap).
	ErrMerkleLeafMismatch = errors.New("the role's bytes differ from its Merkle snapshot leaf")
)

// Bounds of the Merkle path's downloads.
const (
	maxProofBytes     = 64 << 10
	rootMaxLength     = 512000 // go-tuf's defaults
	timestampMaxBytes = 16384
	maxRootRotations  = 256
	maxDelegations    = 32
)

// tufView is what Repo reads from a refresh: go-tuf's updater (classic snapshot) or the
// Merkle path.
type tufView interface {
	GetTargetInfo(targetPath string) (*metadata.TargetFiles, error)
	GetTrustedMetadataSet() trustedmetadata.TrustedMetadata
}

// merkleView is a refresh through the Merkle snapshot: root and timestamp verified as
// go-tuf's updater does, then each role on a lookup's path proven against the timestamp's
// tree, fetched, checked against its leaf and verified against its delegator by go-tuf's
// TrustedMetadata. The trusted set's Snapshot is a stand-in built from proven leaves only
// (version, length, sha256), so go-tuf's own checks of each role run against them.
type merkleView struct {
	r       *Repo
	trusted *trustedmetadata.TrustedMetadata
	root    merkle.Root
	ts      int64
}

func (m *merkleView) GetTrustedMetadataSet() trustedmetadata.TrustedMetadata { return *m.trusted }

// refreshMerkle verifies root and timestamp; it returns a nil view (and no error) when the
// verified timestamp carries no Merkle snapshot, for the caller to use the classic one.
func (r *Repo) refreshMerkle(ctx context.Context) (*merkleView, error) {
	if err := os.MkdirAll(r.cfg.MetadataDir, 0o700); err != nil {
		return nil, fmt.Errorf("creating the metadata cache: %w", err)
	}
	trusted, err := trustedmetadata.New(r.startRoot())
	if err != nil {
		return nil, r.tufError(err, "loading the trusted root")
	}
	m := &merkleView{r: r, trusted: trusted}
	r.up = m // the error inspection reads what is trusted so far
	for v := trusted.Root.Signed.Version + 1; v < trusted.Root.Signed.Version+maxRootRotations; v++ {
		raw, err := r.fetch.DownloadFile(fmt.Sprintf("%s/metadata/%d.root.json", r.cfg.Server, v), rootMaxLength, 0)
		var httpErr *metadata.ErrDownloadHTTP
		if errors.As(err, &httpErr) && (httpErr.StatusCode == http.StatusNotFound || httpErr.StatusCode == http.StatusForbidden) {
			break
		}
		if err != nil {
			return nil, r.tufError(err, "refreshing TUF metadata from "+r.cfg.Server)
		}
		if _, err := trusted.UpdateRoot(raw); err != nil {
			return nil, r.tufError(err, "refreshing TUF metadata from "+r.cfg.Server)
		}
		if err := r.persist(tufrepo.RoleRoot, raw); err != nil {
			return nil, err
		}
	}
	// sawTree: the last verified timestamp committed to a Merkle snapshot. A newer one
	// without it is refused: dropping the tree would silently give up the leaf hashes (the
	// same-version swap they close) for the classic snapshot.
	sawTree := int64(0)
	if local, err := os.ReadFile(filepath.Join(r.cfg.MetadataDir, "timestamp.json")); err == nil {
		// The last verified timestamp: the new one must not be older (go-tuf's checks).
		if _, err := trusted.UpdateTimestamp(local); err != nil && !errors.Is(err, &metadata.ErrRepository{}) {
			return nil, r.tufError(err, "loading the cached timestamp")
		}
		if trusted.Timestamp != nil {
			if _, ok := trusted.Timestamp.Signed.UnrecognizedFields[merkle.FieldName]; ok {
				sawTree = trusted.Timestamp.Signed.Version
			}
		}
	}
	raw, err := r.fetch.DownloadFile(r.cfg.Server+"/metadata/timestamp.json", timestampMaxBytes, 0)
	if err != nil {
		return nil, r.tufError(err, "refreshing TUF metadata from "+r.cfg.Server)
	}
	if _, err := trusted.UpdateTimestamp(raw); err != nil {
		if !errors.Is(err, &metadata.ErrEqualVersionNumber{}) {
			return nil, r.tufError(err, "refreshing TUF metadata from "+r.cfg.Server)
		}
	} else if err := r.persist(tufrepo.RoleTimestamp, raw); err != nil {
		return nil, err
	}
	ts := trusted.Timestamp
	field, ok := ts.Signed.UnrecognizedFields[merkle.FieldName]
	if !ok {
		if sawTree > 0 {
			return nil, &VerifyError{Code: ExitPolicy, Role: tufrepo.RoleTimestamp, Detail: fmt.Sprintf("timestamp version %d from %s has no Merkle snapshot (%s), but version %d, verified before, had one: a server that drops the tree gives up the leaf hashes that protect against a same-version role swap; if the operator really went back to a server without it, use --classic-snapshot", ts.Signed.Version, r.cfg.Server, merkle.FieldName, sawTree)}
		}
		return nil, nil
	}
	if m.root, err = merkle.ParseField(field); err != nil {
		return nil, &VerifyError{Code: ExitMalformed, Role: tufrepo.RoleTimestamp, Detail: fmt.Sprintf("timestamp version %d has a malformed %s field", ts.Signed.Version, merkle.FieldName), Err: err}
	}
	m.ts = ts.Signed.Version
	sm := ts.Signed.Meta[tufrepo.MetaName(tufrepo.RoleSnapshot)]
	if sm == nil {
		return nil, &VerifyError{Code: ExitMalformed, Role: tufrepo.RoleTimestamp, Detail: fmt.Sprintf("timestamp version %d names no snapshot", ts.Signed.Version)}
	}
	// The stand-in snapshot: the version the timestamp names, its expiry, and (filled as
	// roles are proven) the proven leaves. It is never written to disk.
	snap := metadata.Snapshot(ts.Signed.Expires)
	snap.Signed.Version = sm.Version
	snap.Signed.Meta = map[string]*metadata.MetaFiles{}
	trusted.Snapshot = snap
	if _, err := m.loadRole(tufrepo.RoleTargets, tufrepo.RoleRoot); err != nil {
		return nil, err
	}
	return m, nil
}

// persist writes verified metadata to the cache as go-tuf's updater names it.
func (r *Repo) persist(role string, raw []byte) error {
	dst := filepath.Join(r.cfg.MetadataDir, url.PathEscape(role)+".json")
	tmp, err := os.CreateTemp(r.cfg.MetadataDir, "tuf_tmp")
	if err != nil {
		return fmt.Errorf("caching %s metadata: %w", role, err)
	}
	_, werr := tmp.Write(raw)
	if werr == nil {
		werr = tmp.Sync() // durable before the rename makes it the trusted copy
	}
	if cerr := tmp.Close(); werr == nil {
		werr = cerr
	}
	if werr == nil {
		werr = os.Rename(tmp.Name(), dst)
	}
	if werr != nil {
		os.Remove(tmp.Name())
		return fmt.Errorf("caching %s metadata: %w", role, werr)
	}
	return nil
}

// proofError is a *VerifyError about role in the tree of the verified timestamp.
func (m *merkleView) proofError(code ExitCode, role string, cause error, format string, args ...any) error {
	return &VerifyError{Code: code, Role: role, Detail: fmt.Sprintf(format, args...) + fmt.Sprintf(" (Merkle snapshot of timestamp version %d, %d leaves)", m.ts, m.root.Size), Err: cause}
}

// proof fetches and verifies the leaf of role in the timestamp's tree.
func (m *merkleView) proof(role string) (merkle.Leaf, error) {
	r := m.r
	ctx := r.fetch.ctx
	if ctx == nil {
		ctx = context.Background()
	}
	u := fmt.Sprintf("%s/api/v1/merkle/%d/%s", r.cfg.Server, m.ts, url.PathEscape(role))
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return merkle.Leaf{}, err
	}
	req.Header.Set("User-Agent", r.cfg.UserAgent)
	resp, err := r.cfg.HTTPClient.Do(req)
	if te := asTimeout(err); te != nil {
		return merkle.Leaf{}, fmt.Errorf("fetching the Merkle proof of %s: %w", role, te)
	}
	if err != nil {
		return merkle.Leaf{}, fmt.Errorf("fetching the Merkle proof of %s: %w", role, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxProofBytes+1))
	if err != nil {
		return merkle.Leaf{}, fmt.Errorf("fetching the Merkle proof of %s from %s: %w", role, u, err)
	}
	if resp.StatusCode != http.StatusOK {
		var p api.Problem
		_ = json.Unmarshal(body, &p)
		if p.Code == api.CodeRoleNotInTree {
			return merkle.Leaf{}, m.proofError(ExitPolicy, role, ErrMerkleMissingRole, "the server says the Merkle snapshot has no leaf for role %q, which a verified role delegates: a snapshot that drops a role is refused", role)
		}
		return merkle.Leaf{}, fmt.Errorf("fetching the Merkle proof of %s from %s: server answered %d %s %s", role, u, resp.StatusCode, p.Code, p.Detail)
	}
	return m.checkProof(body, role, u)
}

// checkProof verifies body, the Merkle proof of role fetched from u, against the verified
// timestamp's tree, and returns the proven leaf. It is also how a mirror bundle's proofs
// are checked (VerifyBundle), with u the bundle file.
func (m *merkleView) checkProof(body []byte, role, u string) (merkle.Leaf, error) {
	if len(body) > maxProofBytes {
		return merkle.Leaf{}, m.proofError(ExitMalformed, role, ErrMerkleProof, "the Merkle proof from %s is larger than %d bytes", u, maxProofBytes)
	}
	if err := tufrepo.CheckJSON(body, "Merkle proof of "+role); err != nil {
		return merkle.Leaf{}, m.proofError(ExitMalformed, role, errors.Join(ErrMerkleProof, err), "the Merkle proof from %s is not unambiguous JSON", u)
	}
	var p api.MerkleProof
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&p); err != nil {
		return merkle.Leaf{}, m.proofError(ExitMalformed, role, errors.Join(ErrMerkleProof, err), "the Merkle proof from %s does not parse", u)
	}
	if p.Role != role {
		return merkle.Leaf{}, m.proofError(ExitPolicy, role, ErrMerkleMissingRole, "asked for the leaf of role %q, the server answered the leaf of %q: the tree does not list the role as asked", role, p.Role)
	}
	if p.Timestamp != m.ts || p.Size != m.root.Size {
		return merkle.Leaf{}, m.proofError(ExitHashMismatch, role, ErrMerkleProof, "the proof of %s version %d is for timestamp %d and a tree of %d leaves, not the verified timestamp's", role, p.Version, p.Timestamp, p.Size)
	}
	leaf := merkle.Leaf{Role: p.Role, Version: p.Version, Length: p.Length}
	sum, err := hex.DecodeString(p.SHA256)
	if err != nil || len(sum) != sha256.Size || len(p.Hashes) > merkle.MaxProofHashes {
		return merkle.Leaf{}, m.proofError(ExitMalformed, role, ErrMerkleProof, "the Merkle proof of %s has a malformed sha256 or too many hashes", role)
	}
	copy(leaf.SHA256[:], sum)
	hs := make([]merkle.Hash, len(p.Hashes))
	for i, h := range p.Hashes {
		b, err := hex.DecodeString(h)
		if err != nil || len(b) != sha256.Size {
			return merkle.Leaf{}, m.proofError(ExitMalformed, role, ErrMerkleProof, "hash %d of the Merkle proof of %s is not 64 hex digits", i, role)
		}
		copy(hs[i][:], b)
	}
	if err := merkle.VerifyInclusion(m.root, p.Index, leaf, hs); err != nil {
		return merkle.Leaf{}, m.proofError(ExitHashMismatch, role, errors.Join(ErrMerkleProof, err), "the proof of %s version %d (leaf %d) does not lead to the root that timestamp version %d signed: a proof from another tree (mix-and-match) or a forged leaf", role, p.Version, p.Index, m.ts)
	}
	return leaf, nil
}

// loadRole proves, fetches (unless the cache holds exactly the leaf's bytes) and verifies
// role, delegated by parent.
func (m *merkleView) loadRole(role, parent string) (*metadata.Metadata[metadata.TargetsType], error) {
	if md, ok := m.trusted.Targets[role]; ok {
		return md, nil
	}
	r := m.r
	leaf, err := m.proof(role)
	if err != nil {
		return nil, err
	}
	local, _ := os.ReadFile(filepath.Join(r.cfg.MetadataDir, url.PathEscape(role)+".json"))
	if local != nil {
		// The version this client trusted before: the tree may not go back, nor list
		// other bytes under the same version.
		var prev struct {
			Signed struct {
				Version int64 `json:"version"`
			} `json:"signed"`
		}
		if json.Unmarshal(local, &prev) == nil && prev.Signed.Version > 0 {
			sum := sha256.Sum256(local)
			switch {
			case leaf.Version < prev.Signed.Version:
				return nil, m.proofError(ExitPolicy, role, ErrMerkleRollback, "the tree lists %s version %d, older than version %d this client trusted before: a rollback", role, leaf.Version, prev.Signed.Version)
			case leaf.Version == prev.Signed.Version && (sum != leaf.SHA256 || int64(len(local)) != leaf.Length):
				return nil, m.proofError(ExitPolicy, role, ErrMerkleRollback, "the tree lists %s version %d with sha256 %x, but the version %d this client trusted before has sha256 %x: the same version with other bytes", role, leaf.Version, leaf.SHA256, leaf.Version, sum)
			}
		}
	}
	mf := metadata.MetaFile(leaf.Version)
	mf.Length = leaf.Length
	mf.Hashes = metadata.Hashes{"sha256": leaf.SHA256[:]}
	m.trusted.Snapshot.Signed.Meta[tufrepo.MetaName(role)] = mf
	if local != nil && sha256.Sum256(local) == leaf.SHA256 {
		if md, err := m.trusted.UpdateDelegatedTargets(local, role, parent); err == nil {
			return md, nil
		}
	}
	u := fmt.Sprintf("%s/metadata/%d.%s.json", r.cfg.Server, leaf.Version, url.PathEscape(role))
	raw, err := r.fetch.DownloadFile(u, leaf.Length, 0)
	if err != nil {
		var lenErr *metadata.ErrDownloadLengthMismatch
		if errors.As(err, &lenErr) {
			return nil, m.proofError(ExitHashMismatch, role, errors.Join(ErrMerkleLeafMismatch, err), "%s is longer than the %d bytes its leaf commits to", u, leaf.Length)
		}
		return nil, r.tufError(err, fmt.Sprintf("fetching %s version %d", role, leaf.Version))
	}
	if sum := sha256.Sum256(raw); sum != leaf.SHA256 || int64(len(raw)) != leaf.Length {
		return nil, m.proofError(ExitHashMismatch, role, ErrMerkleLeafMismatch, "%s has sha256 %x and %d bytes; the leaf of %s version %d commits to %x and %d bytes: the role was swapped after it was published", u, sum, len(raw), role, leaf.Version, leaf.SHA256, leaf.Length)
	}
	md, err := m.trusted.UpdateDelegatedTargets(raw, role, parent)
	if err != nil {
		return nil, r.tufError(err, fmt.Sprintf("verifying %s version %d", role, leaf.Version))
	}
	if err := r.persist(role, raw); err != nil {
		return nil, err
	}
	return md, nil
}

// GetTargetInfo looks targetPath up by TUF's pre-order depth-first walk of the delegations
// (TUF 5.6.7, as go-tuf's updater does), loading each role through the Merkle snapshot.
func (m *merkleView) GetTargetInfo(targetPath string) (*metadata.TargetFiles, error) {
	type visit struct{ role, parent string }
	stack := []visit{{tufrepo.RoleTargets, tufrepo.RoleRoot}}
	seen := map[string]bool{}
	for len(stack) > 0 && len(seen) <= maxDelegations {
		v := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		if seen[v.role] {
			continue
		}
		md, err := m.loadRole(v.role, v.parent)
		if err != nil {
			return nil, err
		}
		if tf, ok := md.Signed.Targets[targetPath]; ok {
			return tf, nil
		}
		seen[v.role] = true
		if md.Signed.Delegations == nil {
			continue
		}
		var children []visit
		for _, d := range md.Signed.Delegations.GetRolesForTarget(targetPath) {
			children = append(children, visit{d.Name, v.role})
			if d.Terminating {
				stack = nil
				break
			}
		}
		slices.Reverse(children)
		stack = append(stack, children...)
	}
	return nil, fmt.Errorf("target %s not found", targetPath)
}
