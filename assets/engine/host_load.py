"""What else the host was doing while a serving level ran: the conditions a measurement was taken in, so that a
figure measured on a busy host is flagged rather than priced as if it were true.

Read from /proc at the level's start and end (the same way GpuWatch reads NVML around it):
- other processes' CPU, in cores: the host's busy time (/proc/stat: user, nice, system, irq, softirq) less the
  engine's processes (its process groups: a server and what it started) and the load generator (this process);
  processes that started or ended during the level count, kernel threads too;
- CPU steal (a VM's vCPUs waiting for the hypervisor), in cores;
- memory pressure: the share of the level some task waited on memory (/proc/pressure/memory, where the kernel has
  PSI);
- the 1-minute load average at the end;
- the busiest other processes, by name and pid, to say what was using the machine.

A level is `contended` when another process used more than `Thresholds.other_cores` cores, steal more than
`steal_cores`, or memory stalls more than `memory_stall_share` of the level; else `clean`. Where /proc cannot be
read the condition is `not watched: <why>`, and nothing is claimed either way. The thresholds and the noise of an
idle host they were set against are in the README (tests/measure/busy_host.py measures both).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from assets.processes import all_processes

CLEAN = "clean"
CONTENDED = "contended"
PROC_STAT = Path("/proc/stat")
MEMORY_PRESSURE = Path("/proc/pressure/memory")
TICKS_PER_S = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
BUSIEST_SHOWN = 3
BUSIEST_MIN_CORES = 0.05   # a process using less than this is not named among the busiest


@dataclass(frozen=True)
class Thresholds:
    """Above any of these a level is contended. An idle 2-core VM measured 0.00–0.03 cores of others and no steal
    (tests/measure/busy_host.py); a quarter of a core is well above that and well below a busy process. Others'
    CPU and steal count only from `min_cpu_s` seconds in all: /proc counts in ticks (10 ms), and over a level of
    a tenth of a second one tick of a kernel thread would read as a tenth of a core."""

    other_cores: float = 0.25
    steal_cores: float = 0.10
    memory_stall_share: float = 0.10
    min_cpu_s: float = 0.10


@dataclass(frozen=True)
class HostSnapshot:
    at_s: float                                # monotonic seconds
    busy_ticks: int                            # the whole host's, from /proc/stat
    steal_ticks: int
    processes: dict[int, tuple[str, int, int, int]]   # pid: (name, group, start ticks, CPU ticks)
    memory_stall_us: int | None                # /proc/pressure/memory's `some total`; None without PSI


@dataclass(frozen=True)
class HostConditions:
    host_condition: str                        # clean | contended | not watched: <why>
    host_contention: str | None = None         # why it is contended
    host_other_cores: float | None = None      # CPU used by everything but the engine and the load generator
    host_engine_cores: float | None = None
    host_loadgen_cores: float | None = None
    host_steal_cores: float | None = None
    host_memory_stall_share: float | None = None
    host_load_avg_1m: float | None = None
    host_busiest_others: str | None = None     # "stress (pid 4242) 0.98 cores; ..."

    @property
    def contended(self) -> bool:
        return self.host_condition == CONTENDED

    def row(self) -> dict:
        return asdict(self)


def not_watched(why: str) -> HostConditions:
    return HostConditions(host_condition=f"not watched: {why}")


def with_gpu_contention(host: HostConditions, reason: str | None) -> HostConditions:
    """The level's conditions with what its GPUs showed (GpuLevelTelemetry.contention): contended where they
    were slowed down or shared, whatever the host's CPU did."""
    if not reason:
        return host
    return replace(host, host_condition=CONTENDED,
                   host_contention="; ".join(filter(None, [host.host_contention, reason])))


def group_pids(groups: set[int]) -> set[int]:
    """The live processes of these process groups."""
    return {stat.pid for stat in all_processes() if stat.group in groups and stat.alive}


def _cpu_ticks() -> tuple[int, int]:
    """The host's busy and steal ticks since boot, from the `cpu` line of /proc/stat."""
    fields = [int(value) for value in PROC_STAT.read_text().split("\n", 1)[0].split()[1:]]
    user, nice, system, _idle, _iowait, irq, softirq, steal = (fields + [0] * 8)[:8]
    return user + nice + system + irq + softirq, steal


def _memory_stall_us() -> int | None:
    try:
        for line in MEMORY_PRESSURE.read_text().splitlines():
            if line.startswith("some"):
                return int(line.rsplit("total=", 1)[1])
    except (OSError, ValueError, IndexError):
        return None
    return None


