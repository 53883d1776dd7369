package client

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"sort"
	"strconv"

	"github.com/cairn-dev/cairn/api"
	"github.com/cairn-dev/cairn/tlog"
	"github.com/cairn-dev/cairn/tufrepo"
	"github.com/theupdateframework/go-tuf/v2/metadata"
)

// TransparencyLog reads one page of the server's transparency log entries.
func (a *API) TransparencyLog(ctx context.Context, after int64, limit int) (api.TransparencyLogPage, error) {
	var res api.TransparencyLogPage
	q := url.Values{"after": {strconv.FormatInt(after, 10)}}
	if limit > 0 {
		q.Set("limit", strconv.Itoa(limit))
	}
	if _, err := a.do(ctx, request{method: http.MethodGet, url: a.endpoint(q, "api", "v1", "log", "transparency"), out: &res}); err != nil {
		return res, fmt.Errorf("reading the transparency log entries after %d: %w", after, err)
	}
	return res, nil
}

// TransparencyLogEntry reads the entry of one signed version (api.CodeNotLogged if it has
// none yet).
func (a *API) TransparencyLogEntry(ctx context.Context, role string, version int64) (*api.TransparencyLogEntry, error) {
	var res api.TransparencyLogEntry
	if _, err := a.do(ctx, request{method: http.MethodGet, url: a.endpoint(nil, "api", "v1", "log", "transparency", role, strconv.FormatInt(version, 10)), out: &res}); err != nil {
		return nil, fmt.Errorf("reading the transparency log entry of %s version %d: %w", role, version, err)
	}
	return &res, nil
}

// maxAuditMetadata bounds one metadata file the audit fetches (snapshots grow with the
// number of projects).
const maxAuditMetadata = 64 << 20

// metadataFile fetches /metadata/<name>; (nil, nil) for 404.
func (a *API) metadataFile(ctx context.Context, name string) ([]byte, error) {
	return a.fetchMetadata(ctx, name, maxAuditMetadata, true)
}

// AuditOptions configures Audit.
type AuditOptions struct {
	// LogKey verifies the log's checkpoints. Nil: the key the server reports (trust on
	// first use: the caller must say so).
	LogKey *tlog.LogKey
	// TrustedRoot is the root the caller trusts for the server; the root chain the server
	// serves must contain it. Nil: root version 1 as served (trust on first use).
	TrustedRoot []byte
	// PageSize for the audit log and the entries (default 500).
	PageSize int
}

// AuditProblem is one signed version without a valid log entry.
type AuditProblem struct {
	Role    string   `json:"role"`
	Version int64    `json:"version"`
	Code    ExitCode `json:"exit_code"`
	Detail  string   `json:"detail"`
}

// AuditReport is the outcome of Audit.
type AuditReport struct {
	Server string `json:"server"`
	LogURL string `json:"log_url"`
	// LogKeyFromServer is true when the log key came from the audited server (TOFU).
	LogKeyFromServer bool `json:"log_key_from_server"`
	// Checked counts the signed versions audited by role; Logged those with a valid entry.
	Checked map[string]int `json:"checked"`
	Logged  int            `json:"logged"`
	// Pruned counts old snapshot versions whose bytes the server no longer keeps (DESIGN.md
	// "Snapshot and publish cost"): their log entries and audit log hashes are checked, the
	// served bytes cannot be.
	Pruned int `json:"pruned"`
	Roots  int `json:"roots"`
	// MerkleTrees counts the timestamps whose Merkle snapshot the audit log rebuilds
	// (AuditMerkle); MerkleWithoutTree those signed without one.
	MerkleTrees       int `json:"merkle_trees"`
	MerkleWithoutTree int `json:"merkle_without_tree"`
	// MerkleProblems is how many of Problems AuditMerkle found.
	MerkleProblems int            `json:"merkle_problems"`
	Backlog        int64          `json:"backlog"`
	Problems       []AuditProblem `json:"problems"`
}

// Code is the exit code of the report: the most serious problem's (hash mismatch first),
// or ExitOK.
func (r *AuditReport) Code() ExitCode {
	best := ExitOK
	for _, p := range r.Problems {
		if best == ExitOK || p.Code < best {
			best = p.Code
		}
	}
	return best
}

