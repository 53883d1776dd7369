package daemon

import (
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
// DIR/admin.token. On a database that is already bootstrapped it changes nothing.
func devBootstrap(ctx context.Context, c *Config, db *store.DB, offline map[string]*tufrepo.OnlineSigner, signers tufrepo.Signers, out io.Writer) error {
	ok, err := db.Bootstrapped(ctx)
	if err != nil {
		return err
	}
	tokenFile := filepath.Join(c.DataDir, "admin.token")
	if !ok {
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
		if err := bootstrap(ctx, db, off, signers); err != nil {
			return err
		}
		// A fresh database has no token: the one in DIR (if any) is of an older one.
		if err := os.Remove(tokenFile); err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
		fmt.Fprintf(out, "bootstrapped a new dev repository in %s\n", c.DataDir)
	}
	if _, err := os.Stat(tokenFile); errors.Is(err, os.ErrNotExist) {
		secret, _, err := db.CreateToken(ctx, store.NewTokenSpec{Name: "dev-admin", Admin: true})
		if err != nil {
			return err
		}
		if err := os.WriteFile(tokenFile, []byte(secret+"\n"), 0o600); err != nil {
			return fmt.Errorf("writing admin token: %w", err)
		}
	}
	root, err := db.PublishedMetadata(ctx, tufrepo.RoleRoot, 1)
	if err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(c.DataDir, "root.json"), root.Raw, 0o644)
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
