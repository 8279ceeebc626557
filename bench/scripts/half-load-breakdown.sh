#!/usr/bin/env bash
# Where the write latency at a fixed rate goes, from the server's own histograms.
#   1. starts ringkv-server --shards 2 (--durability $DURABILITY, default sync; extra server
#      flags after RATE SECONDS), fills KEYS keys as fast as it can, waits SETTLE seconds;
#   2. snapshots `ringkv-admin stats`, runs the same fill at RATE keys/s for SECONDS seconds
#      (open loop, latency from the scheduled time), snapshots again, and prints per shard the
#      difference: stall/slowdown time, flushes, compactions, bytes written, and the server's
#      per-wave write latency, WAL fdatasync, flush and compaction duration histograms
#      (cumulative counts per bucket) with
#      the bucket that holds the 50th/90th/99th percentile;
#   3. prints the CPU each shard thread and the generator used, and the shard threads'
#      involuntary context switches (the OS taking the core away), over the measured run.
# Usage: bench/scripts/half-load-breakdown.sh RATE SECONDS [server flags...]
#   (SERVER=path runs another ringkv-server binary, for A/B runs of two builds;
#    BENCH_FLAGS="..." adds ringkv-bench flags to both runs, e.g. --threads 1;
#    CONNECTIONS (default 4), BATCH (default 100) and PIPELINE (default 64) set the generator's
#    --connections, --batch and --pipeline;
#    BENCH_PREFIX="CMD ARGS " runs the generator under CMD, e.g. "chrt -f 10 ";
#    BENCH_BIN=path runs another ringkv-bench binary)
set -euo pipefail
. "$(dirname "$0")/lib.sh"
cd "$(dirname "$0")/../.."
RATE=$1; SECONDS_=$2; shift 2
KEYS=${KEYS:-2000000}; SETTLE=${SETTLE:-15}; PORT=${PORT:-7470}
[ -n "${NOBUILD:-}" ] || cargo build --release -p ringkv-server -p ringkv-bench -p ringkv-admin 2>&1 | tail -1
OUT=$(mktemp -d)
start_server "$PORT" --durability "${DURABILITY:-sync}" "$@"
trap 'stop_server; rm -rf "$OUT"' EXIT
BENCH="${BENCH_PREFIX:-}${BENCH_BIN:-target/release/ringkv-bench} run --target ringkv://127.0.0.1:$PORT --workload fillrandom --keys $KEYS --batch ${BATCH:-100} --pipeline ${PIPELINE:-64} --connections ${CONNECTIONS:-4} ${BENCH_FLAGS:-}"
ADMIN="target/release/ringkv-admin --addr 127.0.0.1:$PORT --json"
echo "# $(date -u +%FT%TZ) load: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "+ $BENCH"; $BENCH 2>/dev/null | grep "ops in"
sleep "$SETTLE"
threads() { for t in /proc/$SPID/task/*; do case $(cat "$t/comm") in ringkv-shard*)
    echo "$(cat "$t/comm") $(cpu_ticks "$t") $(awk '/nonvoluntary/{print $2}' "$t/status")";; esac; done; }
$ADMIN stats > "$OUT/a.json"; threads > "$OUT/ta"
echo "+ $BENCH --rate $RATE --duration $SECONDS_"
$BENCH --rate "$RATE" --duration "$SECONDS_" 2>/dev/null > "$OUT/run.txt" & BPID=$!
sleep 1; b0=$(cpu_ticks $BPID); sleep $((SECONDS_ - 2))
b1=$(cpu_ticks $BPID); wait $BPID
grep -E "ops in|generator lag" "$OUT/run.txt"
$ADMIN stats > "$OUT/b.json"; threads > "$OUT/tb"
echo "generator CPU over $((SECONDS_ - 2)) s: $(( (b1 - b0) * 100 / $(getconf CLK_TCK) / (SECONDS_ - 2) ))% of a core"
paste "$OUT/ta" "$OUT/tb" | awk -v s="$SECONDS_" -v hz="$(getconf CLK_TCK)" \
    '$2 > 0 {printf "%s CPU over the run: %d%% of a core, involuntary switches/s: %d\n", $1, ($5-$2)*100/hz/s, ($6-$3)/s}'
python3 - "$OUT/a.json" "$OUT/b.json" <<'PY'
import json, sys
a, b = (json.load(open(p))["shards"] for p in sys.argv[1:3])
for i, (sa, sb) in enumerate(zip(a, b)):
    ca, cb = sa["counters"], sb["counters"]
    keys = ["stall_micros", "slowdown_micros", "background_paced_micros", "flushes", "compactions", "disk_bytes_written",
            "wal_bytes_written", "user_ops_written"]
    print(f"shard {i}:", {k: cb.get(k, 0) - ca.get(k, 0) for k in keys})  # older builds lack some
    for h in ["latency_write_us", "wal_sync_us", "flush_us", "compaction_us"]:
        def le(k):
            v = k.split("_le_")[1]
            return float("inf") if v == "inf" else float(v)
        ks = sorted((k for k in cb if k.startswith(h + "_bucket_le_")), key=le)
        cum = [(le(k), cb[k] - ca[k]) for k in ks]
        n = cb[h + "_count"] - ca[h + "_count"]
        pct = {q: next((bound for bound, c in cum if c >= q * n), None) for q in (0.5, 0.9, 0.99)}
        mean = (cb[h + "_sum"] - ca[h + "_sum"]) / max(n, 1)
        print(f"  {h}: n={n} mean={mean:.0f}us percentile bucket upper bounds={pct}")
        print("    cumulative:", " ".join(f"<={int(bound) if bound != float('inf') else 'inf'}:{c}" for bound, c in cum))
PY
kill -TERM $SPID; wait $SPID || true