// audited reports whether the server signs role with an online key: timestamp, snapshot
// and the nodes of the recently-claimed tree.
func audited(role string) bool {
	return role == tufrepo.RoleTimestamp || role == tufrepo.RoleSnapshot || tufrepo.SignedWithRecentlyClaimedKey(role)
}

type signedVersion struct {
	role     string
	version  int64
	sha256   string
	length   int64
	snapshot int64 // the snapshot that published it (the root in effect then applies)
	seq      int64 // audit log entry; 0 if it is served but missing from the audit log
}

type rootAt struct {
	snapshot int64
	md       *metadata.Metadata[metadata.RootType]
}

// Audit checks that every metadata version the server signed with an online key (as its
// hash-chained audit log lists them, plus the timestamp and snapshot it serves now) has a
// transparency log entry that: names exactly the bytes the server serves (and the audit
// log records), is signed by the key that the root (or, for recently-claimed, targets) in
// effect at that version delegates the role to, and is included in the log under a
// checkpoint signed by the log's key. Every version that fails is a Problem; err is only
// for failures to carry out the audit.
func (a *API) Audit(ctx context.Context, opts AuditOptions) (*AuditReport, error) {
	rep := &AuditReport{Server: a.Server(), Checked: map[string]int{}, Problems: []AuditProblem{}}
	problem := func(role string, version int64, code ExitCode, format string, args ...any) {
		rep.Problems = append(rep.Problems, AuditProblem{Role: role, Version: version, Code: code, Detail: fmt.Sprintf(format, args...)})
	}

	// 0. What the server serves now, read before the audit log, which then records it
	// (the publisher appends to the audit log in the transaction that publishes).
	tsRaw, err := a.metadataFile(ctx, "timestamp.json")
	if err != nil {
		return nil, err
	}

	// 1. The audit log, its chain verified.
	var all []api.LogEntry
	if _, err := a.walkLog(ctx, opts.PageSize, func(page []api.LogEntry) error {
		all = append(all, page...)
		return nil
	}); err != nil {
		return nil, err
	}

	// 1b. The Merkle snapshots: every timestamp's tree, rebuilt from the log.
	ma, err := a.AuditMerkle(ctx, all)
	if err != nil {
		return nil, err
	}
	rep.MerkleTrees, rep.MerkleWithoutTree = ma.Trees, ma.WithoutTree
	rep.Problems = append(rep.Problems, ma.Problems...)
	rep.MerkleProblems = len(ma.Problems)

	// 2. The root chain and the targets versions, as the audit log records them.
	roots, err := a.auditRoots(ctx, all, opts.TrustedRoot)
	if err != nil {
		return nil, err
	}
	rep.Roots = len(roots)
	targets, err := a.auditTargets(ctx, all, roots)
	if err != nil {
		return nil, err
	}

	// 3. The signed versions: the audit log's, and what the server serves now.
	signed := map[[2]string]*signedVersion{}
	key := func(role string, v int64) [2]string { return [2]string{role, strconv.FormatInt(v, 10)} }
	var order []*signedVersion
	for _, e := range all {
		if e.Action != api.ActionSigned || !audited(e.Role) {
			continue
		}
		sv := &signedVersion{role: e.Role, version: e.Version, sha256: e.SHA256, length: e.Length, snapshot: e.Snapshot, seq: e.Seq}
		signed[key(e.Role, e.Version)] = sv
		order = append(order, sv)
	}
	var current struct {
		Signed struct {
			Version int64 `json:"version"`
			Meta    map[string]struct {
				Version int64 `json:"version"`
			} `json:"meta"`
		} `json:"signed"`
	}
	if tsRaw != nil {
		if err := json.Unmarshal(tsRaw, &current); err != nil {
			return nil, &VerifyError{Code: ExitMalformed, Role: tufrepo.RoleTimestamp, Detail: "the served timestamp.json does not parse", Err: err}
		}
		headSnap := current.Signed.Meta["snapshot.json"].Version
		for _, rv := range []struct {
			role string
			v    int64
		}{{tufrepo.RoleTimestamp, current.Signed.Version}, {tufrepo.RoleSnapshot, headSnap}} {
			if rv.v > 0 && signed[key(rv.role, rv.v)] == nil {
				sv := &signedVersion{role: rv.role, version: rv.v, snapshot: headSnap}
				signed[key(rv.role, rv.v)] = sv
				order = append(order, sv)
			}
		}
	}

	// 4. The stored log entries.
	entries := map[[2]string]api.TransparencyLogEntry{}
	var info *api.TransparencyLogInfo
	for after := int64(0); ; {
		page, err := a.TransparencyLog(ctx, after, opts.PageSize)
		if err != nil {
			return nil, err
		}
		if page.Log != nil {
			info = page.Log
		}
		for _, e := range page.Entries {
			entries[key(e.Role, e.Version)] = e
			after = max(after, e.Seq)
		}
		if page.Next == "" || len(page.Entries) == 0 {
			break
		}
	}
	logKey := opts.LogKey
	if info != nil {
		rep.LogURL, rep.Backlog = info.URL, info.Backlog
	}
	if logKey == nil {
		if info == nil || info.PublicKey == "" {
			return nil, api.Errorf(api.CodeBadRequest, "no transparency log key: the server reports none; pass --rekor-key FILE with the log's public key from its operator")
		}
		pub, err := tlog.ParsePublicKey([]byte(info.PublicKey))
		if err != nil {
			return nil, &VerifyError{Code: ExitMalformed, Role: "transparency log", Detail: "the log key the server reports does not parse", Err: err}
		}
		logKey = &tlog.LogKey{Key: pub, Origin: info.Origin}
		rep.LogKeyFromServer = true
	}

	// 5. Each signed version.
	for _, sv := range order {
		rep.Checked[sv.role]++
		if sv.seq == 0 {
			problem(sv.role, sv.version, ExitPolicy, "served by the server (named by timestamp.json) but missing from its audit log")
		}
		// The bytes as served: every consistent-snapshot version of snapshot and
		// recently-claimed; for timestamp only the current one (timestamp.json).
		var served []byte
		switch {
		case sv.role == tufrepo.RoleTimestamp && sv.version == current.Signed.Version:
			served = tsRaw
		case sv.role != tufrepo.RoleTimestamp:
			served, err = a.metadataFile(ctx, strconv.FormatInt(sv.version, 10)+"."+sv.role+".json")
			switch {
			case api.CodeOf(err) == api.CodePruned && sv.role == tufrepo.RoleSnapshot && sv.version != current.Signed.Meta[tufrepo.MetaName(tufrepo.RoleSnapshot)].Version:
				rep.Pruned++
			case err != nil:
				return nil, err
			case served == nil:
				problem(sv.role, sv.version, ExitPolicy, "the server does not serve %d.%s.json", sv.version, sv.role)
			}
		}
		if served != nil {
			s := sha256.Sum256(served)
			got := hex.EncodeToString(s[:])
			if sv.sha256 != "" && got != sv.sha256 {
				problem(sv.role, sv.version, ExitHashMismatch, "the served bytes have sha256 %s, the audit log records %s", got, sv.sha256)
			}
			sv.sha256, sv.length = got, int64(len(served))
		}
		e, ok := entries[key(sv.role, sv.version)]
		if !ok {
			where := "signed by the server"
			if sv.seq > 0 {
				where += fmt.Sprintf(" (audit log entry %d)", sv.seq)
			}
			problem(sv.role, sv.version, ExitPolicy, "%s but it has no transparency log entry", where)
			continue
		}
		trusted, err := delegatedKeys(sv, roots, targets)
		if err != nil {
			problem(sv.role, sv.version, ExitKeyNotTrusted, "%v", err)
			continue
		}
		k := trusted[e.KeyID]
		if k == nil {
			problem(sv.role, sv.version, ExitKeyNotTrusted, "the log entry is signed by key %s, which is not a %s key at that version", e.KeyID, sv.role)
			continue
		}
		st, err := tlog.ParseStatement(e.Envelope)
		if err != nil {
			problem(sv.role, sv.version, ExitMalformed, "the log entry's statement: %v", err)
			continue
		}
		if err := tlog.CheckStatement(st, tlog.Metadata{Role: sv.role, Version: sv.version, Length: sv.length, SHA256: sv.sha256}); err != nil {
			problem(sv.role, sv.version, ExitHashMismatch, "%v", err)
			continue
		}
		if err := tlog.VerifySignature(e.Envelope, k); err != nil {
			problem(sv.role, sv.version, ExitSignatureInvalid, "the log entry's signature: %v", err)
			continue
		}
		if err := tlog.VerifyRekorEntry(e.Rekor, e.Envelope, k, logKey); err != nil {
			problem(sv.role, sv.version, ExitSignatureInvalid, "the transparency log does not vouch for the entry: %v", err)
			continue
		}
		rep.Logged++
	}
	return rep, nil
}

