#!/usr/bin/env bash
# ab-uploads.sh: an A/B comparison of cairnd builds or flags on the uploads phase of
# bench/load, alternating the variants round by round so that they share the machine's
# conditions (BENCHMARKS.md run 18 explains why single runs on a shared machine cannot be
# compared). Every run gets a fresh database and data directory in one private PostgreSQL
# cluster: cairnd (serve --dev), 1,000 projects, pg_stat_statements reset, then the
# uploads run.
#
# Usage: bench/ab-uploads.sh NAME=FLAGS [NAME=FLAGS…]
#   NAME may be NAME@/path/to/cairnd to run another build (default: this tree's
#   bench/cairnd-pprof); FLAGS are extra `cairnd serve` flags, e.g.
#   bench/ab-uploads.sh now=--publish-gather=0 g20=--publish-gather=20ms
# Environment: AB_ROUNDS (4), AB_CONC (32), AB_DURATION (20s), AB_WARMUP (5s; whole seconds), AB_PER_UPLOADER (2),
#   AB_OUT (.data/bench/ab-<time>), BENCH_PG_PORT (56533), BENCH_CAIRN_ADDR
#   (127.0.0.1:18180), BENCH_PPROF_ADDR (127.0.0.1:16160), AB_PROFILE (0; 1: a 12 s CPU
#   profile of cairnd during every run), AB_PIN (0; 1: PostgreSQL and cairnd on CPU 0, the
#   load generator on CPU 1).
# Output: a RESULT line per run in $AB_OUT/results.jsonl (the variant in "label"), each
#   run's pg_stat_statements top in $AB_OUT/pg-<name>-<round>.txt, and a table of the
#   medians on stdout.
set -euo pipefail
# All in a function, which bash reads whole before it runs: editing this file during a run
# cannot change the run.
main() {
	[ $# -ge 1 ] || { sed -n '2,20p' "$0" >&2; exit 2; }
	ROOT=$(cd "$(dirname "$0")/.." && pwd)
	cd "$ROOT"
	ROUNDS=${AB_ROUNDS:-4}
	CONC=${AB_CONC:-32}
	DUR=${AB_DURATION:-20s}
	PER=${AB_PER_UPLOADER:-2}
	OUT=${AB_OUT:-$ROOT/.data/bench/ab-$(date +%Y%m%d-%H%M%S)}
	PGPORT=${BENCH_PG_PORT:-56533}
	CAIRN_ADDR=${BENCH_CAIRN_ADDR:-127.0.0.1:18180}
	PPROF_ADDR=${BENCH_PPROF_ADDR:-127.0.0.1:16160}
	mkdir -p "$OUT"
	OUT=$(cd "$OUT" && pwd)
	WORK=$(mktemp -d /tmp/cairn-ab.XXXXXX)
	chmod 755 "$WORK"
	PGDATA=$WORK/pg
	PGBIN=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
	[ -x "$PGBIN/initdb" ] || { echo "ab-uploads.sh: PostgreSQL server binaries not found (apt-get install -y postgresql)" >&2; exit 1; }
	CAIRN_PID=
	# shellcheck source=bench/lib.sh
	. "$ROOT/bench/lib.sh"
	cleanup() {
		set +e
		stop_pid "$CAIRN_PID"
		[ -f "$PGDATA/postmaster.pid" ] && as_pg "$PGBIN/pg_ctl" -D "$PGDATA" -m fast stop >/dev/null 2>&1
		rm -rf "$WORK"
	}
	trap cleanup EXIT
	log() { printf '== %s  %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

	log "building from $(git rev-parse --short HEAD)$( [ -n "$(git status --porcelain --untracked-files=no)" ] && echo ' (uncommitted changes)')"
	go build -o "$WORK/cairnd-pprof" ./bench/cairnd-pprof
	go build -o "$WORK/load" ./bench/load
	mkdir -p "$PGDATA"
	chown postgres "$PGDATA" 2>/dev/null || true
	as_pg "$PGBIN/initdb" -D "$PGDATA" -U postgres --auth=trust >/dev/null
	# AB_PIN=1: PostgreSQL and cairnd share CPU 0, the load generator has CPU 1 to itself,
	# so that the server's CPU per upload is measured without the generator on its cores.
	srv=() gen=()
	if [ "${AB_PIN:-0}" = 1 ]; then srv=(taskset -c 0) gen=(taskset -c 1); fi
	as_pg "${srv[@]}" "$PGBIN/pg_ctl" -D "$PGDATA" -w -l "$PGDATA/server.log" \
		-o "-p $PGPORT -k $PGDATA -c listen_addresses=127.0.0.1 -c shared_buffers=128MB -c max_connections=200 -c shared_preload_libraries=pg_stat_statements" start >/dev/null
	PG_PID=$(head -1 "$PGDATA/postmaster.pid")
	psql() { as_pg "$PGBIN/psql" -h "$PGDATA" -p "$PGPORT" -U postgres "$@"; }
	{
		echo "- commit: $(git rev-parse HEAD); date: $(date -u +%Y-%m-%dT%H:%MZ); nproc $(nproc)"
		echo "- variants: $*"
		echo "- rounds $ROUNDS, $CONC uploaders, $DUR, $PER projects per uploader"
	} >"$OUT/machine.md"

	for round in $(seq "$ROUNDS"); do
		for v in "$@"; do
			name=${v%%=*} flags=${v#*=} bin=$WORK/cairnd-pprof
			if [[ $name == *@* ]]; then bin=${name#*@} name=${name%%@*}; fi
			psql -qc 'drop database if exists ab' -c 'create database ab' >/dev/null
			data=$WORK/dev-$name-$round
			url="postgres://postgres@127.0.0.1:$PGPORT/ab?sslmode=disable"
			# shellcheck disable=SC2086 # FLAGS are words
			CAIRN_BENCH_PPROF=$PPROF_ADDR "${srv[@]}" "$bin" serve --dev --data-dir "$data" --database-url "$url" --listen "$CAIRN_ADDR" $flags >"$OUT/cairnd-$name-$round.log" 2>&1 &
			CAIRN_PID=$!
			for _ in $(seq 300); do
				curl -fs "http://$CAIRN_ADDR/readyz" >/dev/null 2>&1 && break
				kill -0 "$CAIRN_PID" 2>/dev/null || { tail -20 "$OUT/cairnd-$name-$round.log" >&2; exit 1; }
				sleep 0.1
			done
			"$WORK/load" -mode projects -server "http://$CAIRN_ADDR" -token "@$data/admin.token" -n 1000 -concurrency 32 -prefix p1k \
				-server-pid "$CAIRN_PID" -pg-pid "$PG_PID" >/dev/null
			psql -d ab -qc 'create extension if not exists pg_stat_statements' -c 'select pg_stat_statements_reset()' >/dev/null
			prof=
			if [ "${AB_PROFILE:-0}" = 1 ]; then
				w=${AB_WARMUP:-5s}
				(sleep $(( ${w%s} + 1 )) && curl -fsS "http://$PPROF_ADDR/debug/pprof/profile?seconds=12" -o "$OUT/cpu-$name-$round.pprof") &
				prof=$!
			fi
			log "round $round: $name ($flags), load $(cut -d' ' -f1 /proc/loadavg)"
			"${gen[@]}" "$WORK/load" -mode uploads -server "http://$CAIRN_ADDR" -token "@$data/admin.token" -concurrency "$CONC" -duration "$DUR" -warmup "${AB_WARMUP:-5s}" \
				-projects-per-uploader "$PER" -server-pid "$CAIRN_PID" -pg-pid "$PG_PID" -label "$name" -out "$OUT/results.jsonl" | grep -v '^RESULT' >&2
			[ -z "$prof" ] || wait "$prof"
			psql -d ab -c "select calls, round(total_exec_time::numeric,1) as total_ms, round((total_exec_time/calls)::numeric,3) as mean_ms, left(regexp_replace(query, '\s+', ' ', 'g'), 100) as query from pg_stat_statements order by total_exec_time desc limit 15" >"$OUT/pg-$name-$round.txt"
			stop_pid "$CAIRN_PID"
			CAIRN_PID=
			rm -rf "$data"
		done
	done
	[ "${AB_PROFILE:-0}" = 1 ] && cp "$WORK/cairnd-pprof" "$OUT/"
	python3 - "$OUT/results.jsonl" <<-'PY'
	import json, statistics, sys, collections
	runs = collections.defaultdict(list)
	for line in open(sys.argv[1]):
	    r = json.loads(line)
	    if "server_cpu_ms_per_upload" in r:
	        r["total_cpu_ms_per_upload"] = r["server_cpu_ms_per_upload"] + r["pg_cpu_ms_per_upload"]
	    runs[r["label"]].append(r)
	# server_cpu_ms_per_upload is cairnd's alone; total adds PostgreSQL's.
	keys = ["uploads_per_s", "total_cpu_ms_per_upload", "server_cpu_ms_per_upload", "pg_cpu_ms_per_upload", "p50_ms", "p99_ms", "mean_batch_roles"]
	print("| variant | runs | " + " | ".join(keys) + " |")
	print("| --- | ---: |" + " ---: |" * len(keys))
	for name, rs in runs.items():
	    cells = []
	    for k in keys:
	        vals = [r[k] for r in rs if k in r]
	        cells.append("%.2f (%s)" % (statistics.median(vals), " ".join("%.2f" % v for v in vals)) if vals else "-")
	    print("| %s | %d | %s |" % (name, len(rs), " | ".join(cells)))
	PY
	echo "results: $OUT" >&2
}
main "$@"
exit
