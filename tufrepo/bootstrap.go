package tufrepo

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/theupdateframework/go-tuf/v2/metadata"
)

// CeremonyConfig is the input of the offline root ceremony (`cairn admin init`, and the
// dev bootstrap). Offline signers sign root, targets and claimed; the online keys are only
// named (their private halves live in a KMS/HSM).
type CeremonyConfig struct {
	RootSigners      []*OnlineSigner
	RootThreshold    int
	TargetsSigners   []*OnlineSigner
	TargetsThreshold int
	ClaimedSigners   []*OnlineSigner
	ClaimedThreshold int
	Timestamp        *metadata.Key
	Snapshot         *metadata.Key
	RecentlyClaimed  *metadata.Key
	Now              time.Time
}

// OfflineMetadata is the signed output of the ceremony: version 1 of root, targets and
// claimed, as exact bytes.
type OfflineMetadata struct {
	Root    []byte `json:"root"`
	Targets []byte `json:"targets"`
	Claimed []byte `json:"claimed"`
}

func checkThreshold(role string, n, t int) error {
	if n < 1 {
		return fmt.Errorf("%s: at least one key is required", role)
	}
	if t < 1 || t > n {
		return fmt.Errorf("%s: threshold %d is not between 1 and the number of keys (%d)", role, t, n)
	}
	return nil
}

// Ceremony builds and signs the offline metadata of a new repository.
func Ceremony(ctx context.Context, c CeremonyConfig) (*OfflineMetadata, error) {
	for _, r := range []struct {
		role string
		n, t int
	}{{RoleRoot, len(c.RootSigners), c.RootThreshold}, {RoleTargets, len(c.TargetsSigners), c.TargetsThreshold}, {RoleClaimed, len(c.ClaimedSigners), c.ClaimedThreshold}} {
		if err := checkThreshold(r.role, r.n, r.t); err != nil {
			return nil, err
		}
	}
	if c.Timestamp == nil || c.Snapshot == nil || c.RecentlyClaimed == nil {
		return nil, errors.New("the timestamp, snapshot and recently-claimed public keys are required")
	}
	expires := c.Now.UTC().Add(OfflineExpiry).Truncate(time.Second)

	root := metadata.Root(expires)
	root.Signed.SpecVersion = SpecVersion
	root.Signed.ConsistentSnapshot = true
	for _, s := range c.RootSigners {
		if err := root.Signed.AddKey(s.Key, RoleRoot); err != nil {
			return nil, err
		}
	}
	for _, s := range c.TargetsSigners {
		if err := root.Signed.AddKey(s.Key, RoleTargets); err != nil {
			return nil, err
		}
	}
	if err := root.Signed.AddKey(c.Timestamp, RoleTimestamp); err != nil {
		return nil, err
	}
	if err := root.Signed.AddKey(c.Snapshot, RoleSnapshot); err != nil {
		return nil, err
	}
	root.Signed.Roles[RoleRoot].Threshold = c.RootThreshold
	root.Signed.Roles[RoleTargets].Threshold = c.TargetsThreshold
	rootRaw, err := signOffline(ctx, root, c.RootSigners)
	if err != nil {
		return nil, fmt.Errorf("signing root: %w", err)
	}

	targets := metadata.Targets(expires)
	targets.Signed.SpecVersion = SpecVersion
	deleg := &metadata.Delegations{Keys: map[string]*metadata.Key{}}
	claimed := metadata.DelegatedRole{Name: RoleClaimed, Threshold: c.ClaimedThreshold, Paths: []string{"*/*/*"}}
	for _, s := range c.ClaimedSigners {
		deleg.Keys[s.KeyID] = s.Key
		claimed.KeyIDs = append(claimed.KeyIDs, s.KeyID)
	}
	rcID := KeyID(c.RecentlyClaimed)
	deleg.Keys[rcID] = c.RecentlyClaimed
	// Order matters: clients search claimed first. claimed delegates each claimed project
	// with terminating=true, so once a project is claimed recently-claimed is never asked.
	deleg.Roles = []metadata.DelegatedRole{
		claimed,
		{Name: RoleRecentlyClaimed, KeyIDs: []string{rcID}, Threshold: 1, Paths: []string{"*/*/*"}},
	}
	targets.Signed.Delegations = deleg
	targetsRaw, err := signOffline(ctx, targets, c.TargetsSigners)
	if err != nil {
		return nil, fmt.Errorf("signing targets: %w", err)
	}

	cl := metadata.Targets(expires)
	cl.Signed.SpecVersion = SpecVersion
	cl.Signed.Delegations = &metadata.Delegations{Keys: map[string]*metadata.Key{}, Roles: []metadata.DelegatedRole{}}
	claimedRaw, err := signOffline(ctx, cl, c.ClaimedSigners)
	if err != nil {
		return nil, fmt.Errorf("signing claimed: %w", err)
	}
	return &OfflineMetadata{Root: rootRaw, Targets: targetsRaw, Claimed: claimedRaw}, nil
}

