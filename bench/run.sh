#!/usr/bin/env bash
# bench/run.sh — Cairn's performance benchmark, end to end, on this machine.
#
# Starts a private PostgreSQL 15 cluster (fresh, database cairn_bench, default settings:
# fsync and synchronous_commit on) so that its CPU time is the benchmark's alone; builds
# cairnd, the load harness and the Go reference server from the work tree; starts cairnd
# (dev mode), nginx and the reference server on loopback ports; runs
#   1. metadata GETs (timestamp.json, N.snapshot.json) against cairnd, nginx, a minimal Go
#      net/http server and (if bench/fastref builds) a minimal fasthttp server,
#   2. uploads with 1, 8 and 32 concurrent uploaders,
#   3. publish time at 1k, 10k and 100k projects (over HTTP, and in-process with a CPU
#      profile via the Go benchmark in bench/publish),
#   4. OCI push and pull (many small artifacts, one large blob) against cairnd and the CNCF
#      distribution registry v3.1.2 (go install'ed into ~/.cache/cairn-bench-bin); the large
#      blob also against zot v2.1.20 (built from source into the same cache; see BENCH_ZOT_SRC),
# and prints markdown tables. Everything it started is stopped on exit.
#
# Environment (all optional):
#   BENCH_OUT        results directory (default .data/bench/<time>)
#   BENCH_PUBLISH_REF a publish.test built at another commit (go test -c ./bench/publish):
#                    the scale phase then runs it and this build alternately, 3 rounds each
#   BENCH_PHASES     any of: get uploads publish oci scale (default: the first four)
#   BENCH_SCALE_SIZES project counts for the scale phase (default "1000 10000 100000 1000000"):
#                    projects are bulk-loaded into the database (bench/load -mode bulk) and
#                    published by cairnd; at each size: publish p50/p95/p99 with and without
#                    creating a project, shard/claimed sizes, bytes on the wire for fresh
#                    go-tuf, tuf-js and `cairn get` downloads and their refresh
#   BENCH_WIRE_FLAGS extra flags for the scale phase's -mode wire runs (e.g. "-no-tufjs": tuf-js
#                    cannot read a 100k-role snapshot in minutes, BENCHMARKS.md)
#   BENCH_CAIRND_FLAGS extra flags for cairnd (e.g. "--publish-batch 20000"; a bulk load of a
#                    million projects is published in batches of --publish-batch, halved
#                    after a publish that runs out of --publish-timeout)
#   BENCH_OCI_N      small artifacts per OCI run (default 2000); BENCH_OCI_LARGE_MIB (100);
#                    BENCH_OCI_LARGE_PUSHES large blobs pushed to each server (default 3; more
#                    give steadier medians on a busy machine)
#   BENCH_REGISTRY_BIN where the reference registries' binaries are cached
#                    (default ~/.cache/cairn-bench-bin: registry, zot)
#   BENCH_ZOT_SRC    a zot v2.1.20 source tree to build zot from when the cache has none. zot
#                    is not on the Go module proxy; without this the script clones the tag
#                    from BENCH_ZOT_GIT (default https://github.com/project-zot/zot.git), and
#                    if that fails too the large-blob comparison runs without zot.
#                    The build takes about 11 minutes on a busy 2-core machine, once.
#   BENCH_ZOT_COMMIT 1: zot fsyncs what it stores ("commit": true, as cairnd always does);
#                    default 0, zot's own default (no fsync, like the distribution registry)
#   BENCH_REG_ADDR, BENCH_ZOT_ADDR  the distribution registry's and zot's addresses
#                    (defaults 127.0.0.1:18084 and 127.0.0.1:18085)
#   BENCH_SCALES     project counts for the publish phase (default: "1000 10000 100000")
#   BENCH_DURATION   measured duration of each GET and upload run (default 20s)
#   BENCH_LEVELS     uploader counts (default "1 8 32")
#   BENCH_PER_UPLOADER projects each uploader cycles through (default 64/uploaders, so
#                    that each level spreads its uploads over 64 project roles)
#   BENCH_CREATE_CONC  concurrent clients creating projects (default 32)
#   BENCH_PG_PORT    port of the private PostgreSQL (default 55432)
#   BENCH_CAIRN_ADDR, BENCH_PPROF_ADDR  cairnd's and its profiling listener's addresses
#                    (defaults 127.0.0.1:18080 and 127.0.0.1:16060), for a machine where
#                    another run holds them
#   BENCH_NGINX_WORKERS nginx worker_processes (default 1)
#   BENCH_PROFILE    1 (default): after the measured runs, repeat GETs and uploads against
#                    bench/cairnd-pprof and save CPU profiles and pg_stat_statements
set -euo pipefail
export GOTOOLCHAIN=local