// auditRoots fetches every root version the audit log records, checks each against the
// recorded sha256 and the chain of signatures (TUF 5.3.4: each new root is signed by a
// threshold of the previous root's keys and of its own), and anchors the chain in
// trustedRoot when given.
func (a *API) auditRoots(ctx context.Context, log []api.LogEntry, trustedRoot []byte) ([]rootAt, error) {
	var roots []rootAt
	for _, e := range log {
		if e.Role != tufrepo.RoleRoot || e.Action != api.ActionAccepted {
			continue
		}
		raw, err := a.metadataFile(ctx, strconv.FormatInt(e.Version, 10)+".root.json")
		if err != nil {
			return nil, err
		}
		if raw == nil {
			return nil, &VerifyError{Code: ExitPolicy, Role: tufrepo.RoleRoot, Detail: fmt.Sprintf("the audit log records root version %d, which the server does not serve", e.Version)}
		}
		if s := sha256.Sum256(raw); hex.EncodeToString(s[:]) != e.SHA256 {
			return nil, &VerifyError{Code: ExitHashMismatch, Role: tufrepo.RoleRoot, Detail: fmt.Sprintf("root version %d as served does not have the sha256 the audit log records", e.Version)}
		}
		md, err := metadata.Root().FromBytes(raw)
		if err != nil {
			return nil, &VerifyError{Code: ExitMalformed, Role: tufrepo.RoleRoot, Detail: fmt.Sprintf("root version %d does not parse", e.Version), Err: err}
		}
		if n := len(roots); n > 0 {
			p := roots[n-1].md
			if md.Signed.Version != p.Signed.Version+1 {
				return nil, &VerifyError{Code: ExitPolicy, Role: tufrepo.RoleRoot, Detail: fmt.Sprintf("root version %d follows version %d in the audit log", md.Signed.Version, p.Signed.Version)}
			}
			if err := p.VerifyDelegate(metadata.ROOT, md); err != nil {
				return nil, &VerifyError{Code: ExitSignatureInvalid, Role: tufrepo.RoleRoot, Detail: fmt.Sprintf("root version %d is not signed by a threshold of root version %d", md.Signed.Version, p.Signed.Version), Err: err}
			}
		}
		if err := md.VerifyDelegate(metadata.ROOT, md); err != nil {
			return nil, &VerifyError{Code: ExitSignatureInvalid, Role: tufrepo.RoleRoot, Detail: fmt.Sprintf("root version %d is not signed by a threshold of its own keys", md.Signed.Version), Err: err}
		}
		roots = append(roots, rootAt{snapshot: e.Snapshot, md: md})
	}
	if len(roots) == 0 {
		return nil, &VerifyError{Code: ExitPolicy, Role: tufrepo.RoleRoot, Detail: "the audit log records no root"}
	}
	if trustedRoot != nil {
		tr, err := metadata.Root().FromBytes(trustedRoot)
		if err != nil {
			return nil, &VerifyError{Code: ExitMalformed, Role: tufrepo.RoleRoot, Detail: "the trusted root does not parse", Err: err}
		}
		v := tr.Signed.Version
		i := slices.IndexFunc(roots, func(r rootAt) bool { return r.md.Signed.Version == v })
		if i < 0 {
			return nil, &VerifyError{Code: ExitPolicy, Role: tufrepo.RoleRoot, Detail: fmt.Sprintf("the trusted root is version %d, which the server's audit log does not record", v)}
		}
		want, _ := tufrepo.Canonical(tr.Signed)
		got, _ := tufrepo.Canonical(roots[i].md.Signed)
		if string(want) != string(got) {
			return nil, &VerifyError{Code: ExitKeyNotTrusted, Role: tufrepo.RoleRoot, Detail: fmt.Sprintf("root version %d served by the server is not the trusted root", v)}
		}
	}
	return roots, nil
}

