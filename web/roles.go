package web

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/cairn-dev/cairn/api"
	"github.com/cairn-dev/cairn/client"
	"github.com/cairn-dev/cairn/tufrepo"
	"github.com/go-chi/chi/v5"
	"github.com/theupdateframework/go-tuf/v2/metadata"
)

// A page per metadata file and version: decoded fields, keys, thresholds, delegations as
// a tree, which keys signed and whether each signature verifies, expiry, the raw bytes.

const (
	maxListed   = 500 // targets or snapshot entries per page
	maxVersions = 50
)

// validRole accepts the names a published role can have: top-level and delegating roles,
// shard nodes of claimed and recently-claimed, and projects.
func validRole(role string) bool {
	return tufrepo.IsReservedRole(role) || tufrepo.IsShardRole(role) || tufrepo.IsAttestationShardRole(role) || tufrepo.ValidateProjectName(role) == nil
}

// roleLatest shows the newest published version of a role.
func (u *UI) roleLatest(w http.ResponseWriter, r *http.Request) {
	role := chi.URLParam(r, "role")
	if !validRole(role) {
		u.fail(w, r, api.Errorf(api.CodeNotFound, "there is no role %q", role))
		return
	}
	h, err := u.head()
	if err != nil {
		u.fail(w, r, err)
		return
	}
	v, err := u.currentVersion(r.Context(), h, role)
	if err != nil {
		u.fail(w, r, err)
		return
	}
	u.rolePage(w, r, h, role, v, true)
}

func (u *UI) currentVersion(ctx context.Context, h Head, role string) (int64, error) {
	switch role {
	case tufrepo.RoleTimestamp:
		return h.Timestamp, nil
	case tufrepo.RoleSnapshot:
		return h.Snapshot, nil
	case tufrepo.RoleRoot:
		return h.Root, nil
	}
	v, _, err := u.db.LatestPublishedVersion(ctx, role)
	if err != nil {
		return 0, api.Errorf(api.CodeNotFound, "role %q has no published version", role)
	}
	return v, nil
}

func (u *UI) role(w http.ResponseWriter, r *http.Request) {
	role, vs := chi.URLParam(r, "role"), chi.URLParam(r, "version")
	v, err := strconv.ParseInt(vs, 10, 64)
	if !validRole(role) || err != nil || v < 1 {
		u.fail(w, r, api.Errorf(api.CodeNotFound, "there is no version %.20q of role %.70q", vs, role))
		return
	}
	h, err := u.head()
	if err != nil {
		u.fail(w, r, err)
		return
	}
	u.rolePage(w, r, h, role, v, false)
}

type sigView struct {
	KeyID       string
	KeyType     string
	Fingerprint string
	Trusted     bool // the delegator names this key for the role
	Valid       bool
	Present     bool // a signature by this key is in the file
}

type keyView struct {
	KeyID, KeyType, Scheme, Fingerprint string
}

type roleRef struct {
	Role      string
	KeyIDs    []string
	Threshold int
}

type delegationView struct {
	Name         string
	KeyIDs       []string
	Threshold    int
	Terminating  bool
	Paths        []string
	HashPrefixes []string
	Published    bool // has a page
}

type succinctView struct {
	NamePrefix string
	BitLength  int
	Bins       int
	First      string
	Last       string
	KeyIDs     []string
	Threshold  int
}

type targetView struct {
	Path   string
	Length int64
	Hashes []string
	Custom string
}

type metaView struct {
	Name    string
	Version int64
	Length  int64
	Hashes  []string
}

type roleData struct {
	Role        string
	Version     int64
	Current     int64
	IsCurrent   bool
	Type        string
	SpecVersion string
	Expires     string
	Expired     bool
	Length      int
	SHA256      string
	RawURL      string
	Consistent  bool
	Versions    []int64
	Delegator   string
	DelegatorV  int64
	Threshold   int
	Valid       int
	Met         bool
	Signatures  []sigView
	Keys        []keyView
	Roles       []roleRef
	Delegations []delegationView
	Succinct    *succinctView
	DelegKeys   []keyView
	Targets     []targetView
	TargetCount int
	Meta        []metaView
	MetaCount   int
	After       string
	Next        string
	Note        string
}

