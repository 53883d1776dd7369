package retry

import (
	"context"
	"errors"
	"testing"
	"time"
)

var (
	errBusy  = errors.New("busy")  // worth another try
	errFinal = errors.New("final") // not
)

func retryable(err error) bool { return errors.Is(err, errBusy) }

// A scripted operation: each try takes the next answer.
type answer struct {
	err   error
	after time.Duration
}

func TestDo(t *testing.T) {
	fast := Policy{Attempts: 3, Initial: 10 * time.Millisecond, Min: time.Millisecond, Max: 40 * time.Millisecond}
	tests := []struct {
		name      string
		p         Policy
		answers   []answer
		wantTries int
		wantErr   error
		// wantWait bounds the time spent waiting: at least min, less than max.
		minWait, maxWait time.Duration
	}{
		{"success at once", fast, []answer{{}}, 1, nil, 0, 50 * time.Millisecond},
		{"success on the second try", fast, []answer{{err: errBusy}, {}}, 2, nil, 10 * time.Millisecond, 200 * time.Millisecond},
		{"tries run out: the last error", fast, []answer{{err: errBusy}, {err: errBusy}, {err: errBusy}, {}}, 3, errBusy, 30 * time.Millisecond, 300 * time.Millisecond},
		{"a final error is not retried", fast, []answer{{err: errFinal}, {}}, 1, errFinal, 0, 50 * time.Millisecond},
		{"final after a retryable one", fast, []answer{{err: errBusy}, {err: errFinal}, {}}, 2, errFinal, 10 * time.Millisecond, 200 * time.Millisecond},
		{"Retry-After is honoured", fast, []answer{{err: errBusy, after: 30 * time.Millisecond}, {}}, 2, nil, 30 * time.Millisecond, 250 * time.Millisecond},
		{"Retry-After is capped at Max", fast, []answer{{err: errBusy, after: time.Hour}, {}}, 2, nil, 40 * time.Millisecond, 300 * time.Millisecond},
		{"a wait below Min is raised to it", Policy{Attempts: 2, Initial: time.Millisecond, Min: 60 * time.Millisecond, Max: time.Second}, []answer{{err: errBusy}, {}}, 2, nil, 60 * time.Millisecond, 400 * time.Millisecond},
		{"zero attempts is one try", Policy{}, []answer{{err: errBusy}, {}}, 1, errBusy, 0, 50 * time.Millisecond},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			start := time.Now()
			got, tries, err := Do(context.Background(), tc.p, retryable, func(context.Context) (int, time.Duration, error) {
				a := tc.answers[0]
				tc.answers = tc.answers[1:]
				return len(tc.answers), a.after, a.err
			})
			took := time.Since(start)
			if tries != tc.wantTries || !errors.Is(err, tc.wantErr) || (err == nil) != (tc.wantErr == nil) {
				t.Fatalf("Do = %d tries, %v; want %d tries, %v", tries, err, tc.wantTries, tc.wantErr)
			}
			if err == nil && got != len(tc.answers) {
				t.Errorf("result %d is not the successful try's", got)
			}
			if took < tc.minWait || took >= tc.maxWait {
				t.Errorf("took %s, want [%s, %s)", took, tc.minWait, tc.maxWait)
			}
		})
	}
}

// When ctx ends during a wait, Do returns at once with the operation's error, which says
// what failed, not the context's.
func TestDoStopsWhenTheContextEnds(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, tries, err := Do(ctx, Policy{Attempts: 5, Initial: time.Hour}, retryable, func(context.Context) (struct{}, time.Duration, error) {
		return struct{}{}, 0, errBusy
	})
	if tries != 1 || !errors.Is(err, errBusy) || time.Since(start) > 5*time.Second {
		t.Fatalf("Do = %d tries, %v after %s; want 1 try, %v, soon after the context ended", tries, err, time.Since(start), errBusy)
	}
}
