package server

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/cairn-dev/cairn/api"
	"github.com/cairn-dev/cairn/tufrepo"
)

// The static tier (DESIGN.md "Static tier"): with Config.StaticDir set, a replica keeps a
// directory that nginx or a CDN serves under the same URLs as cairnd itself:
//
//	<dir>/metadata/<N>.<role>.json      every published version except timestamps (immutable)
//	<dir>/metadata/<N>.<role>.json.gz   its gzip encoding, from gzipMin bytes (gzip_static)
//	<dir>/metadata/root.json            the newest root (replaced)
//	<dir>/metadata/timestamp.json       the current timestamp (replaced, last)
//	<dir>/targets/<project>/<version>/<sha256>.<file>   every published target
//
// Every file is written to a temporary name in its directory, synced and renamed, so a
// reader never sees part of one. Files are written in dependency order: a target before
// the project role that lists it, every version before the timestamp.json that (through
// the snapshot) names it, so a client that follows the static timestamp finds everything
// it names. timestamp.json is the only file that changes; everything else is immutable and
// safe to cache for ever.

// staticPage is how many audit log entries one database read covers.
const staticPage = 500

// staticRetry is how long the exporter waits after a failed pass before trying again.
const staticRetry = 5 * time.Second

// staticPrune is how often old snapshots are removed from the directory without a new head.
const staticPrune = 30 * time.Second

// staticExport is the state of one replica's export: how far through the audit log (which
// lists every published version, in publish order) it has written.
type staticExport struct {
	s   *Server
	dir string
	// seq is the last audit log entry whose files are written and synced, hash its hash.
	seq  int64
	hash string
	// verify makes the next pass check existing files' hashes against the audit log (after
	// the log went back: versions may have been signed again with other bytes).
	verify bool
	// stateSeq is the seq the state file holds.
	stateSeq int64
	// The etags of the root.json and timestamp.json last written.
	rootEtag, tsEtag string
	// snapshots are the snapshot versions in the directory, for pruning (prune).
	snapshots []staticSnapshot
}

// staticSnapshot is a snapshot version in the directory and when this exporter first saw
// a newer head (zero while it is the head).
type staticSnapshot struct {
	version    int64
	superseded time.Time
}

// prepareStaticDir creates the static tree's directories and checks that they are
// writable, so that a wrong --static-dir stops cairnd at start instead of failing later.
func prepareStaticDir(dir string) error {
	for _, d := range []string{"metadata", "targets"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			return fmt.Errorf("static directory %s: %w; create it or point --static-dir at a writable directory", dir, err)
		}
	}
	f, err := os.CreateTemp(filepath.Join(dir, "metadata"), ".cairn-probe-*")
	if err != nil {
		return fmt.Errorf("static directory %s is not writable: %w", dir, err)
	}
	f.Close()
	return os.Remove(f.Name())
}

