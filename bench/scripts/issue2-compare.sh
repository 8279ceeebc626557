#!/usr/bin/env bash
# One same-session comparison of ringkv-bench embedded against RocksDB's db_bench for the
# performance targets of the engine issue. Runs the peer first, then ringkv, back to back,
# and prints every figure with its command and the load average around it.
#
# Needs db_bench (`apt-get install rocksdb-tools`) and a release build of ringkv-bench
# (`cargo build --release -p ringkv-bench`). Data goes to $BENCH_DIR (default
# /tmp/ringkv-compare), which must be on the disk under test, not tmpfs. Full outputs go to
# $BENCH_DIR/out/.
set -euo pipefail

cd "$(dirname "$0")/../.."
dir=${BENCH_DIR:-/tmp/ringkv-compare}
out=$dir/out
bench=${RINGKV_BENCH:-target/release/ringkv-bench}
rm -rf "$dir"
mkdir -p "$out"
common=(--key_size=16 --value_size=100 --compression_type=none)

echo "machine: $(nproc) cores, $(free -g | awk '/Mem:/ {print $2}') GiB, $(uname -r), $(db_bench --version 2>&1 | head -1)"
echo "start: $(date -u)"

peer() {
    local name=$1
    shift
    rm -rf "$dir/db"
    {
        echo "loadavg before: $(cat /proc/loadavg)"
        echo "+ db_bench --db=$dir/db $* ${common[*]}"
        db_bench --db="$dir/db" "$@" "${common[@]}" 2>&1
        echo "loadavg after: $(cat /proc/loadavg)"
    } >"$out/$name.txt"
    echo "[$name] db_bench $* ${common[*]}"
    grep -E '^(fillrandom|readrandom) |loadavg' "$out/$name.txt" | sed 's/^/    /'
    rm -rf "$dir/db"
}

ours() {
    local name=$1
    shift
    {
        echo "loadavg before: $(cat /proc/loadavg)"
        echo "+ ringkv-bench $*"
        # A run that does not finish in 180 s is reported as such, not waited for forever.
        timeout 180 "$bench" "$@" --dir "$dir/ringkv" --json "$out/$name.json" 2>&1 ||
            echo "exit status $? (124: timed out after 180 s)"
        echo "loadavg after: $(cat /proc/loadavg)"
    } >"$out/$name.txt"
    rm -rf "$dir/ringkv"
    echo "[$name] ringkv-bench $*"
    grep -E '^(fillrandom|readrandom) |loadavg|after close|exit status' "$out/$name.txt" | sed 's/^/    /'
}

peer P1 --benchmarks=fillrandom --num=2000000 --threads=1
peer P2 --benchmarks=fillrandom --num=2000000 --threads=2
peer P3 --benchmarks=fillrandom,readrandom --num=2000000 --threads=1
peer P4 --benchmarks=fillrandom,readrandom --num=2000000 --threads=2
peer P5 --benchmarks=fillrandom --sync=1 --threads=64 --num=3000

ours R1 embedded --workload fillrandom,readrandom --num 2000000 --key-size 16 --value-size 100 --durability none --shards 2
ours R2 embedded --workload fillrandom --num 2000000 --key-size 16 --value-size 100 --durability none --shards 1
ours R3 embedded --workload fillrandom --num 400000 --key-size 16 --value-size 100 --durability sync --concurrency 64 --shards 2
# Shard scaling, three alternating pairs (2 shards, then 1), so drift on a shared machine
# hits both sides alike.
for pair in 1 2 3; do
    ours "S${pair}a" embedded --workload fillrandom --num 2000000 --key-size 16 --value-size 100 --durability none --shards 2
    ours "S${pair}b" embedded --workload fillrandom --num 2000000 --key-size 16 --value-size 100 --durability none --shards 1
done
# The machine's own ceiling for that kind of work (no I/O, nothing shared).
if [ -x target/release/examples/machine_scaling ]; then
    for threads in 1 2 1 2; do
        echo "[machine_scaling $threads] $(target/release/examples/machine_scaling "$threads")"
    done
fi
echo "end: $(date -u)"
