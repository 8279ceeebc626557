#!/usr/bin/env python3
"""Groups the stall reports of `ringkv-server --stall-report-ms MS` (its stderr or log file).

Each report names a task queue, how far it ran past its slice, and a stack. Reports are
grouped by queue and the innermost three ringkv frames of the stack, and printed as
`count  total-overrun  queue | frame <- caller <- caller`, most frequent first.
Usage: bench/scripts/stall-report.py LOG [TOP]
"""
import collections
import re
import sys

UNITS_MS = {"ns": 1e-6, "µs": 1e-3, "us": 1e-3, "ms": 1.0, "s": 1000.0}


def main() -> None:
    text = open(sys.argv[1], encoding="utf-8", errors="replace").read()
    top = int(sys.argv[2]) if len(sys.argv) > 2 else 25
    count = collections.Counter()
    total = collections.Counter()
    for report in text.split("[stall-detector")[1:]:
        m = re.search(r"task queue (\S+) went over-budget: ([\d.]+)(ns|µs|us|ms|s)\b", report)
        if not m:
            continue
        overrun = float(m.group(2)) * UNITS_MS[m.group(3)]
        names = re.findall(r"\n\s+(?:\d+:\s+0x[0-9a-f]+ - )?([^\n]+?)::h[0-9a-f]{16}\n", report)
        ours = [n for n in names if n.startswith(("ringkv", "<ringkv"))]
        key = m.group(1) + " | " + " <- ".join(n[:90] for n in ours[:3])
        count[key] += 1
        total[key] += overrun
    print(f"{sum(count.values())} reports, {sum(total.values()):.1f} ms over the slices in all")
    for key, n in count.most_common(top):
        print(f"{n:5d} {total[key]:9.1f} ms  {key}")


if __name__ == "__main__":
    main()
