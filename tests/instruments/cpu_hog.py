"""A test instrument: processes that each keep a core busy (a Python busy loop), standing for the other work of a
shared host, started beside an engine to check that its levels are flagged contended. Stopped and reaped however
the block ends."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager

BUSY_LOOP = "while True:\n    pass\n"


@contextmanager
def cpu_hogs(count: int = 1) -> Iterator[list[int]]:
    """`count` busy processes for the block; yields their pids."""
    hogs = [subprocess.Popen([sys.executable, "-c", BUSY_LOOP]) for _ in range(count)]
    try:
        yield [hog.pid for hog in hogs]
    finally:
        for hog in hogs:
            hog.kill()
            hog.wait()
