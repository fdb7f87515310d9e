"""Free disk space: refuse to start what would fill the disk, and recognise a full disk in a log.

`require_free_space` is the one check, for any step that writes (engine logs, quantized checkpoints, the
warehouse); `disk_full_hint` turns a failure whose log says the disk filled up (or could not be written at all)
into advice.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

MIB = 2**20
# What a started engine writes beside the weights it reads: its log and, where it compiles, its caches.
ENGINE_MIN_FREE_BYTES = 256 * MIB
# Below this, an empty log is taken as one that could not be written.
NEARLY_FULL_BYTES = 64 * MIB
# How a full disk shows in a log: the C library's message, Python's OSError (errno 28), the errno's name.
_DISK_FULL = ("No space left on device", "[Errno 28]", "errno 28", "ENOSPC")


class DiskSpaceError(RuntimeError):
    """Not enough free space on a disk for what is about to be written there."""


def _nearest_existing(path: str | os.PathLike) -> Path:
    """`path`, or its closest ancestor that exists: what will hold it once it is created."""
    candidate = Path(path).resolve()
    while not candidate.exists() and candidate != candidate.parent:
        candidate = candidate.parent
    return candidate


def mount_point(path: str | os.PathLike) -> Path:
    """The mount point of the file system that holds (or will hold) `path`."""
    candidate = _nearest_existing(path)
    while not os.path.ismount(candidate) and candidate != candidate.parent:
        candidate = candidate.parent
    return candidate


def free_bytes(path: str | os.PathLike) -> int:
    """Free bytes, for this user, on the file system that holds (or will hold) `path`."""
    return shutil.disk_usage(_nearest_existing(path)).free


def require_free_space(path: str | os.PathLike, needed_bytes: int, what: str) -> None:
    """Raise DiskSpaceError, before anything is written, when the disk that holds `path` has less than
    `needed_bytes` free; `what` names what needs the space ("engine logs")."""
    free = free_bytes(path)
    if free < needed_bytes:
        raise DiskSpaceError(
            f"only {free // MIB} MiB free on {mount_point(path)} (which holds {path}); {what} needs at least "
            f"{-(-needed_bytes // MIB)} MiB; free space there or point YARDSTICK_HOME elsewhere")


def disk_full_hint(log_tail: str, path: str | os.PathLike) -> str:
    """Advice when a log's tail says the disk filled up, or when the log is empty and the disk that holds `path`
    (its folder) is nearly full; empty otherwise."""
    if any(marker in log_tail for marker in _DISK_FULL):
        return (f"\nThe disk filled up: {mount_point(path)} has {free_bytes(path) // MIB} MiB free now. Free space "
                "there or point YARDSTICK_HOME elsewhere, then run again.")
    if not log_tail.strip() and free_bytes(path) < NEARLY_FULL_BYTES:
        return (f"\nThe log is empty and {mount_point(path)} has only {free_bytes(path) // MIB} MiB free: the disk "
                "is probably full. Free space there or point YARDSTICK_HOME elsewhere, then run again.")
    return ""
