package daemon

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"time"

	"github.com/cairn-dev/cairn/store"
	"github.com/spf13/cobra"
)

// gcCmd is `cairnd gc`: garbage collection of the OCI registry's blobs and upload
// sessions. It is safe while replicas serve and push (see store.OCIGarbageCollect).
func gcCmd(stdout, stderr io.Writer, getenv func(string) string) *cobra.Command {
	var opts store.OCIGCOptions
	cmd := &cobra.Command{
		Use:   "gc [--dry-run] [--grace D] [--upload-ttl D]",
		Short: "Remove OCI blobs no repository references and expired upload sessions (--dry-run: only report)",
		Args:  cobra.NoArgs,
	}
	cmd.Flags().BoolVar(&opts.DryRun, "dry-run", false, "report what would be removed; change nothing")
	cmd.Flags().DurationVar(&opts.Grace, "grace", time.Hour, "keep blobs, links and upload files younger than this (pushes in flight); files in <blob-dir>/tmp are removed only once older than this and no live writer holds their lock")
	cmd.Flags().DurationVar(&opts.UploadTTL, "upload-ttl", 24*time.Hour, "remove upload sessions idle for longer than this")
	return withConfig(cmd, getenv, func(ctx context.Context, c *Config) error {
		dir := c.BlobDir
		if dir == "" && c.DataDir != "" {
			dir = filepath.Join(c.DataDir, "blobs") // the dev mode's blob directory
		}
		if dir == "" {
			return errors.New("no blob directory: set --blob-dir or CAIRN_BLOB_DIR")
		}
		blobs, err := openBlobs(ctx, c, dir)
		if err != nil {
			return err
		}
		db, err := openCurrentDB(ctx, c, newLogger(stderr, c.LogLevel))
		if err != nil {
			return err
		}
		defer db.Close()
		opts.Now = time.Now
		rep, err := db.OCIGarbageCollect(ctx, blobs, opts)
		if err != nil {
			return fmt.Errorf("OCI garbage collection: %w", err)
		}
		orphans, err := db.RemoveOrphanMeta(ctx, blobs.Meta, opts.Grace, time.Now(), opts.DryRun)
		if err != nil {
			return fmt.Errorf("collecting metadata files: %w", err)
		}
		verb := "removed"
		if opts.DryRun {
			verb = "would remove"
		}
		fmt.Fprintf(stderr, "%s %d blob(s) (%d bytes), %d unreferenced link(s), %d expired upload session(s), %d orphaned upload file(s), %d orphaned metadata file(s), %d abandoned temporary file(s) (%d bytes; %d more in use by live writers, kept)\n",
			verb, len(rep.Blobs), rep.Bytes, rep.Links, rep.Sessions, rep.UploadFiles, orphans, rep.TempFiles, rep.TempBytes, rep.TempInUse)
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(rep)
	})
}
