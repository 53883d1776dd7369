package cli

import (
	"crypto"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"

	"github.com/cairn-dev/cairn/api"
	"github.com/cairn-dev/cairn/attest"
	"github.com/cairn-dev/cairn/client"
	"github.com/cairn-dev/cairn/tufrepo"
	"github.com/spf13/cobra"
)

// Public-good Sigstore, the default services of 'cairn attest'. A repository whose
// trusted root is another Sigstore (a private one) needs its URLs on the command line.
const (
	defaultFulcioURL = "https://fulcio.sigstore.dev"
	defaultRekorURL  = "https://rekor.sigstore.dev"
)

type attestOutput struct {
	Project      string                `json:"project"`
	Version      string                `json:"version"`
	Identity     api.SignerIdentity    `json:"identity"`
	BundleSHA256 string                `json:"bundle_sha256"`
	Files        []client.AttestResult `json:"files"`
}

func (a *app) attestCommand() *cobra.Command {
	var (
		output, predicateFile, predicateType, idToken string
		login                                         client.BrowserLogin
		keyName                                       string
		names                                         []string
		svc                                           client.SigningServices
		rekorVersion                                  uint
	)
	cmd := &cobra.Command{
		Use:   "attest NAME@VERSION [--predicate FILE --type URI] [--key KEYNAME]",
		Short: "Sign an attestation about a release's files with Sigstore (keyless, or a maintainer key) and attach it",
		Long: `attest signs one in-toto statement about the files of release VERSION of project NAME
and attaches it to each of them on the server, where 'cairn attestations' and policies in
'cairn get' find it.

The subjects are the files' names and sha256 digests from the verified TUF metadata. The
predicate is --predicate FILE (a JSON object, at most 512 KiB) of type --type URI; without
them, an endorsement (` + client.PredicateEndorsement + `) naming the release.

Signing is keyless, through sigstore-go: a fresh key in memory, a short-lived certificate
from Fulcio for the identity of an OIDC token, an entry in the Rekor transparency log (and
a timestamp, with --tsa-url). The token comes from --identity-token (TOKEN, or @FILE, which
keeps it out of the process list), else $SIGSTORE_ID_TOKEN, else GitHub Actions' ambient
token, else a login in your browser at --oidc-issuer (Sigstore's public issuer by default;
on a terminal, or whenever --oidc-issuer is given): the code comes back to a listener on
127.0.0.1, and if no browser opens the URL is printed and the code read from stdin. The bundle is verified here against the
repository's Sigstore trusted root (through TUF) before anything is sent. Writing needs an
API token ('cairn login').

With --key KEYNAME, a maintainer signs with a key of the CLI key store (as for 'cairn
upload' and 'cairn sign') instead: no OIDC token and no Fulcio. The key must be one the
project's verified TUF delegation lists; the bundle names it by its TUF key ID and is
logged in Rekor all the same. Its identity is tuf-key:<keyid> from cairn-maintainer:<project>,
which policies trust with trust_maintainers: true (or --trust-maintainers). An ed25519 key
signs as Ed25519ph, which needs --rekor-version 2 (Rekor v1 takes ecdsa-p256 keys).`,
		Example: `  # keyless, from GitHub Actions (ambient OIDC token), public-good Sigstore
  cairn attest hello@1.2.0 --predicate provenance.json --type https://slsa.dev/provenance/v1

  # keyless, with a token in a file
  cairn attest hello@1.2.0 --identity-token @token.jwt

  # with a maintainer key, against a Rekor v2 log and a timestamp authority
  cairn attest hello@1.2.0 --key alice --rekor-url https://log2025-1.rekor.sigstore.dev --rekor-version 2 --tsa-url https://timestamp.sigstore.dev/api/v1/timestamp

  # a policy for 'cairn get' that needs an attestation by one of hello's maintainer keys
  cairn get hello@1.2.0 --trust-maintainers --require-identities 1`,
		Args: cobra.ExactArgs(1),
		RunE: run(func(cmd *cobra.Command, args []string) error {
			project, version, pinned, err := releaseArg(args[0])
			if err != nil {
				return err
			}
			if !pinned {
				return api.Errorf(api.CodeBadRequest, "name the release: %s@VERSION", project)
			}
			if rekorVersion > 2 {
				return api.Errorf(api.CodeBadRequest, "--rekor-version %d is not known: use 1 or 2", rekorVersion)
			}
			svc.RekorVersion = uint32(rekorVersion)
			// Everything that needs no network is checked first: bad input stops here.
			pred, err := readPredicate(predicateFile, predicateType, project, version)
			if err != nil {
				return err
			}
			if predicateType == "" {
				predicateType = client.PredicateEndorsement
			}
			if err := a.requireToken(); err != nil {
				return err
			}
			hc, err := a.httpClient()
			if err != nil {
				return err
			}
			svc.Transport = hc.Transport
			if keyName != "" {
				return a.attestWithKey(cmd, keyName, project, version, names, predicateType, pred, svc, output)
			}
			src := client.IdentityTokenSource{Flag: idToken, Env: a.env, HTTPClient: hc}
			if a.stdinIsTerminal() || cmd.Flags().Changed("oidc-issuer") {
				login.Open, login.In, login.Out = a.openBrowser, a.stdin, a.stderr
				src.Browser = &login
			}
			tok, from, err := src.IdentityToken(a.ctx)
			if err != nil {
				return err
			}
			claims, err := client.ReadIdentityClaims(tok, a.now())
			if err != nil {
				return fmt.Errorf("the identity token (from %s): %w", from, err)
			}
			newSigner := a.newKeylessSigner
			if newSigner == nil {
				newSigner = client.NewKeylessSigner
			}
			signer, err := newSigner(svc)
			if err != nil {
				return err
			}

			repo, pr, err := a.projectRole(project)
			if err != nil {
				return err
			}
			files, stmt, tr, rest, err := a.attestInputs(repo, pr, project, version, names, predicateType, pred)
			if err != nil {
				return err
			}
			a.notef("Signing %s about %d file(s) of %s %s as %s (issuer %s, token from %s)...\n", predicateType, len(files), project, version, claims.Who(), claims.Issuer, from)
			bundle, err := signer.SignStatement(a.ctx, tok, stmt, tr.Material())
			if err != nil {
				return err
			}
			res, err := client.AttachAttestation(a.ctx, rest, tr, nil, bundle, files)
			if err != nil {
				return err
			}
			return a.printAttested(project, version, res, output)
		}),
	}
	addOutputFlag(cmd, &output)
	cmd.Flags().StringVar(&predicateFile, "predicate", "", "the predicate: a JSON object in FILE (at most 512 KiB); needs --type")
	cmd.Flags().StringVar(&predicateType, "type", "", "the predicate type URI (e.g. https://slsa.dev/provenance/v1; default "+client.PredicateEndorsement+" without --predicate)")
	cmd.Flags().StringSliceVar(&names, "file", nil, "only this file of the release (repeatable)")
	cmd.Flags().StringVar(&keyName, "key", "", "sign with this maintainer key of your key store (its TUF delegation must list it) instead of keyless")
	cmd.Flags().StringVar(&idToken, "identity-token", "", "OIDC identity token for Fulcio: TOKEN, or @FILE to read it from FILE (default: $SIGSTORE_ID_TOKEN, else GitHub Actions' ambient token)")
	cmd.Flags().StringVar(&login.Issuer, "oidc-issuer", client.DefaultOIDCIssuer, "OIDC issuer to log in at with a browser when no token is given")
	cmd.Flags().StringVar(&login.ClientID, "oidc-client-id", client.DefaultOIDCClientID, "OIDC client ID for the browser login (Fulcio expects the token's audience to be \"sigstore\")")
	cmd.Flags().StringVar(&svc.FulcioURL, "fulcio-url", defaultFulcioURL, "Fulcio certificate authority")
	cmd.Flags().StringVar(&svc.RekorURL, "rekor-url", defaultRekorURL, "Rekor transparency log")
	cmd.Flags().UintVar(&rekorVersion, "rekor-version", 1, "Rekor API version: 1, or 2 (rekor-tiles; needs --tsa-url)")
	cmd.Flags().StringVar(&svc.TSAURL, "tsa-url", "", "RFC 3161 timestamp authority URL (…/api/v1/timestamp); required with --rekor-version 2")
	return cmd
}

