#!/usr/bin/env python3
"""Measures write+fdatasync latency of 8 KiB O_DIRECT writes into a file that is (a) grown
by each write ("append"), (b) preallocated with fallocate, (c) pre-written with zeros.
This is why the WAL writes zeros ahead in sync mode (docs/benchmarks.md).
Usage: python3 bench/scripts/fsync-probe.py [DIR]   (DIR on the disk under test; default /tmp)
"""
import sys
import os, mmap, time
DIR = sys.argv[1] if len(sys.argv) > 1 else "/tmp"
def run(mode, n=1500):
    path = f"{DIR}/fsync-{mode}.dat"
    if os.path.exists(path): os.remove(path)
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_DIRECT, 0o644)
    size = 64 << 20
    if mode == "fallocate":
        os.posix_fallocate(fd, 0, size)
    elif mode == "zeroed":
        buf = mmap.mmap(-1, 1 << 20); 
        for off in range(0, size, 1 << 20): os.pwrite(fd, buf, off)
        os.fsync(fd)
    buf = mmap.mmap(-1, 8192)
    buf.write(b"x" * 8192)
    lat = []
    for i in range(n):
        t = time.perf_counter()
        os.pwrite(fd, buf, i * 8192)
        os.fdatasync(fd)
        lat.append((time.perf_counter() - t) * 1e6)
    os.close(fd); os.remove(path)
    lat.sort()
    print(f"{mode:10s} p50 {lat[len(lat)//2]:8.0f}us p90 {lat[int(len(lat)*.9)]:8.0f}us p99 {lat[int(len(lat)*.99)]:8.0f}us")
for m in ["append", "fallocate", "zeroed", "append", "fallocate", "zeroed"]:
    run(m)