func (u *UI) rolePage(w http.ResponseWriter, r *http.Request, h Head, role string, v int64, latest bool) {
	after := r.URL.Query().Get("after")
	fp := fmt.Sprintf("%d.%d.%d.%s", h.Timestamp, h.Snapshot, h.Root, u.now().UTC().Format("2006010215"))
	u.cached(w, r, fp, func() (string, page, error) {
		d, err := u.roleData(r.Context(), h, role, v, after)
		if err != nil {
			return "", page{}, err
		}
		return "role", page{Title: fmt.Sprintf("%s version %d", role, v), Kind: "role", Data: d}, nil
	})
}

func (u *UI) roleData(ctx context.Context, h Head, role string, v int64, after string) (*roleData, error) {
	raw, err := u.src.Metadata(ctx, role, v)
	if err != nil {
		return nil, err
	}
	cur, err := u.currentVersion(ctx, h, role)
	if err != nil {
		return nil, err
	}
	sum := sha256.Sum256(raw)
	d := &roleData{Role: role, Version: v, Current: cur, IsCurrent: cur == v, Length: len(raw), SHA256: hex.EncodeToString(sum[:]),
		RawURL: fmt.Sprintf("/metadata/%d.%s.json", v, role), After: after}
	if d.Versions, err = u.db.PublishedVersions(ctx, role, maxVersions); err != nil {
		return nil, err
	}
	md, exp, err := parseAny(role, raw)
	if err != nil {
		return nil, err
	}
	d.Expires, d.Expired = fmtTime(exp), !exp.After(u.now())

	// Who is trusted to sign this role, and so against which keys the signatures count.
	var keys map[string]*metadata.Key
	var ids []string
	var sigs []metadata.Signature
	switch m := md.(type) {
	case *metadata.Metadata[metadata.RootType]:
		d.Type, d.SpecVersion, d.Consistent, sigs = "root", m.Signed.SpecVersion, m.Signed.ConsistentSnapshot, m.Signatures
		// A root is verified by its own keys (and, from version 2, by the previous root's:
		// the page checks its own; the browser's TUF client checks the chain).
		keys, d.Delegator, d.DelegatorV = m.Signed.Keys, "root", v
		if rr := m.Signed.Roles[tufrepo.RoleRoot]; rr != nil {
			ids, d.Threshold = rr.KeyIDs, rr.Threshold
		}
		d.Keys = keyViews(m.Signed.Keys)
		for _, name := range []string{tufrepo.RoleRoot, tufrepo.RoleTimestamp, tufrepo.RoleSnapshot, tufrepo.RoleTargets} {
			if rr := m.Signed.Roles[name]; rr != nil {
				ks := slices.Clone(rr.KeyIDs)
				slices.Sort(ks)
				d.Roles = append(d.Roles, roleRef{Role: name, KeyIDs: ks, Threshold: rr.Threshold})
			}
		}
	case *metadata.Metadata[metadata.TimestampType]:
		d.Type, d.SpecVersion, sigs = "timestamp", m.Signed.SpecVersion, m.Signatures
		for name, mf := range m.Signed.Meta {
			d.Meta = append(d.Meta, metaView{Name: name, Version: mf.Version, Length: mf.Length, Hashes: hashList(mf.Hashes)})
		}
		d.MetaCount = len(d.Meta)
	case *metadata.Metadata[metadata.SnapshotType]:
		d.Type, d.SpecVersion, sigs = "snapshot", m.Signed.SpecVersion, m.Signatures
		names := make([]string, 0, len(m.Signed.Meta))
		for name := range m.Signed.Meta {
			if name > after {
				names = append(names, name)
			}
		}
		sort.Strings(names)
		d.MetaCount = len(m.Signed.Meta)
		if len(names) > maxListed {
			names, d.Next = names[:maxListed], names[maxListed-1]
		}
		for _, name := range names {
			mf := m.Signed.Meta[name]
			d.Meta = append(d.Meta, metaView{Name: name, Version: mf.Version, Length: mf.Length, Hashes: hashList(mf.Hashes)})
		}
	case *metadata.Metadata[metadata.TargetsType]:
		d.Type, d.SpecVersion, sigs = "targets", m.Signed.SpecVersion, m.Signatures
		u.targetsView(d, m, after)
	}
	if role != tufrepo.RoleRoot {
		keys, ids, err = u.trustedKeys(ctx, h, d, role)
		if err != nil {
			d.Note = api.ProblemFor(err).Detail
		}
	}
	d.Signatures, d.Valid = sigViews(role, md, sigs, keys, ids)
	d.Met = d.Threshold > 0 && d.Valid >= d.Threshold
	return d, nil
}

