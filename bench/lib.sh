# Shell helpers shared by bench/run.sh and bench/ab-uploads.sh (sourced).

# as_pg CMD…: run CMD as the postgres user when root (PostgreSQL refuses to run as root).
as_pg() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }

# stop_pid PID: TERM, wait up to 15 s, then KILL.
stop_pid() {
	local p=$1
	[ -n "$p" ] && kill -0 "$p" 2>/dev/null || return 0
	kill "$p" 2>/dev/null || true
	for _ in $(seq 150); do kill -0 "$p" 2>/dev/null || return 0; sleep 0.1; done
	kill -9 "$p" 2>/dev/null || true
}
