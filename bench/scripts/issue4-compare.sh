#!/usr/bin/env bash
# Issue 4 (the load generator's own ceiling), in one session on one machine:
#   1. against redis-server 7 (Debian, --save '' --appendonly yes --appendfsync everysec),
#      in PAIRS (default 3) alternating pairs: redis-benchmark -t set,get -P 64 -c 50 -d 100 -r 10000000 -n 2000000, then
#      ringkv-bench run --target redis:// with the same shape (SETs then GETs of random keys
#      of a 10,000,000-key space, 100-byte values, 64 in flight on each of 50 connections);
#      ringkv-bench gets --threads 1 like redis-benchmark, so both leave the other core to
#      redis-server;
#   2. ringkv-bench against ringkv-server (--shards 2 --durability sync) and against
#      ringkv-bench sink (2 shards, stores nothing), same workloads.
# Usage: bench/scripts/issue4-compare.sh [LOGFILE]    (needs redis-server, redis-benchmark,
#   /usr/bin/time from the `time` package, and taskset for PIN=1)
#   REDIS_AOF=no runs redis-server without its append-only file (--appendonly no). Its AOF
#   rewrites fork a child that takes a core at unpredictable moments, which moves either
#   client's rate by tens of percent from one run to the next; without it the pairs compare
#   the two clients more tightly.
#   PIN=1 pins redis-server to core 1 and both clients to core 0 (taskset), the same for both.
#   After every client run it prints the CPU the client and redis-server used over the run's
#   wall time: a redis-server near 100% of its core with the client well below is a run the
#   server bounds, where no client can be faster.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
cd "$(dirname "$0")/../.."
LOG=${1:-/tmp/issue4-compare.log}
REDIS_PORT=${REDIS_PORT:-6393}
RINGKV_PORT=${RINGKV_PORT:-7180}
SINK_PORT=${SINK_PORT:-7190}
exec > >(tee "$LOG") 2>&1

echo "# $(date -u +%FT%TZ) $(uname -r) $(nproc) cores; load: $(cut -d' ' -f1-3 /proc/loadavg)"
cargo build --release -p ringkv-server -p ringkv-bench 2>&1 | tail -1
SERVER=target/release/ringkv-server
BENCH=target/release/ringkv-bench
PIDS=()
DIRS=()
cleanup() {
    for p in "${PIDS[@]}"; do kill -9 "$p" 2>/dev/null || true; done
    for d in "${DIRS[@]}"; do rm -rf "$d"; done
}
trap cleanup EXIT

echo "## redis-server $(redis-server --version | awk '{print $3}') --appendonly ${REDIS_AOF:-yes}"
RDIR=$(mktemp -d); DIRS+=("$RDIR")
redis-server --port "$REDIS_PORT" --dir "$RDIR" --save '' --appendonly "${REDIS_AOF:-yes}" --appendfsync everysec --daemonize yes >/dev/null
wait_port "$REDIS_PORT"
RPID=$(redis-cli -p "$REDIS_PORT" info server | awk -F: '/^process_id/{print $2+0}')
CLIENT_PIN=()
if [ -n "${PIN:-}" ]; then
    taskset -a -pc 1 "$RPID" >/dev/null
    CLIENT_PIN=(taskset -c 0)
fi
HZ=$(getconf CLK_TCK)
# Runs a client command; prints its output lines matching $1, then the client's and
# redis-server's CPU over the run's wall time.
client() {
    local pattern=$1; shift
    echo "+ $*"
    local r0 t0 r1 t1 out
    r0=$(cpu_ticks "$RPID"); t0=$(date +%s.%N)
    out=$(/usr/bin/time -f "client-cpu %U %S" "${CLIENT_PIN[@]}" "$@" 2>&1 | tr '\r' '\n')
    t1=$(date +%s.%N); r1=$(cpu_ticks "$RPID")
    echo "$out" | grep -E "$pattern" || true
    echo "$out" | awk -v r="$((r1 - r0))" -v hz="$HZ" -v t0="$t0" -v t1="$t1" \
        '/^client-cpu/ {w = t1 - t0; printf "cpu over %.2f s wall: client %.0f%% of a core, redis-server %.0f%%\n", w, ($2 + $3) * 100 / w, r / hz * 100 / w}'
}
# PAIRS alternating pairs (redis-benchmark, then ringkv-bench), each on an emptied server.
for PAIR in $(seq 1 "${PAIRS:-3}"); do
    echo "### pair $PAIR"
    redis-cli -p "$REDIS_PORT" flushall >/dev/null
    client "requests per second" redis-benchmark -p "$REDIS_PORT" -t set,get -P 64 -c 50 -d 100 -r 10000000 -n 2000000 -q
    redis-cli -p "$REDIS_PORT" flushall >/dev/null
    client "^(overwrite|readrandom)" "$BENCH" run --target "redis://127.0.0.1:$REDIS_PORT" --workload overwrite,readrandom --keys 10000000 --ops 2000000 --value-size 100 --batch 1 --pipeline 64 --connections 50 --threads 1 --json /tmp/issue4-redis.json
    echo "load: $(cut -d' ' -f1-3 /proc/loadavg)"
done
redis-cli -p "$REDIS_PORT" shutdown nosave >/dev/null 2>&1 || true

echo "## ringkv-server --shards 2 --durability sync, then ringkv-bench sink --shards 2"
DDIR=$(mktemp -d); DIRS+=("$DDIR")
$SERVER --data-dir "$DDIR" --listen 127.0.0.1:$RINGKV_PORT --shards 2 --durability sync --log warn &
PIDS+=($!)
$BENCH sink --listen 127.0.0.1:$SINK_PORT --shards 2 >/dev/null &
PIDS+=($!)
wait_port $((RINGKV_PORT + 2)); wait_port $((SINK_PORT + 2))
for T in "ringkv://127.0.0.1:$RINGKV_PORT" "ringkv://127.0.0.1:$SINK_PORT"; do
    CMD="$BENCH run --target $T --workload fillrandom,readrandom --keys 2000000 --batch 100 --pipeline 64 --connections 4 --settle 120"
    echo "+ $CMD"; $CMD 2>/dev/null | grep -E "^(fillrandom|readrandom|settled)"
done
echo "load: $(cut -d' ' -f1-3 /proc/loadavg)"
