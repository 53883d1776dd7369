package client

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/cairn-dev/cairn/api"
	"github.com/cairn-dev/cairn/tufrepo"
	"github.com/theupdateframework/go-tuf/v2/metadata"
	"github.com/theupdateframework/go-tuf/v2/metadata/config"
	"github.com/theupdateframework/go-tuf/v2/metadata/updater"
)

// RepoConfig configures a Repo.
type RepoConfig struct {
	// Server is the Cairn server's base URL; metadata is read from Server+"/metadata/" and
	// files from Server+"/targets/".
	Server string
	// TrustedRoot is the pinned root metadata, the trust anchor. A newer root that chains
	// from it and is cached in MetadataDir is preferred, as TUF clients do.
	TrustedRoot []byte
	// MetadataDir caches verified metadata between runs (created with mode 0700). Use one
	// directory per server.
	MetadataDir string
	// HTTPClient is used for every download; nil means NewHTTPClient(Timeouts), which
	// bounds every phase of every request (slow-retrieval protection).
	HTTPClient *http.Client
	// Timeouts, when HTTPClient is nil; nil means DefaultTimeouts().
	Timeouts *Timeouts
	// UserAgent is sent with every request.
	UserAgent string
	// OCIToken, if set, is sent as the password of HTTP Basic auth on OCI registry
	// requests (DownloadReleaseOCI), for servers that do not allow anonymous pulls.
	OCIToken string
	// ClassicSnapshot makes Refresh always use snapshot.json, as standard TUF clients do,
	// even when the server's timestamp carries a Merkle snapshot.
	ClassicSnapshot bool
	// AsOf, if set, is the time expiry is evaluated at instead of the clock: a mirror's
	// bundle export time (BundleAsOf, SECURITY.md "Air-gapped mirrors"). It implies the
	// classic snapshot, which every mirror serves (a static directory has no Merkle
	// proofs).
	AsOf time.Time
	// Progress, if set, is told about each release file download (not metadata): the
	// download reads the response body through the reader it returns, and calls done
	// once it ends (ok: every signed byte arrived). The CLI draws progress bars with it.
	Progress func(path string, size int64, body io.Reader) (r io.Reader, done func(ok bool))
}

// Repo is a verifying TUF client for a Cairn repository, built on go-tuf's updater. Every
// answer it gives comes from metadata that verified from the trusted root down through the
// delegations to the project's role. A Repo is not safe for concurrent use.
type Repo struct {
	cfg   RepoConfig
	fetch *recordingFetcher
	up    tufView // nil until Refresh succeeds
	// merkle is true when the last Refresh went through the Merkle snapshot.
	merkle bool
}

// OpenRepo checks cfg and returns a Repo. It does not touch the network.
func OpenRepo(cfg RepoConfig) (*Repo, error) {
	u, err := ParseServerURL(cfg.Server)
	if err != nil {
		return nil, err
	}
	cfg.Server = u.String()
	if cfg.MetadataDir == "" {
		return nil, errors.New("opening TUF repository: no metadata directory given")
	}
	if _, err := metadata.Root().FromBytes(cfg.TrustedRoot); err != nil {
		return nil, &VerifyError{Code: ExitMalformed, Role: tufrepo.RoleRoot, Detail: "the pinned trusted root does not parse as TUF root metadata", Err: err}
	}
	if cfg.HTTPClient == nil {
		t := DefaultTimeouts()
		if cfg.Timeouts != nil {
			t = *cfg.Timeouts
		}
		cfg.HTTPClient = NewHTTPClient(t)
	}
	if cfg.UserAgent == "" {
		cfg.UserAgent = "cairn-client"
	}
	return &Repo{
		cfg:   cfg,
		fetch: &recordingFetcher{hc: cfg.HTTPClient, ua: cfg.UserAgent, metadataURL: cfg.Server + "/metadata"},
	}, nil
}

// Server returns the server's base URL.
func (r *Repo) Server() string { return r.cfg.Server }

// startRoot picks the root to start from: the cached root.json, which an earlier run
// verified by chaining from the pinned root, if it is at least as new; else the pinned one.
// A cached root that does not even parse is ignored rather than trusted.
func (r *Repo) startRoot() []byte {
	cached, err := os.ReadFile(filepath.Join(r.cfg.MetadataDir, "root.json"))
	if err != nil {
		return r.cfg.TrustedRoot
	}
	c, err1 := metadata.Root().FromBytes(cached)
	p, err2 := metadata.Root().FromBytes(r.cfg.TrustedRoot)
	if err1 != nil || err2 != nil || c.Signed.Version < p.Signed.Version {
		return r.cfg.TrustedRoot
	}
	return cached
}

