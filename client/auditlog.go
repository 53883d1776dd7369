package client

import (
	"context"
	"encoding/hex"
	"fmt"

	"github.com/cairn-dev/cairn/api"
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
// from the start (walkLog). It proves the log was not rewritten between the entries read,
// not that the server shows everyone the same log: publish Head somewhere others can
// compare it.
func (a *API) VerifyLog(ctx context.Context, pageSize int) (LogVerification, error) {
	var sum LogVerification
	head, err := a.walkLog(ctx, pageSize, func(page []api.LogEntry) error {
		if sum.Entries == 0 {
			sum.FirstSeq = page[0].Seq
		}
		sum.Entries += len(page)
		sum.LastSeq = page[len(page)-1].Seq
		return nil
	})
	if err != nil {
		return sum, err
	}
	sum.Head = hex.EncodeToString(head)
	return sum, nil
}

// walkLog pages through the whole audit log, oldest first, checks that sequence numbers
// only go forward and recomputes the hash chain from the start, handing each verified page
// to fn; it returns the chain's head. A broken chain is a *VerifyError with
// ExitHashMismatch naming the entry. Pages continue after the last entry's Seq until an
// empty page, so the server's Next cursor is not needed. The one reader of the log for
// 'cairn log verify', 'cairn audit' and the history behind 'cairn diff'.
func (a *API) walkLog(ctx context.Context, pageSize int, fn func(page []api.LogEntry) error) ([]byte, error) {
	if pageSize <= 0 {
		pageSize = 500
	}
	var (
		prev  []byte
		after int64
	)
	for {
		page, err := a.Log(ctx, after, pageSize)
		if err != nil {
			return nil, err
		}
		if len(page.Entries) == 0 {
			return prev, nil
		}
		for _, e := range page.Entries {
			// Sequence numbers may have gaps (rolled-back transactions) but never go back; a
			// page that does not advance would loop forever.
			if e.Seq <= after {
				return nil, &VerifyError{Code: ExitPolicy, Role: "audit log", Detail: fmt.Sprintf("entry %d follows entry %d: the log is not in order", e.Seq, after)}
			}
			after = e.Seq
		}
		if prev, err = tufrepo.VerifyAuditChain(prev, page.Entries); err != nil {
			return nil, &VerifyError{Code: ExitHashMismatch, Role: "audit log", Detail: err.Error()}
		}
		if err := fn(page.Entries); err != nil {
			return nil, err
		}
	}
}
