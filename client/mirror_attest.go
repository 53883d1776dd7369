package client

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"

	"github.com/cairn-dev/cairn/api"
	"github.com/cairn-dev/cairn/attest"
	"github.com/cairn-dev/cairn/internal/strictjson"
	"github.com/cairn-dev/cairn/mirror"
	"github.com/cairn-dev/cairn/tufrepo"
	"github.com/theupdateframework/go-tuf/v2/metadata"
	"github.com/theupdateframework/go-tuf/v2/metadata/trustedmetadata"
	"github.com/theupdateframework/go-tuf/v2/metadata/updater"
)

// maxBundleAttestations bounds the attestation bundles one export carries or one
// verification reads (each at most attest.MaxBundleBytes); a file has at most 10,000.
const maxBundleAttestations = 1_000_000

// exportAttestations adds to a bundle, for every release file sha256 in shas, the committed
// attestation index target, the index role that lists it, every bundle the index lists
// (exact bytes, each verified with package attest against the trusted root first) with
// the origin's record of it, and the Sigstore trusted root target. Both targets come
// through up, the updater the export verified its metadata with, so they are the
// versions that metadata lists. It returns the files and the index roles loaded.
func (r *Repo) exportAttestations(ctx context.Context, ac *API, up *updater.Updater, shas []string, staging string, maxItems int) ([]mirror.File, []string, error) {
	shas = slices.Clone(shas)
	slices.Sort(shas)
	shas = slices.Compact(shas)
	if len(shas) == 0 {
		return nil, nil, nil
	}
	dir, err := os.MkdirTemp(staging, "attest-")
	if err != nil {
		return nil, nil, fmt.Errorf("exporting attestations: %w", err)
	}
	own := func(path string, max int64) (*metadata.TargetFiles, []byte, error) {
		tf, err := up.GetTargetInfo(path)
		if err != nil {
			if isTargetNotFound(err) {
				return nil, nil, nil
			}
			r.up = up
			defer func() { r.up = nil }()
			return nil, nil, r.tufError(err, "looking up "+path)
		}
		if tf.Length > max {
			return nil, nil, &VerifyError{Code: ExitPolicy, Target: path, Detail: fmt.Sprintf("the signed metadata lists it with %d bytes; at most %d are accepted", tf.Length, max)}
		}
		if len(tf.Hashes["sha256"]) != 32 {
			return nil, nil, &VerifyError{Code: ExitMalformed, Target: path, Detail: "the signed metadata lists no sha256 for it"}
		}
		// go-tuf checks length and hashes against the verified metadata.
		_, raw, err := up.DownloadTarget(tf, filepath.Join(dir, "target"), "")
		if err != nil {
			return nil, nil, &VerifyError{Code: ExitHashMismatch, Target: path, Detail: "downloading it through the verified metadata failed", Err: err}
		}
		return tf, raw, nil
	}
	tftr, trRaw, err := own(tufrepo.SigstoreTrustedRootTarget, attest.MaxTrustedRootBytes)
	if err != nil {
		return nil, nil, err
	}
	if tftr == nil {
		return nil, nil, nil // the repository takes no attestations
	}
	tr, err := attest.ParseTrustedRoot(trRaw)
	if err != nil {
		return nil, nil, &VerifyError{Code: ExitMalformed, Target: tufrepo.SigstoreTrustedRootTarget, Detail: "it is signed but cannot be read", Err: err}
	}
	keys, err := mirrorAttestationKeys(up.GetTrustedMetadataSet().Targets)
	if err != nil {
		return nil, nil, err
	}
	out := []mirror.File{mirror.BytesFile(mirror.OwnTargetPath(tufrepo.SigstoreTrustedRootTarget, hex.EncodeToString(tftr.Hashes["sha256"])), mirror.MediaTypeOwnTarget, trRaw)}
	var roles []string
	n := 0
	for _, sha := range shas {
		if len(sha) != 64 {
			continue // a target without sha256: the release-file export refuses it
		}
		if err := ctx.Err(); err != nil {
			return nil, nil, err
		}
		path := tufrepo.AttestationIndexTarget(sha)
		tf, raw, err := own(path, maxIndexBytes)
		if err != nil {
			return nil, nil, err
		}
		if tf == nil {
			continue
		}
		idx, err := parseIndex(raw, sha, path)
		if err != nil {
			return nil, nil, err
		}
		out = append(out, mirror.BytesFile(mirror.OwnTargetPath(path, hex.EncodeToString(tf.Hashes["sha256"])), mirror.MediaTypeOwnTarget, raw))
		roles = append(roles, tufrepo.AttestationShardRole(sha[:2]))
		if len(idx.Bundles) == 0 {
			continue
		}
		n += len(idx.Bundles)
		if n > maxBundleAttestations || n > maxItems {
			return nil, nil, api.Errorf(api.CodeTooLarge, "the export would hold more than %d attestations: select fewer projects, or raise --max-files", min(maxItems, maxBundleAttestations))
		}
		listed, err := ac.AttestationsOf(ctx, sha)
		if err != nil {
			return nil, nil, err
		}
		recs := map[string]api.Attestation{}
		for _, l := range listed {
			recs[l.BundleSHA256] = l
		}
		for _, b := range idx.Bundles {
			rec, ok := recs[b]
			if !ok {
				return nil, nil, &VerifyError{Code: ExitPolicy, Target: path, Err: ErrAttestationWithheld,
					Detail: fmt.Sprintf("the signed index commits attestation %s of sha256:%s, which the server's list leaves out", b, sha)}
			}
			braw, err := ac.AttestationBundle(ctx, sha, b)
			if err != nil {
				return nil, nil, err
			}
			v, err := attest.VerifyWithKeys(tr, braw, sha, keys[sha])
			switch {
			case api.CodeOf(err) == api.CodeAttestationKeyUnknown:
				// Signed with a key the project's verified delegation no longer lists: it
				// is committed, so the mirror carries it, and no client counts it.
			case err != nil:
				return nil, nil, &VerifyError{Code: ExitPolicy, Target: "attestation " + b, Err: ErrAttestationWithheld, Detail: "the signed index commits it, but it does not verify against the repository's trusted root"}
			default:
				if err := sameReading(rec, v.Attestation); err != nil {
					return nil, nil, &VerifyError{Code: ExitPolicy, Target: "attestation " + b, Detail: "the server's record of it is not what it says: " + err.Error()}
				}
			}
			rraw, err := json.Marshal(rec)
			if err != nil {
				return nil, nil, fmt.Errorf("encoding the record of attestation %s: %w", b, err)
			}
			out = append(out, mirror.BytesFile(mirror.AttestationPath(sha, b, false), mirror.MediaTypeAttestation, braw),
				mirror.BytesFile(mirror.AttestationPath(sha, b, true), mirror.MediaTypeAttestationRecord, rraw))
		}
	}
	slices.Sort(roles)
	return out, slices.Compact(roles), nil
}

