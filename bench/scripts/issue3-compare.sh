#!/usr/bin/env bash
# Issue 3 comparison, in one session on one machine:
#   peer:   redis-server 7 (Debian), --appendonly yes --appendfsync everysec, driven by
#           redis-benchmark -t set,get -P 64 -c 50 -d 100 -r 10000000 -n 2000000
#   ringkv: ringkv-server --shards 2 --durability sync, driven by ringkv-bench run
#           (16-byte keys, 100-byte values, BATCH of --batch puts, --pipeline frames in
#           flight per connection), then pipelined point GETs of the keys written (once the
#           server has finished compacting the fill: --settle, and after READ_WARMUP seconds
#           of unmeasured reads: --warmup), then a
#           durable ingest at half the peak rate for the p99 write latency. The peak is the
#           sustained rate: SUSTAIN_SECONDS (30) of the same ingest at full speed after the
#           reads, flushes, compactions and any write slowdown included. (The fill itself,
#           2,000,000 keys into empty memtables in about 1.5 s, is a burst the server cannot
#           keep up for long; half of it is beyond what compaction keeps up with.) The half
#           rate runs HALF_SECONDS (20) once compaction has caught up (--settle).
# Usage: bench/scripts/issue3-compare.sh [LOGFILE]    (needs redis-server, redis-benchmark)
set -euo pipefail
. "$(dirname "$0")/lib.sh"
cd "$(dirname "$0")/../.."
LOG=${1:-/tmp/issue3-compare.log}
KEYS=${KEYS:-2000000}
BATCH=${BATCH:-100}
PIPELINE=${PIPELINE:-16}
CONNECTIONS=${CONNECTIONS:-2}
# GETs: 4 connections per shard with 256 requests in flight on each, i.e. 2 x 4 x 256 = 2048
# requests in flight in all, fewer than redis-benchmark's 50 connections x 64 = 3200. Few
# deep connections are how the shard-aware client is meant to be used; with 64 per
# connection the server pays its per-wave costs (a read, a send, a wake-up) for every 64
# GETs instead of every 256 (READ_PIPELINE=64 READ_CONNECTIONS=25 gives redis-benchmark's
# exact shape of 50 connections x 64).
READ_PIPELINE=${READ_PIPELINE:-256}
READ_CONNECTIONS=${READ_CONNECTIONS:-4}
# Seconds of reads before the measured ones, so the block cache holds the data (redis keeps
# everything in memory; the first pass after a fill otherwise measures disk reads).
READ_WARMUP=${READ_WARMUP:-5}
# Seconds of measured GETs.
READ_SECONDS=${READ_SECONDS:-10}
SUSTAIN_SECONDS=${SUSTAIN_SECONDS:-30}
HALF_SECONDS=${HALF_SECONDS:-20}
REDIS_PORT=${REDIS_PORT:-6390}
RINGKV_PORT=${RINGKV_PORT:-7170}
exec > >(tee "$LOG") 2>&1

echo "# $(date -u +%FT%TZ) $(uname -r) $(nproc) cores"
cargo build --release -p ringkv-server -p ringkv-bench 2>&1 | tail -1
SERVER=target/release/ringkv-server
BENCH=target/release/ringkv-bench

echo "## redis-server $(redis-server --version | awk '{print $3}')"
RDIR=$(mktemp -d)
redis-server --port "$REDIS_PORT" --dir "$RDIR" --save '' --appendonly yes --appendfsync everysec --daemonize yes >/dev/null
sleep 1
echo "+ redis-benchmark -p $REDIS_PORT -t set,get -P 64 -c 50 -d 100 -r 10000000 -n 2000000 -q"
redis-benchmark -p "$REDIS_PORT" -t set,get -P 64 -c 50 -d 100 -r 10000000 -n 2000000 -q 2>&1 | tr '\r' '\n' | grep -E "requests per second"
redis-cli -p "$REDIS_PORT" shutdown nosave >/dev/null 2>&1 || true
rm -rf "$RDIR"

echo "## ringkv-server --shards 2 --durability sync"
start_server "$RINGKV_PORT" --durability sync
trap stop_server EXIT
CMD="$BENCH run --target ringkv://127.0.0.1:$RINGKV_PORT --workload fillrandom --keys $KEYS --batch $BATCH --pipeline $PIPELINE --connections $CONNECTIONS --json /tmp/issue3-fill.json"
echo "+ $CMD"; $CMD 2>/dev/null | grep -vE "^  "
CMD="$BENCH run --target ringkv://127.0.0.1:$RINGKV_PORT --workload readrandom --keys $KEYS --pipeline $READ_PIPELINE --connections $READ_CONNECTIONS --settle 120 --warmup $READ_WARMUP --duration $READ_SECONDS --json /tmp/issue3-read.json"
echo "+ $CMD"; $CMD 2>/dev/null | grep -vE "^  "
CMD="$BENCH run --target ringkv://127.0.0.1:$RINGKV_PORT --workload fillrandom --keys $KEYS --batch $BATCH --pipeline $PIPELINE --connections $CONNECTIONS --duration $SUSTAIN_SECONDS --json /tmp/issue3-sustained.json"
echo "+ $CMD"; $CMD 2>/dev/null | grep -vE "^  "
PEAK=$(python3 -c "import json;print(int(json.load(open('/tmp/issue3-sustained.json'))[0]['ops_per_sec']))")
HALF=$((PEAK / 2))
echo "sustained peak $PEAK ops/s; half: $HALF ops/s"
CMD="$BENCH run --target ringkv://127.0.0.1:$RINGKV_PORT --workload fillrandom --keys $KEYS --batch $BATCH --pipeline $PIPELINE --connections $CONNECTIONS --rate $HALF --duration $HALF_SECONDS --settle 120 --json /tmp/issue3-half.json"
echo "+ $CMD"; $CMD 2>/dev/null | grep -vE "^  "
kill -TERM $SPID; wait $SPID; echo "server exit code $?"