func signOffline[T metadata.Roles](ctx context.Context, md *metadata.Metadata[T], signers []*OnlineSigner) ([]byte, error) {
	signed, err := Canonical(md.Signed)
	if err != nil {
		return nil, err
	}
	return SignEnvelope(ctx, signed, signers...)
}

// ProjectDelegation is one project's entry in a delegating role.
type ProjectDelegation struct {
	Name      string
	Keys      map[string]*metadata.Key // key ID → key
	KeyIDs    []string
	Threshold int
}

// CheckOnlineKeys verifies that root delegates timestamp and snapshot to the given signers
// and that targets delegates recently-claimed to its signer, so that a server configured
// with the wrong keys refuses to start instead of publishing metadata no client accepts.
func CheckOnlineKeys(rootRaw, targetsRaw []byte, s Signers) error {
	root, err := metadata.Root().FromBytes(rootRaw)
	if err != nil {
		return fmt.Errorf("parsing root: %w", err)
	}
	if _, _, err := s.ForRoot(root); err != nil {
		return err
	}
	targets, err := metadata.Targets().FromBytes(targetsRaw)
	if err != nil {
		return fmt.Errorf("parsing targets: %w", err)
	}
	if targets.Signed.Delegations != nil {
		for _, d := range targets.Signed.Delegations.Roles {
			if d.Name == RoleRecentlyClaimed {
				if slices.Contains(d.KeyIDs, s.RecentlyClaimed.KeyID) {
					return nil
				}
				return fmt.Errorf("the recently-claimed key %s is not one that targets version %d delegates to (%v)", s.RecentlyClaimed.KeyID, targets.Signed.Version, d.KeyIDs)
			}
		}
	}
	return errors.New("targets does not delegate to recently-claimed")
}

// Signers are the online signers of the server. Standby signers hold keys a future root
// may name for timestamp or snapshot: the publisher switches to them exactly when such a
// root is published, so online keys rotate without downtime.
type Signers struct {
	Timestamp       *OnlineSigner
	Snapshot        *OnlineSigner
	RecentlyClaimed *OnlineSigner
	Standby         []*OnlineSigner
}

// ForRoot returns the signers for timestamp and snapshot that root delegates to, among the
// configured ones and the standby ones.
func (s Signers) ForRoot(root *metadata.Metadata[metadata.RootType]) (ts, snap *OnlineSigner, err error) {
	pick := func(role string, primary *OnlineSigner) (*OnlineSigner, error) {
		r := root.Signed.Roles[role]
		if r == nil {
			return nil, fmt.Errorf("root version %d has no %s role", root.Signed.Version, role)
		}
		for _, c := range append([]*OnlineSigner{primary}, s.Standby...) {
			if c != nil && slices.Contains(r.KeyIDs, c.KeyID) {
				return c, nil
			}
		}
		return nil, fmt.Errorf("root version %d delegates %s to %v, and this server holds none of those keys (it has the %s key %s%s): configure the right key URI (--%s-key, or --standby-key to rotate), or rotate root",
			root.Signed.Version, role, r.KeyIDs, role, primary.KeyID, standbyIDs(s.Standby), role)
	}
	if ts, err = pick(RoleTimestamp, s.Timestamp); err != nil {
		return nil, nil, err
	}
	if snap, err = pick(RoleSnapshot, s.Snapshot); err != nil {
		return nil, nil, err
	}
	return ts, snap, nil
}

func standbyIDs(st []*OnlineSigner) string {
	var b strings.Builder
	for _, s := range st {
		b.WriteString(", standby " + s.KeyID)
	}
	return b.String()
}

// VerifyOffline checks that the ceremony's output is self-consistent: root is signed by
// its own threshold, targets by root's targets keys, and claimed by targets' delegation.
func VerifyOffline(off *OfflineMetadata) error {
	rp, err := ParseRootStrict(off.Root, "root")
	if err != nil {
		return err
	}
	root := rp.MD
	if err := root.VerifyDelegate(RoleRoot, root); err != nil {
		return fmt.Errorf("root is not signed by a threshold of its own keys: %w", err)
	}
	if err := CheckAllSignatures("root", rp.Payload, root.Signatures, rootRoleKeys(root, RoleRoot)); err != nil {
		return err
	}
	tp, err := ParseTargetsStrict(off.Targets, "targets")
	if err != nil {
		return err
	}
	targets := tp.MD
	if err := root.VerifyDelegate(RoleTargets, targets); err != nil {
		return fmt.Errorf("targets is not signed by the keys root delegates to: %w", err)
	}
	if err := CheckAllSignatures("targets", tp.Payload, targets.Signatures, rootRoleKeys(root, RoleTargets)); err != nil {
		return err
	}
	cp, err := ParseTargetsStrict(off.Claimed, "claimed")
	if err != nil {
		return err
	}
	if err := targets.VerifyDelegate(RoleClaimed, cp.MD); err != nil {
		return fmt.Errorf("claimed is not signed by the keys targets delegates to: %w", err)
	}
	return CheckAllSignatures("claimed", cp.Payload, cp.MD.Signatures, delegatedKeys(targets, RoleClaimed))
}
