#!/usr/bin/env bash
# Runs the RocksDB db_bench peer figures quoted in docs/benchmarks.md.
#
# Needs db_bench (Debian/Ubuntu: `apt-get install rocksdb-tools`). Data goes to
# $DB_BENCH_DIR (default /tmp/ringkv-dbbench); it must be on the disk under test, not tmpfs.
# Each command's full output, with the load average before and after, goes to
# $DB_BENCH_DIR/out/<name>.txt; machine details go to machine.txt.
# Note: db_bench's --num is per thread; compare ops/s, which it prints.
set -euo pipefail

dir=${DB_BENCH_DIR:-/tmp/ringkv-dbbench}
out=$dir/out
mkdir -p "$out"
echo "db_bench peer run: data in $dir, output in $out"

{
    echo "date: $(date -u)"
    echo "nproc: $(nproc)"
    lscpu | grep -E 'Model name|Thread|Core|Socket' || true
    free -h
    uname -a
    df -hT "$dir"
    lsblk -o NAME,SIZE,ROTA,TYPE,MOUNTPOINT || true
    db_bench --version 2>&1 | head -1
} >"$out/machine.txt" 2>&1

common=(--key_size=16 --value_size=100 --compression_type=none)

run() {
    local name=$1
    shift
    local db=$dir/db-$name
    rm -rf "$db"
    echo "+ db_bench $* ${common[*]}"
    {
        echo "loadavg before: $(cat /proc/loadavg)"
        echo "+ db_bench --db=$db $* ${common[*]}"
        db_bench --db="$db" "$@" "${common[@]}" 2>&1
        echo "loadavg after: $(cat /proc/loadavg)"
    } >"$out/$name.txt"
    grep -E '^(fillrandom|readrandom) ' "$out/$name.txt"
    rm -rf "$db"
}

run fill-t1 --benchmarks=fillrandom --num=2000000 --threads=1
run fill-t2 --benchmarks=fillrandom --num=2000000 --threads=2
run fillread-t1 --benchmarks=fillrandom,readrandom --num=2000000 --threads=1
run fillread-t2 --benchmarks=fillrandom,readrandom --num=2000000 --threads=2
run sync-t64 --benchmarks=fillrandom --sync=1 --threads=64 --num=3000
echo "finished: $(date -u)" >>"$out/machine.txt"
