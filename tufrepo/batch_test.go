package tufrepo

import (
	"log/slog"
	"testing"
	"time"
)

// TestBatchLimitAdapts checks how the batch of staged roles moves: halved (down to
// minStagedPerPublish) after a publish that ran out of its time, doubled back after each
// success, up to MaxStagedPerPublish.
func TestBatchLimitAdapts(t *testing.T) {
	type step struct {
		timedOut bool
		want     int // batchLimit after the step
	}
	for _, tc := range []struct {
		name  string
		max   int
		steps []step
	}{
		{"a bounded batch halves and recovers", 50_000, []step{{true, 25_000}, {true, 12_500}, {false, 25_000}, {false, 50_000}, {false, 50_000}}},
		{"never below the minimum", 300, []step{{true, 150}, {true, minStagedPerPublish}, {true, minStagedPerPublish}, {false, 200}, {false, 300}}},
		{"successes leave the configured batch", 50_000, []step{{false, 50_000}, {false, 50_000}}},
		{"an unbounded publisher that runs out is bounded", 0, []step{{false, 0}, {true, DefaultMaxStagedPerPublish}, {true, DefaultMaxStagedPerPublish / 2}, {false, DefaultMaxStagedPerPublish}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := &Publisher{MaxStagedPerPublish: tc.max, PublishTimeout: time.Minute, Log: slog.New(slog.DiscardHandler)}
			for i, s := range tc.steps {
				p.adaptBatch(p.batchLimit(), s.timedOut)
				if got := p.batchLimit(); got != s.want {
					t.Fatalf("step %d (timed out: %v): batch %d, want %d", i, s.timedOut, got, s.want)
				}
			}
		})
	}
}
