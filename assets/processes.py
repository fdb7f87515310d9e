"""Process supervision, under everything this project starts (inference servers, sandboxed programs): a started
process leads a process group of its own, so that it is stopped with everything it started, and is asked to die
with its parent; it is stopped group-wide, TERM, a grace, then KILL, and reaped. What /proc says of a process
(state, parent, group, start time, peak memory) is read here too, by one parser of /proc/PID/stat.

Where there is no /proc (not Linux), the readers answer None or nothing: "cannot tell".
"""

from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

PROC = Path("/proc")
# After the group's leader is reaped, how long its other members (vLLM's engine core) get to exit too.
GROUP_EXIT_WAIT_S = 10.0
_PR_SET_PDEATHSIG = 1
# Loaded before any fork: the child may only make plain calls between fork and exec.
_LIBC = ctypes.CDLL("libc.so.6", use_errno=True)


@dataclass(frozen=True)
class ProcessStat:
    """The fields of /proc/PID/stat this project reads."""

    pid: int
    state: str          # R, S, D, ...; Z (a zombie) and X have exited
    parent: int
    group: int
    start_ticks: int    # when it started, in clock ticks after boot: tells a reused pid from the process it had
    cpu_ticks: int = 0  # CPU time it has used, user and system, in clock ticks (all its threads)
    name: str = ""      # its command name (/proc/PID/comm), at most 15 characters

    @property
    def alive(self) -> bool:
        """Whether it still runs: a zombie has exited, waiting to be reaped, and holds no memory and no device."""
        return self.state not in ("Z", "X")


def parse_stat(text: str) -> ProcessStat:
    """A /proc/PID/stat line. The command name (field 2) is in parentheses and may hold spaces and parentheses
    itself: the fields are counted after the last closing one."""
    fields = text[text.rindex(")") + 2:].split()
    return ProcessStat(pid=int(text.split(" ", 1)[0]), state=fields[0], parent=int(fields[1]), group=int(fields[2]),
                       start_ticks=int(fields[19]), cpu_ticks=int(fields[11]) + int(fields[12]),
                       name=text[text.index("(") + 1:text.rindex(")")])


def read_stat(pid: int | str) -> ProcessStat | None:
    """What /proc/PID/stat says of a process; None when there is no such process (or no /proc)."""
    try:
        return parse_stat((PROC / str(pid) / "stat").read_text())
    except (OSError, ValueError, IndexError):
        return None


def all_processes() -> Iterator[ProcessStat]:
    """Every process /proc shows, zombies included; one that ends while being read is left out."""
    try:
        entries = list(PROC.iterdir())
    except OSError:
        return
    for entry in entries:
        if entry.name.isdigit() and (stat := read_stat(entry.name)) is not None:
            yield stat


def group_members(group: int) -> list[int]:
    """The live processes of a process group."""
    return [stat.pid for stat in all_processes() if stat.group == group and stat.alive]


def peak_rss_bytes(pid: int) -> int | None:
    """A process's peak resident memory (VmHWM in /proc/PID/status); None when it cannot be read."""
    try:
        for line in (PROC / str(pid) / "status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def _own_group_dying_with_parent() -> None:
    """Runs in the child before exec: own process group, and SIGTERM when the parent dies."""
    os.setsid()
    _LIBC.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


def start_in_own_group(argv: list[str], *, die_with_parent: bool = True, **popen: object) -> subprocess.Popen:
    """Start `argv` as the leader of a process group of its own, so that `stop_process_group` ends it with every
    process it starts; with `die_with_parent`, it also gets SIGTERM when this process dies, so a killed step leaves
    nothing running. A program that dies with its parent by itself (bubblewrap's --die-with-parent) can do without:
    then the child is started without a hook, which keeps the start cheap (no fork of this whole process)."""
    if not die_with_parent:
        return subprocess.Popen(argv, start_new_session=True, **popen)
    # The hook makes only two system calls through a preloaded libc: no locks, safe with threads.
    return subprocess.Popen(argv, preexec_fn=_own_group_dying_with_parent, **popen)  # noqa: PLW1509


def signal_group(group: int, signal_number: int) -> None:
    """Send a signal to every process of a group; a group that is gone already (or not ours) is left be."""
    try:
        os.killpg(group, signal_number)
    except (ProcessLookupError, PermissionError):
        pass


def stop_process_group(process: subprocess.Popen, grace_s: float, *, terminate: bool = True) -> bool:
    """End a process started by `start_in_own_group` and its whole group: TERM the group (with `terminate`; without,
    the process is only waited for), wait up to `grace_s` for the leader to exit, KILL whatever of the group is
    left, reap the leader, then wait (up to GROUP_EXIT_WAIT_S) for the group's other members to exit too, so that
    the memory and devices they held are free when this returns. Returns whether the leader exited within the
    grace, before the KILL."""
    exited = process.poll() is not None
    if not exited:
        if terminate:
            signal_group(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=grace_s)
            exited = True
        except subprocess.TimeoutExpired:
            pass
    signal_group(process.pid, signal.SIGKILL)
    process.wait()
    deadline = time.monotonic() + GROUP_EXIT_WAIT_S
    while group_members(process.pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    return exited