def snapshot() -> HostSnapshot:
    """The host's counters now. Raises OSError where there is no /proc/stat (not Linux)."""
    busy, steal = _cpu_ticks()
    processes = {stat.pid: (stat.name, stat.group, stat.start_ticks, stat.cpu_ticks) for stat in all_processes()}
    return HostSnapshot(time.monotonic(), busy, steal, processes, _memory_stall_us())


def _used_ticks(before: HostSnapshot, after: HostSnapshot, pid: int) -> int:
    """The ticks a process used between the snapshots: all it has used where it started after the first."""
    _, _, start, ticks = after.processes[pid]
    earlier = before.processes.get(pid)
    if earlier is not None and earlier[2] == start:
        return max(0, ticks - earlier[3])
    return ticks


def _busiest(before: HostSnapshot, after: HostSnapshot, others: Iterable[int], seconds: float) -> str | None:
    used = sorted(((_used_ticks(before, after, pid) / TICKS_PER_S / seconds, pid) for pid in others), reverse=True)
    shown = [f"{after.processes[pid][0]} (pid {pid}) {cores:.2f} cores" for cores, pid in used[:BUSIEST_SHOWN]
             if cores >= BUSIEST_MIN_CORES]
    return "; ".join(shown) or None


def conditions(before: HostSnapshot, after: HostSnapshot, engine_groups: set[int], loadgen: set[int],
               thresholds: Thresholds = Thresholds()) -> HostConditions:
    """The conditions between two snapshots, the engine being the processes of `engine_groups` and the load
    generator the processes `loadgen`."""
    seconds = after.at_s - before.at_s
    if seconds <= 0:
        return not_watched("the level took no time")
    engine = [pid for pid, (_, group, _, _) in after.processes.items() if group in engine_groups]
    ours = [pid for pid in after.processes if pid in loadgen and pid not in engine]
    others = [pid for pid in after.processes if pid not in engine and pid not in ours]

    def cores(ticks: float) -> float:
        return ticks / TICKS_PER_S / seconds

    engine_cores = cores(sum(_used_ticks(before, after, pid) for pid in engine))
    loadgen_cores = cores(sum(_used_ticks(before, after, pid) for pid in ours))
    other_cores = max(0.0, cores(after.busy_ticks - before.busy_ticks) - engine_cores - loadgen_cores)
    steal_cores = cores(after.steal_ticks - before.steal_ticks)
    stall = (None if before.memory_stall_us is None or after.memory_stall_us is None
             else (after.memory_stall_us - before.memory_stall_us) / 1e6 / seconds)
    busiest = _busiest(before, after, others, seconds)
    reasons = []
    if other_cores > thresholds.other_cores and other_cores * seconds >= thresholds.min_cpu_s:
        reasons.append(f"other processes used {other_cores:.2f} cores (more than {thresholds.other_cores:g})"
                       + (f": {busiest}" if busiest else ""))
    if steal_cores > thresholds.steal_cores and steal_cores * seconds >= thresholds.min_cpu_s:
        reasons.append(f"the hypervisor took {steal_cores:.2f} cores of steal (more than {thresholds.steal_cores:g})")
    if stall is not None and stall > thresholds.memory_stall_share:
        reasons.append(f"tasks waited on memory {stall:.0%} of the time (more than "
                       f"{thresholds.memory_stall_share:.0%})")
    return HostConditions(
        host_condition=CONTENDED if reasons else CLEAN, host_contention="; ".join(reasons) or None,
        host_other_cores=round(other_cores, 3), host_engine_cores=round(engine_cores, 3),
        host_loadgen_cores=round(loadgen_cores, 3), host_steal_cores=round(steal_cores, 3),
        host_memory_stall_share=None if stall is None else round(stall, 4),
        host_load_avg_1m=round(os.getloadavg()[0], 2), host_busiest_others=busiest)


