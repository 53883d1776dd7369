package store

import (
	"context"
	"fmt"
	"time"

	"github.com/cairn-dev/cairn/api"
	"github.com/cairn-dev/cairn/tufrepo"
	"github.com/jackc/pgx/v5"
	"github.com/theupdateframework/go-tuf/v2/metadata"
)

// StagedTopLevel says which versions SubmitTopLevel staged.
type StagedTopLevel struct {
	Root, Targets int64
}

// SubmitTopLevel validates and stages the next root and/or targets. Both are published by
// the next publish, together: root is served from then on, targets listed in the snapshot.
// Nothing is stored when it returns an error.
func (db *DB) SubmitTopLevel(ctx context.Context, up api.TopLevelUpdate, online tufrepo.Signers, now time.Time) (*StagedTopLevel, error) {
	if len(up.Root) == 0 && len(up.Targets) == 0 {
		return nil, api.Errorf(api.CodeBadRequest, "send a new root, a new targets, or both")
	}
	var out StagedTopLevel
	err := db.InTx(ctx, func(ctx context.Context, tx pgx.Tx) error {
		out = StagedTopLevel{}
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, publisherLockID); err != nil {
			return err
		}
		latest := func(role string) ([]byte, bool, error) {
			var raw []byte
			var snap *int64
			err := tx.QueryRow(ctx, `SELECT raw, snapshot_version FROM metadata WHERE role = $1 ORDER BY version DESC LIMIT 1`, role).Scan(&raw, &snap)
			return raw, snap != nil, err
		}
		rootRaw, rootPublished, err := latest(tufrepo.RoleRoot)
		if err != nil {
			return fmt.Errorf("reading root: %w", err)
		}
		targetsRaw, targetsPublished, err := latest(tufrepo.RoleTargets)
		if err != nil {
			return fmt.Errorf("reading targets: %w", err)
		}
		if !rootPublished || !targetsPublished {
			return api.Errorf(api.CodeProposalExists, "a new root or targets is staged and not yet published; try again in a moment")
		}
		root, err := metadata.Root().FromBytes(rootRaw)
		if err != nil {
			return err
		}
		if len(up.Root) > 0 {
			a, err := tufrepo.ValidateRoot(up.Root, rootRaw, online, now)
			if err != nil {
				return err
			}
			if a.TargetsKeysChanged && len(up.Targets) == 0 {
				return api.Errorf(api.CodeBadRequest, "root version %d changes the targets keys: send targets version %d signed by the new targets keys in the same request", a.Version, versionOf(targetsRaw)+1)
			}
			root = a.Root
			if err := insertMetadata(ctx, tx, tufrepo.RoleRoot, a.Version, up.Root, a.Expires, api.ActionAccepted, nil); err != nil {
				return err
			}
			out.Root = a.Version
		}
		if len(up.Targets) > 0 {
			t, err := tufrepo.ValidateTargets(up.Targets, targetsRaw, root, now)
			if err != nil {
				return err
			}
			if err := insertMetadata(ctx, tx, tufrepo.RoleTargets, t.Signed.Version, up.Targets, t.Signed.Expires, api.ActionAccepted, nil); err != nil {
				return err
			}
			out.Targets = t.Signed.Version
		}
		_, err = tx.Exec(ctx, `SELECT pg_notify($1, 'top-level')`, ChannelStaged)
		return err
	})
	if err != nil {
		return nil, err
	}
	return &out, nil
}

func versionOf(raw []byte) int64 {
	md, err := metadata.Targets().FromBytes(raw)
	if err != nil {
		return 0
	}
	return md.Signed.Version
}