// Refresh downloads and verifies the top-level metadata as the TUF client workflow
// requires. Delegated roles are loaded on demand by later calls. Each Refresh starts a new
// update from the cached state.
//
// When the verified timestamp carries a Merkle snapshot (DESIGN.md "Merkle snapshot") and
// cfg.ClassicSnapshot is off, snapshot.json is not downloaded: every role is proven against
// the timestamp's tree instead (root rotations, timestamp, then targets). A timestamp
// without one (an older server) takes the classic path; a proof that fails never does.
func (r *Repo) Refresh(ctx context.Context) error {
	if r.cfg.ClassicSnapshot || !r.cfg.AsOf.IsZero() {
		return r.refreshClassic(ctx)
	}
	r.fetch.ctx = ctx
	r.fetch.fetches = nil
	r.up, r.merkle = nil, false
	var m *merkleView
	err := noPanic(func() error {
		var e error
		m, e = r.refreshMerkle(ctx)
		return e
	})
	if err != nil {
		if pp := (*parserPanic)(nil); errors.As(err, &pp) {
			err = r.tufError(err, "refreshing TUF metadata from "+r.cfg.Server)
		}
		r.up = nil
		return err
	}
	if m == nil {
		return r.refreshClassic(ctx)
	}
	r.up, r.merkle = recovering{m}, true
	return nil
}

// UsedMerkle reports whether the last Refresh went through the Merkle snapshot.
func (r *Repo) UsedMerkle() bool { return r.up != nil && r.merkle }

// refreshClassic is Refresh through snapshot.json, with go-tuf's updater.
func (r *Repo) refreshClassic(ctx context.Context) error {
	r.fetch.ctx = ctx
	r.fetch.fetches = nil
	r.up, r.merkle = nil, false
	cfg, err := config.New(r.cfg.Server+"/metadata", r.startRoot())
	if err != nil {
		return fmt.Errorf("configuring TUF updater: %w", err)
	}
	cfg.LocalMetadataDir = r.cfg.MetadataDir
	cfg.LocalTargetsDir = filepath.Join(r.cfg.MetadataDir, "targets")
	cfg.RemoteTargetsURL = r.cfg.Server + "/targets"
	cfg.PrefixTargetsWithHash = true
	cfg.Fetcher = r.fetch
	up, err := updater.New(cfg)
	if err != nil {
		return r.tufError(err, "loading the trusted root")
	}
	if !r.cfg.AsOf.IsZero() {
		// go-tuf's reference time: every expiry check of this refresh uses it.
		up.UnsafeSetRefTime(r.cfg.AsOf)
	}
	if err := noPanic(up.Refresh); err != nil {
		// Keep the partial updater: the error inspection reads what it already trusts.
		r.up = recovering{up}
		verr := r.tufError(err, "refreshing TUF metadata from "+r.cfg.Server)
		r.up = nil
		return verr
	}
	r.up = recovering{up}
	return nil
}

// SnapshotVersion returns the version of the verified snapshot, or 0 before Refresh.
func (r *Repo) SnapshotVersion() int64 {
	if r.up == nil {
		return 0
	}
	if s := r.up.GetTrustedMetadataSet().Snapshot; s != nil {
		return s.Signed.Version
	}
	return 0
}

// ProjectRole is a project's role metadata as verified through the delegation chain,
// with the delegation that made it trusted.
type ProjectRole struct {
	Name     string
	Metadata *metadata.Metadata[metadata.TargetsType]
	// Tree is the delegation tree the project is in: "claimed" or "recently-claimed";
	// Delegator the node of that tree that delegates it (the top or a shard), and Path
	// every node from the top down to it.
	Tree      string
	Delegator string
	Path      []TreeNode
	KeyIDs    []string // the maintainer keys the delegator trusts for the project
	Keys      map[string]*metadata.Key
	Threshold int
	// SnapshotVersion is the snapshot the role was verified through.
	SnapshotVersion int64
}

// Version is the role's metadata version.
func (p *ProjectRole) Version() int64 { return p.Metadata.Signed.Version }

// Claimed reports whether the admins' offline claimed tree delegates the project.
func (p *ProjectRole) Claimed() bool { return p.Tree == tufrepo.RoleClaimed }

