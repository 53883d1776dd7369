package client

import (
	"context"
	"encoding/hex"
	"fmt"

	"github.com/cairn-dev/cairn/tufrepo"
)

// LogVerification summarises an audit log whose hash chain verified.
type LogVerification struct {
	Entries  int    `json:"entries"`
	FirstSeq int64  `json:"first_seq"`
	LastSeq  int64  `json:"last_seq"`
	Head     string `json:"head"` // hex hash of the last entry: compare it with other observers
}

// VerifyLog pages through the whole audit log, oldest first, and recomputes the hash chain
// from the start. A broken chain is a *VerifyError with ExitHashMismatch naming the entry.
// Pages continue after the last entry's Seq until an empty page, so the server's Next
// cursor is not needed. It proves the log was not rewritten between the entries read, not that the server shows
// everyone the same log: publish Head somewhere others can compare it.
func (a *API) VerifyLog(ctx context.Context, pageSize int) (LogVerification, error) {
	if pageSize <= 0 {
		pageSize = 500
	}
	var (
		sum   LogVerification
		prev  []byte
		after int64
	)
	for {
		page, err := a.Log(ctx, after, pageSize)
		if err != nil {
			return sum, err
		}
		if len(page.Entries) == 0 {
			break
		}
		for _, e := range page.Entries {
			// Sequence numbers may have gaps (rolled-back transactions) but never go back; a
			// page that does not advance would loop forever.
			if e.Seq <= after {
				return sum, &VerifyError{Code: ExitPolicy, Role: "audit log", Detail: fmt.Sprintf("entry %d follows entry %d: the log is not in order", e.Seq, after)}
			}
			after = e.Seq
		}
		head, err := tufrepo.VerifyAuditChain(prev, page.Entries)
		if err != nil {
			return sum, &VerifyError{Code: ExitHashMismatch, Role: "audit log", Detail: err.Error()}
		}
		prev = head
		if sum.Entries == 0 {
			sum.FirstSeq = page.Entries[0].Seq
		}
		sum.Entries += len(page.Entries)
		sum.LastSeq = after
	}
	sum.Head = hex.EncodeToString(prev)
	return sum, nil
}
