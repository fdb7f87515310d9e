"""Measurement conditions (assets/engine/host_load.py): the arithmetic of who used the host's CPU against hand
counts on made-up /proc snapshots, the policies before an engine starts, the core split; then a real engine
(llama.cpp on the tiny model's GGUF file) measured quiet and beside a CPU hog, through the serving loop the
serving_benchmark asset runs, the pricing the cost rollup does and the comparison the serving regression check
makes.

Tiers per test: the arithmetic and the policies are `unit`; the real engine is `integration`.
"""

import os
from dataclasses import replace

import pytest

from assets.cost.pricing import priced_level
from assets.engine import host_load
from assets.engine.host_load import (
    CLEAN,
    CONTENDED,
    BusyHostError,
    HostConditions,
    HostSnapshot,
    Thresholds,
    check_host_before_start,
    conditions,
    cpu_split,
    pinned,
)
from assets.engine.loadtest import Endpoint
from assets.engine.serving import serving_rows
from assets.leaderboard.regressions import NOT_COMPARABLE, serving_findings
from assets.matrix import EngineSpec, MatrixError, load_matrix
from pipelines import settings
from resources.engines import EngineResource
from resources.ports import port_listeners
from tests.conftest import ROOT
from tests.instruments.cpu_hog import cpu_hogs

T = host_load.TICKS_PER_S
ENGINE, ENGINE_CORE, LOADGEN, OTHER = 10, 11, 20, 30


def snapshot(at_s: float, busy: float, ticks: dict[int, float], steal: float = 0.0, stall_us: int | None = 0,
             started: dict[int, int] | None = None) -> HostSnapshot:
    """A host at `at_s` with its busy and steal time in core-seconds, and each process's CPU in core-seconds."""
    groups = {ENGINE: ENGINE, ENGINE_CORE: ENGINE, LOADGEN: LOADGEN, OTHER: OTHER}
    processes = {pid: (f"p{pid}", groups.get(pid, pid), (started or {}).get(pid, 1), round(seconds * T))
                 for pid, seconds in ticks.items()}
    return HostSnapshot(at_s, round(busy * T), round(steal * T), processes, stall_us)


@pytest.mark.unit
def test_other_processes_cpu_is_the_hosts_busy_time_less_the_engines_and_the_load_generators():
    before = snapshot(100.0, 50.0, {ENGINE: 10.0, ENGINE_CORE: 5.0, LOADGEN: 1.0, OTHER: 0.0})
    # Over 2 s: the engine 1.5 core-s (server 0.5, engine core 1.0), the load generator 0.2, `p30` 1.0, and a
    # process started meanwhile (pid 40) 0.1: busy time 2.8 core-s.
    after = snapshot(102.0, 52.8, {ENGINE: 10.5, ENGINE_CORE: 6.0, LOADGEN: 1.2, OTHER: 1.0, 40: 0.1})
    seen = conditions(before, after, {ENGINE}, {LOADGEN})
    assert (seen.host_engine_cores, seen.host_loadgen_cores) == (pytest.approx(0.75), pytest.approx(0.1))
    assert seen.host_other_cores == pytest.approx(0.55)   # (2.8 - 1.5 - 0.2) / 2
    assert seen.host_condition == CONTENDED and seen.contended
    assert seen.host_contention == ("other processes used 0.55 cores (more than 0.25): p30 (pid 30) 0.50 cores; "
                                    "p40 (pid 40) 0.05 cores")
    # The same host with the other process idle: 0.05 cores of others is clean.
    quiet = snapshot(102.0, 51.8, {ENGINE: 10.5, ENGINE_CORE: 6.0, LOADGEN: 1.2, OTHER: 0.0, 40: 0.1})
    seen = conditions(before, quiet, {ENGINE}, {LOADGEN})
    assert (seen.host_condition, seen.host_contention, seen.host_busiest_others) == (CLEAN, None,
                                                                                     "p40 (pid 40) 0.05 cores")


