#!/usr/bin/env bash
# A/B of two ringkv-server builds on the write path, alternating A B A B ... so that the
# machine's drift (it is shared) falls on both alike. Each run starts the build on a new data
# dir (--shards 2, --durability sync) and then:
#   1. fills KEYS keys as fast as it can (the peak: fillrandom --batch 100 --pipeline 64
#      --connections 4);
#   2. runs the same fill at RATE keys/s for SECONDS seconds (open loop: latency from each
#      operation's scheduled time) and takes its p50 and p99;
#   3. with READS=1, fills again on a fresh server and runs READ_SECONDS of pipelined point
#      GETs after the fill settles (as issue3-compare.sh does).
# Prints one line per run and, at the end, each build's medians.
# Usage: bench/scripts/ab-servers.sh SERVER_A SERVER_B
#   (ROUNDS=3 RATE=500000 SECONDS_=8 KEYS=2000000 READS=0 READ_SECONDS=8 PORT=7570)
set -euo pipefail
. "$(dirname "$0")/lib.sh"
cd "$(dirname "$0")/../.."
A=$1; B=$2
ROUNDS=${ROUNDS:-3}; RATE=${RATE:-500000}; SECONDS_=${SECONDS_:-8}; KEYS=${KEYS:-2000000}
READS=${READS:-0}; READ_SECONDS=${READ_SECONDS:-8}; PORT=${PORT:-7570}
cargo build --release -p ringkv-bench 2>&1 | tail -1
BENCH=target/release/ringkv-bench
FILL="--workload fillrandom --keys $KEYS --batch 100 --pipeline 64 --connections 4"
OUT=$(mktemp)
trap 'stop_server 2>/dev/null; rm -f "$OUT"' EXIT
echo "# $(date -u +%FT%TZ) A=$A B=$B rounds $ROUNDS rate $RATE for $SECONDS_ s, load $(cut -d' ' -f1-3 /proc/loadavg)"
for round in $(seq "$ROUNDS"); do
    for side in A B; do
        if [ "$side" = A ]; then SERVER=$A; else SERVER=$B; fi
        export SERVER
        start_server "$PORT" --durability sync
        TARGET="--target ringkv://127.0.0.1:$PORT"
        peak=$($BENCH run $TARGET $FILL 2>/dev/null | awk '/ops in/ {print $6}')
        half=$($BENCH run $TARGET $FILL --rate "$RATE" --duration "$SECONDS_" 2>/dev/null \
            | sed -n 's/.*ops in.*p50 *\([0-9]*\)us p99 *\([0-9]*\)us.*/\1 \2/p')
        stop_server
        gets=-
        if [ "$READS" = 1 ]; then
            start_server "$PORT" --durability sync
            $BENCH run $TARGET $FILL >/dev/null 2>&1
            gets=$($BENCH run $TARGET --workload readrandom --keys "$KEYS" --pipeline 256 \
                --connections 4 --settle 120 --warmup 5 --duration "$READ_SECONDS" 2>/dev/null \
                | awk '/ops in/ {print $6}')
            stop_server
        fi
        read -r p50 p99 <<< "$half"
        echo "$side $peak $p50 $p99 $gets" >> "$OUT"
        printf '%s %s round %d: peak %s ops/s; at %s/s p50 %s us p99 %s us; GETs %s ops/s (load %s)\n' \
            "$(date -u +%T)" "$side" "$round" "$peak" "$RATE" "$p50" "$p99" "$gets" \
            "$(cut -d' ' -f1 /proc/loadavg)"
    done
done
python3 - "$OUT" <<'PY'
import statistics, sys
rows = [l.split() for l in open(sys.argv[1])]
for side in "AB":
    r = [x for x in rows if x[0] == side]
    col = lambda i: [float(x[i]) for x in r if x[i] != "-"]
    med = lambda v: f"{statistics.median(v):,.0f}" if v else "-"
    print(f"{side} medians: peak {med(col(1))} ops/s, p50 {med(col(2))} us, p99 {med(col(3))} us, GETs {med(col(4))} ops/s")
PY
