package store

import (
	"net"
	"os"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
)

// Sessions bounds how long PostgreSQL keeps what a cairnd session holds when the process
// behind it stops answering (frozen, cut off, or dead on another host): the publisher
// lock, project row locks, an open transaction. Without these limits another replica's
// publisher waits for a frozen lock holder for as long as the fault lasts, and over a
// broken network that is until TCP gives up, hours by default (DESIGN.md "A publisher that
// cannot stall the cluster").
type Sessions struct {
	// IdleInTransaction ends a session that sits inside a transaction without sending a
	// statement this long (idle_in_transaction_session_timeout). A live publisher never
	// idles that long: while it signs or syncs a file it pings its transaction (see
	// publishTx.KeepAlive). 0 leaves the server's setting.
	IdleInTransaction time.Duration
	// Keepalive is how often an idle connection is probed, on both ends; a peer that
	// misses three probes is dead. 0 leaves the defaults (two hours on Linux).
	Keepalive time.Duration
	// UserTimeout ends a connection whose sent data stays unacknowledged this long
	// (tcp_user_timeout on the server, TCP_USER_TIMEOUT here). 0 leaves the default.
	UserTimeout time.Duration
	// ApplicationName names the sessions in pg_stat_activity (operators see which
	// replica holds what); the URL's application_name wins.
	ApplicationName string
}

// DefaultSessions are the limits cairnd runs with unless configured otherwise.
func DefaultSessions() Sessions {
	host, _ := os.Hostname()
	return Sessions{
		IdleInTransaction: 4 * time.Second,
		Keepalive:         2 * time.Second,
		UserTimeout:       10 * time.Second,
		ApplicationName:   "cairnd " + host + " " + strconv.Itoa(os.Getpid()),
	}
}

// apply sets the limits on every connection of the pool: server-side as run-time
// parameters of the startup message (so they hold from the first statement), client-side
// on the socket. Parameters the URL sets itself are left alone.
func (s Sessions) apply(cfg *pgxpool.Config) {
	params := cfg.ConnConfig.RuntimeParams
	set := func(k, v string) {
		if _, ok := params[k]; !ok {
			params[k] = v
		}
	}
	ms := func(d time.Duration) string { return strconv.FormatInt(d.Milliseconds(), 10) }
	if s.ApplicationName != "" {
		set("application_name", s.ApplicationName)
	}
	if s.IdleInTransaction > 0 {
		set("idle_in_transaction_session_timeout", ms(s.IdleInTransaction))
	}
	// The TCP settings are ignored by PostgreSQL on Unix sockets, where they do not apply.
	if s.Keepalive > 0 {
		secs := strconv.Itoa(max(1, int(s.Keepalive/time.Second)))
		set("tcp_keepalives_idle", secs)
		set("tcp_keepalives_interval", secs)
		set("tcp_keepalives_count", "3")
	}
	if s.UserTimeout > 0 {
		set("tcp_user_timeout", ms(s.UserTimeout))
	}
	if s.Keepalive > 0 || s.UserTimeout > 0 {
		d := &net.Dialer{
			Timeout:         10 * time.Second,
			KeepAliveConfig: net.KeepAliveConfig{Enable: s.Keepalive > 0, Idle: s.Keepalive, Interval: s.Keepalive, Count: 3},
			Control:         userTimeoutControl(s.UserTimeout),
		}
		cfg.ConnConfig.DialFunc = d.DialContext
	}
}