// exportStatic writes what is missing from the static directory (every published version
// since the repository began, on the first pass), then follows each new head until ctx
// ends. A failed pass is logged and retried.
func (s *Server) exportStatic(ctx context.Context) {
	e := &staticExport{s: s, dir: s.cfg.StaticDir}
	log := s.log.With("component", "static", "dir", e.dir)
	failing := false
	for first := true; ; first = false {
		changed := s.cache.Changed()
		start := time.Now()
		n, err := e.sync(ctx)
		s.staticFailing.Store(err != nil)
		if err == nil {
			e.prune(ctx, s.now())
		}
		var retry <-chan time.Time
		switch {
		case err != nil && ctx.Err() == nil:
			if !failing {
				log.Error("exporting published metadata and targets to the static directory; retrying every 5s, and nginx or the CDN keeps serving the last complete timestamp.json", "err", err)
			}
			failing = true
			retry = time.After(staticRetry)
		case err == nil:
			if failing {
				log.Info("static directory export works again")
			}
			failing = false
			if first {
				log.Info("static directory complete", "files_written", n, "took", time.Since(start))
			} else {
				log.Debug("static directory updated", "files_written", n, "took", time.Since(start))
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-changed:
		case <-retry:
		case <-time.After(staticPrune):
		}
	}
}

// sync brings the directory up to the head the cache holds now and returns how many files
// it wrote. The head is read before the audit log: every version it names was committed
// before, so the pass writes all of them before it writes the head's timestamp.json.
func (e *staticExport) sync(ctx context.Context) (int, error) {
	h := e.s.cache.Head()
	if h == nil {
		return 0, nil
	}
	if err := e.checkContinuity(ctx); err != nil {
		return 0, err
	}
	written := 0
	for {
		entries, err := e.s.db.AuditPage(ctx, e.seq, staticPage)
		if err != nil {
			return written, err
		}
		dirs := map[string]bool{}
		for _, en := range entries {
			n, err := e.exportVersion(ctx, en, dirs)
			written += n
			if err != nil {
				return written, err
			}
		}
		if err := syncDirs(dirs); err != nil {
			return written, err
		}
		if len(entries) > 0 {
			e.seq, e.hash = entries[len(entries)-1].Seq, entries[len(entries)-1].Hash
		}
		if len(entries) < staticPage {
			break
		}
	}
	meta := filepath.Join(e.dir, "metadata")
	for _, f := range []struct {
		name string
		file *metaFile
		last *string
	}{{"root.json", h.root, &e.rootEtag}, {"timestamp.json", h.timestamp, &e.tsEtag}} {
		if f.file.etag == *f.last {
			continue
		}
		if err := writeFileAtomic(filepath.Join(meta, f.name), f.file.raw); err != nil {
			return written, err
		}
		if err := syncDir(meta); err != nil {
			return written, err
		}
		*f.last = f.file.etag
		if f.file == h.timestamp {
			e.s.staticTimestamp.Store(h.timestamp.version)
		}
		written++
	}
	e.verify = false
	if e.seq != e.stateSeq {
		state, _ := json.Marshal(staticState{Seq: e.seq, Hash: e.hash})
		if err := writeFileAtomic(filepath.Join(e.dir, staticStateFile), state); err != nil {
			return written, err
		}
		e.stateSeq = e.seq
	}
	return written, nil
}

// staticStateFile records, in the directory, the audit log entry the export is complete
// up to, so that a restart notices a database that went back meanwhile (a restore).
const staticStateFile = ".cairn-export.json"

type staticState struct {
	Seq  int64  `json:"seq"`
	Hash string `json:"hash"`
}

// checkContinuity makes sure the audit log still holds the entry the export stopped at
// (on the first pass: the one the state file names). If it does not, the database went
// back (a restore, or an attacker's rollback, which clients will refuse): the next pass
// walks the log from the start and rewrites every file whose bytes differ from the
// database's, since a version may have been signed again with other bytes.
func (e *staticExport) checkContinuity(ctx context.Context) error {
	if e.seq == 0 && e.hash == "" {
		b, err := os.ReadFile(filepath.Join(e.dir, staticStateFile))
		if errors.Is(err, fs.ErrNotExist) {
			// A new directory, or one written before the state file: check what is there.
			e.verify = true
			return nil
		}
		var st staticState
		if err == nil {
			err = json.Unmarshal(b, &st)
		}
		if err != nil {
			e.s.log.WarnContext(ctx, "static directory state unreadable: checking every file against the database", "err", err)
			e.verify = true
			return nil
		}
		if st.Seq == 0 {
			return nil
		}
		e.seq, e.hash = st.Seq, st.Hash
	}
	if e.seq == 0 {
		return nil
	}
	entries, err := e.s.db.AuditPage(ctx, e.seq-1, 1)
	if err != nil {
		return err
	}
	if len(entries) == 1 && entries[0].Seq == e.seq && entries[0].Hash == e.hash {
		// On the first pass, start from the beginning anyway (to write what is missing),
		// without reading every file: nothing went back.
		return nil
	}
	e.s.log.WarnContext(ctx, "the audit log no longer holds the entry the static directory was written up to: the database went back (a restore?); checking every file against it", "seq", e.seq)
	e.seq, e.hash, e.verify = 0, "", true
	return nil
}

// exportVersion writes one published metadata version, and first the targets it lists if
// it is a project role, unless its file is there already (then so are its targets). It
// records the directories it wrote into in dirs. Timestamps (timestamp.json is written by
// sync) and maintainer change documents are not served as files.
func (e *staticExport) exportVersion(ctx context.Context, en api.LogEntry, dirs map[string]bool) (int, error) {
	role, version := en.Role, en.Version
	project := tufrepo.ValidateProjectName(role) == nil && !tufrepo.IsReservedRole(role) && !tufrepo.IsShardRole(role)
	if role == tufrepo.RoleTimestamp || version < 1 || !(project || tufrepo.IsReservedRole(role) || tufrepo.IsShardRole(role) || tufrepo.IsAttestationShardRole(role)) {
		return 0, nil
	}
	meta := filepath.Join(e.dir, "metadata")
	name := filepath.Join(meta, strconv.FormatInt(version, 10)+"."+role+".json")
	if st, err := os.Lstat(name); err == nil && st.Size() == en.Length && (!e.verify || fileHasSHA256(name, en.SHA256)) {
		if role == tufrepo.RoleSnapshot {
			e.snapshots = append(e.snapshots, staticSnapshot{version: version})
		}
		return 0, nil
	}
	var raw []byte
	if f := e.s.cache.cached(role, version); f != nil {
		raw = f.raw
	} else {
		m, err := e.s.db.PublishedMetadata(ctx, role, version)
		switch code := api.CodeOf(err); {
		case code == api.CodePruned || code == api.CodeNotFound:
			// A snapshot no client can ask for any more (--snapshot-retention).
			return 0, nil
		case err != nil:
			return 0, fmt.Errorf("reading %s version %d to export it: %w", role, version, err)
		}
		raw = m.Raw
	}
	written := 0
	if project {
		n, err := e.exportTargets(ctx, role, raw, dirs)
		written += n
		if err != nil {
			return written, fmt.Errorf("exporting the targets of %s version %d: %w", role, version, err)
		}
	}
	if len(raw) >= gzipMin {
		if err := writeFileAtomic(name+".gz", gzipOnce(raw)); err != nil {
			return written, err
		}
		written++
	}
	if err := writeFileAtomic(name, raw); err != nil {
		return written, err
	}
	dirs[meta] = true
	if role == tufrepo.RoleSnapshot {
		e.snapshots = append(e.snapshots, staticSnapshot{version: version})
	}
	return written + 1, nil
}

// prune removes the snapshot versions that stopped being the head more than
// --snapshot-retention ago, as the database drops their bytes (store.DB.PruneSnapshots):
// at 100,000 projects a snapshot is ~5 MB per publish, and clients only ever fetch the one
// a recent timestamp names. Versions found in the directory at start count as superseded
// then. Every other file is kept: role versions are small and any may be asked for.
func (e *staticExport) prune(ctx context.Context, now time.Time) {
	keep := e.s.cfg.SnapshotRetention
	h := e.s.cache.Head()
	if keep <= 0 || h == nil {
		return
	}
	kept := e.snapshots[:0]
	for _, sn := range e.snapshots {
		switch {
		case sn.version >= h.snapshot.version:
		case sn.superseded.IsZero():
			sn.superseded = now
		case now.Sub(sn.superseded) > keep:
			name := filepath.Join(e.dir, "metadata", strconv.FormatInt(sn.version, 10)+"."+tufrepo.RoleSnapshot+".json")
			err := errors.Join(removeIfExists(name+".gz"), removeIfExists(name))
			if err == nil {
				continue
			}
			e.s.log.ErrorContext(ctx, "removing an old snapshot from the static directory; retrying in 30s", "err", err)
		}
		kept = append(kept, sn)
	}
	e.snapshots = kept
}

// fileHasSHA256 reports whether the file holds bytes of the hex SHA-256 sum.
func fileHasSHA256(name, sum string) bool {
	f, err := os.Open(name)
	if err != nil {
		return false
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return false
	}
	return hex.EncodeToString(h.Sum(nil)) == sum
}

func removeIfExists(name string) error {
	if err := os.Remove(name); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return nil
}

// exportTargets writes the target files a project role lists that are not there yet, at
// the paths cairnd serves them: targets/<project>/<version>/<sha256>.<file>.
func (e *staticExport) exportTargets(ctx context.Context, project string, raw []byte, dirs map[string]bool) (int, error) {
	var md struct {
		Signed struct {
			Targets map[string]struct {
				Hashes map[string]string `json:"hashes"`
			} `json:"targets"`
		} `json:"signed"`
	}
	if err := json.Unmarshal(raw, &md); err != nil {
		return 0, fmt.Errorf("reading the targets of published role %s: %w", project, err)
	}
	written := 0
	for path, t := range md.Signed.Targets {
		version, file, err := tufrepo.SplitTargetPath(project, path)
		sum := t.Hashes["sha256"]
		if err != nil || !api.ValidSHA256Hex(sum) {
			// Published roles were validated on upload; never write outside the tree.
			return written, fmt.Errorf("published role %s lists target %q, which has no path cairnd serves", project, path)
		}
		dir := filepath.Join(e.dir, "targets", project, version)
		dst := filepath.Join(dir, sum+"."+file)
		if _, err := os.Lstat(dst); err == nil {
			continue
		}
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return written, fmt.Errorf("creating %s: %w", dir, err)
		}
		if err := e.placeTarget(ctx, sum, dst); err != nil {
			return written, fmt.Errorf("target %s: %w", path, err)
		}
		// The new entries: the file, and the directories MkdirAll may have created.
		dirs[dir], dirs[filepath.Dir(dir)], dirs[filepath.Join(e.dir, "targets")] = true, true, true
		written++
	}
	return written, nil
}