// parseIndex reads an attestation index target strictly, for the file sha.
func parseIndex(raw []byte, sha, path string) (*tufrepo.AttestationIndex, error) {
	if err := strictjson.Check(raw, strictjson.FieldsOf(tufrepo.AttestationIndex{})); err != nil {
		return nil, &VerifyError{Code: ExitMalformed, Target: path, Detail: "the index cannot be read one way only", Err: err}
	}
	var idx tufrepo.AttestationIndex
	if err := json.Unmarshal(raw, &idx); err != nil || idx.FileSHA256 != sha {
		return nil, &VerifyError{Code: ExitMalformed, Target: path, Detail: fmt.Sprintf("the index is not the index of sha256:%s", sha), Err: err}
	}
	if len(idx.Bundles) > 10000 {
		return nil, &VerifyError{Code: ExitPolicy, Target: path, Detail: fmt.Sprintf("the index lists %d bundles; a file has at most 10000", len(idx.Bundles))}
	}
	return &idx, nil
}

// sameReading checks that the origin's record of a bundle says what this machine read in
// it: a mirror serves the record in its list, so it must claim nothing the bundle does not.
func sameReading(rec, v api.Attestation) error {
	switch {
	case rec.FileSHA256 != v.FileSHA256, rec.BundleSHA256 != v.BundleSHA256:
		return fmt.Errorf("it names file %s bundle %s", rec.FileSHA256, rec.BundleSHA256)
	case rec.Identity != v.Identity:
		return fmt.Errorf("it names signer %s (%s), the bundle %s (%s)", rec.Identity.SAN, rec.Identity.Issuer, v.Identity.SAN, v.Identity.Issuer)
	case rec.PredicateType != v.PredicateType || rec.SourceRepository != v.SourceRepository || rec.BuildSigner != v.BuildSigner:
		return fmt.Errorf("its predicate type, source repository or build signer differ from the bundle's")
	}
	return nil
}

