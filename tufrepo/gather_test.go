package tufrepo

import (
	"context"
	"testing"
	"time"
)

// TestGatherReleases checks every way a gather ends without running its window (an hour
// here): the window is off, the last publish took one upload or none, the window has
// passed, as many uploads as the last publish took are queued (before the gather or
// while it waits), GatherFull are, or the publisher is stopping.
func TestGatherReleases(t *testing.T) {
	for _, tc := range []struct {
		name      string
		window    time.Duration
		lastBatch int
		since     time.Duration // since the last publish started
		queued    int           // submissions added before gather
		arriving  int           // submissions added while it waits
		cancel    bool
	}{
		{"window off", 0, 10, 0, 0, 0, false},
		{"a lone uploader is never held back", time.Hour, 1, 0, 0, 0, false},
		{"nothing was published yet", time.Hour, 0, 0, 0, 0, false},
		{"the window has passed", time.Hour, 10, 2 * time.Hour, 0, 0, false},
		{"the last batch's size is queued already", time.Hour, 10, 0, 10, 0, false},
		{"the last batch's size arrives", time.Hour, 10, 0, 3, 7, false},
		{"GatherFull arrive after a huge batch", time.Hour, 10 * GatherFull, 0, 0, GatherFull, false},
		{"a stopping publisher", time.Hour, 10, 0, 1, 0, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := NewPublisher(nil, Signers{}, time.Now, nil)
			p.GatherWindow, p.lastBatch, p.lastStart = tc.window, tc.lastBatch, time.Now().Add(-tc.since)
			for range tc.queued {
				p.queue.add(&Submission{})
			}
			ctx, cancel := context.WithCancel(t.Context())
			if tc.cancel {
				cancel()
			}
			defer cancel()
			done := make(chan struct{})
			go func() { p.gather(ctx); close(done) }()
			for range tc.arriving {
				p.queue.add(&Submission{})
			}
			select {
			case <-done:
			case <-time.After(time.Minute): // a liveness bound, not a timing assertion
				t.Fatal("gather still waits for its hour-long window")
			}
		})
	}

	t.Run("a drained batch's signal does not end the next gather", func(t *testing.T) {
		p := NewPublisher(nil, Signers{}, time.Now, nil)
		if !p.queue.arm(2) {
			t.Fatal("arm(2) on an empty queue reported the uploads queued already")
		}
		p.queue.add(&Submission{})
		p.queue.add(&Submission{})
		if n := len(p.queue.drain()); n != 2 {
			t.Fatalf("drained %d submissions, want 2", n)
		}
		select {
		case <-p.queue.full:
			t.Fatal("the signal of the drained batch is still pending")
		default:
		}
		p.queue.add(&Submission{})
		p.queue.add(&Submission{})
		select {
		case <-p.queue.full:
			t.Fatal("uploads queued after a drain signalled a gather that nobody armed")
		default:
		}
	})
}
