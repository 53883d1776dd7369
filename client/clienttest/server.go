// Package clienttest is an in-memory Cairn server for testing clients. It serves TUF
// metadata and targets with Cairn's trust layout (root → timestamp, snapshot, targets;
// targets → claimed, recently-claimed → one role per project) and consistent snapshots,
// and implements the REST endpoints the CLI writes through. Submitted project roles are
// checked with tufrepo.ValidateProjectRole, the server's own validation.
//
// Tests can also misbehave on purpose: publish any bytes as a project role, replace served
// files or blobs, or rewrite the audit log, to check that clients refuse the result.
package clienttest

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"maps"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cairn-dev/cairn/api"
	"github.com/cairn-dev/cairn/tufrepo"
	"github.com/sigstore/sigstore/pkg/signature"
	"github.com/theupdateframework/go-tuf/v2/metadata"
)

// Key is a signing key with its TUF form, for tests that sign metadata themselves.
type Key struct {
	Signer signature.Signer
	Public *metadata.Key
	ID     string
}

// NewKey generates an ed25519 key; it fails the test on error.
func NewKey(t testing.TB) *Key {
	t.Helper()
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	s, err := signature.LoadED25519Signer(priv)
	if err != nil {
		t.Fatal(err)
	}
	pk, err := metadata.KeyFromPublicKey(priv.Public())
	if err != nil {
		t.Fatal(err)
	}
	return &Key{Signer: s, Public: pk, ID: tufrepo.KeyID(pk)}
}

// Server is the fake. Its exported methods are safe to call while clients use it.
type Server struct {
	// URL is the base URL clients use.
	URL string
	// Token is the bearer token write requests must carry.
	Token string

	hs *httptest.Server
	t  testing.TB

	mu       sync.Mutex
	now      time.Time
	keys     map[string]*Key // top-level and delegator roles
	root     []byte
	files    map[string][]byte // served metadata by file name, e.g. "3.snapshot.json"
	versions map[string]int64  // current versions of the roles the server signs
	projects map[string]*project
	blobs    map[string][]byte
	log      []api.LogEntry
	requests []string
	tamper   func(name string, body []byte) []byte
	stage    bool
}

type project struct {
	name      string
	keys      map[string]*metadata.Key
	keyIDs    []string
	threshold int
	claimed   bool
	version   int64  // published role version
	raw       []byte // published role bytes
	files     map[string]tufrepo.PublishedFile
	staged    *tufrepo.AcceptedRole
}

// New starts a fake server with a freshly signed root and empty delegators, and closes it
// when the test ends.
func New(t testing.TB) *Server {
	t.Helper()
	s := &Server{
		Token:    "test-token",
		t:        t,
		now:      time.Now().UTC(),
		keys:     map[string]*Key{},
		files:    map[string][]byte{},
		versions: map[string]int64{},
		projects: map[string]*project{},
		blobs:    map[string][]byte{},
	}
	for _, r := range []string{tufrepo.RoleRoot, tufrepo.RoleTimestamp, tufrepo.RoleSnapshot, tufrepo.RoleTargets, tufrepo.RoleClaimed, tufrepo.RoleRecentlyClaimed} {
		s.keys[r] = NewKey(t)
	}
	s.bootstrap()
	s.hs = httptest.NewServer(s.routes())
	s.URL = s.hs.URL
	t.Cleanup(s.hs.Close)
	return s
}

// Root returns version 1 of the root metadata, the trust anchor clients pin.
func (s *Server) Root() []byte { return slices.Clone(s.root) }

// RoleKey returns the key of a top-level or delegator role.
func (s *Server) RoleKey(role string) *Key { return s.keys[role] }

func (s *Server) bootstrap() {
	exp := s.now.Add(365 * 24 * time.Hour).Truncate(time.Second)
	root := metadata.Root(exp)
	root.Signed.ConsistentSnapshot = true
	root.Signed.SpecVersion = tufrepo.SpecVersion
	for _, r := range []string{tufrepo.RoleRoot, tufrepo.RoleTimestamp, tufrepo.RoleSnapshot, tufrepo.RoleTargets} {
		if err := root.Signed.AddKey(s.keys[r].Public, r); err != nil {
			s.t.Fatal(err)
		}
	}
	s.root = s.sign(root, tufrepo.RoleRoot)
	s.files["1.root.json"] = s.root
	s.files["root.json"] = s.root
	s.versions[tufrepo.RoleRoot] = 1

	targets := metadata.Targets(exp)
	targets.Signed.SpecVersion = tufrepo.SpecVersion
	targets.Signed.Delegations = &metadata.Delegations{Keys: map[string]*metadata.Key{}, Roles: []metadata.DelegatedRole{}}
	for _, r := range []string{tufrepo.RoleClaimed, tufrepo.RoleRecentlyClaimed} {
		k := s.keys[r]
		targets.Signed.Delegations.Keys[k.ID] = k.Public
		targets.Signed.Delegations.Roles = append(targets.Signed.Delegations.Roles, metadata.DelegatedRole{
			Name: r, KeyIDs: []string{k.ID}, Threshold: 1, Paths: []string{"*/*/*"},
		})
	}
	s.files["1.targets.json"] = s.sign(targets, tufrepo.RoleTargets)
	s.versions[tufrepo.RoleTargets] = 1
	s.publishLocked()
}

