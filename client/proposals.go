package client

import (
	"bytes"
	"context"
	"encoding/hex"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"time"

	"github.com/cairn-dev/cairn/api"
	"github.com/cairn-dev/cairn/tufrepo"
	"github.com/sigstore/sigstore/pkg/signature"
	"github.com/theupdateframework/go-tuf/v2/metadata"
)

// Pending returns the server's list of a project's open proposals: project role versions
// that carry fewer than the threshold of maintainer signatures. The list is NOT verified;
// check each proposal against the verified role (CheckProposal, DiffRoles) before signing.
func (a *API) Pending(ctx context.Context, project string) (api.ProposalList, error) {
	var res api.ProposalList
	if err := tufrepo.ValidateProjectName(project); err != nil {
		return res, err
	}
	_, err := a.do(ctx, request{
		method: http.MethodGet, url: a.endpoint(nil, "api", "v1", "projects", project, "pending"),
		auth: a.token != "", out: &res,
	})
	if err != nil {
		return res, fmt.Errorf("listing pending proposals of project %q: %w", project, err)
	}
	if res.Proposals == nil {
		res.Proposals = []api.Proposal{}
	}
	return res, nil
}

// CoSign adds one maintainer signature to the open proposal for version of project:
// keyID is the signing key's TUF key ID and sigHex the hex signature over the canonical
// JSON of the proposal's "signed" value (SignProposal makes both). When the signature
// completes the threshold, the server holds the answer for up to wait until the version is
// published. The result's Status is api.StatusPending (more signatures needed),
// api.StatusStaged or api.StatusPublished.
func (a *API) CoSign(ctx context.Context, project string, version int64, keyID, sigHex string, wait time.Duration) (api.SubmitResult, error) {
	var res api.SubmitResult
	if err := tufrepo.ValidateProjectName(project); err != nil {
		return res, err
	}
	if version < 1 {
		return res, api.Errorf(api.CodeBadRequest, "proposal version %d is not a positive integer", version)
	}
	if err := ValidateSHA256Hex(keyID); err != nil {
		return res, api.Errorf(api.CodeBadRequest, "key ID %q is not 64 lowercase hex digits", keyID)
	}
	if b, err := hex.DecodeString(sigHex); err != nil || len(b) == 0 {
		return res, api.Errorf(api.CodeBadRequest, "the signature must be non-empty hex")
	}
	body, size, err := jsonBody(api.CoSignRequest{KeyID: keyID, Sig: sigHex})
	if err != nil {
		return res, err
	}
	_, err = a.do(ctx, request{
		method: http.MethodPost, url: a.endpoint(waitQuery(wait), "api", "v1", "projects", project, "pending", strconv.FormatInt(version, 10), "signatures"),
		body: body, size: size, contentType: api.MediaJSON, auth: true, out: &res,
	})
	if err != nil {
		return res, fmt.Errorf("co-signing the proposal for role version %d of project %q: %w", version, project, err)
	}
	return res, nil
}

// ParseProposal parses the metadata of a proposal as project role metadata. A proposal
// whose metadata does not parse, or whose version disagrees with the proposal's, is
// CodeMalformedMetadata.
func ParseProposal(p api.Proposal) (*metadata.Metadata[metadata.TargetsType], error) {
	// Parsed strictly: a co-signer must sign the one reading every client will verify.
	pm, err := tufrepo.ParseTargetsStrict(p.Metadata, fmt.Sprintf("the proposal for role version %d of %q", p.Version, p.Project))
	if err != nil {
		return nil, err
	}
	md := pm.MD
	if md.Signed.Version != p.Version {
		return nil, api.Errorf(api.CodeMalformedMetadata, "the proposal listed as role version %d of %q holds metadata of version %d", p.Version, p.Project, md.Signed.Version)
	}
	return md, nil
}

// SignProposal signs the canonical JSON of md.Signed, exactly what TUF clients (and the
// server) verify, and returns the signer's key ID and the hex signature for CoSign. md is
// not changed.
func SignProposal(md *metadata.Metadata[metadata.TargetsType], s signature.Signer) (keyID, sigHex string, err error) {
	payload, err := tufrepo.Canonical(md.Signed)
	if err != nil {
		return "", "", err
	}
	pub, err := s.PublicKey()
	if err != nil {
		return "", "", fmt.Errorf("reading the signing key's public half: %w", err)
	}
	k, err := metadata.KeyFromPublicKey(pub)
	if err != nil {
		return "", "", fmt.Errorf("reading the signing key's public half: %w", err)
	}
	sig, err := s.SignMessage(bytes.NewReader(payload))
	if err != nil {
		return "", "", fmt.Errorf("signing role version %d: %w", md.Signed.Version, err)
	}
	return tufrepo.KeyID(k), hex.EncodeToString(sig), nil
}

// SignatureCheck sorts the signatures on a role by what they are worth against a
// delegation: Valid (a delegated key, verifies), Invalid (a delegated key, does not
// verify over this metadata) and Untrusted (a key the delegation does not list).
type SignatureCheck struct {
	Valid     []string `json:"valid"`
	Invalid   []string `json:"invalid,omitempty"`
	Untrusted []string `json:"untrusted,omitempty"`
}

// CheckSignatures verifies each signature on md locally against the delegated keys, as a
// TUF client would; it trusts nothing the server says about who signed.
func CheckSignatures(md *metadata.Metadata[metadata.TargetsType], keys map[string]*metadata.Key, keyIDs []string) SignatureCheck {
	var out SignatureCheck
	payload, err := tufrepo.Canonical(md.Signed)
	seen := map[string]bool{}
	for _, s := range md.Signatures {
		if seen[s.KeyID] {
			continue
		}
		seen[s.KeyID] = true
		k, ok := keys[s.KeyID]
		if !ok || !slices.Contains(keyIDs, s.KeyID) {
			out.Untrusted = append(out.Untrusted, s.KeyID)
			continue
		}
		if err != nil || tufrepo.VerifySignature(k, payload, s.Signature) != nil {
			out.Invalid = append(out.Invalid, s.KeyID)
			continue
		}
		out.Valid = append(out.Valid, s.KeyID)
	}
	return out
}
