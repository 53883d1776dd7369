package daemon

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/cairn-dev/cairn/store"
	"github.com/cairn-dev/cairn/tufrepo"
	"github.com/spf13/cobra"
)

// publishCmd is `cairnd publish`: one publish from the command line, and with --bump-to the
// recovery from a database restored to a point older than what clients have seen
// (docs/operations.md "Restoring a backup older than what clients saw"). It takes the
// publisher lock like any replica, so it is safe while replicas serve; they follow the new
// head through the database's notification.
func publishCmd(stdout, stderr io.Writer, getenv func(string) string) *cobra.Command {
	var bumpTo int64
	cmd := &cobra.Command{
		Use:   "publish [--bump-to N]",
		Short: "Publish what is staged now; with --bump-to N, re-sign snapshot, timestamp and every recently-claimed node at version N or above (after restoring an old backup)",
		Args:  cobra.NoArgs,
	}
	cmd.Flags().Int64Var(&bumpTo, "bump-to", 0, "sign the new snapshot, timestamp and every recently-claimed node at version `N` or above: a version above every one clients may have seen (Prometheus history, the transparency log, a client's cache), plus a margin")
	return withConfig(cmd, getenv, func(ctx context.Context, c *Config) error {
		bump := cmd.Flags().Changed("bump-to")
		// Refusals that need nothing opened come first.
		if bump && bumpTo < 1 {
			return fmt.Errorf("--bump-to %d: want a version above every timestamp and snapshot version clients may have seen (the current head's versions are the lowest it may be: `curl …/metadata/timestamp.json`); nothing was changed", bumpTo)
		}
		if bump && bumpTo > 1<<53-1 {
			// Past 2⁵³: tuf-js reads versions as JavaScript numbers and would round them.
			return fmt.Errorf("--bump-to %d is past the versions every TUF client reads exactly: give the highest version clients may have seen plus a margin; nothing was changed", bumpTo)
		}
		log := newLogger(stderr, c.LogLevel)
		devKeyURIs(c) // a dev data dir's keys, read only
		signers, err := loadSigners(ctx, c, getenv)
		if err != nil {
			return err
		}
		db, err := openCurrentDB(ctx, c, log)
		if err != nil {
			return err
		}
		defer db.Close()
		if ok, err := db.Bootstrapped(ctx); err != nil {
			return err
		} else if !ok {
			return fmt.Errorf("%s holds no repository yet (run `cairnd bootstrap` first); nothing was changed", db.Describe())
		}
		root, err := db.LatestPublished(ctx, tufrepo.RoleRoot)
		if err != nil {
			return err
		}
		targets, err := db.LatestPublished(ctx, tufrepo.RoleTargets)
		if err != nil {
			return err
		}
		if err := tufrepo.CheckOnlineKeys(root.Raw, targets.Raw, signers); err != nil {
			return fmt.Errorf("refusing to publish: %w", err)
		}
		// Big metadata (the snapshot) goes to files in the blob directory, as `serve` keeps it.
		if c.MetadataFileMin >= 0 {
			if c.BlobDir == "" {
				return errors.New("no blob directory: set --blob-dir or CAIRN_BLOB_DIR (large metadata versions are stored there), or --metadata-file-min -1 if this repository keeps all metadata in PostgreSQL")
			}
			blobs, err := openBlobs(ctx, c, c.BlobDir)
			if err != nil {
				return err
			}
			db.StoreMetadataIn(blobs.Meta, cmp0(c.MetadataFileMin, store.DefaultMetaFileMin))
		}
		p := tufrepo.NewPublisher(db, signers, time.Now, log)
		p.ShardCapacity = c.ShardCapacity
		p.PublishTimeout = max(0, c.PublishTimeout)
		if c.PublishBatch < 0 {
			return fmt.Errorf("--publish-batch %d: want the most staged role versions one publish takes, or 0 for no bound; nothing was changed", c.PublishBatch)
		}
		p.MaxStagedPerPublish = c.PublishBatch
		var res tufrepo.PublishResult
		if bump {
			res, err = p.PublishForward(ctx, bumpTo)
		} else {
			res, err = p.PublishOnce(ctx)
		}
		if err != nil {
			return fmt.Errorf("%w; nothing was changed", err)
		}
		// A backlog above --publish-batch is published in several publishes, each
		// committed on its own.
		for res.More {
			fmt.Fprintf(stdout, "published snapshot version %d and timestamp version %d (%d role version(s)); more are staged\n", res.SnapshotVersion, res.TimestampVersion, res.Roles)
			if res, err = p.PublishOnce(ctx); err != nil {
				return fmt.Errorf("%w; the publishes reported above are committed", err)
			}
		}
		if !res.Published {
			fmt.Fprintf(stdout, "nothing to publish: snapshot version %d and timestamp version %d are current\n", res.SnapshotVersion, res.TimestampVersion)
			return nil
		}
		nodes := 0
		for _, m := range res.Signed {
			if m.Role != tufrepo.RoleSnapshot && m.Role != tufrepo.RoleTimestamp {
				nodes++
			}
		}
		fmt.Fprintf(stdout, "published snapshot version %d and timestamp version %d (%d role version(s) from uploads, %d recently-claimed node(s) re-signed)\n", res.SnapshotVersion, res.TimestampVersion, res.Roles, nodes)
		return nil
	})
}

// cmp0 is v, or d when v is 0.
func cmp0(v, d int) int {
	if v == 0 {
		return d
	}
	return v
}
