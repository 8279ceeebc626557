#!/usr/bin/env bash
# Write latency at a fixed rate for one or more ringkv-server builds, alternating builds each
# round (A B A B ...) so that the shared machine's drift falls on all alike. Each run starts
# the build on a new data dir (--shards 2, --durability sync, plus $EXTRA), fills 2,000,000
# keys at full speed, waits SETTLE seconds (10) for the fill's flushes and compactions, then
# runs the same fill at RATE keys/s for SECONDS seconds (open loop: latency from each
# operation's scheduled time) and prints its p50/p99/p99.9/max.
# Usage: bench/scripts/ab-half-load.sh ROUNDS RATE SECONDS SERVER...
set -uo pipefail
. "$(dirname "$0")/lib.sh"
cd "$(dirname "$0")/../.."
ROUNDS=$1; RATE=$2; SECS=$3; shift 3
BENCH=target/release/ringkv-bench
FILL="--workload fillrandom --keys 2000000 --batch 100 --pipeline 64 --connections 4"
trap 'stop_server 2>/dev/null' EXIT
for _ in $(seq "$ROUNDS"); do
    for S in "$@"; do
        # shellcheck disable=SC2086
        SERVER=$S start_server "${PORT:-7650}" --durability sync ${EXTRA:-}
        TARGET="--target ringkv://127.0.0.1:${PORT:-7650}"
        $BENCH run $TARGET $FILL >/dev/null 2>&1
        sleep "${SETTLE:-10}"
        out=$($BENCH run $TARGET $FILL --rate "$RATE" --duration "$SECS" 2>/dev/null | grep "ops in")
        stop_server
        echo "$(date +%T) $(basename "$S") $(echo "$out" | sed -n 's/.*p50 *\([0-9]*\)us p99 *\([0-9]*\)us p99.9 *\([0-9]*\)us max *\([0-9]*\)us.*/p50 \1 p99 \2 p99.9 \3 max \4 us/p') load $(cut -d' ' -f1 /proc/loadavg)"
    done
done