// trustedKeys finds the keys and threshold the delegator of role trusts: root for the
// top-level roles, else the role that delegates to it, found by walking the delegations.
func (u *UI) trustedKeys(ctx context.Context, h Head, d *roleData, role string) (map[string]*metadata.Key, []string, error) {
	rp, err := u.load(ctx, tufrepo.RoleRoot, h.Root)
	if err != nil {
		return nil, nil, err
	}
	switch role {
	case tufrepo.RoleTimestamp, tufrepo.RoleSnapshot, tufrepo.RoleTargets:
		d.Delegator, d.DelegatorV = tufrepo.RoleRoot, h.Root
		rr := rp.root.Signed.Roles[role]
		if rr == nil {
			return nil, nil, fmt.Errorf("root version %d names no keys for %s", h.Root, role)
		}
		d.Threshold = rr.Threshold
		return rp.root.Signed.Keys, rr.KeyIDs, nil
	}
	name, ver, del, keys, err := u.findDelegator(ctx, h, role)
	if err != nil {
		return nil, nil, err
	}
	d.Delegator, d.DelegatorV, d.Threshold = name, ver, del.Threshold
	return keys, del.KeyIDs, nil
}

// findDelegator finds the role that delegates to role, breadth first from targets
// through every delegating role (claimed, recently-claimed, shard roles, hash bins),
// without loading project roles, which delegate nothing. Bounded: at most 256 roles
// loaded and 4096 delegations looked at.
func (u *UI) findDelegator(ctx context.Context, h Head, role string) (string, int64, *metadata.DelegatedRole, map[string]*metadata.Key, error) {
	_, _, targets, err := u.topChain(ctx, h)
	if err != nil {
		return "", 0, nil, nil, err
	}
	tv, _, err := u.db.LatestPublishedVersion(ctx, tufrepo.RoleTargets)
	if err != nil {
		return "", 0, nil, nil, err
	}
	type node struct {
		name    string
		version int64
		md      *metadata.Metadata[metadata.TargetsType]
	}
	level := []node{{tufrepo.RoleTargets, tv, targets}}
	loaded, checked := 0, 0
	for depth := 0; depth < 8 && len(level) > 0; depth++ {
		var next []node
		for _, n := range level {
			dl := n.md.Signed.Delegations
			if dl == nil {
				continue
			}
			if dr := delegatedRole(dl, role); dr != nil {
				return n.name, n.version, dr, dl.Keys, nil
			}
		}
		for _, n := range level {
			dl := n.md.Signed.Delegations
			if dl == nil {
				continue
			}
			for _, c := range dl.Roles {
				if loaded >= 4*maxWalk || checked >= 4096 {
					break
				}
				checked++
				if _, err := u.db.GetProject(ctx, c.Name); err == nil {
					continue // project roles delegate nothing further
				}
				p, v, err := u.latest(ctx, c.Name)
				if err != nil {
					continue
				}
				loaded++
				next = append(next, node{c.Name, v, p.targets})
			}
		}
		level = next
	}
	return "", 0, nil, nil, api.Errorf(api.CodeNotFound, "no published role delegates to %q", role)
}

