package daemon

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"time"

	"github.com/cairn-dev/cairn/api"
	"github.com/cairn-dev/cairn/store"
	"github.com/cairn-dev/cairn/tufrepo"
)

// devSetup prepares DIR for a dev repository: it creates (or reuses) every key, points the
// online key URIs at them unless given, and fills BlobDir. It returns the offline signers.
func devSetup(ctx context.Context, c *Config) (map[string]*tufrepo.OnlineSigner, error) {
	if c.DataDir == "" {
		return nil, errors.New("--dev needs --data-dir DIR")
	}
	dir, err := filepath.Abs(c.DataDir)
	if err != nil {
		return nil, err
	}
	c.DataDir = dir
	keys := filepath.Join(dir, "keys")
	if err := os.MkdirAll(keys, 0o700); err != nil {
		return nil, fmt.Errorf("creating %s: %w", keys, err)
	}
	passFile := filepath.Join(keys, "passphrase")
	if _, err := os.Stat(passFile); errors.Is(err, os.ErrNotExist) {
		b := make([]byte, 24)
		if _, err := rand.Read(b); err != nil {
			return nil, err
		}
		if err := os.WriteFile(passFile, []byte(base64.RawURLEncoding.EncodeToString(b)), 0o600); err != nil {
			return nil, err
		}
	}
	pass, err := os.ReadFile(passFile)
	if err != nil {
		return nil, fmt.Errorf("reading dev passphrase: %w", err)
	}
	offline := map[string]*tufrepo.OnlineSigner{}
	for _, role := range append([]string{tufrepo.RoleRoot, tufrepo.RoleTargets, tufrepo.RoleClaimed}, tufrepo.RoleTimestamp, tufrepo.RoleSnapshot, tufrepo.RoleRecentlyClaimed) {
		path := filepath.Join(keys, role+".json")
		if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
			// The snapshot key is ECDSA P-256: it signs a SHA-256 digest, where Ed25519 hashes
			// the whole snapshot twice with SHA-512 (~35 ms at 100,000 projects), and a
			// remote KMS signs a digest but not a multi-megabyte message (BENCHMARKS.md).
			kt := tufrepo.KeyEd25519
			if role == tufrepo.RoleSnapshot {
				kt = tufrepo.KeyECDSAP256
			}
			priv, err := tufrepo.GenerateKey(kt)
			if err != nil {
				return nil, err
			}
			kf, err := tufrepo.EncryptKey(role, priv, pass, tufrepo.KDFFast)
			if err != nil {
				return nil, err
			}
			b, _ := json.MarshalIndent(kf, "", "  ")
			if err := os.WriteFile(path, b, 0o600); err != nil {
				return nil, fmt.Errorf("writing dev key %s: %w", path, err)
			}
		}
		uri := (&url.URL{Scheme: "file", Path: path, RawQuery: "passphrase-file=" + url.QueryEscape(passFile)}).String()
		switch role {
		case tufrepo.RoleTimestamp:
			c.TimestampKey = orDefault(c.TimestampKey, uri)
		case tufrepo.RoleSnapshot:
			c.SnapshotKey = orDefault(c.SnapshotKey, uri)
		case tufrepo.RoleRecentlyClaimed:
			c.RecentlyClaimedKey = orDefault(c.RecentlyClaimedKey, uri)
		default:
			s, err := tufrepo.FileSignerFromURI(ctx, uri, os.Getenv)
			if err != nil {
				return nil, err
			}
			if offline[role], err = tufrepo.NewOnlineSigner(ctx, s); err != nil {
				return nil, err
			}
		}
	}
	c.BlobDir = orDefault(c.BlobDir, filepath.Join(dir, "blobs"))
	return offline, nil
}

func orDefault(v, d string) string {
	if v == "" {
		return d
	}
	return v
}

// devBootstrap bootstraps an empty database with the dev keys, and writes DIR/root.json and
// DIR/admin.token if they are missing. It never overwrites either: a token or root another
// server handed out must stay valid (bindDataDir keeps a data dir to one database). On a
// database that is already bootstrapped it changes nothing else.
func devBootstrap(ctx context.Context, c *Config, db *store.DB, offline map[string]*tufrepo.OnlineSigner, signers tufrepo.Signers, out io.Writer) error {
	ok, err := db.Bootstrapped(ctx)
	if err != nil {
		return err
	}
	tokenFile := filepath.Join(c.DataDir, "admin.token")
	rootFile := filepath.Join(c.DataDir, "root.json")
	if !ok {
		for _, f := range []string{tokenFile, rootFile} {
			if _, err := os.Stat(f); err == nil {
				return fmt.Errorf("refusing to start: %s is not bootstrapped, but %s exists, from a repository this data dir served before; it is never overwritten. Start with another --data-dir, or remove %s to start over", db.Describe(), f, c.DataDir)
			}
		}
		off, err := tufrepo.Ceremony(ctx, tufrepo.CeremonyConfig{
			RootSigners: []*tufrepo.OnlineSigner{offline[tufrepo.RoleRoot]}, RootThreshold: 1,
			TargetsSigners: []*tufrepo.OnlineSigner{offline[tufrepo.RoleTargets]}, TargetsThreshold: 1,
			ClaimedSigners: []*tufrepo.OnlineSigner{offline[tufrepo.RoleClaimed]}, ClaimedThreshold: 1,
			Timestamp: signers.Timestamp.Key, Snapshot: signers.Snapshot.Key, RecentlyClaimed: signers.RecentlyClaimed.Key,
			Now: time.Now(),
		})
		if err != nil {
			return fmt.Errorf("dev ceremony: %w", err)
		}
		if err := bootstrap(ctx, db, off, signers); err != nil && api.CodeOf(err) != api.CodeAlreadyBootstrapped {
			return err
		} else if err == nil {
			fmt.Fprintf(out, "bootstrapped a new dev repository in %s\n", c.DataDir)
		}
	}
	if _, err := os.Stat(tokenFile); errors.Is(err, os.ErrNotExist) {
		secret, _, err := db.CreateToken(ctx, store.NewTokenSpec{Name: "dev-admin", Admin: true})
		if err != nil {
			return err
		}
		if err := writeNewFile(tokenFile, []byte(secret+"\n"), 0o600); err != nil {
			return fmt.Errorf("writing admin token: %w", err)
		}
	}
	root, err := db.PublishedMetadata(ctx, tufrepo.RoleRoot, 1)
	if err != nil {
		return err
	}
	have, err := os.ReadFile(rootFile)
	switch {
	case errors.Is(err, os.ErrNotExist):
		if err := writeNewFile(rootFile, root.Raw, 0o644); err != nil {
			return fmt.Errorf("writing root.json: %w", err)
		}
	case err != nil:
		return fmt.Errorf("reading %s: %w", rootFile, err)
	case !bytes.Equal(have, root.Raw):
		return fmt.Errorf("refusing to start: %s is not version 1 of the root of %s (another repository's?); it is never overwritten. Start with another --data-dir, or remove %s to start over", rootFile, db.Describe(), c.DataDir)
	}
	return nil
}