# Run from a private copy: bash reads a script as it goes, so editing (or checking out) the
# file during the half-hour run would otherwise break it.
if [ -z "${BENCH_RUNNING_COPY:-}" ]; then
	BENCH_ROOT=$(cd "$(dirname "$0")/.." && pwd)
	copy=$(mktemp /tmp/cairn-bench-run.XXXXXX.sh)
	cp "$0" "$copy"
	BENCH_RUNNING_COPY=$copy BENCH_ROOT=$BENCH_ROOT exec bash "$copy" "$@"
fi
rm -f "$BENCH_RUNNING_COPY"
ROOT=$BENCH_ROOT
cd "$ROOT"
OUT=${BENCH_OUT:-$ROOT/.data/bench/$(date +%Y%m%d-%H%M%S)}
PHASES=${BENCH_PHASES:-"get uploads publish oci"}
SCALES=${BENCH_SCALES:-"1000 10000 100000"}
DUR=${BENCH_DURATION:-20s}
LEVELS=${BENCH_LEVELS:-"1 8 32"}
CREATE_CONC=${BENCH_CREATE_CONC:-32}
PGPORT=${BENCH_PG_PORT:-55432}
NGINX_WORKERS=${BENCH_NGINX_WORKERS:-1}
PROFILE=${BENCH_PROFILE:-1}
PPROF_ADDR=${BENCH_PPROF_ADDR:-127.0.0.1:16060}
CAIRN_ADDR=${BENCH_CAIRN_ADDR:-127.0.0.1:18080}
NGINX_ADDR=127.0.0.1:18081
REF_ADDR=127.0.0.1:18082
FAST_ADDR=127.0.0.1:18083
STATIC_ADDR=127.0.0.1:18084
REG_ADDR=${BENCH_REG_ADDR:-127.0.0.1:18084}
ZOT_ADDR=${BENCH_ZOT_ADDR:-127.0.0.1:18085}
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
RESULTS=$OUT/results.jsonl
: >"$RESULTS"
# Scratch space readable by the postgres and nginx users.
WORK=$(mktemp -d /tmp/cairn-bench.XXXXXX)
chmod 755 "$WORK"
BIN=$WORK/bin
PGDATA=$WORK/pg
DATA=$WORK/dev
DBURL="postgres://postgres@127.0.0.1:$PGPORT/cairn_bench?sslmode=disable"
PGBIN=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
CAIRN_PID= NGINX_PID= REF_PID= FAST_PID= REG_PID= STATIC_PID= ZOT_PID=
CAIRN_EXTRA=()

