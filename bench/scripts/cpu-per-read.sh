#!/bin/bash
# Server CPU per GET: starts BIN (a ringkv-server) on a fresh data dir, fills 2,000,000 keys,
# waits for compactions, reads 2,000,000 random keys (RC connections, default 4), and prints
# the fill and read rates and the server's CPU time per read in nanoseconds (utime + stime
# from /proc/PID/stat over the read). Used for A/B pairs of two server builds.
# Usage: bench/scripts/cpu-per-read.sh BIN PORT
. "$(dirname "$0")/lib.sh"
BIN=$1; PORT=$2; D=$(mktemp -d /tmp/abread.XXXX)
$BIN --data-dir $D --listen 127.0.0.1:$PORT --shards 2 --durability sync --log warn >/dev/null 2>&1 &
P=$!
wait_port $((PORT + 2))
B=$(dirname "$0")/../../target/release/ringkv-bench
F=$($B run --target ringkv://127.0.0.1:$PORT --workload fillrandom --keys 2000000 --batch 100 --pipeline 16 --connections 2 2>/dev/null | grep ^fillrandom | awk '{print $6}')
$B run --target ringkv://127.0.0.1:$PORT --workload readrandom --keys 2000000 --ops 10 --settle 120 2>/dev/null | grep settled
t0=$(cpu_ticks $P)
R=$($B run --target ringkv://127.0.0.1:$PORT --workload readrandom --keys 2000000 --ops 2000000 --pipeline 64 --connections ${RC:-4} 2>/dev/null | grep ^readrandom | awk '{print $6}')
t1=$(cpu_ticks $P)
# ticks are 1/100 s: ticks * 10^7 ns / 2*10^6 reads = ticks * 5 ns per read
echo "$BIN fill $F read $R server-cpu-ns/read $(( (t1-t0)*5 ))"
kill -9 $P; wait $P 2>/dev/null; rm -rf $D
