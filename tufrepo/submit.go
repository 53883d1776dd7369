package tufrepo

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/cairn-dev/cairn/api"
)

// True group commit (DESIGN.md "Uploads: group commit"). A complete project role version
// is validated by the request handler against the project's state as it was read; the
// publisher then stores every version queued since its last publish in its own publish
// transaction, with one statement per table, and signs one snapshot and one timestamp for
// all of them. An upload therefore costs no transaction of its own, and the answer comes
// straight from the publish that made it public.

// Submission is a complete project role version waiting for the next publish.
type Submission struct {
	Project string
	// Expected is the project's role version the submission was validated against; it is
	// stored only if the project is still at that version under the publish's row lock.
	Expected int64
	Accepted *AcceptedRole
	// SHA256 of Accepted.Raw.
	SHA256 []byte
	// Base is the project's published files Accepted was validated against
	// (ProjectState.Files at Expected), or nil; read only. The store derives the files of
	// the new version from it instead of reading them all again on the next upload.
	Base map[string]PublishedFile

	done   chan SubmitOutcome
	queued time.Time
}

// SubmitOutcome says what became of a submission.
type SubmitOutcome struct {
	// Snapshot and Timestamp are the versions that published it (when Err is nil).
	Snapshot, Timestamp int64
	Err                 error
}

// NewSubmission prepares an accepted, complete role version for Publisher.Submit.
func NewSubmission(project string, expected int64, acc *AcceptedRole) *Submission {
	sum := sha256.Sum256(acc.Raw)
	return &Submission{Project: project, Expected: expected, Accepted: acc, SHA256: sum[:], done: make(chan SubmitOutcome, 1)}
}

// submitQueue holds the submissions of the next publish.
type submitQueue struct {
	mu      sync.Mutex
	pending []*Submission
	// full receives when the queue reaches want submissions (arm; Publisher.gather).
	full chan struct{}
	want int
}

func (q *submitQueue) add(s *Submission) {
	q.mu.Lock()
	s.queued = time.Now()
	q.pending = append(q.pending, s)
	reached := q.want > 0 && len(q.pending) >= q.want
	if reached {
		q.want = 0
	}
	q.mu.Unlock()
	if reached {
		select {
		case q.full <- struct{}{}:
		default:
		}
	}
}

func (q *submitQueue) len() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.pending)
}

// arm asks add to signal full once n submissions are queued; it reports false (and arms
// nothing) when n are queued already.
func (q *submitQueue) arm(n int) bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	if len(q.pending) >= n {
		return false
	}
	q.want = n
	return true
}

// remove takes s out of the queue if no publish has drained it yet.
func (q *submitQueue) remove(s *Submission) bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	for i, x := range q.pending {
		if x == s {
			q.pending = append(q.pending[:i], q.pending[i+1:]...)
			return true
		}
	}
	return false
}

// oldest returns when the longest-waiting queued submission was queued (zero if none).
func (q *submitQueue) oldest() time.Time {
	q.mu.Lock()
	defer q.mu.Unlock()
	if len(q.pending) == 0 {
		return time.Time{}
	}
	return q.pending[0].queued
}

func (q *submitQueue) drain() []*Submission {
	q.mu.Lock()
	defer q.mu.Unlock()
	out := q.pending
	q.pending, q.want = nil, 0
	select { // a signal for the batch just drained must not end the next window
	case <-q.full:
	default:
	}
	return out
}

// Submit queues s for the next publish, kicks the publisher and waits until that publish
// committed or failed. A submission whose project moved past Expected in the meantime is
// refused with version_conflict; when the publish fails, nothing of it was stored and the
// error says to upload again. If ctx ends before a publish took s from the queue, s is
// withdrawn and refused as unavailable (nothing stored): an upload is never left in memory
// without an answer that says whether it is durable. Once a publish holds s, Submit waits
// for it; the publish is bounded (PublishTimeout and the database's session timeouts).
func (p *Publisher) Submit(ctx context.Context, s *Submission) SubmitOutcome {
	p.queue.add(s)
	p.Kick()
	select {
	case out := <-s.done:
		return out
	case <-ctx.Done():
	}
	if p.queue.remove(s) {
		return SubmitOutcome{Err: api.Errorf(api.CodeUnavailable, "role version %d of %q was not stored: no publish started within the wait (the publisher is busy or cannot reach the database); upload it again, or with ?wait=0 to stage it without waiting", s.Accepted.Version, s.Project)}
	}
	return <-s.done
}

// QueueAge reports how long the oldest upload queued for the next publish has waited
// (zero when none waits): the publisher's stall signal on this replica.
func (p *Publisher) QueueAge() time.Duration {
	t := p.queue.oldest()
	if t.IsZero() {
		return 0
	}
	return time.Since(t)
}

// applySubmissions stores the queued submissions in the publish transaction. It returns
// the staged roles of those stored, and records in refused why the others were not.
func applySubmissions(ctx context.Context, tx PublishTx, subs []*Submission, snapshot int64, refused map[*Submission]error) ([]StagedRole, error) {
	if len(subs) == 0 {
		return nil, nil
	}
	errs, err := tx.ApplySubmissions(ctx, subs, snapshot)
	if err != nil {
		return nil, fmt.Errorf("storing %d uploaded role versions: %w", len(subs), err)
	}
	var staged []StagedRole
	for i, s := range subs {
		if errs[i] != nil {
			refused[s] = errs[i]
			continue
		}
		staged = append(staged, StagedRole{Role: s.Project, Version: s.Accepted.Version, Length: int64(len(s.Accepted.Raw)), SHA256: s.SHA256})
	}
	return staged, nil
}

// finishSubmissions tells every waiter of subs how the publish went: refused ones their
// error, stored ones the versions that published them, or, if the publish failed, that
// nothing was stored.
func finishSubmissions(subs []*Submission, refused map[*Submission]error, res PublishResult, err error) {
	for _, s := range subs {
		out := SubmitOutcome{Snapshot: res.SnapshotVersion, Timestamp: res.TimestampVersion}
		switch {
		case refused[s] != nil:
			out = SubmitOutcome{Err: refused[s]}
		case errors.Is(err, ErrCommitUnknown):
			out = SubmitOutcome{Err: api.Wrap(api.CodeUnavailable, err, "role version %d of %q may or may not be stored: the connection to the database failed while committing; upload the same file again (the cairn CLI recognises it if it was stored) or check GET /api/v1/projects/%s/roles/%d", s.Accepted.Version, s.Project, s.Project, s.Accepted.Version)}
		case err != nil:
			out = SubmitOutcome{Err: api.Wrap(api.CodeUnavailable, err, "role version %d of %q was not stored: the publish that was to store it failed; upload it again", s.Accepted.Version, s.Project)}
		}
		s.done <- out
	}
}

// ErrCommitUnknown marks a publish whose COMMIT failed: PostgreSQL may have committed it
// before the connection broke, so what it stored is unknown until someone reads it back.
var ErrCommitUnknown = errors.New("the outcome of the publish transaction's commit is unknown")

// VersionConflict is the refusal of a submission whose project moved past the version it
// was validated against.
func VersionConflict(s *Submission, current int64) error {
	return api.Errorf(api.CodeVersionConflict, "project %q is at role version %d, so the next version must be %d, not %d: refresh and sign the next version", s.Project, current, current+1, s.Accepted.Version)
}