// signMD signs md with the key of role.
func signMD[T metadata.Roles](s *Server, md *metadata.Metadata[T], role string) []byte {
	if _, err := md.Sign(s.keys[role].Signer); err != nil {
		s.t.Fatal(err)
	}
	raw, err := md.ToBytes(false)
	if err != nil {
		s.t.Fatal(err)
	}
	return raw
}

// sign signs md with the key of role and records it in the audit log.
func (s *Server) sign(md any, role string) []byte {
	var raw []byte
	var version int64
	switch m := md.(type) {
	case *metadata.Metadata[metadata.RootType]:
		raw, version = signMD(s, m, role), m.Signed.Version
	case *metadata.Metadata[metadata.TargetsType]:
		raw, version = signMD(s, m, role), m.Signed.Version
	case *metadata.Metadata[metadata.SnapshotType]:
		raw, version = signMD(s, m, role), m.Signed.Version
	case *metadata.Metadata[metadata.TimestampType]:
		raw, version = signMD(s, m, role), m.Signed.Version
	}
	s.appendLog(api.ActionSigned, role, version, raw)
	return raw
}

func (s *Server) appendLog(action, role string, version int64, raw []byte) {
	sum := sha256.Sum256(raw)
	e := api.LogEntry{
		Seq: int64(len(s.log) + 1), Action: action, Role: role, Version: version,
		Length: int64(len(raw)), SHA256: hex.EncodeToString(sum[:]),
		Snapshot: s.versions[tufrepo.RoleSnapshot], Time: tufrepo.AuditTime(time.Now()),
	}
	var prev []byte
	if n := len(s.log); n > 0 {
		prev, _ = hex.DecodeString(s.log[n-1].Hash)
	}
	e.PrevHash = hex.EncodeToString(prev)
	e.Hash = hex.EncodeToString(tufrepo.AuditHash(prev, e))
	s.log = append(s.log, e)
}

// publishLocked re-signs both delegators, a snapshot listing every role and a timestamp,
// as the real publisher does after accepting roles. s.mu must be held (or s not shared).
func (s *Server) publishLocked() {
	exp := s.now.Add(30 * 24 * time.Hour).Truncate(time.Second)
	for _, r := range []string{tufrepo.RoleClaimed, tufrepo.RoleRecentlyClaimed} {
		md := metadata.Targets(exp)
		md.Signed.SpecVersion = tufrepo.SpecVersion
		s.versions[r]++
		md.Signed.Version = s.versions[r]
		md.Signed.Delegations = &metadata.Delegations{Keys: map[string]*metadata.Key{}, Roles: []metadata.DelegatedRole{}}
		for _, name := range slices.Sorted(maps.Keys(s.projects)) {
			p := s.projects[name]
			if p.claimed != (r == tufrepo.RoleClaimed) {
				continue
			}
			maps.Copy(md.Signed.Delegations.Keys, p.keys)
			md.Signed.Delegations.Roles = append(md.Signed.Delegations.Roles, metadata.DelegatedRole{
				Name: name, KeyIDs: slices.Clone(p.keyIDs), Threshold: p.threshold, Terminating: true,
				Paths: []string{tufrepo.ProjectPathPattern(name)},
			})
		}
		s.files[tufrepo.VersionedName(r, md.Signed.Version)] = s.sign(md, r)
	}

	snap := metadata.Snapshot(s.now.Add(7 * 24 * time.Hour).Truncate(time.Second))
	snap.Signed.SpecVersion = tufrepo.SpecVersion
	s.versions[tufrepo.RoleSnapshot]++
	snap.Signed.Version = s.versions[tufrepo.RoleSnapshot]
	for _, r := range []string{tufrepo.RoleTargets, tufrepo.RoleClaimed, tufrepo.RoleRecentlyClaimed} {
		v := s.versions[r]
		mf := metadata.MetaFile(v)
		mf.Length = int64(len(s.files[tufrepo.VersionedName(r, v)]))
		snap.Signed.Meta[tufrepo.MetaName(r)] = mf
	}
	for name, p := range s.projects {
		if p.raw == nil {
			continue
		}
		mf := metadata.MetaFile(p.version)
		mf.Length = int64(len(p.raw))
		snap.Signed.Meta[tufrepo.MetaName(name)] = mf
		s.files[tufrepo.VersionedName(name, p.version)] = p.raw
	}
	snapRaw := s.sign(snap, tufrepo.RoleSnapshot)
	s.files[tufrepo.VersionedName(tufrepo.RoleSnapshot, snap.Signed.Version)] = snapRaw

	ts := metadata.Timestamp(s.now.Add(24 * time.Hour).Truncate(time.Second))
	ts.Signed.SpecVersion = tufrepo.SpecVersion
	s.versions[tufrepo.RoleTimestamp]++
	ts.Signed.Version = s.versions[tufrepo.RoleTimestamp]
	sum := sha256.Sum256(snapRaw)
	mf := metadata.MetaFile(snap.Signed.Version)
	mf.Length = int64(len(snapRaw))
	mf.Hashes = metadata.Hashes{"sha256": sum[:]}
	ts.Signed.Meta[tufrepo.MetaName(tufrepo.RoleSnapshot)] = mf
	tsRaw := s.sign(ts, tufrepo.RoleTimestamp)
	s.files["timestamp.json"] = tsRaw
	s.files[tufrepo.VersionedName(tufrepo.RoleTimestamp, ts.Signed.Version)] = tsRaw
}

