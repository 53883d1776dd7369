package tufrepo

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cairn-dev/cairn/api"
	"github.com/sigstore/sigstore/pkg/signature"
	"github.com/theupdateframework/go-tuf/v2/metadata"
)

// submission builds a maintainer-signed version of an (already delegated) project role,
// validated against expected, as the request handler would hand it to the publisher.
func (e *pubEnv) submission(name string, expected, version int64) *Submission {
	e.t.Helper()
	targets := map[string]*metadata.TargetFiles{}
	content := []byte(fmt.Sprintf("%s release %d", name, version))
	targets[TargetPath(name, fmt.Sprintf("%d.0", version), name+".tar.gz")] = targetFile(content)
	raw := signRole(e.t, newProjectRole(version, e.now.Add(ProjectRoleExpiry), targets), e.maintainers[name])
	acc := &AcceptedRole{Raw: raw, Version: version, Expires: e.now.Add(ProjectRoleExpiry), SignedBy: []string{e.maintainers[name].KeyID}, Threshold: 1}
	return NewSubmission(name, expected, acc)
}

// submitAsync runs Submit in a goroutine and returns the channel of its outcome.
func submitAsync(ctx context.Context, p *Publisher, s *Submission) <-chan SubmitOutcome {
	out := make(chan SubmitOutcome, 1)
	go func() { out <- p.Submit(ctx, s) }()
	return out
}

// waitQueued waits until n submissions are queued.
func waitQueued(t *testing.T, p *Publisher, n int) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(time.Millisecond) {
		p.queue.mu.Lock()
		got := len(p.queue.pending)
		p.queue.mu.Unlock()
		if got == n {
			return
		}
	}
	t.Fatalf("%d submissions never queued", n)
}

// One publish stores every queued upload and answers each: the first of two uploads of
// the same next version wins, the other is refused with version_conflict, and nothing is
// published twice.
func TestSubmitGroupCommit(t *testing.T) {
	e := newPubEnv(t)
	for _, n := range []string{"alpha", "beta"} {
		e.addProject(n)
		e.stage(n, 1)
	}
	e.publish()
	for _, n := range []string{"alpha", "beta"} {
		e.store.projects[n].Version = 1
	}
	ctx := context.Background()
	a := submitAsync(ctx, e.pub, e.submission("alpha", 1, 2))
	waitQueued(t, e.pub, 1)
	b := submitAsync(ctx, e.pub, e.submission("beta", 1, 2))
	waitQueued(t, e.pub, 2)
	a2 := submitAsync(ctx, e.pub, e.submission("alpha", 1, 2)) // a racer, queued last
	waitQueued(t, e.pub, 3)
	res := e.publish()
	oa, ob, oa2 := <-a, <-b, <-a2
	if oa.Err != nil || ob.Err != nil || oa.Snapshot != res.SnapshotVersion || ob.Snapshot != res.SnapshotVersion || res.Roles != 2 {
		t.Fatalf("outcomes %+v %+v, publish %+v", oa, ob, res)
	}
	if api.CodeOf(oa2.Err) != api.CodeVersionConflict || !strings.Contains(oa2.Err.Error(), `project "alpha" is at role version 2`) {
		t.Fatalf("racer: %v", oa2.Err)
	}
	meta := e.verifyChain()
	if meta["alpha.json"].Version != 2 || meta["beta.json"].Version != 2 {
		t.Fatalf("snapshot: %v", meta)
	}
}

// A publish that fails stores none of its uploads and tells each that it was not stored;
// the same upload goes through on the next publish.
func TestSubmitPublishFailure(t *testing.T) {
	e := newPubEnv(t)
	e.addProject("alpha")
	e.stage("alpha", 1)
	e.publish()
	e.store.projects["alpha"].Version = 1
	before := e.store.state()
	e.store.failAt["SetHead"] = 1
	out := submitAsync(context.Background(), e.pub, e.submission("alpha", 1, 2))
	waitQueued(t, e.pub, 1)
	if _, err := e.pub.PublishOnce(context.Background()); !errors.Is(err, errInjected) {
		t.Fatalf("publish: %v", err)
	}
	o := <-out
	if api.CodeOf(o.Err) != api.CodeUnavailable || !strings.Contains(o.Err.Error(), "was not stored") {
		t.Fatalf("outcome of a failed publish: %+v", o)
	}
	if after := e.store.state(); after != before || e.store.projects["alpha"].Version != 1 {
		t.Fatalf("a failed publish stored an upload:\n%s\n%s", before, after)
	}
	out = submitAsync(context.Background(), e.pub, e.submission("alpha", 1, 2))
	waitQueued(t, e.pub, 1)
	e.publish()
	if o := <-out; o.Err != nil || e.verifyChain()["alpha.json"].Version != 2 {
		t.Fatalf("upload again: %+v", o)
	}
}

