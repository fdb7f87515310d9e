"""Is a step's process alive (assets/engine/liveness.py): this one, an exited one, a reused pid, another host."""

import subprocess
import sys

import pytest

from assets.engine.liveness import Worker, this_worker
from assets.processes import read_stat

pytestmark = pytest.mark.unit


def test_this_process_is_alive():
    state, why = this_worker().state()
    assert state == "alive", why
    assert Worker.from_tag(this_worker().tag()) == this_worker()


def test_a_process_that_exited_is_dead():
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    worker = Worker.from_tag(this_worker().tag().rsplit(" ", 2)[0] + f" {child.pid} "
                             + str(read_stat(child.pid).start_ticks))
    assert worker.state()[0] == "alive"
    child.kill()
    child.wait()
    state, why = worker.state()
    assert state == "dead" and f"process {child.pid} no longer exists" in why


def test_a_reused_pid_or_a_restart_is_dead_and_another_host_is_not_judged():
    me = this_worker()
    assert Worker(me.host, me.boot, me.pid, "1").state()[0] == "dead"     # same pid, another start: reused
    state, why = Worker(me.host, "another-boot", me.pid, me.started).state()
    assert state == "dead" and "restarted" in why
    assert Worker(me.host + "-elsewhere", me.boot, me.pid, me.started).state()[0] == "elsewhere"
    assert Worker.from_tag("not a worker tag") is None
