package blobstore

import (
	"context"
	"fmt"
	"sync"
)

// dirSyncer makes renames durable by syncing their directories, grouped: the callers that
// arrive while one round of directory syncs runs are served together by the next round,
// each distinct directory synced once per round. A blob's own fsync cannot be shared (it
// is that file's data); the directory fsync after its rename can: on ext4 and XFS the
// first one of a round commits the journal that holds every rename before it, so the
// others of the round cost little, and under load most uploads wait for a round already
// under way instead of starting their own. The zero value is ready to use.
type dirSyncer struct {
	mu      sync.Mutex
	pending map[string][]chan error
	running bool
	// sync is the directory sync (syncDir); tests count calls through it.
	sync func(dir string) error
	// perCall syncs for every caller, ungrouped (the benchmark's baseline).
	perCall bool
}

// Sync returns once dir has been synced after the call began, or when ctx ends.
func (s *dirSyncer) Sync(ctx context.Context, dir string) error {
	if s.perCall {
		return s.sync(dir)
	}
	done := make(chan error, 1)
	s.mu.Lock()
	if s.pending == nil {
		s.pending = map[string][]chan error{}
	}
	s.pending[dir] = append(s.pending[dir], done)
	if !s.running {
		s.running = true
		go s.rounds()
	}
	s.mu.Unlock()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		return fmt.Errorf("waiting for %s to be synced: %w", dir, ctx.Err())
	}
}

// rounds syncs what is pending until nothing is.
func (s *dirSyncer) rounds() {
	syncFn := s.sync
	if syncFn == nil {
		syncFn = syncDir
	}
	for {
		s.mu.Lock()
		batch := s.pending
		if len(batch) == 0 {
			s.running = false
			s.mu.Unlock()
			return
		}
		s.pending = nil
		s.mu.Unlock()
		// The directories of a round are synced in parallel: uploads spread over 256
		// fan-out directories, so one after the other would queue them behind each other.
		var wg sync.WaitGroup
		for dir, waiters := range batch {
			wg.Add(1)
			go func() {
				defer wg.Done()
				err := syncFn(dir)
				for _, w := range waiters {
					w <- err
				}
			}()
		}
		wg.Wait()
	}
}
