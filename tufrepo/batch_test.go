package tufrepo

import (
	"log/slog"
	"testing"
	"time"
)

// TestBatchLimitAdapts checks how the batch of staged roles moves: halved (down to
// minStagedPerPublish) after a publish that ran out of its time, doubled back after each
// quick success (under a quarter of PublishTimeout), up to MaxStagedPerPublish, and kept
// after a slow one.
func TestBatchLimitAdapts(t *testing.T) {
	type step struct {
		timedOut bool
		slow     bool // a success that took more than a quarter of PublishTimeout
		want     int  // batchLimit after the step
	}
	for _, tc := range []struct {
		name  string
		max   int
		steps []step
	}{
		{"a bounded batch halves and recovers", 50_000, []step{{true, false, 25_000}, {true, false, 12_500}, {false, false, 25_000}, {false, false, 50_000}, {false, false, 50_000}}},
		{"never below the minimum", 300, []step{{true, false, 150}, {true, false, minStagedPerPublish}, {true, false, minStagedPerPublish}, {false, false, 200}, {false, false, 300}}},
		{"successes leave the configured batch", 50_000, []step{{false, false, 50_000}, {false, false, 50_000}}},
		{"an unbounded publisher that runs out is bounded", 0, []step{{false, false, 0}, {true, false, DefaultMaxStagedPerPublish}, {true, false, DefaultMaxStagedPerPublish / 2}, {false, false, DefaultMaxStagedPerPublish}}},
		{"a slow success keeps the batch", 50_000, []step{{true, false, 25_000}, {false, true, 25_000}, {false, false, 50_000}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := &Publisher{MaxStagedPerPublish: tc.max, PublishTimeout: time.Minute, Log: slog.New(slog.DiscardHandler)}
			for i, s := range tc.steps {
				took := time.Second
				if s.slow {
					took = p.PublishTimeout / 2
				}
				p.adaptBatch(p.batchLimit(), s.timedOut, took)
				if got := p.batchLimit(); got != s.want {
					t.Fatalf("step %d (timed out: %v): batch %d, want %d", i, s.timedOut, got, s.want)
				}
			}
		})
	}
}