// A publish whose COMMIT failed may have stored the upload: its waiter is told so, not
// that nothing was stored.
func TestSubmitCommitOutcomeUnknown(t *testing.T) {
	e := newPubEnv(t)
	e.addProject("alpha")
	e.stage("alpha", 1)
	e.publish()
	e.store.projects["alpha"].Version = 1
	e.store.failAt["commit"] = 1
	out := submitAsync(context.Background(), e.pub, e.submission("alpha", 1, 2))
	waitQueued(t, e.pub, 1)
	if _, err := e.pub.PublishOnce(context.Background()); !errors.Is(err, ErrCommitUnknown) {
		t.Fatalf("publish: %v", err)
	}
	o := <-out
	if api.CodeOf(o.Err) != api.CodeUnavailable || !strings.Contains(o.Err.Error(), "may or may not be stored") || strings.Contains(o.Err.Error(), "was not stored") {
		t.Fatalf("outcome of a publish whose commit failed: %+v", o)
	}
}

// An upload that no publish took before its wait ended is withdrawn and answered as not
// stored, never left in memory to be published after its client was told otherwise.
func TestSubmitWithdrawnWhenTheWaitEnds(t *testing.T) {
	e := newPubEnv(t)
	e.addProject("alpha")
	e.stage("alpha", 1)
	e.publish()
	e.store.projects["alpha"].Version = 1
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	o := e.pub.Submit(ctx, e.submission("alpha", 1, 2)) // no publisher runs
	if api.CodeOf(o.Err) != api.CodeUnavailable || !strings.Contains(o.Err.Error(), "no publish started within the wait") {
		t.Fatalf("outcome: %+v", o)
	}
	if age := e.pub.QueueAge(); age != 0 {
		t.Fatalf("queue age after the withdrawal: %s", age)
	}
	if res := e.publish(); res.Roles != 0 || e.store.projects["alpha"].Version != 1 {
		t.Fatalf("the withdrawn upload was published: %+v", res)
	}
}

// slowSigner takes delay to sign, as a remote KMS may.
type slowSigner struct {
	signature.Signer
	delay time.Duration
}

func (s slowSigner) SignMessage(r io.Reader, opts ...signature.SignOption) ([]byte, error) {
	time.Sleep(s.delay)
	return s.Signer.SignMessage(r, opts...)
}

// While the publisher signs outside the database (a KMS round trip), it pings its
// transaction so that the idle-in-transaction limit, which frees the lock of a frozen
// replica, does not end a busy one; a transaction that died meanwhile fails the publish.
func TestPublishPingsWhileSigning(t *testing.T) {
	for _, tc := range []struct {
		name    string
		pingErr bool
	}{{"alive", false}, {"session ended", true}} {
		t.Run(tc.name, func(t *testing.T) {
			e := newPubEnv(t)
			slow, err := NewOnlineSigner(context.Background(), slowSigner{e.repo.Online.Timestamp.Signer, 2500 * time.Millisecond})
			if err != nil {
				t.Fatal(err)
			}
			e.repo.Online.Timestamp = slow
			e.pub = e.newPublisher()
			pings := &countingStore{fakeStore: e.store}
			if tc.pingErr {
				e.store.failAt["Ping"] = 100
			}
			e.pub.Store = pings
			e.addProject("alpha")
			e.stage("alpha", 1)
			res, err := e.pub.PublishOnce(context.Background())
			if tc.pingErr {
				if err == nil || !strings.Contains(err.Error(), "the publish transaction ended while signing") {
					t.Fatalf("publish with a dead transaction: %+v, %v", res, err)
				}
				return
			}
			if err != nil || !res.Published {
				t.Fatalf("publish: %+v, %v", res, err)
			}
			if n := pings.count(); n < 2 {
				t.Fatalf("%d pings during a 2.5 s signature, want at least 2", n)
			}
		})
	}
}

// countingStore counts the pings of its transactions.
type countingStore struct {
	*fakeStore
	mu    sync.Mutex
	pings int
}

func (c *countingStore) InPublishTx(ctx context.Context, fn func(ctx context.Context, tx PublishTx) error) error {
	return c.fakeStore.InPublishTx(ctx, func(ctx context.Context, tx PublishTx) error {
		return fn(ctx, &countingTx{PublishTx: tx, c: c})
	})
}

func (c *countingStore) count() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.pings
}

type countingTx struct {
	PublishTx
	c *countingStore
}

func (tx *countingTx) Ping(ctx context.Context) error {
	tx.c.mu.Lock()
	tx.c.pings++
	tx.c.mu.Unlock()
	return tx.PublishTx.Ping(ctx)
}
