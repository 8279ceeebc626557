#!/usr/bin/env bash
# What each client makes redis-server do for the same GETs: in ROUNDS (3) rounds, fills an
# emptied redis-server (--appendonly no) with 2,000,000 SETs of random keys of a 10,000,000-key
# space, then times 2,000,000 GETs of random keys, once with redis-benchmark (-P 64 -c 50) and
# once with ringkv-bench (--pipeline 64 --connections 50 --threads 1, its own fill and keys),
# and prints per GET run: wall time, redis-server's user and system CPU (clock ticks, from
# /proc/PID/stat), its reads and writes of client sockets (total_reads_processed,
# total_writes_processed), keyspace hits and misses, and the client's user and system CPU.
# Usage: bench/scripts/redis-work.sh    (needs redis-server, redis-benchmark, redis-cli)
set -euo pipefail
cd "$(dirname "$0")/../.."
P=${REDIS_PORT:-6403}
BENCH=${BENCH:-target/release/ringkv-bench}
D=$(mktemp -d)
redis-server --port "$P" --dir "$D" --save '' --appendonly no --daemonize yes >/dev/null
trap 'redis-cli -p "$P" shutdown nosave >/dev/null 2>&1 || true; rm -rf "$D"' EXIT
sleep 0.5
RPID=$(redis-cli -p "$P" info server | tr -d '\r' | sed -n 's/^process_id://p')
stats() {
    redis-cli -p "$P" info stats | tr -d '\r' | awk -F: '
        /^keyspace_hits:/ {h=$2} /^keyspace_misses:/ {m=$2}
        /^total_reads_processed:/ {r=$2} /^total_writes_processed:/ {w=$2}
        END {print r, w, h, m}'
}
measure() { # NAME COMMAND...
    local name=$1; shift
    local u0 s0 u1 s1 r0 w0 h0 m0 r1 w1 h1 m1 t0 t1
    read -r u0 s0 < <(awk '{print $14, $15}' "/proc/$RPID/stat"); read -r r0 w0 h0 m0 < <(stats)
    t0=$(date +%s%N)
    /usr/bin/time -o "$D/time" -f '%U %S' "$@" >/dev/null 2>&1
    t1=$(date +%s%N)
    read -r u1 s1 < <(awk '{print $14, $15}' "/proc/$RPID/stat"); read -r r1 w1 h1 m1 < <(stats)
    echo "$name wall=$(( (t1 - t0) / 1000000 ))ms redis_user=$((u1 - u0)) redis_sys=$((s1 - s0)) reads=$((r1 - r0)) writes=$((w1 - w0)) hits=$((h1 - h0)) misses=$((m1 - m0)) client_user_sys=$(cat "$D/time")"
}
echo "# $(date -u +%FT%TZ) load: $(cut -d' ' -f1-3 /proc/loadavg)"
for _ in $(seq "${ROUNDS:-3}"); do
    redis-cli -p "$P" flushall >/dev/null
    redis-benchmark -p "$P" -t set -P 64 -c 50 -d 100 -r 10000000 -n 2000000 -q >/dev/null 2>&1
    measure redis-benchmark redis-benchmark -p "$P" -t get -P 64 -c 50 -d 100 -r 10000000 -n 2000000 -q
    redis-cli -p "$P" flushall >/dev/null
    "$BENCH" run --target "redis://127.0.0.1:$P" --workload overwrite --keys 10000000 --ops 2000000 --value-size 100 --pipeline 64 --connections 50 --threads 1 >/dev/null 2>&1
    # Another seed than the fill's, so the GETs pick other random keys (about 18% found, as
    # with redis-benchmark).
    measure ringkv-bench "$BENCH" run --target "redis://127.0.0.1:$P" --workload readrandom --seed 7 --keys 10000000 --ops 2000000 --value-size 100 --pipeline 64 --connections 50 --threads 1
done
echo "load: $(cut -d' ' -f1-3 /proc/loadavg)"