log() { printf '\n== %s  %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
# shellcheck source=bench/lib.sh
. "$ROOT/bench/lib.sh"
cleanup() {
	set +e
	stop_pid "$CAIRN_PID"
	stop_pid "$NGINX_PID"
	stop_pid "$STATIC_PID"
	stop_pid "$REF_PID"
	stop_pid "$FAST_PID"
	stop_pid "$REG_PID"
	stop_pid "$ZOT_PID"
	[ -f "$PGDATA/postmaster.pid" ] && as_pg "$PGBIN/pg_ctl" -D "$PGDATA" -m fast stop >/dev/null 2>&1
	rm -rf "$WORK"
}
trap cleanup EXIT

need() { command -v "$1" >/dev/null || { echo "run.sh: $1 is missing: apt-get install -y $2" >&2; exit 1; }; }
if [[ " $PHASES " == *" get "* ]]; then
	need wrk wrk
	need nginx nginx
	need taskset util-linux
fi
[ -x "$PGBIN/initdb" ] || { echo "run.sh: PostgreSQL server binaries not found (apt-get install -y postgresql)" >&2; exit 1; }

log "building from $(git rev-parse --short HEAD)"
mkdir -p "$BIN"
go build -o "$BIN/cairnd" ./cmd/cairnd
go build -o "$BIN/cairnd-pprof" ./bench/cairnd-pprof
go build -o "$BIN/load" ./bench/load
go build -o "$BIN/cairn" ./cmd/cairn
go build -o "$BIN/refserver" ./bench/refserver
go test -c -o "$BIN/publish.test" ./bench/publish
# Optional third reference (a separate module, fetched through the Go module proxy).
(cd bench/fastref && go build -o "$BIN/fastref" .) || echo "run.sh: bench/fastref not built; the fasthttp reference is skipped" >&2
LOAD="$BIN/load -out $RESULTS"

{
	echo "- commit: $(git rev-parse HEAD)$( [ -n "$(git status --porcelain --untracked-files=no)" ] && echo ' (work tree has uncommitted changes)')"
	echo "- date: $(date -u +%Y-%m-%dT%H:%MZ)"
	echo "- nproc: $(nproc); CPU: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'); memory: $(free -g | awk '/Mem:/{print $2}') GiB"
	echo "- $(go version); PostgreSQL: $("$PGBIN/postgres" --version); $(command -v nginx >/dev/null && nginx -v 2>&1); $(command -v wrk >/dev/null && wrk -v 2>&1 | head -1)"
	echo "- load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
} >"$OUT/machine.md"
cat "$OUT/machine.md" >&2

log "private PostgreSQL on port $PGPORT"
mkdir -p "$PGDATA"
chown postgres "$PGDATA" 2>/dev/null || true
as_pg "$PGBIN/initdb" -D "$PGDATA" -U postgres --auth=trust >/dev/null
as_pg "$PGBIN/pg_ctl" -D "$PGDATA" -w -l "$PGDATA/server.log" \
	-o "-p $PGPORT -k $PGDATA -c listen_addresses=127.0.0.1 -c shared_buffers=128MB -c max_connections=200 -c shared_preload_libraries=pg_stat_statements" start >/dev/null
PG_PID=$(head -1 "$PGDATA/postmaster.pid")

CAIRND=$BIN/cairnd
start_cairnd() { # start_cairnd [taskset-prefix…]; runs $CAIRND
	CAIRN_BENCH_PPROF=$PPROF_ADDR "$@" "$CAIRND" serve --dev --data-dir "$DATA" --database-url "$DBURL" --listen "$CAIRN_ADDR" "${CAIRN_EXTRA[@]}" ${BENCH_CAIRND_FLAGS:-} >>"$OUT/cairnd.log" 2>&1 &
	CAIRN_PID=$!
	for _ in $(seq 300); do
		curl -fs "http://$CAIRN_ADDR/readyz" >/dev/null 2>&1 && return 0
		kill -0 "$CAIRN_PID" 2>/dev/null || { tail -20 "$OUT/cairnd.log" >&2; exit 1; }
		sleep 0.1
	done
	echo "cairnd did not become ready" >&2
	exit 1
}
stop_cairnd() { stop_pid "$CAIRN_PID"; CAIRN_PID=; }
psql_bench() { as_pg "$PGBIN/psql" -h "$PGDATA" -p "$PGPORT" -U postgres -d cairn_bench "$@"; }
projects() { psql_bench -tAc 'select count(*) from projects'; }
pg_top_statements() { # pg_top_statements FILE: the statements that cost the most, since the last reset
	psql_bench -c "select calls, round(total_exec_time::numeric,1) as total_ms, round((total_exec_time/calls)::numeric,3) as mean_ms, rows, left(regexp_replace(query, '\s+', ' ', 'g'), 110) as query from pg_stat_statements where dbid = (select oid from pg_database where datname = 'cairn_bench') order by total_exec_time desc limit 25" >"$1"
}
profile_cpu() { # profile_cpu NAME SECONDS: CPU profile of cairnd-pprof
	curl -fsS "http://$PPROF_ADDR/debug/pprof/profile?seconds=$2" -o "$OUT/cairnd-$1.pprof" &&
		go tool pprof -top -nodecount 45 "$BIN/cairnd-pprof" "$OUT/cairnd-$1.pprof" >"$OUT/cairnd-$1.top" 2>/dev/null &&
		go tool pprof -top -cum -nodecount 45 "$BIN/cairnd-pprof" "$OUT/cairnd-$1.pprof" >"$OUT/cairnd-$1.cum" 2>/dev/null
}
human() { case $1 in *000000) echo "$(($1 / 1000000))M" ;; *000) echo "$(($1 / 1000))k" ;; *) echo "$1" ;; esac; }

log "cairnd: bootstrap and 1,000 projects"
start_cairnd
TOKEN=@$DATA/admin.token
$LOAD -mode projects -server "http://$CAIRN_ADDR" -token "$TOKEN" -n 1000 -concurrency "$CREATE_CONC" -prefix p1k -label "0→1k" \
	-server-pid "$CAIRN_PID" -pg-pid "$PG_PID"
psql_bench -qc 'create extension if not exists pg_stat_statements' >/dev/null

