"""Process supervision (assets/processes.py): the one parser of /proc/PID/stat, and starting and stopping a process
with its whole group. Every test here is `unit`: the processes started are short Python one-liners."""

import os
import signal
import subprocess
import sys
import time

import pytest

from assets.processes import (
    group_members,
    parse_stat,
    peak_rss_bytes,
    read_stat,
    start_in_own_group,
    stop_process_group,
)

pytestmark = pytest.mark.unit

TAIL = " 0 0 0 0 0 0 0 0 7 5 0 0 0 0 0 0 4242 0 0"   # fields 6 to 24: utime 7, stime 5; field 22, the start, 4242


@pytest.mark.parametrize(("line", "name", "state", "parent", "group"), [
    ("17 (python3) S 1 17" + TAIL, "python3", "S", 1, 17),
    ("17 (vllm serve) R 9 9" + TAIL, "vllm serve", "R", 9, 9),           # a command name with a space
    ("17 (a) b (c)) Z 3 4" + TAIL, "a) b (c)", "Z", 3, 4),              # ... and with parentheses of its own
    ("17 ()) X 3 4" + TAIL, ")", "X", 3, 4),
])
def test_a_stat_line_is_read_after_its_command_name(line, name, state, parent, group):
    stat = parse_stat(line)
    assert (stat.pid, stat.state, stat.parent, stat.group, stat.start_ticks) == (17, state, parent, group, 4242)
    assert (stat.name, stat.cpu_ticks) == (name, 12)
    assert stat.alive is (state not in ("Z", "X"))


def test_this_process_as_proc_shows_it():
    me = read_stat(os.getpid())
    assert (me.pid, me.parent, me.group, me.alive) == (os.getpid(), os.getppid(), os.getpgid(0), True)
    assert read_stat(os.getpid()).start_ticks == me.start_ticks
    assert peak_rss_bytes(os.getpid()) > 1 << 20


def test_a_process_that_does_not_exist_reads_as_none():
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    assert read_stat(child.pid) is None and peak_rss_bytes(child.pid) is None


# Starts a grandchild in its own group (and prints its pid), then sleeps; with DEAF it ignores TERM.
PARENT = ("import signal, subprocess, sys, time\n"
          "if sys.argv[1] == 'deaf': signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
          "child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(120)'])\n"
          "print(child.pid, flush=True)\n"
          "time.sleep(120)\n")


@pytest.mark.parametrize(("hearing", "exits_within_grace"), [("hears", True), ("deaf", False)])
def test_a_stopped_group_leaves_nothing_running(hearing, exits_within_grace):
    process = start_in_own_group([sys.executable, "-c", PARENT, hearing], stdout=subprocess.PIPE, text=True)
    grandchild = int(process.stdout.readline())
    assert read_stat(process.pid).group == process.pid != os.getpgid(0)   # a group of its own
    assert sorted(group_members(process.pid)) == sorted([process.pid, grandchild])
    started = time.monotonic()
    assert stop_process_group(process, grace_s=1.0) is exits_within_grace
    assert time.monotonic() - started < 1.0 + 5
    assert group_members(process.pid) == [] and process.returncode is not None
    process.stdout.close()


def test_without_terminate_the_process_runs_out_its_grace_before_the_kill():
    quick = start_in_own_group([sys.executable, "-c", "import time; time.sleep(0.2)"])
    assert stop_process_group(quick, grace_s=30, terminate=False) is True and quick.returncode == 0
    slow = start_in_own_group([sys.executable, "-c", "import time; time.sleep(120)"])
    started = time.monotonic()
    assert stop_process_group(slow, grace_s=0.5, terminate=False) is False
    assert slow.returncode == -signal.SIGKILL and 0.5 <= time.monotonic() - started < 5


# Starts a server-like child through start_in_own_group and prints its pid; the test then kills this parent.
STARTER = ("import sys, time\n"
           "from assets.processes import start_in_own_group\n"
           "child = start_in_own_group([sys.executable, '-c', 'import time; time.sleep(120)'])\n"
           "print(child.pid, flush=True)\n"
           "time.sleep(120)\n")


def _gone(pid: int, within_s: float) -> bool:
    deadline = time.monotonic() + within_s
    while (stat := read_stat(pid)) is not None and stat.alive:
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.05)
    return True


def test_a_started_process_dies_with_its_parent():
    starter = subprocess.Popen([sys.executable, "-c", STARTER], stdout=subprocess.PIPE, text=True,
                               cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    child = int(starter.stdout.readline())
    try:
        starter.kill()   # SIGKILL: the parent gets no chance to stop anything itself
        starter.wait()
        assert _gone(child, within_s=10)
    finally:
        if not _gone(child, within_s=0):
            os.kill(child, signal.SIGKILL)
        starter.stdout.close()