// Releases lists the releases in the role, newest first.
func (p *ProjectRole) Releases() []Release { return ReleasesFromRole(p.Name, p.Metadata) }

// TrustsKey reports whether keyID is one of the project's delegated maintainer keys.
func (p *ProjectRole) TrustsKey(keyID string) bool { return slices.Contains(p.KeyIDs, keyID) }

// probeFile is the file name used to make the updater walk to a project's role. Any path
// under the project is routed to its role; whether it exists does not matter.
const probeFile = "x"

// ProjectRole refreshes and returns the verified role of project. A project that the
// verified metadata does not delegate to is an *api.Error with CodeNotFound.
func (r *Repo) ProjectRole(ctx context.Context, project string) (*ProjectRole, error) {
	if err := tufrepo.ValidateProjectName(project); err != nil {
		return nil, err
	}
	if err := r.Refresh(ctx); err != nil {
		return nil, err
	}
	r.fetch.ctx = ctx
	// go-tuf loads delegated roles only while looking up a target: asking for a path under
	// the project makes it walk targets → claimed / recently-claimed → the project role,
	// verifying each. The path normally does not exist, so "not found" is expected.
	_, lookupErr := r.up.GetTargetInfo(tufrepo.TargetPath(project, "0", probeFile))
	trusted := r.up.GetTrustedMetadataSet()
	md, ok := trusted.Targets[project]
	if !ok {
		if lookupErr != nil && !isTargetNotFound(lookupErr) {
			return nil, r.tufError(lookupErr, fmt.Sprintf("loading the role of project %q", project))
		}
		return nil, api.Errorf(api.CodeNotFound, "project %q is not in the verified metadata of %s: check the name, or create it with 'cairn project create'", project, r.cfg.Server)
	}
	pr := &ProjectRole{Name: project, Metadata: md, SnapshotVersion: r.SnapshotVersion()}
	if d, name := findDelegation(trusted.Targets, project); d != nil {
		pr.Delegator = name
		pr.Tree, _, _ = tufrepo.ParseShardRole(name)
		pr.Path = treePath(trusted.Targets, pr.Tree, project)
		pr.KeyIDs = slices.Clone(d.role.KeyIDs)
		pr.Keys = map[string]*metadata.Key{}
		for _, id := range d.role.KeyIDs {
			if k, ok := d.keys[id]; ok {
				pr.Keys[id] = k
			}
		}
		pr.Threshold = d.role.Threshold
	}
	return pr, nil
}

// Releases refreshes and lists the verified releases of project, newest first.
func (r *Repo) Releases(ctx context.Context, project string) ([]Release, error) {
	pr, err := r.ProjectRole(ctx, project)
	if err != nil {
		return nil, err
	}
	return pr.Releases(), nil
}

// isTargetNotFound recognises go-tuf's plain "target … not found" from a delegation walk
// that ended without the path; go-tuf has no error type for it.
func isTargetNotFound(err error) bool {
	msg := err.Error()
	return strings.HasPrefix(msg, "target ") && strings.HasSuffix(msg, " not found")
}

// delegation is a role's entry in its delegator.
type delegation struct {
	role metadata.DelegatedRole
	keys map[string]*metadata.Key
}

// findDelegation finds the loaded targets role that delegates to role. Delegators are
// searched in a fixed order (the claimed tree before the recently-claimed one, as clients
// walk them).
func findDelegation(loaded map[string]*metadata.Metadata[metadata.TargetsType], role string) (*delegation, string) {
	names := make([]string, 0, len(loaded))
	for n := range loaded {
		names = append(names, n)
	}
	slices.SortStableFunc(names, func(a, b string) int {
		if ra, rb := delegatorRank(a), delegatorRank(b); ra != rb {
			return ra - rb
		}
		return strings.Compare(a, b)
	})
	for _, n := range names {
		md := loaded[n]
		if md == nil || md.Signed.Delegations == nil {
			continue
		}
		for _, d := range md.Signed.Delegations.Roles {
			if d.Name == role {
				return &delegation{role: d, keys: md.Signed.Delegations.Keys}, n
			}
		}
	}
	return nil, ""
}

func delegatorRank(name string) int {
	if name == tufrepo.RoleTargets {
		return 0
	}
	switch tree, _, _ := tufrepo.ParseShardRole(name); tree {
	case tufrepo.RoleClaimed:
		return 1
	case tufrepo.RoleRecentlyClaimed:
		return 2
	}
	return 3
}
