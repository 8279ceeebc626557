#!/usr/bin/env bash
# Where a write waits before the server sees it, at a fixed write rate: bytes queued in the
# server's sockets but not yet read by a shard (Recv-Q, sampled with ss(8)), and how long each
# server and generator thread was runnable but waiting for a CPU (/proc/.../schedstat).
#   1. starts ringkv-server --shards 2 --durability sync (SERVER=path for another build),
#      fills KEYS keys at full speed, waits SETTLE seconds;
#   2. runs the same fill at RATE keys/s for SECONDS seconds (open loop) while sampling, every
#      0.1 s, the largest Recv-Q among the server's connections;
#   3. prints the run's latency line and the samples' p50/p90/max in bytes. At R keys/s over C
#      connections of 116-byte puts, B queued bytes are about B / (R / C * 130) seconds of
#      waiting (a BATCH frame carries about 130 bytes per put);
#   4. prints, for every thread of the server and the generator that ran more than 0.5% of
#      the time, its share of WINDOW seconds (from 3 s into the run) spent running and spent
#      runnable on a run queue without a CPU, and its time slices per second.
# The sampler takes some CPU itself (two ss calls per sample).
# Usage: bench/scripts/half-load-contention.sh RATE SECONDS   (SECONDS >= WINDOW + 5)
set -uo pipefail
. "$(dirname "$0")/lib.sh"
cd "$(dirname "$0")/../.."
RATE=$1; SECS=$2
KEYS=${KEYS:-2000000}; SETTLE=${SETTLE:-10}; PORT=${PORT:-7470}; WINDOW=${WINDOW:-10}
BENCH=${BENCH:-target/release/ringkv-bench}
start_server "$PORT" --durability sync
OUT=$(mktemp -d)
trap 'stop_server; rm -rf "$OUT"' EXIT
FILL="--workload fillrandom --keys $KEYS --batch 100 --pipeline 64 --connections 4"
$BENCH run --target "ringkv://127.0.0.1:$PORT" $FILL >/dev/null 2>&1
sleep "$SETTLE"
last=$((PORT + 2))
(while true; do
    ss -tnH state established "( sport >= :$PORT and sport <= :$last )" |
        awk 'BEGIN { m = 0 } { if ($1 > m) m = $1 } END { print m }'
    sleep 0.1
done) > "$OUT/recvq" &
SAMPLER=$!
$BENCH run --target "ringkv://127.0.0.1:$PORT" $FILL --rate "$RATE" --duration "$SECS" \
    > "$OUT/run" 2>/dev/null &
GEN=$!
# Every thread's comm, then its schedstat: ns running, ns waiting on a run queue, slices.
snapshot() { for t in /proc/$SPID/task/* /proc/$GEN/task/*; do
    echo "$(tr ' ' _ < "$t/comm") $(cat "$t/schedstat" 2>/dev/null || echo 0 0 0)"; done; }
sleep 3; snapshot > "$OUT/a"; sleep "$WINDOW"; snapshot > "$OUT/b"
wait "$GEN"
kill "$SAMPLER"
grep -E "ops in|generator lag" "$OUT/run"
paste "$OUT/a" "$OUT/b" | awk -v w="$WINDOW" '{ run = ($6 - $2) / (w * 1e7); wait = ($7 - $3) / (w * 1e7)
    if (run > 0.5) printf "%-18s running %5.1f%%  waiting for a CPU %5.1f%%  slices/s %d\n", $1, run, wait, ($8 - $4) / w }'
sort -n "$OUT/recvq" | awk '{ a[NR] = $1 } END {
    printf "server Recv-Q, largest per sample: n=%d p50=%d p90=%d max=%d bytes\n",
        NR, a[int(NR * 0.5)], a[int(NR * 0.9)], a[NR] }'