// searchTarget finds path as a TUF client's pre-order search of the verified roles would
// (delegation paths and terminating delegations honoured), and the role that lists it.
// Roles that are not loaded are skipped: the bundle does not carry them.
func searchTarget(trusted *trustedmetadata.TrustedMetadata, path string) (*metadata.TargetFiles, string) {
	visited := map[string]bool{}
	stack := []string{tufrepo.RoleTargets}
	for len(stack) > 0 && len(visited) < 100_000 {
		role := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		if visited[role] {
			continue
		}
		visited[role] = true
		md := trusted.Targets[role]
		if md == nil {
			continue
		}
		if tf, ok := md.Signed.Targets[path]; ok {
			return tf, role
		}
		if md.Signed.Delegations == nil {
			continue
		}
		var children []string
		for _, d := range md.Signed.Delegations.Roles {
			if ok, err := d.IsDelegatedPath(path); err == nil && ok {
				children = append(children, d.Name)
				if d.Terminating {
					stack = stack[:0]
					break
				}
			}
		}
		for i := len(children) - 1; i >= 0; i-- {
			stack = append(stack, children[i])
		}
	}
	return nil, ""
}

// verifyBundleAttestations checks the attestation files of a bundle offline: every own
// target against the verified role a TUF client's search finds it in; for every release
// file of the bundle whose index the verified metadata lists, the index itself, and for
// every bundle it lists the bundle (its sha256 is the one listed, and it verifies with
// package attest against the TUF-delivered trusted root) and the origin's record of it
// (saying what the bundle says). Files the bundle does not carry are taken from base. No
// attestation file may be left that no verified index lists. It returns the number of
// attestations verified.
func verifyBundleAttestations(b *mirror.Bundle, trusted *trustedmetadata.TrustedMetadata, base *mirror.Dir, releases map[string]bool) (int, error) {
	read := func(path string, max int64) ([]byte, bool, error) {
		if f, ok := b.File(path); ok {
			raw, err := f.ReadAll(max)
			return raw, true, err
		}
		if base == nil {
			return nil, false, nil
		}
		raw, err := base.ReadFile(path, max)
		if errors.Is(err, fs.ErrNotExist) {
			return nil, false, nil
		}
		return raw, err == nil, err
	}
	// own looks an own target up in the verified metadata and reads its bytes.
	own := func(tp string, max int64) (*metadata.TargetFiles, []byte, error) {
		tf, _ := searchTarget(trusted, tp)
		if tf == nil {
			return nil, nil, nil
		}
		p := mirror.OwnTargetPath(tp, hex.EncodeToString(tf.Hashes["sha256"]))
		raw, ok, err := read(p, max)
		if err != nil {
			return nil, nil, bundleError(err, "", p, "unreadable")
		}
		if !ok {
			return tf, nil, nil
		}
		if err := tf.VerifyLengthHashes(raw); err != nil {
			return nil, nil, &VerifyError{Code: ExitHashMismatch, Target: tp, Detail: fmt.Sprintf("bundle file %s does not match the signed metadata", p), Err: err}
		}
		return tf, raw, nil
	}
	used := map[string]bool{}
	for _, f := range b.Files {
		if f.MediaType != mirror.MediaTypeOwnTarget {
			continue
		}
		tp, sum, err := mirror.OwnTargetFile(f.Path)
		if err != nil {
			return 0, bundleError(err, "", f.Path, "bad name")
		}
		tf, _ := searchTarget(trusted, tp)
		if tf == nil || hex.EncodeToString(tf.Hashes["sha256"]) != sum || tf.Length != f.Size {
			return 0, &VerifyError{Code: ExitPolicy, Target: tp, Detail: fmt.Sprintf("bundle file %s is not the version of %s the verified metadata lists: it was added or altered after export", f.Path, tp)}
		}
	}
	var tr *attest.TrustedRoot
	var keys map[string]attest.MaintainerKeys
	n := 0
	// The release files of the bundle, whose indexes must be there, and the files of the
	// indexes it carries (an incremental bundle carries those of files the mirror holds).
	want := maps.Clone(releases)
	for _, f := range b.Files {
		if f.MediaType == mirror.MediaTypeOwnTarget {
			if tp, _, _ := mirror.OwnTargetFile(f.Path); tp != tufrepo.SigstoreTrustedRootTarget {
				want[tp[len(tp)-len(".json")-64:len(tp)-len(".json")]] = true
			}
		}
	}
	shas := slices.Sorted(maps.Keys(want))
	for _, sha := range shas {
		path := tufrepo.AttestationIndexTarget(sha)
		tf, raw, err := own(path, maxIndexBytes)
		if err != nil {
			return n, err
		}
		if tf == nil {
			continue
		}
		if raw == nil && !releases[sha] {
			continue // a file of the mirror's whose index this bundle does not update
		}
		if raw == nil {
			return n, &VerifyError{Code: ExitPolicy, Target: path, Detail: fmt.Sprintf("the verified metadata lists the attestation index of sha256:%s, a release file of the bundle, but neither the bundle nor the mirror holds it: it was dropped after export", sha)}
		}
		used[mirror.OwnTargetPath(path, hex.EncodeToString(tf.Hashes["sha256"]))] = true
		idx, err := parseIndex(raw, sha, path)
		if err != nil {
			return n, err
		}
		if len(idx.Bundles) == 0 {
			continue
		}
		if tr == nil {
			ttf, traw, err := own(tufrepo.SigstoreTrustedRootTarget, attest.MaxTrustedRootBytes)
			if err != nil {
				return n, err
			}
			if traw == nil {
				return n, &VerifyError{Code: ExitPolicy, Target: tufrepo.SigstoreTrustedRootTarget, Detail: "the bundle carries attestations but not the Sigstore trusted root the verified metadata lists (or the metadata lists none): it was dropped after export"}
			}
			used[mirror.OwnTargetPath(tufrepo.SigstoreTrustedRootTarget, hex.EncodeToString(ttf.Hashes["sha256"]))] = true
			if tr, err = attest.ParseTrustedRoot(traw); err != nil {
				return n, &VerifyError{Code: ExitMalformed, Target: tufrepo.SigstoreTrustedRootTarget, Detail: "it is signed but cannot be read", Err: err}
			}
		}
		for _, bs := range idx.Bundles {
			bp, rp := mirror.AttestationPath(sha, bs, false), mirror.AttestationPath(sha, bs, true)
			braw, ok, err := read(bp, attest.MaxBundleBytes)
			if err != nil {
				return n, bundleError(err, "", bp, "unreadable")
			}
			if !ok {
				return n, &VerifyError{Code: ExitPolicy, Target: path, Err: ErrAttestationWithheld, Detail: fmt.Sprintf("the signed index commits attestation %s of sha256:%s, but neither the bundle nor the mirror holds %s: it was dropped after export", bs, sha, bp)}
			}
			if got := sha256.Sum256(braw); hex.EncodeToString(got[:]) != bs {
				return n, &VerifyError{Code: ExitHashMismatch, Target: "attestation " + bs, Detail: fmt.Sprintf("bundle file %s has sha256 %x, not the %s the signed index lists: it was altered after export", bp, got, bs)}
			}
			if keys == nil {
				if keys, err = mirrorAttestationKeys(trusted.Targets); err != nil {
					return n, err
				}
			}
			v, err := attest.VerifyWithKeys(tr, braw, sha, keys[sha])
			if api.CodeOf(err) == api.CodeAttestationKeyUnknown {
				// Committed, signed with a key the verified delegation no longer lists:
				// carried, not counted (as cairn attestations shows it).
				v, err = nil, nil
			}
			if err != nil {
				return n, &VerifyError{Code: ExitPolicy, Target: "attestation " + bs, Detail: fmt.Sprintf("bundle file %s does not verify against the TUF-delivered Sigstore trusted root", bp), Err: err}
			}
			rraw, ok, err := read(rp, 1<<20)
			if err != nil {
				return n, bundleError(err, "", rp, "unreadable")
			}
			if !ok {
				return n, &VerifyError{Code: ExitPolicy, Target: "attestation " + bs, Detail: fmt.Sprintf("the bundle holds no %s, the record a mirror lists it with: it was dropped after export", rp)}
			}
			var rec api.Attestation
			if err := strictjson.Check(rraw, strictjson.FieldsOf(api.Attestation{})); err != nil {
				return n, &VerifyError{Code: ExitMalformed, Target: "attestation " + bs, Detail: fmt.Sprintf("bundle file %s cannot be read one way only", rp), Err: err}
			}
			if err := json.Unmarshal(rraw, &rec); err != nil {
				return n, &VerifyError{Code: ExitMalformed, Target: "attestation " + bs, Detail: fmt.Sprintf("bundle file %s is not an attestation record", rp), Err: err}
			}
			// An untrusted key's bundle (v nil) has no reading to hold its record to.
			if v != nil {
				if err := sameReading(rec, v.Attestation); err != nil {
					return n, &VerifyError{Code: ExitPolicy, Target: "attestation " + bs, Detail: fmt.Sprintf("bundle file %s does not say what the bundle says: %s", rp, err)}
				}
			}
			used[bp], used[rp] = true, true
			if v != nil {
				n++ // verified ones; a rotated-out key's bundle is carried, not counted
			}
			if n > maxBundleAttestations {
				return n, &VerifyError{Code: ExitPolicy, Detail: fmt.Sprintf("the bundle carries more than %d attestations", maxBundleAttestations)}
			}
		}
	}
	for _, f := range b.Files {
		switch f.MediaType {
		case mirror.MediaTypeAttestation, mirror.MediaTypeAttestationRecord:
			if !used[f.Path] {
				return n, &VerifyError{Code: ExitPolicy, Detail: fmt.Sprintf("bundle file %s is an attestation that no verified attestation index of the bundle's release files lists: it was added after export", f.Path)}
			}
		case mirror.MediaTypeOwnTarget:
			tp, _, _ := mirror.OwnTargetFile(f.Path)
			if tp != tufrepo.SigstoreTrustedRootTarget && !used[f.Path] {
				return n, &VerifyError{Code: ExitPolicy, Target: tp, Detail: fmt.Sprintf("bundle file %s is the index of no release file of the bundle", f.Path)}
			}
		}
	}
	return n, nil
}

// mirrorAttestationKeys maps the sha256 of every target of every project role in the
// verified metadata to the maintainer keys that key-based attestations of it may be signed
// with: those of its projects' delegations there, projects in name order (as the server
// takes them).
func mirrorAttestationKeys(targets map[string]*metadata.Metadata[metadata.TargetsType]) (map[string]attest.MaintainerKeys, error) {
	out := map[string]attest.MaintainerKeys{}
	for _, name := range slices.Sorted(maps.Keys(targets)) {
		md := targets[name]
		if md == nil || tufrepo.ValidateProjectName(name) != nil {
			continue // the top-level targets, tree nodes and index roles
		}
		d, _ := findDelegation(targets, name)
		if d == nil {
			continue
		}
		for _, tf := range md.Signed.Targets {
			sha := hex.EncodeToString(tf.Hashes["sha256"])
			if out[sha] == nil {
				out[sha] = attest.MaintainerKeys{}
			}
			if err := tufrepo.AttestationKeys(out[sha], name, d.role.KeyIDs, d.keys); err != nil {
				return nil, &VerifyError{Code: ExitMalformed, Target: name, Detail: "its delegation's keys cannot be read", Err: err}
			}
		}
	}
	return out, nil
}
