#!/usr/bin/env bash
# OCI push/pull throughput of cairnd against the CNCF distribution registry v3.1.2, on the
# same machine, one after the other (BENCHMARKS.md, "OCI registry"). Needs PostgreSQL on
# 127.0.0.1:5432; builds what it needs (the registry into the user cache).
set -euo pipefail
export GOTOOLCHAIN=local
cd "$(dirname "$0")/../.."
N=${N:-300} C=${C:-8} BIG=${BIG:-100}
tools="${XDG_CACHE_HOME:-$HOME/.cache}/cairn/ociclients"
[ -x "$tools/registry" ] || (cd /tmp && GOFLAGS= GOBIN="$tools" go install github.com/distribution/distribution/v3/cmd/registry@v3.1.2)
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT
go build -o "$work/cairnd" ./cmd/cairnd
go build -o "$work/ociload" ./bench/ociload
db="postgres://postgres@127.0.0.1:5432/cairn_ocibench_$$?sslmode=disable"

cat > "$work/registry.yml" <<YML
version: 0.1
log: {level: error}
storage:
  filesystem: {rootdirectory: $work/registry}
  delete: {enabled: true}
http: {addr: 127.0.0.1:5055}
YML
"$tools/registry" serve "$work/registry.yml" > "$work/registry.log" 2>&1 &
"$work/cairnd" serve --dev --data-dir "$work/cairn" --database-url "$db" --listen 127.0.0.1:5056 --log-level warn > "$work/cairnd.log" 2>&1 &
for i in $(seq 50); do
	curl -sf -o /dev/null http://127.0.0.1:5055/v2/ && [ -f "$work/cairn/admin.token" ] && curl -s -o /dev/null http://127.0.0.1:5056/v2/ && break
	sleep 0.2
done
# CPU seconds (user+system) a process has used: wall-clock rates on a shared machine are
# noisy, the server's CPU per operation is not (PostgreSQL's share of cairn is not counted).
cpu() { awk -v t="$(getconf CLK_TCK)" '{printf "%.2f", ($14+$15)/t}' "/proc/$1/stat"; }
bench() { # name pid args…
	local name=$1 pid=$2; shift 2
	local before; before=$(cpu "$pid")
	"$work/ociload" -name "$name" -n "$N" -c "$C" -big "$BIG" "$@"
	echo "$name	server CPU	$(awk -v a="$before" -v b="$(cpu "$pid")" 'BEGIN{printf "%.2f s", b-a}')"
}
bench distribution "$(pgrep -f "$work/registry.yml" | head -1)" -url http://127.0.0.1:5055
bench cairn "$(pgrep -f "$work/cairnd serve" | head -1)" -url http://127.0.0.1:5056 -pass "$(cat "$work/cairn/admin.token")"
kill %2; wait %2 2>/dev/null || true
psql -q "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable" -c "DROP DATABASE IF EXISTS cairn_ocibench_$$ WITH (FORCE)" || true
