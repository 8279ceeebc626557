#!/usr/bin/env python3
"""How a WAL-like commit (8 KiB O_DIRECT pwrite + fdatasync into a pre-zeroed file) behaves
while another thread writes large files with O_DIRECT, as flushes and compactions do.
  BG = none   no background writes (the disk's own tail);
       full   1 MiB writes into 32 MiB files, as fast as the disk takes them;
       N      the same, paced to N MB/s.
Prints the commits' p50/p99/p99.9/max and the background rate reached.
Usage: python3 bench/scripts/sync-under-writes.py SECONDS BG [DIR]
  (DIR on the disk under test, default /var/tmp/sync-under-writes; removed afterwards)
"""
import mmap
import os
import shutil
import sys
import threading
import time

SECS = float(sys.argv[1])
BG = sys.argv[2]
DIR = sys.argv[3] if len(sys.argv) > 3 else "/var/tmp/sync-under-writes"
WAL_BYTES = 256 << 20
CHUNK = 1 << 20
stop = False


def zeroed_file(path, size):
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_DIRECT, 0o644)
    zeros = mmap.mmap(-1, CHUNK)
    for off in range(0, size, CHUNK):
        os.pwrite(fd, zeros, off)
    os.fsync(fd)
    return fd


def background():
    buf = mmap.mmap(-1, CHUNK)
    buf.write(os.urandom(CHUNK))
    written, started, i = 0, time.monotonic(), 0
    while not stop:
        path = f"{DIR}/table{i % 4}.dat"
        i += 1
        if os.path.exists(path):
            os.remove(path)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_DIRECT, 0o644)
        for off in range(0, 32 << 20, CHUNK):
            if stop:
                break
            os.pwrite(fd, buf, off)
            written += CHUNK
            if BG != "full":
                ahead = written / (float(BG) * 1e6) - (time.monotonic() - started)
                if ahead > 0:
                    time.sleep(ahead)
        os.fsync(fd)
        os.close(fd)
    print(f"background writes: {written / 1e6 / (time.monotonic() - started):.0f} MB/s")


def main():
    global stop
    os.makedirs(DIR, exist_ok=True)
    try:
        fd = zeroed_file(f"{DIR}/wal.dat", WAL_BYTES)
        writer = None
        if BG != "none":
            writer = threading.Thread(target=background)
            writer.start()
        page = mmap.mmap(-1, 8192)
        lat, off, end = [], 0, time.monotonic() + SECS
        while time.monotonic() < end:
            t = time.monotonic()
            os.pwrite(fd, page, off)
            os.fdatasync(fd)
            lat.append(time.monotonic() - t)
            off = (off + 8192) % WAL_BYTES
        stop = True
        if writer:
            writer.join()
        lat.sort()
        q = lambda p: lat[int(len(lat) * p)] * 1e3
        print(f"background={BG}: commits={len(lat)} p50={q(.5):.2f}ms p99={q(.99):.2f}ms "
              f"p99.9={q(.999):.2f}ms max={lat[-1] * 1e3:.1f}ms")
    finally:
        stop = True
        shutil.rmtree(DIR, ignore_errors=True)


main()