type targetsAt struct {
	snapshot int64
	md       *metadata.Metadata[metadata.TargetsType]
}

// auditTargets fetches the targets versions the audit log records, each verified by the
// root in effect, for the keys targets delegates recently-claimed to.
func (a *API) auditTargets(ctx context.Context, log []api.LogEntry, roots []rootAt) ([]targetsAt, error) {
	var out []targetsAt
	for _, e := range log {
		if e.Role != tufrepo.RoleTargets || e.Action != api.ActionAccepted {
			continue
		}
		raw, err := a.metadataFile(ctx, strconv.FormatInt(e.Version, 10)+".targets.json")
		if err != nil {
			return nil, err
		}
		if raw == nil {
			continue // reported when a recently-claimed version needs it
		}
		if s := sha256.Sum256(raw); hex.EncodeToString(s[:]) != e.SHA256 {
			return nil, &VerifyError{Code: ExitHashMismatch, Role: tufrepo.RoleTargets, Detail: fmt.Sprintf("targets version %d as served does not have the sha256 the audit log records", e.Version)}
		}
		md, err := metadata.Targets().FromBytes(raw)
		if err != nil {
			return nil, &VerifyError{Code: ExitMalformed, Role: tufrepo.RoleTargets, Detail: fmt.Sprintf("targets version %d does not parse", e.Version), Err: err}
		}
		if err := rootFor(roots, e.Snapshot).VerifyDelegate(metadata.TARGETS, md); err != nil {
			return nil, &VerifyError{Code: ExitSignatureInvalid, Role: tufrepo.RoleTargets, Detail: fmt.Sprintf("targets version %d is not signed by the targets keys of its root", e.Version), Err: err}
		}
		out = append(out, targetsAt{snapshot: e.Snapshot, md: md})
	}
	return out, nil
}

