#!/usr/bin/env python3
"""Write N MiB of random bytes to PATH in 1 MiB writes; time the writes and the close apart.

Usage: scripts/write-timing.py PATH N   (docs/write-bench.md)
"""
import os, sys, time
p = sys.argv[1]; n = int(sys.argv[2])
buf = os.urandom(1 << 20)
t0 = time.time()
fd = os.open(p, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
for i in range(n):
    os.write(fd, buf)
t1 = time.time()
os.close(fd)
t2 = time.time()
print(f"write {n/(t1-t0):.0f} MiB/s ({t1-t0:.2f}s), close {t2-t1:.2f}s, total {n/(t2-t0):.0f} MiB/s")
