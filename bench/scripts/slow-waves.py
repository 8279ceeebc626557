#!/usr/bin/env python3
"""Per-shard timeline of a running ringkv-server's write path, to see what slow writes line up with.

Polls `ringkv-admin --json stats` every PERIOD seconds for SECONDS seconds and prints, per
shard and interval: flushes and compactions so far, frozen memtables waiting, L0 files,
compaction debt, the write waves answered in the interval and how many of them took longer
than 10 ms (from the server's own write-latency histogram).

Usage: bench/scripts/slow-waves.py ADDR SECONDS [PERIOD]   (run from the repository root,
with target/release/ringkv-admin built), e.g. while a rate-limited fill runs against ADDR.
"""
import json
import subprocess
import sys
import time

addr, seconds = sys.argv[1], float(sys.argv[2])
period = float(sys.argv[3]) if len(sys.argv) > 3 else 0.25
admin = ["target/release/ringkv-admin", "--addr", addr, "--json", "stats"]
start = time.time()
prev = None
while time.time() < start + seconds:
    out = subprocess.run(admin, capture_output=True, text=True).stdout
    try:
        shards = json.loads(out)["shards"]
    except (ValueError, KeyError):
        time.sleep(period)
        continue
    cur = []
    for s in shards:
        c = s["counters"]
        cur.append({
            "flushes": c["flushes"], "compactions": c["compactions"],
            "frozen": c["immutable_memtables"], "l0": c["level0_files"],
            "debt_mib": c["compaction_debt_bytes"] >> 20,
            "waves": c["latency_write_us_count"],
            "slow": c["latency_write_us_count"] - c["latency_write_us_bucket_le_10000"],
        })
    if prev:
        cells = []
        for p, q in zip(prev, cur):
            cells.append(
                f"flushes {q['flushes']} compactions {q['compactions']} frozen {q['frozen']} "
                f"L0 {q['l0']} debt {q['debt_mib']}M waves {q['waves'] - p['waves']:4} "
                f">10ms {q['slow'] - p['slow']:3}")
        print(f"{time.time() - start:6.2f}s  " + " | ".join(cells), flush=True)
    prev = cur
    time.sleep(period)
