#!/usr/bin/env bash
# Write latency at a fixed rate for one or more ringkv-server builds, alternating builds each
# round (A B A B ...) so that the shared machine's drift falls on all alike. Each run starts
# the build on a new data dir (--shards 2, --durability sync, plus $EXTRA), fills 2,000,000
# keys at full speed, waits SETTLE seconds (10) for the fill's flushes and compactions (and,
# with SETTLE_MAX=N, up to N more seconds until the server reports no compaction debt:
# ringkv-bench --settle), then runs the same fill at RATE keys/s for SECONDS seconds (open
# loop: latency from each operation's scheduled time) and prints its p50/p99/p99.9/max and
# the generator's own lateness at p99 (lag p99).
# Usage: bench/scripts/ab-half-load.sh ROUNDS RATE SECONDS SERVER...
#   (BENCH=path runs another ringkv-bench binary)
set -uo pipefail
. "$(dirname "$0")/lib.sh"
cd "$(dirname "$0")/../.."
ROUNDS=$1; RATE=$2; SECS=$3; shift 3
BENCH=${BENCH:-target/release/ringkv-bench}
FILL="--workload fillrandom --keys 2000000 --batch 100 --pipeline 64 --connections 4"
trap 'stop_server 2>/dev/null' EXIT
for _ in $(seq "$ROUNDS"); do
    for S in "$@"; do
        # shellcheck disable=SC2086
        SERVER=$S start_server "${PORT:-7650}" --durability sync ${EXTRA:-}
        TARGET="--target ringkv://127.0.0.1:${PORT:-7650}"
        $BENCH run $TARGET $FILL >/dev/null 2>&1
        sleep "${SETTLE:-10}"
        out=$($BENCH run $TARGET $FILL --rate "$RATE" --duration "$SECS" --settle "${SETTLE_MAX:-0}" 2>/dev/null)
        stop_server
        lat=$(echo "$out" | grep "ops in" | sed -n 's/.*p50 *\([0-9]*\)us p99 *\([0-9]*\)us p99.9 *\([0-9]*\)us max *\([0-9]*\)us.*/p50 \1 p99 \2 p99.9 \3 max \4 us/p')
        lag=$(echo "$out" | grep "generator lag" | sed -n 's/.* p99 \([0-9]*\)us.*/\1/p')
        echo "$(date +%T) $(basename "$S") $lat lag p99 ${lag:-?} us load $(cut -d' ' -f1 /proc/loadavg)"
    done
done