// writeNewFile writes a file that must not exist yet, whole or not at all: a temporary
// file linked into place, so that two servers starting on one data dir never write over
// each other, and a reader never sees half a file.
func writeNewFile(path string, data []byte, perm os.FileMode) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Chmod(perm); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Link(tmp.Name(), path)
}

// dataDirDatabase is DIR/database.json: which database a dev data dir belongs to.
const dataDirDatabase = "database.json"

// bindDataDir ties a dev data dir to one database, so that a server started on the same
// --data-dir against another database refuses instead of handing out a second
// admin.token and root.json over the first ones. The first use records the database's
// identity; every later start compares it. A data dir from before this file existed is
// adopted if the database is the one its root.json came from.
func bindDataDir(ctx context.Context, dir string, db *store.DB) error {
	id, err := db.Identity(ctx)
	if err != nil {
		return err
	}
	path := filepath.Join(dir, dataDirDatabase)
	b, err := os.ReadFile(path)
	if err == nil {
		var bound store.Identity
		if err := json.Unmarshal(b, &bound); err != nil {
			return fmt.Errorf("%s is damaged (%v): remove it only if %s is the database this data dir belongs to", path, err, db.Describe())
		}
		if bound != id {
			return fmt.Errorf("--data-dir %s belongs to %s, but --database-url is %s: its admin.token and root.json are that database's. Use another --data-dir for this database (e.g. --data-dir %s-%s, or `make run DEV_DIR=…`), or point --database-url back at the first", dir, bound, id, dir, id.Database)
		}
		return nil
	}
	if !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("reading %s: %w", path, err)
	}
	// No record yet: adopt the data dir only if what it holds is this database's.
	if root, err := os.ReadFile(filepath.Join(dir, "root.json")); err == nil {
		// A database that was never migrated holds no repository (and must not be
		// queried as if it did).
		ok := false
		if serr := (*store.SchemaError)(nil); !errors.As(db.CheckSchema(ctx), &serr) || !serr.Never {
			if ok, err = db.Bootstrapped(ctx); err != nil {
				return err
			}
		}
		same := false
		if ok {
			pub, err := db.PublishedMetadata(ctx, tufrepo.RoleRoot, 1)
			if err != nil {
				return err
			}
			same = bytes.Equal(pub.Raw, root)
		}
		if !same {
			return fmt.Errorf("--data-dir %s holds the root.json of another repository than %s: use another --data-dir for this database, or point --database-url at the database it was made for", dir, id)
		}
	} else if !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("reading %s: %w", filepath.Join(dir, "root.json"), err)
	}
	rec, _ := json.MarshalIndent(id, "", "  ")
	if err := writeNewFile(path, append(rec, '\n'), 0o644); errors.Is(err, os.ErrExist) {
		return bindDataDir(ctx, dir, db) // another server bound it first: compare with that
	} else if err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	return nil
}

// bootstrap signs the first online versions and stores the repository.
func bootstrap(ctx context.Context, db *store.DB, off *tufrepo.OfflineMetadata, signers tufrepo.Signers) error {
	if err := tufrepo.CheckOnlineKeys(off.Root, off.Targets, signers); err != nil {
		return err
	}
	now := time.Now()
	rc, snap, ts, err := tufrepo.InitialOnline(ctx, off, signers, now)
	if err != nil {
		return fmt.Errorf("signing initial online metadata: %w", err)
	}
	keys := map[string]string{
		tufrepo.RoleTimestamp: signers.Timestamp.KeyID, tufrepo.RoleSnapshot: signers.Snapshot.KeyID,
		tufrepo.RoleRecentlyClaimed: signers.RecentlyClaimed.KeyID,
	}
	if err := db.Bootstrap(ctx, off, rc, snap, ts, keys, now); err != nil {
		if api.CodeOf(err) == api.CodeAlreadyBootstrapped {
			return err
		}
		return fmt.Errorf("storing the new repository: %w", err)
	}
	return nil
}