func (u *UI) targetsView(d *roleData, m *metadata.Metadata[metadata.TargetsType], after string) {
	if dl := m.Signed.Delegations; dl != nil {
		d.DelegKeys = keyViews(dl.Keys)
		for _, r := range dl.Roles {
			ks := slices.Clone(r.KeyIDs)
			slices.Sort(ks)
			d.Delegations = append(d.Delegations, delegationView{Name: r.Name, KeyIDs: ks, Threshold: r.Threshold, Terminating: r.Terminating, Paths: r.Paths, HashPrefixes: r.PathHashPrefixes})
		}
		if s := dl.SuccinctRoles; s != nil {
			names := s.GetRoles()
			sv := &succinctView{NamePrefix: s.NamePrefix, BitLength: s.BitLength, Bins: len(names), KeyIDs: s.KeyIDs, Threshold: s.Threshold}
			if len(names) > 0 {
				sv.First, sv.Last = names[0], names[len(names)-1]
			}
			d.Succinct = sv
		}
	}
	paths := make([]string, 0, len(m.Signed.Targets))
	for p := range m.Signed.Targets {
		if p > after {
			paths = append(paths, p)
		}
	}
	sort.Strings(paths)
	d.TargetCount = len(m.Signed.Targets)
	if len(paths) > maxListed {
		paths, d.Next = paths[:maxListed], paths[maxListed-1]
	}
	for _, p := range paths {
		tf := m.Signed.Targets[p]
		tv := targetView{Path: p, Length: tf.Length, Hashes: hashList(tf.Hashes)}
		if tf.Custom != nil {
			tv.Custom = prettyJSON(*tf.Custom)
		}
		d.Targets = append(d.Targets, tv)
	}
}

func hashList(h metadata.Hashes) []string {
	var out []string
	for alg, v := range h {
		out = append(out, alg+":"+hex.EncodeToString(v))
	}
	sort.Strings(out)
	return out
}