if [[ " $PHASES " == *" get "* ]]; then
	log "metadata GET: cairnd, nginx ($NGINX_WORKERS worker), the static tier and Go net/http, each pinned to CPU 0; wrk pinned to CPU 1"
	stop_cairnd
	# The static tier: cairnd keeps $STATIC (--static-dir), served by nginx with the shipped
	# deploy/nginx/cairn-static.conf (only listen and root replaced).
	STATIC=$WORK/static
	CAIRN_EXTRA=(--static-dir "$STATIC")
	start_cairnd taskset -c 0
	CAIRN_EXTRA=()
	WWW=$WORK/www
	mkdir -p "$WWW/metadata" "$WORK/nginx"
	curl -fsS "http://$CAIRN_ADDR/metadata/timestamp.json" -o "$WWW/metadata/timestamp.json"
	SNAPV=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["signed"]["meta"]["snapshot.json"]["version"])' "$WWW/metadata/timestamp.json")
	curl -fsS "http://$CAIRN_ADDR/metadata/$SNAPV.snapshot.json" -o "$WWW/metadata/$SNAPV.snapshot.json"
	chmod -R a+rX "$WWW"
	cat >"$WORK/nginx/nginx.conf" <<EOF
worker_processes $NGINX_WORKERS;
pid $WORK/nginx/nginx.pid;
error_log $WORK/nginx/error.log warn;
events { worker_connections 4096; }
http {
    access_log off;
    sendfile on;
    tcp_nopush on;
    tcp_nodelay on;
    keepalive_requests 1000000;
    keepalive_timeout 120s;
    open_file_cache max=1000 inactive=60s;
    open_file_cache_valid 60s;
    types { application/json json; }
    default_type application/octet-stream;
    client_body_temp_path $WORK/nginx/body;
    proxy_temp_path $WORK/nginx/proxy;
    fastcgi_temp_path $WORK/nginx/fastcgi;
    uwsgi_temp_path $WORK/nginx/uwsgi;
    scgi_temp_path $WORK/nginx/scgi;
    server {
        listen $NGINX_ADDR;
        root $WWW;
        location = /metadata/timestamp.json { add_header Cache-Control "public, max-age=5"; }
        location /metadata/ { add_header Cache-Control "public, max-age=31536000, immutable"; }
    }
}
EOF
	taskset -c 0 nginx -c "$WORK/nginx/nginx.conf" -g 'daemon off;' >"$OUT/nginx.log" 2>&1 &
	NGINX_PID=$!
	for _ in $(seq 600); do # the export's first pass writes timestamp.json last
		cmp -s "$STATIC/metadata/timestamp.json" "$WWW/metadata/timestamp.json" && break
		sleep 0.1
	done
	cmp -s "$STATIC/metadata/timestamp.json" "$WWW/metadata/timestamp.json" || echo "run.sh: the static tier does not hold cairnd's timestamp.json (see cairnd.log)" >&2
	mkdir -p "$WORK/nginx-static"
	{
		# The same process-level settings as the nginx above; the server block is the shipped one.
		sed -e "s|$WORK/nginx/|$WORK/nginx-static/|g" -e '/^    server {$/,$d' "$WORK/nginx/nginx.conf"
		sed -e "s|^    listen [^;]*;|    listen $STATIC_ADDR;|" -e "s|^    root [^;]*;|    root $STATIC;|" "$ROOT/deploy/nginx/cairn-static.conf"
		echo "}"
	} >"$WORK/nginx-static/nginx.conf"
	taskset -c 0 nginx -c "$WORK/nginx-static/nginx.conf" -g 'daemon off;' >"$OUT/nginx-static.log" 2>&1 &
	STATIC_PID=$!
	taskset -c 0 "$BIN/refserver" -dir "$WWW/metadata" -listen "$REF_ADDR" >"$OUT/refserver.log" 2>&1 &
	REF_PID=$!
	SERVERS=("cairnd $CAIRN_ADDR $CAIRN_PID" "nginx $NGINX_ADDR $NGINX_PID" "static-nginx $STATIC_ADDR $STATIC_PID" "go-net/http $REF_ADDR $REF_PID")
	if [ -x "$BIN/fastref" ]; then
		taskset -c 0 "$BIN/fastref" -dir "$WWW/metadata" -listen "$FAST_ADDR" >"$OUT/fastref.log" 2>&1 &
		FAST_PID=$!
		SERVERS+=("go-fasthttp $FAST_ADDR $FAST_PID")
	fi
	sleep 1
	for f in timestamp.json "$SNAPV.snapshot.json"; do
		label=${f#*.}
		label=${label%.json}
		[ "$f" = timestamp.json ] && label=timestamp
		for srv in "${SERVERS[@]}"; do
			set -- $srv
			$LOAD -mode get -name "$1" -url "http://$2/metadata/$f" -pids "$3" -label "$label" \
				-duration "$DUR" -warmup 3s -connections 50 -wrk "taskset -c 1 wrk"
		done
	done
	if [ "$PROFILE" = 1 ]; then
		log "profiling cairnd (cairnd-pprof) under the same GET loads"
		stop_cairnd
		CAIRND=$BIN/cairnd-pprof start_cairnd taskset -c 0
		for f in timestamp.json "$SNAPV.snapshot.json"; do
			name=get-timestamp; [ "$f" = timestamp.json ] || name=get-snapshot
			taskset -c 1 wrk -t1 -c50 -d14s "http://$CAIRN_ADDR/metadata/$f" >"$OUT/cairnd-$name.wrk" &
			W=$!
			sleep 2; profile_cpu "$name" 10; wait $W
		done
	fi
	stop_pid "$NGINX_PID"; NGINX_PID=
	stop_pid "$STATIC_PID"; STATIC_PID=
	stop_pid "$REF_PID"; REF_PID=
	stop_pid "$FAST_PID"; FAST_PID=
	stop_cairnd
	start_cairnd
fi

if [[ " $PHASES " == *" uploads "* ]]; then
	for c in $LEVELS; do
		per=${BENCH_PER_UPLOADER:-$(( (64 + c - 1) / c ))}
		log "uploads: $c concurrent uploaders ($per projects each), $DUR after 5s warm-up ($(projects) projects)"
		$LOAD -mode uploads -server "http://$CAIRN_ADDR" -token "$TOKEN" -concurrency "$c" -duration "$DUR" -warmup 5s \
			-projects-per-uploader "$per" -server-pid "$CAIRN_PID" -pg-pid "$PG_PID" -label "c=$c"
	done
	if [ "$PROFILE" = 1 ]; then
		c=$(echo $LEVELS | awk '{print $NF}')
		log "profiling cairnd (cairnd-pprof) and PostgreSQL statements under $c uploaders"
		stop_cairnd
		CAIRND=$BIN/cairnd-pprof start_cairnd
		psql_bench -qc 'select pg_stat_statements_reset()' >/dev/null
		"$BIN/load" -mode uploads -server "http://$CAIRN_ADDR" -token "$TOKEN" -concurrency "$c" -duration 15s -warmup 3s \
			-projects-per-uploader 2 -server-pid "$CAIRN_PID" -pg-pid "$PG_PID" -label "profile c=$c" >"$OUT/uploads-profile.txt" &
		W=$!
		sleep 6; profile_cpu "uploads-c$c" 10; wait $W
		pg_top_statements "$OUT/pg-statements-uploads.txt"
		stop_cairnd
		start_cairnd
	fi
fi

publish_at() { # publish_at LABEL: over HTTP, then in-process with a CPU profile
	local label=$1
	log "publish at $label projects ($(projects) rows): over HTTP"
	$LOAD -mode publish -server "http://$CAIRN_ADDR" -token "$TOKEN" -n 20 -label "$label"
	if [ "$PROFILE" = 1 ]; then
		stop_cairnd
		CAIRND=$BIN/cairnd-pprof start_cairnd
		"$BIN/load" -mode publish -server "http://$CAIRN_ADDR" -token "$TOKEN" -n 100 -label "profile $label" >"$OUT/publish-http-$label.txt" &
		W=$!
		# Profile the steady state only: not the creation of the probe project, which
		# re-signs recently-claimed with every project.
		for _ in $(seq 1200); do grep -q '^timing' "$OUT/publish-http-$label.txt" && break; sleep 0.1; done
		profile_cpu "publish-$label" 8; wait $W
		psql_bench -qc 'select pg_stat_statements_reset()' >/dev/null
	fi
	log "publish at $label projects: in-process Go benchmark with CPU profile"
	stop_cairnd
	if [ "$PROFILE" = 1 ]; then psql_bench -qc 'select pg_stat_statements_reset()' >/dev/null; fi
	(cd "$WORK" && CAIRN_BENCH_DATABASE_URL="$DBURL" CAIRN_BENCH_DATA_DIR="$DATA" "$BIN/publish.test" \
		-test.run '^$' -test.bench 'PublishOnce$' -test.benchtime 30x -test.v \
		-test.cpuprofile "$OUT/publish-$label.cpu") 2>&1 | tee "$OUT/publish-$label.txt"
	if [ "$PROFILE" = 1 ]; then pg_top_statements "$OUT/pg-statements-publish-$label.txt"; fi
	# What-if (not the server's configuration): the same publishes with metadata.raw
	# TOAST-compressed with PostgreSQL's default pglz instead of the lz4 that migration
	# 00013 sets; reverted afterwards.
	psql_bench -qc 'alter table metadata alter column raw set compression pglz' >/dev/null
	(cd "$WORK" && CAIRN_BENCH_DATABASE_URL="$DBURL" CAIRN_BENCH_DATA_DIR="$DATA" "$BIN/publish.test" \
		-test.run '^$' -test.bench 'PublishOnce$' -test.benchtime 30x -test.v) 2>&1 | tee "$OUT/publish-$label-pglz.txt"
	psql_bench -qc 'alter table metadata alter column raw set compression lz4' >/dev/null
	(cd "$WORK" && CAIRN_BENCH_DATABASE_URL="$DBURL" CAIRN_BENCH_DATA_DIR="$DATA" "$BIN/publish.test" \
		-test.run '^$' -test.bench 'PublishNewProject$' -test.benchtime 5x -test.v) 2>&1 | tee -a "$OUT/publish-$label.txt"
	go tool pprof -top -nodecount 40 -tagfocus=phase=publish "$BIN/publish.test" "$OUT/publish-$label.cpu" >"$OUT/publish-$label.top" 2>/dev/null || true
	go tool pprof -top -cum -nodecount 40 -tagfocus=phase=publish "$BIN/publish.test" "$OUT/publish-$label.cpu" >"$OUT/publish-$label.cum" 2>/dev/null || true
	start_cairnd
}

if [[ " $PHASES " == *" publish "* ]]; then
	have=1000
	for n in $SCALES; do
		if [ "$n" -gt "$have" ]; then
			log "creating $((n - have)) projects over the API ($CREATE_CONC clients)"
			$LOAD -mode projects -server "http://$CAIRN_ADDR" -token "$TOKEN" -n $((n - have)) -concurrency "$CREATE_CONC" \
				-prefix "p$(human "$n")" -label "$(human "$have")→$(human "$n")" -server-pid "$CAIRN_PID" -pg-pid "$PG_PID"
			have=$n
		fi
		publish_at "$(human "$n")"
	done
fi

role_sizes() { # role_sizes LABEL: the latest version of the delegating roles and the snapshot
	psql_bench -c "select '$1' as projects, case when role like '\\_%' then split_part(role, '.', 1) || '.<prefix>' else role end as role,
		count(*) as roles, max(length) as max_bytes, round(avg(length)) as mean_bytes
		from (select distinct on (role) role, length from metadata
			where role in ('targets', 'claimed', 'recently-claimed', 'snapshot') or role like '\\_%'
			order by role, version desc) latest group by 2 order by 2" | tee -a "$OUT/role-sizes.txt"
}

if [[ " $PHASES " == *" scale "* ]]; then
	have=$(projects)
	for n in ${BENCH_SCALE_SIZES:-"1000 10000 100000 1000000"}; do
		if [ "$n" -gt "$have" ]; then
			log "scale: bulk-loading $((n - have)) projects into the database"
			$LOAD -mode bulk -settle-timeout 60m -database-url "$DBURL" -server "http://$CAIRN_ADDR" -token "$TOKEN" -n $((n - have)) \
				-prefix "s$(human "$n" | tr A-Z a-z)" -label "$(human "$have")→$(human "$n")"
			have=$n
			psql_bench -qc 'vacuum analyze' >/dev/null
		fi
		log "scale: $(human "$n") projects ($(projects) rows): publishes, then publishes that create a project"
		$LOAD -mode publish -server "http://$CAIRN_ADDR" -token "$TOKEN" -n 100 -label "scale $(human "$n")" -prefix "sp$(human "$n" | tr A-Z a-z)"
		$LOAD -mode publish -create -server "http://$CAIRN_ADDR" -token "$TOKEN" -n 50 -label "scale $(human "$n")" -prefix "sc$(human "$n" | tr A-Z a-z)"
		role_sizes "$(human "$n")"
		if [ "$PROFILE" = 1 ]; then
			# Where a publish's time goes at this size: the in-process Go benchmark (cairnd
			# stopped, so that nothing else publishes) with a CPU profile of the publish alone.
			log "scale: $(human "$n") projects: in-process publish benchmark with CPU profile"
			stop_cairnd
			(cd "$WORK" && CAIRN_BENCH_DATABASE_URL="$DBURL" CAIRN_BENCH_DATA_DIR="$DATA" "$BIN/publish.test" \
				-test.run '^$' -test.bench 'PublishOnce$' -test.benchtime 30x -test.v \
				-test.cpuprofile "$OUT/scale-publish-$(human "$n").cpu") 2>&1 | tee "$OUT/scale-publish-$(human "$n").txt"
			go tool pprof -top -nodecount 40 -tagfocus=phase=publish "$BIN/publish.test" "$OUT/scale-publish-$(human "$n").cpu" >"$OUT/scale-publish-$(human "$n").top" 2>/dev/null || true
			go tool pprof -top -cum -nodecount 50 -tagfocus=phase=publish "$BIN/publish.test" "$OUT/scale-publish-$(human "$n").cpu" >"$OUT/scale-publish-$(human "$n").cum" 2>/dev/null || true
			if [ -n "${BENCH_PUBLISH_REF:-}" ]; then
				# Before/after on the same database in the same run: the reference build of
				# the benchmark (go test -c ./bench/publish at another commit) and this one,
				# alternating, so that the machine's load falls on both alike.
				for round in 1 2 3; do
					for which in ref this; do
						bin=$BIN/publish.test
						[ "$which" = ref ] && bin=$BENCH_PUBLISH_REF
						log "scale: $(human "$n") projects: in-process publish, $which build, round $round"
						(cd "$WORK" && CAIRN_BENCH_DATABASE_URL="$DBURL" CAIRN_BENCH_DATA_DIR="$DATA" "$bin" \
							-test.run '^$' -test.bench 'PublishOnce$' -test.benchtime 20x -test.v) 2>&1 |
							tee "$OUT/scale-publish-$(human "$n")-$which-$round.txt" | grep -E 'p50|commit|Go code'
					done
				done
			fi
			start_cairnd
		fi
		log "scale: $(human "$n") projects: bytes on the wire (go-tuf, tuf-js, cairn get)"
		$LOAD -mode wire -cairn "$BIN/cairn" -server "http://$CAIRN_ADDR" -token "$TOKEN" -label "scale $(human "$n")" -prefix "sw$(human "$n" | tr A-Z a-z)" ${BENCH_WIRE_FLAGS:-}
	done
fi

if [[ " $PHASES " == *" oci "* ]]; then
	REGBIN=${BENCH_REGISTRY_BIN:-$HOME/.cache/cairn-bench-bin}
	if [ ! -x "$REGBIN/registry" ]; then
		log "installing the CNCF distribution registry v3.1.2 into $REGBIN (a few minutes, once)"
		GOBIN=$REGBIN go install github.com/distribution/distribution/v3/cmd/registry@v3.1.2
	fi
	mkdir -p "$WORK/registry"
	cat >"$WORK/registry/config.yml" <<EOF
version: 0.1
log:
  level: error
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: $WORK/registry/data
  delete:
    enabled: true
http:
  addr: $REG_ADDR
EOF
	"$REGBIN/registry" serve "$WORK/registry/config.yml" >"$OUT/registry.log" 2>&1 &
	REG_PID=$!
	for _ in $(seq 100); do curl -fs "http://$REG_ADDR/v2/" >/dev/null 2>&1 && break; sleep 0.1; done
	echo "- registry: $("$REGBIN/registry" --version 2>&1 | head -1)" >>"$OUT/machine.md"
	# Alternate the servers, twice each, so that neither always runs on a warmer machine.
	for round in 1 2; do
		log "OCI push/pull round $round: cairnd, then the distribution registry"
		$LOAD -mode oci -name cairnd -server "http://$CAIRN_ADDR" -token "$TOKEN" -n "${BENCH_OCI_N:-2000}" -concurrency 8 -blob-size 1024 \
			-pids "$CAIRN_PID" -pg-pid "$PG_PID" -prefix "oci$round" -label "round $round"
		$LOAD -mode oci -name registry -server "http://$REG_ADDR" -n "${BENCH_OCI_N:-2000}" -concurrency 8 -blob-size 1024 \
			-pids "$REG_PID" -prefix "oci$round" -label "round $round"
	done
	# zot v2.1.20, the registry issue 11 measures large pushes against. It is not on the Go
	# module proxy, so it is built from a source tree (default tags: no extensions), once.
	if [ ! -x "$REGBIN/zot" ]; then
		zsrc=${BENCH_ZOT_SRC:-}
		if [ -z "$zsrc" ]; then
			zsrc=$WORK/zot-src
			timeout 300 git clone -q --depth 1 --branch v2.1.20 "${BENCH_ZOT_GIT:-https://github.com/project-zot/zot.git}" "$zsrc" 2>>"$OUT/zot-build.log" || zsrc=
		fi
		if [ -n "$zsrc" ]; then
			log "building zot v2.1.20 from $zsrc into $REGBIN (about 11 minutes, once)"
			mkdir -p "$REGBIN"
			(cd "$zsrc" && CGO_ENABLED=0 GOEXPERIMENT=jsonv2 go build -trimpath -o "$REGBIN/zot" ./cmd/zot) >>"$OUT/zot-build.log" 2>&1 ||
				log "zot did not build (see $OUT/zot-build.log): the large-blob comparison runs without it"
		else
			log "no zot source (set BENCH_ZOT_SRC): the large-blob comparison runs without zot"
		fi
	fi
	ZOT_ARGS=()
	if [ -x "$REGBIN/zot" ]; then
		mkdir -p "$WORK/zot/data"
		# Local storage, no auth, no GC, dedupe off (dedupe hashes blobs again after the push).
		# "commit" is zot's fsync switch; off by default in zot.
		zcommit=false; [ "${BENCH_ZOT_COMMIT:-0}" = 1 ] && zcommit=true
		cat >"$WORK/zot/config.json" <<EOF
{"distSpecVersion":"1.1.0","storage":{"rootDirectory":"$WORK/zot/data","gc":false,"dedupe":false,"commit":$zcommit},
 "http":{"address":"${ZOT_ADDR%:*}","port":"${ZOT_ADDR##*:}"},"log":{"level":"error"}}
EOF
		"$REGBIN/zot" serve "$WORK/zot/config.json" >"$OUT/zot.log" 2>&1 &
		ZOT_PID=$!
		for _ in $(seq 100); do curl -fs "http://$ZOT_ADDR/v2/" >/dev/null 2>&1 && break; sleep 0.1; done
		if curl -fs "http://$ZOT_ADDR/v2/" >/dev/null 2>&1; then
			echo "- zot: v2.1.20, built from source ($REGBIN/zot), storage commit (fsync): $zcommit" >>"$OUT/machine.md"
			ZOT_ARGS=(-ref2-server "http://$ZOT_ADDR" -ref2-name zot -ref2-pids "$ZOT_PID")
		else
			log "zot did not start (see $OUT/zot.log): the large-blob comparison runs without it"
		fi
	fi
	log "OCI ${BENCH_OCI_LARGE_MIB:-100} MiB blobs: cairnd, the distribution registry${ZOT_ARGS:+ and zot}, interleaved"
	$LOAD -mode oci -name cairnd -server "http://$CAIRN_ADDR" -token "$TOKEN" -large-mib "${BENCH_OCI_LARGE_MIB:-100}" -large-pushes "${BENCH_OCI_LARGE_PUSHES:-3}" \
		-ref-server "http://$REG_ADDR" -pids "$CAIRN_PID" -ref-pids "$REG_PID" -pg-pid "$PG_PID" -prefix ocilarge -label interleaved \
		"${ZOT_ARGS[@]}"
	stop_pid "$REG_PID"; REG_PID=
	stop_pid "$ZOT_PID"; ZOT_PID=
fi

stop_cairnd
echo "- load average at end: $(cut -d' ' -f1-3 /proc/loadavg)" >>"$OUT/machine.md"
{
	echo "## Run of $(date -u +%Y-%m-%d)"
	echo
	cat "$OUT/machine.md"
	echo
	"$BIN/load" -mode report <"$RESULTS"
	if [ -f "$OUT/role-sizes.txt" ]; then
		echo "#### Delegating roles and snapshot, latest versions (bytes)"
		echo '```'
		cat "$OUT/role-sizes.txt"
		echo '```'
	fi
	for f in "$OUT"/publish-[0-9]*.txt; do
		[ -f "$f" ] || continue
		echo "#### $(basename "$f" .txt) (in-process PublishOnce$(case $f in *lz4*) echo ', what-if: metadata.raw compressed with lz4' ;; esac))"
		echo '```'
		grep -E 'Benchmark|publishes|ms$|^\s+(begin|commit|publisher|  tx)' "$f" | sed 's/^ *publish_test.go:[0-9]*: //'
		echo '```'
	done
} | tee "$OUT/report.md"
echo "results in $OUT" >&2
