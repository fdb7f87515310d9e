"""The GPU memory a started engine holds, as nvidia-smi reports it per process: recorded with the deployment, next
to what NVML reports of the GPUs themselves during each load level (gpu_telemetry).
"""

from __future__ import annotations

import os
import subprocess


def group_gpu_memory_bytes(group: int) -> int | None:
    """GPU memory held by the processes of a process group; None without a GPU, or where no process nvidia-smi
    lists is of the group (containers, other PID namespaces, Ray workers)."""
    try:
        listing = subprocess.run(
            ["nvidia-smi", "--query-compute-apps=pid,used_memory", "--format=csv,noheader,nounits"],
            capture_output=True, text=True, timeout=30, check=True).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    used = None
    for line in listing.splitlines():
        pid, _, mib = line.partition(",")
        try:
            if os.getpgid(int(pid)) == group:
                used = (used or 0) + int(float(mib)) * 2**20
        except (ValueError, ProcessLookupError, PermissionError):
            continue
    return used