// attestStatement chooses the files of release version of project (all, or those named)
// from verified metadata and makes the statement about them, read as the server reads it.
// attestInputs is what both ways of signing need once the project role is verified: the
// statement about the release's files, the Sigstore trusted root (through TUF) the bundle
// is checked against, and the API client it is posted with.
func (a *app) attestInputs(repo *client.Repo, pr *client.ProjectRole, project, version string, names []string, predicateType string, pred []byte) ([]api.File, []byte, *attest.TrustedRoot, *client.API, error) {
	files, stmt, err := attestStatement(pr, project, version, names, predicateType, pred)
	if err != nil {
		return nil, nil, nil, nil, err
	}
	tr, err := repo.SigstoreTrustedRoot(a.ctx)
	if err != nil {
		return nil, nil, nil, nil, err
	}
	rest, err := a.apiClient()
	if err != nil {
		return nil, nil, nil, nil, err
	}
	return files, stmt, tr, rest, nil
}

func attestStatement(pr *client.ProjectRole, project, version string, names []string, predicateType string, pred []byte) ([]api.File, []byte, error) {
	rel, ok := client.FindRelease(pr.Releases(), version)
	if !ok {
		return nil, nil, api.Errorf(api.CodeNotFound, "project %s has no release %q in its verified metadata; see 'cairn releases %s'; nothing was signed", project, version, project)
	}
	files := rel.Files
	if len(names) > 0 {
		files = slices.DeleteFunc(slices.Clone(files), func(f api.File) bool { return !slices.Contains(names, f.Name) })
		if len(files) != len(slices.Compact(slices.Sorted(slices.Values(names)))) {
			return nil, nil, api.Errorf(api.CodeNotFound, "release %s %s has no file among %v; nothing was signed", project, version, names)
		}
	}
	stmt, err := client.Statement(predicateType, pred, files)
	if err != nil {
		return nil, nil, err
	}
	if err := attest.CheckStatement(stmt); err != nil {
		return nil, nil, fmt.Errorf("the statement would be refused by the server; nothing was signed: %w", err)
	}
	return files, stmt, nil
}

