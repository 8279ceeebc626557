#!/usr/bin/env bash
# How long a full manual compaction takes, and the server CPU it costs:
#   1. starts ringkv-server --shards 2 (SERVER=path for another build), fills KEYS
#      (default 4,000,000) keys of 100 bytes, compacts everything once (so both runs start
#      from the same shape), overwrites OVERWRITES (default 2,000,000) random keys;
#   2. times `ringkv-admin compact --wait` and reads the server's utime+stime around it.
# Usage: bench/scripts/compaction-time.sh            (A/B: SERVER=/path/a ...; SERVER=/path/b ...)
set -euo pipefail
. "$(dirname "$0")/lib.sh"
cd "$(dirname "$0")/../.."
KEYS=${KEYS:-4000000}; OVERWRITES=${OVERWRITES:-2000000}; PORT=${PORT:-7490}
SERVER=${SERVER:-target/release/ringkv-server}
cargo build --release -p ringkv-server -p ringkv-bench -p ringkv-admin 2>&1 | tail -1
start_server "$PORT" --durability sync
trap stop_server EXIT
BENCH="target/release/ringkv-bench run --target ringkv://127.0.0.1:$PORT --keys $KEYS --batch 100 --pipeline 64 --connections 4"
ADMIN="target/release/ringkv-admin --addr 127.0.0.1:$PORT"
echo "# $(date -u +%FT%TZ) $SERVER; load: $(cut -d' ' -f1-3 /proc/loadavg)"
$BENCH --workload fillrandom 2>/dev/null | grep "ops in"
$ADMIN compact --wait >/dev/null
$BENCH --workload overwrite --ops "$OVERWRITES" 2>/dev/null | grep "ops in"
sleep 1
t0=$(cpu_ticks $SPID); s=$(date +%s%N)
$ADMIN compact --wait >/dev/null
e=$(date +%s%N); t1=$(cpu_ticks $SPID)
echo "compact --wait: $(( (e - s) / 1000000 )) ms wall, server CPU $(( (t1 - t0) * 1000 / $(getconf CLK_TCK) )) ms"
kill -TERM $SPID; wait $SPID || true
