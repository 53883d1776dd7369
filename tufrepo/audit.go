package tufrepo

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strconv"
	"time"

	"github.com/cairn-dev/cairn/api"
)

// AuditTime normalises a time for the audit log: UTC, microseconds (what PostgreSQL keeps).
func AuditTime(t time.Time) time.Time { return t.UTC().Truncate(time.Microsecond) }

// AuditHash is the chain hash of an entry: SHA-256 over prev and a fixed, unambiguous
// encoding of every field but Hash and PrevHash. Anyone can recompute it from GET /api/v1/log.
func AuditHash(prev []byte, e api.LogEntry) []byte {
	h := sha256.New()
	h.Write(prev)
	// Length-prefixed fields: no two different entries encode the same.
	for _, f := range []string{
		strconv.FormatInt(e.Seq, 10), e.Action, e.Role, strconv.FormatInt(e.Version, 10),
		strconv.FormatInt(e.Length, 10), e.SHA256, strconv.FormatInt(e.Snapshot, 10),
		AuditTime(e.Time).Format(time.RFC3339Nano),
	} {
		h.Write([]byte(strconv.Itoa(len(f))))
		h.Write([]byte{':'})
		h.Write([]byte(f))
	}
	return h.Sum(nil)
}

// VerifyAuditChain checks that entries (consecutive, oldest first) chain from prev, the hash
// of the entry before the first (empty for the start of the log). It returns the last hash.
func VerifyAuditChain(prev []byte, entries []api.LogEntry) ([]byte, error) {
	for _, e := range entries {
		gotPrev, err := hex.DecodeString(e.PrevHash)
		if err != nil || !bytes.Equal(gotPrev, prev) {
			return nil, fmt.Errorf("audit log entry %d: prev_hash %s does not match the hash of the entry before it (%x)", e.Seq, e.PrevHash, prev)
		}
		want := AuditHash(prev, e)
		if hex.EncodeToString(want) != e.Hash {
			return nil, fmt.Errorf("audit log entry %d (%s %s v%d): hash %s does not match its contents (want %x)", e.Seq, e.Action, e.Role, e.Version, e.Hash, want)
		}
		prev = want
	}
	return prev, nil
}
