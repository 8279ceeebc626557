#!/usr/bin/env python3
"""What one WAL group commit costs on this disk, without ringkv: a loop of 20 KiB O_DIRECT
writes into a pre-zeroed file, each followed by fdatasync (the shape of one group commit),
for SECONDS seconds; prints latency percentiles. With --with-writer, a `dd` writes 1000 MiB
of 256 KiB O_DIRECT blocks to another file at the same time (the shape of a memtable flush).

Usage: bench/scripts/device-latency.py SECONDS [--with-writer] [--dir DIR]  (DIR: /work)
"""
import argparse
import mmap
import os
import subprocess
import time

parser = argparse.ArgumentParser()
parser.add_argument("seconds", type=float)
parser.add_argument("--with-writer", action="store_true")
parser.add_argument("--dir", default="/work")
args = parser.parse_args()

path = os.path.join(args.dir, "ringkv-device-latency.test")
size = 64 << 20
fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_DIRECT)
zeros = mmap.mmap(-1, 1 << 20)  # page-aligned, as O_DIRECT needs
for off in range(0, size, 1 << 20):
    os.pwrite(fd, zeros, off)
os.fdatasync(fd)
writer = None
if args.with_writer:
    writer = subprocess.Popen(
        ["dd", "if=/dev/zero", f"of={path}.dd", "bs=256k", "count=4000", "oflag=direct"],
        stderr=subprocess.DEVNULL)
record = mmap.mmap(-1, 20480)
latencies = []
off = 0
end = time.time() + args.seconds
while time.time() < end:
    started = time.perf_counter()
    os.pwrite(fd, record, off)
    os.fdatasync(fd)
    latencies.append((time.perf_counter() - started) * 1e6)
    off = (off + 20480) % (size - 20480)
if writer:
    writer.wait()
    os.unlink(f"{path}.dd")
os.close(fd)
os.unlink(path)
latencies.sort()
n = len(latencies)
print(f"n={n} p50={latencies[n // 2]:.0f}us p90={latencies[int(n * .9)]:.0f}us "
      f"p99={latencies[int(n * .99)]:.0f}us p99.9={latencies[int(n * .999)]:.0f}us "
      f"max={latencies[-1]:.0f}us" + (" (with a concurrent dd writer)" if writer else ""))
