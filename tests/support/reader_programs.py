"""Small reader programs the memory-group tests and scripts/bench_memory.py run as processes
(``python -c PROGRAM ARGS``): each prints the SHA-256 of what it read, so a caller checks every
byte without holding the data; `HOG` holds memory in the same group until its stdin closes."""

from __future__ import annotations

from typing import Final

# Reads a file from start to end in 1 MiB reads; prints the SHA-256 of what it read.
SEQUENTIAL: Final = """
import hashlib, sys
digest = hashlib.sha256()
with open(sys.argv[1], "rb", buffering=0) as f:
    while chunk := f.read(1 << 20):
        digest.update(chunk)
print(digest.hexdigest())
"""

# Reads at seeded random offsets (as fio does: POSIX_FADV_RANDOM); prints the SHA-256 of all.
RANDOM: Final = """
import hashlib, os, random, sys
path, count, size, seed = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
fd = os.open(path, os.O_RDONLY)
os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_RANDOM)
total = os.fstat(fd).st_size
rng = random.Random(seed)
digest = hashlib.sha256()
for _ in range(count):
    digest.update(os.pread(fd, size, rng.randrange(0, total - size)))
print(digest.hexdigest())
"""

# Holds N bytes (every page written, so the group is charged for them) once told to, says
# "ready", and lets them go when told again.
HOG: Final = """
import sys
sys.stdin.readline()
held = b"\\x01" * int(sys.argv[1])
print("ready", flush=True)
sys.stdin.readline()
"""
