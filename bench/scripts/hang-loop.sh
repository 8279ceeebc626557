#!/usr/bin/env bash
# Starts ringkv-server --shards 2 on an empty data dir and fills 2,000,000 keys
# (--batch 100 --pipeline 64 --connections 4), N times; stops at the first fill that does
# not finish within 30 s (a shard that stopped answering) and leaves that server running
# for gdb. Used to reproduce glommio 0.9's mis-park (an executor asleep with runnable
# tasks) and to check the watchdog in engine::runtime.
# Usage: SERVER=path bench/scripts/hang-loop.sh N    (extra environment passes through)
set -uo pipefail
. "$(dirname "$0")/lib.sh"
cd "$(dirname "$0")/../.."
N=${1:-10}; PORT=${PORT:-7670}; SERVER=${SERVER:-target/release/ringkv-server}
for i in $(seq 1 "$N"); do
    start_server "$PORT" 2>/dev/null
    if ! timeout 30 target/release/ringkv-bench run --target ringkv://127.0.0.1:$PORT \
        --workload fillrandom --keys 2000000 --batch 100 --pipeline 64 --connections 4 \
        >/dev/null 2>&1; then
        echo "fill $i did not finish: server $SPID left running, data dir $DDIR"
        exit 1
    fi
    stop_server
done
echo "no hang in $N fills"
