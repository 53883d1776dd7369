package store

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/cairn-dev/cairn/api"
	"github.com/jackc/pgx/v5"
)

// Token is an API token's record. The secret itself is never stored, only its SHA-256.
type Token struct {
	ID        string     `json:"id"`
	Name      string     `json:"name"`
	Admin     bool       `json:"admin"`
	CanCreate bool       `json:"can_create"`
	Projects  []string   `json:"projects"`
	CreatedAt time.Time  `json:"created_at"`
	RevokedAt *time.Time `json:"revoked_at,omitempty"`
}

// MayWrite reports whether the token may change project.
func (t *Token) MayWrite(project string) bool {
	return t.Admin || slices.Contains(t.Projects, project)
}

// TokenPrefix starts every token, so that secret scanners can recognise leaked ones.
const TokenPrefix = "cairn_"

// NewTokenSpec describes a token to create.
type NewTokenSpec struct {
	Name      string
	Admin     bool
	CanCreate bool
	Projects  []string
}

// CreateToken creates a token and returns its secret form, shown once:
// cairn_<id>_<secret>.
func (db *DB) CreateToken(ctx context.Context, spec NewTokenSpec) (string, *Token, error) {
	idb := make([]byte, 8)
	secret := make([]byte, 32)
	if _, err := rand.Read(idb); err != nil {
		return "", nil, err
	}
	if _, err := rand.Read(secret); err != nil {
		return "", nil, err
	}
	id := hex.EncodeToString(idb)
	sec := base64.RawURLEncoding.EncodeToString(secret)
	sum := sha256.Sum256([]byte(sec))
	if spec.Projects == nil {
		spec.Projects = []string{}
	}
	t := &Token{ID: id, Name: spec.Name, Admin: spec.Admin, CanCreate: spec.CanCreate || spec.Admin, Projects: spec.Projects}
	err := db.Pool.QueryRow(ctx, `INSERT INTO tokens (id, name, secret_hash, admin, can_create, projects) VALUES ($1,$2,$3,$4,$5,$6) RETURNING created_at`,
		id, t.Name, sum[:], t.Admin, t.CanCreate, t.Projects).Scan(&t.CreatedAt)
	if err != nil {
		return "", nil, fmt.Errorf("creating token: %w", err)
	}
	return TokenPrefix + id + "_" + sec, t, nil
}

// errBadToken reaches maintainers, who cannot run cairnd: it tells them whom to ask.
var errBadToken = api.Errorf(api.CodeUnauthorized, "the bearer token is not valid or was revoked: ask the repository's operator for a new one (operators create tokens with `cairnd token create`)")

// Authenticate resolves a presented token. The secret is compared in constant time
// against the stored hash; an unknown ID and a wrong secret give the same error.
func (db *DB) Authenticate(ctx context.Context, presented string) (*Token, error) {
	rest, ok := strings.CutPrefix(presented, TokenPrefix)
	if !ok {
		return nil, errBadToken
	}
	id, sec, ok := strings.Cut(rest, "_")
	if !ok || len(id) != 16 || len(sec) == 0 || len(sec) > 128 {
		return nil, errBadToken
	}
	sum := sha256.Sum256([]byte(sec))
	if c, ok := db.tokens.get(id, time.Now()); ok {
		if subtle.ConstantTimeCompare(sum[:], c.hash) != 1 || c.t.RevokedAt != nil {
			return nil, errBadToken
		}
		t := c.t
		return &t, nil
	}
	var t Token
	var hash []byte
	err := db.Pool.QueryRow(ctx, `SELECT id, name, secret_hash, admin, can_create, projects, created_at, revoked_at FROM tokens WHERE id = $1`, id).
		Scan(&t.ID, &t.Name, &hash, &t.Admin, &t.CanCreate, &t.Projects, &t.CreatedAt, &t.RevokedAt)
	if errors.Is(err, pgx.ErrNoRows) {
		// Still compare, so the time taken does not tell whether the ID exists.
		subtle.ConstantTimeCompare(sum[:], make([]byte, 32))
		return nil, errBadToken
	}
	if err != nil {
		return nil, fmt.Errorf("looking up token: %w", err)
	}
	db.tokens.put(id, cachedToken{t: t, hash: hash, at: time.Now()})
	if subtle.ConstantTimeCompare(sum[:], hash) != 1 || t.RevokedAt != nil {
		return nil, errBadToken
	}
	return &t, nil
}

// ForgetToken drops a token record from the cache: it changed (ChannelTokens). An empty
// id drops every record: the listener reconnected and may have missed notifications.
func (db *DB) ForgetToken(id string) { db.tokens.forget(id) }

// tokenTTL bounds how long a cached token record is used: revocation reaches every
// replica through ChannelTokens at once, and within tokenTTL even if that notification is
// lost.
const tokenTTL = 30 * time.Second

// tokenCache keeps token records by ID, so that a request with a token costs no query.
type tokenCache struct {
	mu sync.Mutex
	m  map[string]cachedToken
}

type cachedToken struct {
	t    Token
	hash []byte
	at   time.Time
}

const maxCachedTokens = 100000

func (c *tokenCache) get(id string, now time.Time) (cachedToken, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	t, ok := c.m[id]
	if ok && now.Sub(t.at) >= tokenTTL {
		delete(c.m, id)
		return t, false
	}
	return t, ok
}

func (c *tokenCache) put(id string, t cachedToken) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil {
		c.m = map[string]cachedToken{}
	}
	if len(c.m) >= maxCachedTokens {
		for k := range c.m {
			delete(c.m, k)
			break
		}
	}
	c.m[id] = t
}

func (c *tokenCache) forget(id string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if id == "" {
		clear(c.m)
		return
	}
	delete(c.m, id)
}

// ListTokens returns every token record.
func (db *DB) ListTokens(ctx context.Context) ([]Token, error) {
	rows, err := db.Pool.Query(ctx, `SELECT id, name, admin, can_create, projects, created_at, revoked_at FROM tokens ORDER BY created_at, id`)
	if err != nil {
		return nil, fmt.Errorf("listing tokens: %w", err)
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (Token, error) {
		var t Token
		return t, r.Scan(&t.ID, &t.Name, &t.Admin, &t.CanCreate, &t.Projects, &t.CreatedAt, &t.RevokedAt)
	})
}

// RevokeToken revokes a token by ID; revoking twice is not an error.
func (db *DB) RevokeToken(ctx context.Context, id string) error {
	tag, err := db.Pool.Exec(ctx, `UPDATE tokens SET revoked_at = coalesce(revoked_at, now()) WHERE id = $1`, id)
	// Other replicas forget it on the notification (migration 00008); this one at once.
	db.ForgetToken(id)
	if err != nil {
		return fmt.Errorf("revoking token: %w", err)
	}
	if tag.RowsAffected() == 0 {
		return api.Errorf(api.CodeNotFound, "no token with ID %q", id)
	}
	return nil
}