func keyViews(keys map[string]*metadata.Key) []keyView {
	ids := make([]string, 0, len(keys))
	for id := range keys {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	var out []keyView
	for _, id := range ids {
		k := keys[id]
		kv := keyView{KeyID: id, KeyType: k.Type, Scheme: k.Scheme}
		kv.Fingerprint = client.ViewKey(k).Fingerprint
		out = append(out, kv)
	}
	return out
}

// sigViews lists every key the delegator trusts and every signature in the file, with
// whether each verifies: a broken signature shows, it is not hidden.
func sigViews(role string, md any, sigs []metadata.Signature, keys map[string]*metadata.Key, ids []string) ([]sigView, int) {
	byID := map[string]*sigView{}
	var order []string
	add := func(id string) *sigView {
		if s, ok := byID[id]; ok {
			return s
		}
		s := &sigView{KeyID: id}
		if k, ok := keys[id]; ok {
			v := client.ViewKey(k)
			s.KeyType, s.Fingerprint = v.KeyType, v.Fingerprint
		}
		byID[id] = s
		order = append(order, id)
		return s
	}
	for _, id := range ids {
		add(id).Trusted = true
	}
	for _, sg := range sigs {
		s := add(sg.KeyID)
		s.Present = true
	}
	valid := 0
	for _, id := range order {
		s := byID[id]
		if k, ok := keys[id]; ok && s.Present && s.Trusted {
			s.Valid = signatureVerifies(role, md, id, k)
			if s.Valid {
				valid++
			}
		}
	}
	sort.SliceStable(order, func(i, j int) bool { return order[i] < order[j] })
	out := make([]sigView, 0, len(order))
	for _, id := range order {
		out = append(out, *byID[id])
	}
	return out, valid
}

type rootDiffData struct {
	From, To int64
	Versions []int64
	Added    []keyView
	Removed  []keyView
	Roles    []roleDiff
	Expires  [2]string
}

type roleDiff struct {
	Role                     string
	Added, Removed           []string
	ThresholdFrom, Threshold int
	Changed                  bool
}

// rootDiff compares two root versions: keys added and removed, each role's keys and
// threshold.
func (u *UI) rootDiff(w http.ResponseWriter, r *http.Request) {
	h, err := u.head()
	if err != nil {
		u.fail(w, r, err)
		return
	}
	q := r.URL.Query()
	from, err1 := strconv.ParseInt(q.Get("from"), 10, 64)
	to, err2 := strconv.ParseInt(q.Get("to"), 10, 64)
	if q.Get("to") == "" {
		to, err2 = h.Root, nil
	}
	if q.Get("from") == "" {
		from, err1 = max(1, to-1), nil
	}
	if err1 != nil || err2 != nil || from < 1 || to < 1 || from > h.Root || to > h.Root {
		u.fail(w, r, api.Errorf(api.CodeBadRequest, "from and to must be root versions between 1 and %d", h.Root))
		return
	}
	u.cached(w, r, fmt.Sprint(h.Root), func() (string, page, error) {
		ctx := r.Context()
		a, err := u.load(ctx, tufrepo.RoleRoot, from)
		if err != nil {
			return "", page{}, err
		}
		b, err := u.load(ctx, tufrepo.RoleRoot, to)
		if err != nil {
			return "", page{}, err
		}
		d := rootDiffData{From: from, To: to, Expires: [2]string{fmtTime(a.root.Signed.Expires), fmtTime(b.root.Signed.Expires)}}
		if d.Versions, err = u.db.PublishedVersions(ctx, tufrepo.RoleRoot, maxVersions); err != nil {
			return "", page{}, err
		}
		for _, k := range keyViews(b.root.Signed.Keys) {
			if _, ok := a.root.Signed.Keys[k.KeyID]; !ok {
				d.Added = append(d.Added, k)
			}
		}
		for _, k := range keyViews(a.root.Signed.Keys) {
			if _, ok := b.root.Signed.Keys[k.KeyID]; !ok {
				d.Removed = append(d.Removed, k)
			}
		}
		for _, name := range []string{tufrepo.RoleRoot, tufrepo.RoleTimestamp, tufrepo.RoleSnapshot, tufrepo.RoleTargets} {
			ra, rb := client.RootRoleKeys(a.root, name), client.RootRoleKeys(b.root, name)
			rd := roleDiff{Role: name, ThresholdFrom: ra.Threshold, Threshold: rb.Threshold}
			for _, id := range rb.KeyIDs() {
				if !ra.Has(id) {
					rd.Added = append(rd.Added, id)
				}
			}
			for _, id := range ra.KeyIDs() {
				if !rb.Has(id) {
					rd.Removed = append(rd.Removed, id)
				}
			}
			rd.Changed = len(rd.Added) > 0 || len(rd.Removed) > 0 || rd.ThresholdFrom != rd.Threshold
			d.Roles = append(d.Roles, rd)
		}
		return "rootdiff", page{Title: fmt.Sprintf("root %d → %d", from, to), Kind: "rootdiff", Data: d}, nil
	})
}

// prettyJSON indents custom data for people, with strings decoded (no \u003c escapes: the
// template escapes for HTML, and userText shows hidden characters).
func prettyJSON(raw []byte) string {
	var v any
	if err := json.Unmarshal(raw, &v); err != nil {
		return string(raw)
	}
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(v); err != nil {
		return string(raw)
	}
	return strings.TrimSuffix(b.String(), "\n")
}