// placeTarget puts the blob sum at dst: a hard link into a local blob store (no copy; the
// blob file is made world-readable, as the published file it is, so that nginx's workers
// can read it), else a copy.
func (e *staticExport) placeTarget(ctx context.Context, sum, dst string) error {
	if local, ok := e.s.blobs.Local(); ok {
		src, err := local.Path("sha256:" + sum)
		if err != nil {
			return err
		}
		err = os.Link(src, dst)
		if errors.Is(err, fs.ErrExist) {
			return nil
		}
		if err == nil {
			if err := os.Chmod(dst, 0o644); err != nil {
				return fmt.Errorf("making %s readable: %w", dst, err)
			}
			return nil
		}
		if errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("blob sha256:%s is published but missing from the blob store (%s): restore it from a backup", sum, src)
		}
		// Another file system (EXDEV) or no hard links: copy.
	}
	f, _, err := e.s.blobs.Content.Open(ctx, "sha256:"+sum)
	if err != nil {
		return fmt.Errorf("opening blob sha256:%s: %w", sum, err)
	}
	defer f.Close()
	return writeAtomicFrom(dst, f)
}

// writeFileAtomic writes b to name through a synced temporary file in the same directory,
// renamed into place.
func writeFileAtomic(name string, b []byte) error {
	return writeAtomicFrom(name, bytes.NewReader(b))
}

func writeAtomicFrom(name string, r io.Reader) (err error) {
	tmp, err := os.CreateTemp(filepath.Dir(name), ".cairn-tmp-*")
	if err != nil {
		return fmt.Errorf("writing %s: %w", name, err)
	}
	defer func() {
		if err != nil {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	if _, err = io.Copy(tmp, r); err != nil {
		return fmt.Errorf("writing %s: %w", name, err)
	}
	if err = tmp.Chmod(0o644); err != nil {
		return fmt.Errorf("writing %s: %w", name, err)
	}
	if err = tmp.Sync(); err != nil {
		return fmt.Errorf("syncing %s: %w", name, err)
	}
	if err = tmp.Close(); err != nil {
		return fmt.Errorf("writing %s: %w", name, err)
	}
	if err = os.Rename(tmp.Name(), name); err != nil {
		return fmt.Errorf("renaming into %s: %w", name, err)
	}
	return nil
}

func syncDirs(dirs map[string]bool) error {
	for d := range dirs {
		if err := syncDir(d); err != nil {
			return err
		}
	}
	return nil
}

// syncDir makes the renames into dir durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("syncing %s: %w", dir, err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("syncing %s: %w", dir, err)
	}
	return nil
}