// attestWithKey is 'cairn attest --key': the statement signed with a maintainer key of the
// key store, which the project's verified delegation must list. The key file is read (and
// its type checked against the log) before any network request, and its passphrase asked
// only once the delegation and the trusted root are known, so a key the server would
// refuse costs no passphrase and no log entry.
func (a *app) attestWithKey(cmd *cobra.Command, keyName, project, version string, names []string, predicateType string, pred []byte, svc client.SigningServices, output string) error {
	for _, f := range []string{"identity-token", "fulcio-url", "oidc-issuer", "oidc-client-id"} {
		if cmd.Flags().Changed(f) {
			return api.Errorf(api.CodeBadRequest, "--%s is for keyless signing; --key %s signs with a maintainer key and needs neither an OIDC token nor Fulcio", f, keyName)
		}
	}
	kf, err := a.loadKey(keyName)
	if err != nil {
		return err
	}
	if kf.Public.KeyType == "ed25519" && svc.RekorVersion != 2 {
		return api.Errorf(api.CodeBadRequest, "key %q is ed25519, which signs attestations as Ed25519ph: Rekor v1 does not log those; use --rekor-version 2 with --tsa-url, or an ecdsa-p256 key; nothing was signed", keyName)
	}
	signer, err := client.NewKeySigner(svc)
	if err != nil {
		return err
	}
	repo, pr, err := a.projectRole(project)
	if err != nil {
		return err
	}
	if !pr.TrustsKey(kf.KeyID) {
		return api.Errorf(api.CodeKeyNotDelegated, "key %q (%s) is not a maintainer key of %s in its verified TUF delegation, so the server would refuse the attestation (attestation_key_unknown); 'cairn maintainer list %s' shows the keys; nothing was signed", keyName, short(kf.KeyID), project, project)
	}
	keys := attest.MaintainerKeys{}
	if err := tufrepo.AttestationKeys(keys, pr.Name, pr.KeyIDs, pr.Keys); err != nil {
		return fmt.Errorf("reading the maintainer keys of %s: %w", project, err)
	}
	files, stmt, tr, rest, err := a.attestInputs(repo, pr, project, version, names, predicateType, pred)
	if err != nil {
		return err
	}
	opened, err := a.openSigner(kf)
	if err != nil {
		return err
	}
	cs, ok := opened.Signer.(crypto.Signer)
	if !ok {
		return fmt.Errorf("key %q cannot sign attestations (%T)", keyName, opened.Signer)
	}
	kp, err := attest.NewKeypair(cs, kf.KeyID)
	if err != nil {
		return fmt.Errorf("key %q: %w", keyName, err)
	}
	id := attest.MaintainerIdentity(project, kf.KeyID)
	a.notef("Signing %s about %d file(s) of %s %s with maintainer key %q (%s)...\n", predicateType, len(files), project, version, keyName, id)
	bundle, err := signer.SignStatement(a.ctx, kp, stmt)
	if err != nil {
		return err
	}
	res, err := client.AttachAttestation(a.ctx, rest, tr, keys, bundle, files)
	if err != nil {
		return err
	}
	return a.printAttested(project, version, res, output)
}