class HostWatch:
    """Held (`async with`) around a level's measured requests, like GpuWatch: snapshots the host at entry and exit,
    then `summary` holds the level's conditions. `engine_groups` says which process groups are the engine's, asked
    at exit (an engine may start processes during the level); None where the engine is not on this host."""

    def __init__(self, engine_groups: Callable[[], set[int]] | str, thresholds: Thresholds = Thresholds()):
        self.engine_groups = engine_groups   # a str: why the host is not watched
        self.thresholds = thresholds
        self.summary = not_watched("the watch was not held")
        self._before: HostSnapshot | None = None

    def __enter__(self) -> HostWatch:
        if isinstance(self.engine_groups, str):
            self.summary = not_watched(self.engine_groups)
            return self
        try:
            self._before = snapshot()
        except OSError as error:
            self.summary = not_watched(f"/proc cannot be read ({error})")
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self._before is None:
            return
        after = snapshot()
        groups = self.engine_groups()
        if not groups:
            self.summary = not_watched("no process of this host could be seen serving the endpoint (another "
                                       "user's, or in a container): the engine's CPU cannot be told from others'")
            return
        self.summary = conditions(self._before, after, groups, {os.getpid()}, self.thresholds)

    async def __aenter__(self) -> HostWatch:
        return self.__enter__()

    async def __aexit__(self, *exc_info: object) -> None:
        self.__exit__(*exc_info)


def host_now(window_s: float, engine_groups: set[int] = frozenset(), thresholds: Thresholds = Thresholds(),
             sleep: Callable[[float], None] = time.sleep) -> HostConditions:
    """What the host does over the next `window_s` seconds, this process aside: before an engine starts, whether
    the numbers it would measure now can be trusted."""
    try:
        before = snapshot()
        sleep(window_s)
        return conditions(before, snapshot(), set(engine_groups), {os.getpid()}, thresholds)
    except OSError as error:
        return not_watched(f"/proc cannot be read ({error})")


@dataclass(frozen=True)
class CpuSplit:
    """How a CPU engine and the load generator share a host's cores: the front core takes the load generator (and
    the engine's API server, which the kernel puts where the compute threads do not poll), the others the engine's
    compute threads. vLLM's CPU build busy-polls its compute threads' cores; anything scheduled there waits for
    the poll to yield."""

    front: tuple[int, ...]
    compute: tuple[int, ...]


def cpu_split(usable: Iterable[int] | None = None) -> CpuSplit | None:
    """The first of the cores this process may use for the front, the rest for compute; None with fewer than two
    (nothing to split)."""
    cores = sorted(usable if usable is not None else os.sched_getaffinity(0))
    if len(cores) < 2:
        return None
    return CpuSplit(front=(cores[0],), compute=tuple(cores[1:]))


@contextmanager
def pinned(cores: Iterable[int]) -> Iterator[None]:
    """This thread (and the threads it starts meanwhile) kept to `cores` for the block, then put back; nothing
    where `cores` is empty or the host cannot pin."""
    cores = set(cores)
    if not cores or not hasattr(os, "sched_setaffinity"):
        yield
        return
    before = os.sched_getaffinity(0)
    os.sched_setaffinity(0, cores)
    try:
        yield
    finally:
        os.sched_setaffinity(0, before)


BUSY_HOST_WINDOW_S = 2.0


class BusyHostError(RuntimeError):
    """The host was busy before an engine started and the variant's `busy_host` setting refuses that."""


def check_host_before_start(policy: str, wait_s: float, log: Callable[[str], None],
                            thresholds: Thresholds = Thresholds(), window_s: float = BUSY_HOST_WINDOW_S,
                            look: Callable[[], HostConditions] | None = None) -> HostConditions:
    """Before an engine starts: whether the host is quiet enough for its numbers to be trusted. A busy host is
    reported with what is using it; then, by `policy`, the start goes on (`warn`: its levels will be flagged),
    waits up to `wait_s` for the host to quieten (`wait`), or is refused (`refuse`, and `wait` once time is up)
    with BusyHostError."""
    look = look or (lambda: host_now(window_s, thresholds=thresholds))
    started = time.monotonic()
    while True:
        now = look()
        if not now.contended:
            return now
        message = (f"this host is busy: {now.host_contention}. Serving numbers measured now would not be "
                   "trustworthy (each level is checked and flagged contended)")
        waited = time.monotonic() - started
        if policy == "warn":
            log(f"{message}; starting anyway (serving busy_host: warn)")
            return now
        if policy == "refuse" or waited >= wait_s:
            raise BusyHostError(f"{message}. Not starting the engine (serving busy_host: {policy}"
                                + (f", waited {waited:.0f} s" if policy == "wait" else "")
                                + "): stop what is using the machine, or set busy_host: warn to measure anyway")
        log(f"{message}; waiting for it to quieten ({waited:.0f} of {wait_s:.0f} s, serving busy_host: wait)")
