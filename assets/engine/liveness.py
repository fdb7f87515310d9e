"""Is the process that runs a step still alive? A run records who runs its engine step (host, boot, pid and the
process's start time), so that a run whose process died (SIGKILL, the OOM killer, a machine restart) can be told
from one that is merely slow, and what it held freed.

A pid alone is not enough: after a restart, or on a busy machine, another process can get the same number. The
boot id (Linux's /proc/sys/kernel/random/boot_id) tells a restart; the start time (field 22 of /proc/PID/stat,
in clock ticks since boot) tells a reused pid.
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from pathlib import Path

from assets.processes import read_stat

BOOT_ID = Path("/proc/sys/kernel/random/boot_id")
WORKER_TAG = "yardstick/worker"   # the run tag that holds `Worker.tag()`


def _boot_id() -> str:
    try:
        return BOOT_ID.read_text().strip()
    except OSError:
        return "unknown"


def _start_ticks(pid: int) -> str | None:
    """The process's start time in clock ticks after boot, or None when no such process exists."""
    stat = read_stat(pid)
    return None if stat is None else str(stat.start_ticks)


@dataclass(frozen=True)
class Worker:
    host: str
    boot: str
    pid: int
    started: str   # clock ticks after boot; "" where /proc is not there

    def tag(self) -> str:
        return f"{self.host} {self.boot} {self.pid} {self.started}"

    @classmethod
    def from_tag(cls, tag: str) -> Worker | None:
        parts = tag.split(" ")
        if len(parts) != 4 or not parts[2].isdigit():
            return None
        return cls(parts[0], parts[1], int(parts[2]), parts[3])

    def state(self) -> tuple[str, str]:
        """('alive' | 'dead' | 'elsewhere', why). Another host's process cannot be seen from here: 'elsewhere'."""
        if self.host != socket.gethostname():
            return "elsewhere", f"runs on {self.host}, not this host"
        if self.boot != "unknown" and self.boot != _boot_id():
            return "dead", f"its machine restarted since (process {self.pid})"
        if self.started:
            now = _start_ticks(self.pid)
            if now is None:
                return "dead", f"its process {self.pid} no longer exists (killed, or out of memory)"
            if now != self.started:
                return "dead", f"its process {self.pid} no longer exists (the pid now belongs to another process)"
            return "alive", f"process {self.pid} is running"
        try:
            os.kill(self.pid, 0)
        except ProcessLookupError:
            return "dead", f"its process {self.pid} no longer exists"
        except PermissionError:
            pass
        return "alive", f"process {self.pid} is running"


def this_worker() -> Worker:
    pid = os.getpid()
    return Worker(socket.gethostname(), _boot_id(), pid, _start_ticks(pid) or "")
