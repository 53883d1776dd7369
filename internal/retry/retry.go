// Package retry is the one policy for trying an operation again: how many tries, how long
// to wait between them (doubling from Initial up to Max, or what the other side asked for
// with Retry-After, kept within [Min, Max]), and which failures are worth another try (the
// caller says: only what is safe to repeat, such as a request the server answered 503
// without acting on it). It is built on github.com/cenkalti/backoff/v5.
package retry

import (
	"context"
	"time"

	"github.com/cenkalti/backoff/v5"
)

// Policy bounds the retries of one operation.
type Policy struct {
	// Attempts is the total number of tries; less than 1 is 1.
	Attempts int
	// Initial is the wait before the second try; each later wait doubles, up to Max.
	Initial time.Duration
	// Min and Max bound every wait, a Retry-After included: Min keeps a client from
	// hammering a server that asks for no wait at all, Max keeps an answer from making
	// the user wait for long. Max 0 is no upper bound.
	Min, Max time.Duration
	// Jitter spreads each doubling wait to between 1-Jitter and 1+Jitter of it (before
	// the bounds), so that many clients refused at once do not come back at once; 0
	// waits exactly.
	Jitter float64
}

// Op is one try. It returns, with its error, how long the other side asked to wait
// before the next try (a Retry-After), or 0 when it did not say.
type Op[T any] func(ctx context.Context) (T, time.Duration, error)

// Do runs op until it succeeds, fails with an error retryable refuses, the policy's tries
// are spent, or ctx ends. It returns op's last result and error, never ctx's error in
// place of op's (op's says what failed), and the number of tries.
func Do[T any](ctx context.Context, p Policy, retryable func(error) bool, op Op[T]) (T, int, error) {
	tries := 0
	var last error
	res, _ := backoff.Retry(ctx, func() (T, error) {
		tries++
		v, after, err := op(ctx)
		last = err
		switch {
		case err == nil:
			return v, nil
		case !retryable(err):
			return v, backoff.Permanent(err)
		case after > 0:
			return v, &backoff.RetryAfterError{Duration: p.bound(after)}
		}
		return v, err
	},
		backoff.WithBackOff(&bounded{p: p, b: &backoff.ExponentialBackOff{
			InitialInterval: p.Initial, RandomizationFactor: p.Jitter, Multiplier: 2, MaxInterval: p.maxOrForever(),
		}}),
		backoff.WithMaxTries(uint(max(p.Attempts, 1))),
		backoff.WithMaxElapsedTime(0), // the tries bound it, not a clock
	)
	return res, tries, last
}

func (p Policy) bound(d time.Duration) time.Duration {
	d = max(d, p.Min)
	if p.Max > 0 {
		d = min(d, p.Max)
	}
	return d
}

func (p Policy) maxOrForever() time.Duration {
	if p.Max > 0 {
		return p.Max
	}
	return time.Duration(1<<63 - 1)
}

// bounded keeps the jittered doubling waits within [Min, Max].
type bounded struct {
	p Policy
	b *backoff.ExponentialBackOff
}

func (b *bounded) NextBackOff() time.Duration { return b.p.bound(b.b.NextBackOff()) }
func (b *bounded) Reset()                     { b.b.Reset() }