@pytest.mark.unit
def test_a_pid_reused_by_a_new_process_counts_from_zero_and_steal_and_memory_stalls_contend_too():
    before = snapshot(0.0, 10.0, {ENGINE: 5.0, OTHER: 4.0})
    after = snapshot(4.0, 12.0, {ENGINE: 6.0, OTHER: 1.0}, started={OTHER: 99})   # pid 30 is another process now
    seen = conditions(before, after, {ENGINE}, set())
    assert seen.host_other_cores == pytest.approx(0.25) and seen.host_busiest_others == "p30 (pid 30) 0.25 cores"
    assert seen.host_condition == CLEAN   # 0.25 is not more than 0.25
    stolen = conditions(snapshot(0.0, 0.0, {}, steal=1.0), snapshot(2.0, 0.0, {}, steal=1.4), set(), set())
    assert stolen.host_steal_cores == pytest.approx(0.2) and stolen.contended
    assert "the hypervisor took 0.20 cores of steal" in stolen.host_contention
    stalled = conditions(snapshot(0.0, 0.0, {}, stall_us=0), snapshot(2.0, 0.0, {}, stall_us=400_000), set(), set())
    assert stalled.host_memory_stall_share == pytest.approx(0.2) and "waited on memory 20%" in stalled.host_contention
    unknown = conditions(snapshot(0.0, 0.0, {}, stall_us=None), snapshot(2.0, 0.0, {}, stall_us=None), set(), set())
    assert unknown.host_memory_stall_share is None and unknown.host_condition == CLEAN
    assert conditions(before, after, {ENGINE}, set(), Thresholds(other_cores=0.2)).contended
    # Over a level of 50 ms, 2 ticks of another process read as 0.4 cores, but 20 ms of CPU is no contention.
    short = conditions(snapshot(0.0, 0.0, {OTHER: 0.0}), snapshot(0.05, 0.02, {OTHER: 0.02}), set(), set())
    assert short.host_other_cores == pytest.approx(0.4) and short.host_condition == CLEAN


@pytest.mark.unit
def test_before_an_engine_starts_a_busy_host_is_reported_then_started_waited_for_or_refused():
    busy = HostConditions(CONTENDED, "other processes used 1.00 cores (more than 0.25): stress (pid 7) 1.00 cores")
    quiet = HostConditions(CLEAN)

    def looks(*seen):
        answers = list(seen)
        return lambda: answers.pop(0)

    logged = []
    assert check_host_before_start("warn", 60, logged.append, look=looks(busy)) is busy
    assert "this host is busy: other processes used 1.00 cores" in logged[0] and "stress (pid 7)" in logged[0]
    assert "starting anyway" in logged[0]
    logged.clear()
    assert check_host_before_start("wait", 60, logged.append, look=looks(busy, busy, quiet)) is quiet
    assert len(logged) == 2 and all("waiting for it to quieten" in line for line in logged)
    with pytest.raises(BusyHostError, match=r"Not starting the engine \(serving busy_host: refuse\): stop what"):
        check_host_before_start("refuse", 60, logged.append, look=looks(busy))
    with pytest.raises(BusyHostError, match=r"busy_host: wait, waited 0 s"):
        check_host_before_start("wait", 0, logged.append, look=looks(busy))
    assert check_host_before_start("refuse", 0, logged.append, look=looks(quiet)) is quiet


@pytest.mark.unit
def test_the_busy_host_setting_is_one_of_three(tmp_path):
    assert load_matrix().variant("tiny-test").serving.busy_host == "warn"
    path = tmp_path / "m.yaml"
    path.write_text((ROOT / "tests" / "matrix.test.yaml").read_text().replace(
        "serving: {concurrency: [1, 2],", "serving: {busy_host: sometimes, concurrency: [1, 2],", 1))
    with pytest.raises(MatrixError, match="serving busy_host is one of warn, wait, refuse, not 'sometimes'"):
        load_matrix(path)


