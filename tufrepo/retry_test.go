package tufrepo

import (
	"bytes"
	"context"
	"crypto"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sigstore/sigstore/pkg/signature"
)

// flakySigner fails its first failures calls, then signs with inner; corrupt makes it
// return a signature over other bytes instead.
type flakySigner struct {
	inner    signature.Signer
	failures int32
	corrupt  bool
	calls    atomic.Int32
}

func (f *flakySigner) PublicKey(opts ...signature.PublicKeyOption) (crypto.PublicKey, error) {
	return f.inner.PublicKey(opts...)
}

func (f *flakySigner) SignMessage(r io.Reader, opts ...signature.SignOption) ([]byte, error) {
	if n := f.calls.Add(1); n <= f.failures {
		return nil, errors.New("kms: 429 Too Many Requests")
	}
	if f.corrupt {
		// Without opts: a digest passed in them would be signed instead of these bytes.
		return f.inner.SignMessage(strings.NewReader("something else"))
	}
	return f.inner.SignMessage(r, opts...)
}

func TestSignRetries(t *testing.T) {
	fast := Retry{Attempts: 4, Initial: time.Millisecond, Max: 2 * time.Millisecond}
	tests := []struct {
		name      string
		failures  int32
		corrupt   bool
		retry     Retry
		wantCalls int32
		wantErr   []string
	}{
		{name: "first try", failures: 0, retry: fast, wantCalls: 1},
		{name: "recovers on the third try", failures: 2, retry: fast, wantCalls: 3},
		{name: "recovers on the last try", failures: 3, retry: fast, wantCalls: 4},
		{name: "gives up", failures: 10, retry: fast, wantCalls: 4, wantErr: []string{"failed 4 times", "429 Too Many Requests"}},
		{name: "no retries", failures: 10, retry: Retry{Attempts: 1}, wantCalls: 1, wantErr: []string{"429"}},
		{name: "a signature that does not verify is never returned", corrupt: true, retry: fast, wantCalls: 4, wantErr: []string{"does not verify with key"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			base := newTestSigner(t, KeyECDSAP256)
			f := &flakySigner{inner: base.Signer, failures: tc.failures, corrupt: tc.corrupt}
			var attempts []SignAttempt
			o := &OnlineSigner{Signer: f, Key: base.Key, KeyID: base.KeyID, Retry: tc.retry, Observe: func(a SignAttempt) { attempts = append(attempts, a) }}
			sig, err := o.Sign(context.Background(), []byte("payload"))
			if got := f.calls.Load(); got != tc.wantCalls {
				t.Errorf("%d calls to the signer, want %d", got, tc.wantCalls)
			}
			if len(attempts) != int(tc.wantCalls) {
				t.Fatalf("observed %d attempts, want %d", len(attempts), tc.wantCalls)
			}
			for i, a := range attempts {
				if a.Attempt != i+1 || a.KeyID != base.KeyID || (a.Err == nil) != (i == len(attempts)-1 && tc.wantErr == nil) {
					t.Errorf("attempt %d observed as %+v", i+1, a)
				}
			}
			if tc.wantErr == nil {
				if err != nil {
					t.Fatal(err)
				}
				if err := VerifySignature(base.Key, []byte("payload"), sig.Signature); err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil {
				t.Fatal("no error")
			}
			for _, w := range append(tc.wantErr, base.KeyID) {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not say %q", err, w)
				}
			}
		})
	}
}

// A cancelled context stops the retries at once.
func TestSignRetriesStopWithContext(t *testing.T) {
	base := newTestSigner(t, KeyEd25519)
	f := &flakySigner{inner: base.Signer, failures: 100}
	o := &OnlineSigner{Signer: f, Key: base.Key, KeyID: base.KeyID, Retry: Retry{Attempts: 100, Initial: time.Hour, Max: time.Hour}}
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(10*time.Millisecond, cancel)
	if _, err := o.Sign(ctx, []byte("x")); err == nil {
		t.Fatal("no error")
	}
	if n := f.calls.Load(); n != 1 {
		t.Fatalf("%d calls after cancel, want 1", n)
	}
}

// An online signer that keeps failing (KMS down, key disabled) fails the publish without
// storing anything: no snapshot without its timestamp, no half-published batch. When the
// signer recovers, the next publish is the one that would have happened.
func TestPublishSignerFailureChangesNothing(t *testing.T) {
	for _, role := range []string{RoleRecentlyClaimed, RoleSnapshot, RoleTimestamp} {
		t.Run(role, func(t *testing.T) {
			e := newPubEnv(t)
			e.addProject("alpha")
			e.stage("alpha", 1)
			e.now = t0.Add(time.Hour)
			o := map[string]*OnlineSigner{RoleRecentlyClaimed: e.repo.Online.RecentlyClaimed, RoleSnapshot: e.repo.Online.Snapshot, RoleTimestamp: e.repo.Online.Timestamp}[role]
			healthy := o.Signer
			f := &flakySigner{inner: healthy, failures: 1000}
			o.Signer, o.Retry = f, Retry{Attempts: 3, Initial: time.Millisecond, Max: time.Millisecond}
			before := e.store.state()
			if _, err := e.pub.PublishOnce(context.Background()); err == nil || !strings.Contains(err.Error(), "failed 3 times") {
				t.Fatalf("PublishOnce with the %s signer down: %v", role, err)
			}
			if f.calls.Load() != 3 {
				t.Fatalf("%d signing attempts, want 3", f.calls.Load())
			}
			if after := e.store.state(); after != before {
				t.Fatalf("a publish whose signer failed changed the store:\n%s\n%s", before, after)
			}
			o.Signer = healthy
			res := e.publish()
			if res.SnapshotVersion != 2 || res.TimestampVersion != 2 || res.Roles != 1 {
				t.Fatalf("publish after recovery: %+v", res)
			}
			e.verifyChain()
		})
	}
}

// BenchmarkOnlineSign measures what verifying every signature costs: Sign (sign, then
// verify) against the bare signer, for a timestamp's signed bytes and a snapshot's at 100k
// projects (where an ECDSA key's Sign hashes the payload once for both).
func BenchmarkOnlineSign(b *testing.B) {
	for _, size := range []int{400, 5 << 20} {
		payload := make([]byte, size)
		for _, kt := range []KeyType{KeyEd25519, KeyECDSAP256} {
			o := newTestSigner(b, kt)
			b.Run(fmt.Sprintf("%s/%dB/sign-only", kt, size), func(b *testing.B) {
				b.SetBytes(int64(size))
				for b.Loop() {
					if _, err := o.Signer.SignMessage(bytes.NewReader(payload)); err != nil {
						b.Fatal(err)
					}
				}
			})
			b.Run(fmt.Sprintf("%s/%dB/sign-and-verify", kt, size), func(b *testing.B) {
				b.SetBytes(int64(size))
				for b.Loop() {
					if _, err := o.Sign(context.Background(), payload); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}