// printAttested reports what 'cairn attest' attached.
func (a *app) printAttested(project, version string, res []client.AttestResult, output string) error {
	out := attestOutput{Project: project, Version: version, Files: res}
	for _, r := range res {
		if r.Attestation != nil {
			out.Identity, out.BundleSHA256 = r.Attestation.Identity, r.Attestation.BundleSHA256
		}
	}
	if output == "json" {
		return a.printJSON(out)
	}
	for _, r := range res {
		if r.Existing {
			a.printf("%s: the server already has this attestation\n", r.File.Name)
			continue
		}
		a.printf("%s: attached attestation %s by %s (log index %d)\n", r.File.Name, r.Attestation.BundleSHA256, r.Attestation.Identity, r.Attestation.LogIndex)
	}
	a.notef("Committed to the signed attestation index at the next publish; see 'cairn attestations %s@%s'.\n", project, version)
	return nil
}

// readPredicate reads --predicate FILE (a JSON object, bounded), or makes the endorsement
// predicate when there is none. --predicate needs --type: a predicate's meaning is its type.
func readPredicate(file, typ, project, version string) ([]byte, error) {
	if file == "" {
		if typ != "" {
			return []byte("{}"), nil
		}
		return json.Marshal(map[string]string{"project": project, "version": version})
	}
	if typ == "" {
		return nil, api.Errorf(api.CodeBadRequest, "--predicate %s needs --type URI: say what the predicate is (e.g. https://slsa.dev/provenance/v1)", file)
	}
	raw, err := readBounded(file, client.MaxPredicateBytes)
	if err != nil {
		return nil, fmt.Errorf("--predicate %s: %w; nothing was signed", file, err)
	}
	if !json.Valid(raw) {
		return nil, api.Errorf(api.CodeBadRequest, "--predicate %s is not valid JSON; nothing was signed", file)
	}
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(raw, &obj); err != nil {
		return nil, api.Errorf(api.CodeBadRequest, "--predicate %s must hold a JSON object ({...}), not %s; nothing was signed", file, strconv.Quote(firstToken(raw)))
	}
	return raw, nil
}

// firstToken is the start of raw, for an error message.
func firstToken(raw []byte) string {
	s := string(raw)
	if len(s) > 20 {
		s = s[:20] + "…"
	}
	return s
}
