#!/usr/bin/env bash
# Write latency at a fixed rate against one ringkv-server build, alternating ringkv-bench
# builds each round (A B A B ...), with what each generator costs the machine. Each run: a
# fresh --shards 2 --durability sync server (SERVER=path, default target/release), a
# 2,000,000-key fill at full speed, 10 s of rest, then the same fill at RATE keys/s for 20 s
# (open loop). Printed per run: rate, p50/p99/p99.9, the generator's lateness at p99, and
# over 15 s from 3 s into the run the generator's and the server's CPU (% of one core) and
# the machine's context switches per second (/proc/stat ctxt).
# Usage: bench/scripts/ab-generators.sh ROUNDS RATE BENCH...
set -uo pipefail
. "$(dirname "$0")/lib.sh"
cd "$(dirname "$0")/../.."
ROUNDS=$1; RATE=$2; shift 2
FILL="--workload fillrandom --keys 2000000 --batch 100 --pipeline 64 --connections 4"
HZ=$(getconf CLK_TCK)
OUT=$(mktemp)
trap 'stop_server 2>/dev/null; rm -f "$OUT"' EXIT
ctxt() { awk '/^ctxt/ {print $2}' /proc/stat; }
for _ in $(seq "$ROUNDS"); do
    for B in "$@"; do
        start_server "${PORT:-7470}" --durability sync
        T="--target ringkv://127.0.0.1:${PORT:-7470}"
        # shellcheck disable=SC2086
        $B run $T $FILL >/dev/null 2>&1
        sleep 10
        # shellcheck disable=SC2086
        $B run $T $FILL --rate "$RATE" --duration 20 --settle 120 > "$OUT" 2>/dev/null &
        BP=$!
        sleep 3
        g0=$(cpu_ticks $BP); s0=$(cpu_ticks "$SPID"); c0=$(ctxt)
        sleep 15
        g1=$(cpu_ticks $BP); s1=$(cpu_ticks "$SPID"); c1=$(ctxt)
        wait $BP
        stop_server
        lat=$(sed -n 's/.*: *\([0-9]*\) ops\/s.*p50 *\([0-9]*\)us p99 *\([0-9]*\)us p99.9 *\([0-9]*\)us.*/\1 ops\/s p50 \2 p99 \3 p99.9 \4 us/p' "$OUT")
        lag=$(sed -n 's/.*generator lag.* p99 \([0-9]*\)us.*/\1/p' "$OUT")
        echo "$(date +%T) $(basename "$B") $lat lag p99 ${lag:-?} us;" \
            "generator CPU $(( (g1 - g0) * 100 / HZ / 15 ))%, server CPU $(( (s1 - s0) * 100 / HZ / 15 ))%," \
            "context switches/s $(( (c1 - c0) / 15 ))"
    done
done