// rootFor is the root in effect at snapshot s: the newest one published in s or before
// (the publisher signs with the keys of the newest root from the publish that serves it).
func rootFor(roots []rootAt, s int64) *metadata.Metadata[metadata.RootType] {
	i := sort.Search(len(roots), func(i int) bool { return roots[i].snapshot > s })
	return roots[max(i-1, 0)].md
}

// delegatedKeys are the keys trusted for sv's role when it was signed.
func delegatedKeys(sv *signedVersion, roots []rootAt, targets []targetsAt) (map[string]*metadata.Key, error) {
	out := map[string]*metadata.Key{}
	// Every node of the recently-claimed tree is delegated to the key targets gives
	// recently-claimed.
	if tufrepo.SignedWithRecentlyClaimedKey(sv.role) {
		i := sort.Search(len(targets), func(i int) bool { return targets[i].snapshot > sv.snapshot })
		if i == 0 {
			return nil, errors.New("no targets version delegates recently-claimed at that version")
		}
		t := targets[i-1].md
		if t.Signed.Delegations == nil {
			return nil, fmt.Errorf("targets version %d has no delegations", t.Signed.Version)
		}
		for _, r := range t.Signed.Delegations.Roles {
			if r.Name == tufrepo.RoleRecentlyClaimed {
				for _, id := range r.KeyIDs {
					out[id] = t.Signed.Delegations.Keys[id]
				}
				return out, nil
			}
		}
		return nil, fmt.Errorf("targets version %d does not delegate recently-claimed", t.Signed.Version)
	}
	root := rootFor(roots, sv.snapshot)
	r := root.Signed.Roles[sv.role]
	if r == nil {
		return nil, fmt.Errorf("root version %d has no %s role", root.Signed.Version, sv.role)
	}
	for _, id := range r.KeyIDs {
		out[id] = root.Signed.Keys[id]
	}
	return out, nil
}