// SnapshotVersion returns the current snapshot version.
func (s *Server) SnapshotVersion() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.versions[tufrepo.RoleSnapshot]
}

// AddProject delegates name to keys with threshold (through claimed or recently-claimed)
// and publishes raw as its role, without any checks: tests use it to set up state and to
// publish metadata the real server would refuse.
func (s *Server) AddProject(name string, keys []*metadata.Key, threshold int, claimed bool, raw []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	p := &project{name: name, keys: map[string]*metadata.Key{}, threshold: threshold, claimed: claimed, files: map[string]tufrepo.PublishedFile{}}
	for _, k := range keys {
		id := tufrepo.KeyID(k)
		p.keys[id] = k
		p.keyIDs = append(p.keyIDs, id)
	}
	slices.Sort(p.keyIDs)
	s.projects[name] = p
	s.setRoleLocked(p, raw)
}

// PublishRole publishes raw as the project's role without any checks: the version
// published is the one raw claims, or the next one if raw does not parse.
func (s *Server) PublishRole(name string, raw []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	p := s.projects[name]
	if p == nil {
		s.t.Fatalf("clienttest: no project %q", name)
	}
	s.setRoleLocked(p, raw)
}

func (s *Server) setRoleLocked(p *project, raw []byte) {
	if md, err := metadata.Targets().FromBytes(raw); err == nil {
		p.version = md.Signed.Version
		for path, tf := range md.Signed.Targets {
			p.files[path] = tufrepo.PublishedFile{Length: tf.Length, SHA256: hex.EncodeToString(tf.Hashes["sha256"])}
		}
	} else {
		p.version++
	}
	p.raw = raw
	s.appendLog(api.ActionAccepted, p.name, p.version, raw)
	s.publishLocked()
}

// Publish re-signs delegators, snapshot and timestamp without other changes.
func (s *Server) Publish() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.publishLocked()
}

// File returns a served metadata file by name ("timestamp.json", "4.snapshot.json").
func (s *Server) File(name string) []byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.files[name])
}

// SetFile replaces a served metadata file, e.g. to roll timestamp.json back.
func (s *Server) SetFile(name string, body []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.files[name] = body
}

// PutBlob stores a blob under its digest; SetBlob stores any bytes under any digest.
func (s *Server) PutBlob(body []byte) string {
	sum := sha256.Sum256(body)
	h := hex.EncodeToString(sum[:])
	s.SetBlob(h, body)
	return h
}

// SetBlob serves body for the given sha256 hex, whether or not it matches.
func (s *Server) SetBlob(sha256Hex string, body []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.blobs[sha256Hex] = body
}

// SetTamper installs a hook that may replace the body of any GET under /metadata/ or
// /targets/; name is the path after that prefix.
func (s *Server) SetTamper(f func(name string, body []byte) []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.tamper = f
}

// SetStage makes role submissions answer 202 "staged"; they are published when their
// status is next read.
func (s *Server) SetStage(on bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.stage = on
}

// RewriteLog lets a test change the audit log, e.g. to check that clients detect it.
func (s *Server) RewriteLog(f func([]api.LogEntry) []api.LogEntry) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.log = f(s.log)
}

// Requests returns "METHOD /path" of every request so far.
func (s *Server) Requests() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.requests)
}

// WriteRequests returns the requests other than GET and HEAD.
func (s *Server) WriteRequests() []string {
	var out []string
	for _, r := range s.Requests() {
		if !strings.HasPrefix(r, "GET ") && !strings.HasPrefix(r, "HEAD ") {
			out = append(out, r)
		}
	}
	return out
}

// Project returns the published role version and bytes of a project.
func (s *Server) Project(name string) (int64, []byte, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	p := s.projects[name]
	if p == nil {
		return 0, nil, false
	}
	return p.version, slices.Clone(p.raw), true
}

func (s *Server) String() string { return fmt.Sprintf("clienttest.Server(%s)", s.URL) }
