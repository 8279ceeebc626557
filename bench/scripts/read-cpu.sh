#!/bin/bash
# GET rate and CPU of server and generator: starts BIN (a ringkv-server) on a fresh data dir
# (--shards 2 --durability sync), fills 2,000,000 keys, reads for 5 s unmeasured (compactions
# done: --settle; blocks cached), then reads for 10 s (readrandom --pipeline 256
# --connections 4) and prints the fill and read rates, the generator's CPU (user+system,
# /usr/bin/time) and the server's CPU over the 10 s (utime+stime ticks of 1/100 s from
# /proc/PID/stat). For A/B pairs of server builds (alternate them: the machine drifts).
# Usage: bench/scripts/read-cpu.sh BIN PORT      (BENCH=path overrides the generator)
. "$(dirname "$0")/lib.sh"
BIN=$1; PORT=$2; D=$(mktemp -d /tmp/readcpu.XXXX)
$BIN --data-dir "$D" --listen "127.0.0.1:$PORT" --shards 2 --durability sync --log warn >/dev/null 2>&1 &
P=$!
wait_port $((PORT + 2))
B=${BENCH:-$(dirname "$0")/../../target/release/ringkv-bench}
T="--target ringkv://127.0.0.1:$PORT --keys 2000000"
$B run $T --workload fillrandom --batch 100 --pipeline 64 --connections 4 2>/dev/null | awk '/^fillrandom/ {print "fill", $6}'
$B run $T --workload readrandom --duration 5 --pipeline 256 --connections 4 --settle 120 >/dev/null 2>&1
t0=$(cpu_ticks $P)
/usr/bin/time -f "generator-cpu %U+%S s" $B run $T --workload readrandom --duration 10 --pipeline 256 --connections 4 2>&1 |
    awk '/^readrandom/ {print "read", $6} /generator-cpu/ {print}'
t1=$(cpu_ticks $P)
echo "server-cpu $((t1 - t0)) ticks in 10 s"
kill -9 $P; wait $P 2>/dev/null; rm -rf "$D"
