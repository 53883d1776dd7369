package store

import (
	"context"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5"
)

// Listen delivers notifications on channels to fn until ctx ends, reconnecting after
// errors. After every (re)connect it calls fn with an empty payload, so a caller that may
// have missed notifications while disconnected catches up.
func (db *DB) Listen(ctx context.Context, log *slog.Logger, fn func(channel, payload string), channels ...string) {
	for ctx.Err() == nil {
		err := db.listenOnce(ctx, fn, channels)
		if ctx.Err() != nil {
			return
		}
		log.Warn("notification listener lost its connection; reconnecting", "err", err)
		select {
		case <-ctx.Done():
			return
		case <-time.After(time.Second):
		}
	}
}

func (db *DB) listenOnce(ctx context.Context, fn func(channel, payload string), channels []string) error {
	pc, err := db.Pool.Acquire(ctx)
	if err != nil {
		return err
	}
	// The connection carries LISTEN state: never return it to the pool.
	conn := pc.Hijack()
	defer conn.Close(context.Background())
	for _, ch := range channels {
		if _, err := conn.Exec(ctx, "LISTEN "+pgx.Identifier{ch}.Sanitize()); err != nil {
			return err
		}
	}
	for _, ch := range channels {
		fn(ch, "")
	}
	for {
		n, err := conn.WaitForNotification(ctx)
		if err != nil {
			return err
		}
		fn(n.Channel, n.Payload)
	}
}