@pytest.mark.unit
def test_the_front_core_is_the_first_usable_one_and_a_thread_keeps_to_it_only_for_the_block():
    assert cpu_split([0]) is None and cpu_split([]) is None
    assert cpu_split([5, 3, 4]) == host_load.CpuSplit(front=(3,), compute=(4, 5))
    usable = os.sched_getaffinity(0)
    with pinned({min(usable)}):
        assert os.sched_getaffinity(0) == {min(usable)}
    assert os.sched_getaffinity(0) == usable
    with pinned(()):
        assert os.sched_getaffinity(0) == usable


@pytest.fixture(scope="module")
def llamacpp(tiny_gguf):
    """llama-server on the tiny GGUF file, one compute thread (the load generator keeps to the front core)."""
    spec = EngineSpec("llamacpp", {"parallel": 4, "max_model_len": 512, "startup_timeout_s": 120, "threads": 1})
    engine = EngineResource(log_dir=str(settings.home() / "test-logs"), cpu_threads=1)
    with engine.deploy(spec, str(tiny_gguf), served_name="tiny-busy-host", log_name="test-busy-host-engine",
                       warmup_sampling={"temperature": 0.6}) as deployment:
        yield deployment


def measured_level(deployment, variant) -> dict:
    levels, requests = serving_rows(Endpoint(deployment.base_url, deployment.served_model), variant, (),
                                    dict(os.environ), lambda _: None, port_listeners)
    assert len(levels) == 1 and all(request["ok"] for request in requests)
    return levels[0]


def priced(level: dict) -> dict:
    """What the serving regression check reads of a run priced at `level` (history.PRICED_LEVEL_SQL)."""
    chosen, _, condition = priced_level([level])
    return {"best_profile": chosen["profile"], "best_load": chosen["load"], "ttft_ms_p99": chosen["ttft_ms_p99"],
            "tpot_ms_p99": chosen["tpot_ms_p99"], "output_tokens_per_s": chosen["output_throughput"],
            "usd_per_million_output_tokens": 1.0, **condition}


@pytest.mark.integration
def test_a_level_beside_a_cpu_hog_is_flagged_not_priced_silently_and_not_compared(llamacpp):
    variant = load_matrix().variant("tiny-test-llamacpp")
    variant = replace(variant, serving=replace(variant.serving, concurrency=(2,), request_rates=(),
                                               requests_per_level=64, warmup_requests=1, output_len=48))
    quiet = measured_level(llamacpp, variant)
    assert quiet["host_condition"] == CLEAN, quiet   # an idle host raises no false alarm
    assert quiet["host_engine_cores"] > 0 and quiet["host_loadgen_cores"] > 0
    with cpu_hogs(2) as hogs:
        busy = measured_level(llamacpp, variant)
    assert busy["host_condition"] == CONTENDED, busy
    assert busy["host_other_cores"] > 0.25 and any(f"(pid {pid})" in busy["host_contention"] for pid in hogs)

    # The cost rollup prices the quiet level where there is one, and says so where every level was busy.
    assert priced_level([busy, quiet])[0] is quiet and priced_level([busy, quiet])[2] == {
        "priced_host_condition": CLEAN, "priced_host_contention": None}
    _, _, condition = priced_level([busy])
    assert condition == {"priced_host_condition": CONTENDED, "priced_host_contention": busy["host_contention"]}

    # The serving regression check does not compare a busy run with a quiet one, either way round.
    for before, after in ((quiet, busy), (busy, quiet)):
        findings = serving_findings(priced(before), priced(after), 0.15, 0.3, 0.15)
        assert [(f.kind, f.regressed) for f in findings] == [(NOT_COMPARABLE, False)]
        assert "measured on a busy host" in findings[0].evidence["why"]
    assert NOT_COMPARABLE not in {f.kind for f in serving_findings(priced(quiet), priced(quiet), 0.15, 0.3, 0.15)}
