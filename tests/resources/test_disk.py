"""A full disk is named as such: refused before an engine starts, and recognised in the log of one that died."""

import shutil
from collections import namedtuple

import pytest

from assets.matrix import EngineSpec
from resources.disk import MIB, DiskSpaceError, disk_full_hint, mount_point, require_free_space
from resources.engines import EngineError, EngineResource
from resources.launchers.readiness import wait_until_ready

pytestmark = pytest.mark.unit

PLENTY = 100 * 1024 * MIB
DiskUsage = namedtuple("DiskUsage", "total used free")   # what shutil.disk_usage returns


@pytest.fixture
def free_space(monkeypatch):
    """Set how many bytes every disk has free, as shutil.disk_usage reports it."""
    def set_free(free: int) -> None:
        monkeypatch.setattr(shutil, "disk_usage", lambda path: DiskUsage(PLENTY, PLENTY - free, free))
    return set_free


def test_too_little_free_space_is_refused_with_what_to_do(tmp_path, free_space):
    free_space(10 * MIB)
    with pytest.raises(DiskSpaceError) as raised:
        require_free_space(tmp_path / "logs" / "not-yet-made", 256 * MIB, "engine logs")
    message = str(raised.value)
    assert message.startswith("only 10 MiB free on /")
    assert "engine logs needs at least 256 MiB" in message
    assert "free space there or point YARDSTICK_HOME elsewhere" in message


def test_enough_free_space_passes(tmp_path, free_space):
    free_space(256 * MIB)
    require_free_space(tmp_path, 256 * MIB, "engine logs")


def test_an_engine_is_not_started_on_a_full_disk(tmp_path, free_space):
    free_space(1 * MIB)
    model = tmp_path / "model"
    model.mkdir()
    engine = EngineResource(log_dir=str(tmp_path / "logs"), vllm_command="no-such-command")
    with pytest.raises(DiskSpaceError, match="an engine's start"), engine.deploy(
            EngineSpec(kind="vllm", options={}), str(model), "v", "full"):
        pass
    assert not (tmp_path / "logs").exists()


@pytest.mark.parametrize(("tail", "free", "hint"), [
    ("OSError: [Errno 28] No space left on device", PLENTY, "The disk filled up"),
    ("RuntimeError: [enforce fail at inline_container.cc:595] . PytorchStreamWriter failed writing file "
     "data/0: file write failed (errno 28)", PLENTY, "The disk filled up"),
    ("write /root/.cache/vllm: ENOSPC", PLENTY, "The disk filled up"),
    ("", 10 * MIB, "The log is empty"),                   # nothing could be written, not even the log
    ("", PLENTY, ""),
    ("torch.OutOfMemoryError: CUDA out of memory", 10 * MIB, ""),   # a log that says why is believed
])
def test_disk_full_hint(tmp_path, free_space, tail, free, hint):
    free_space(free)
    found = disk_full_hint(tail, tmp_path)
    assert (found == "") if not hint else (hint in found and "point YARDSTICK_HOME elsewhere" in found)


class ExitedProcess:
    """What wait_until_ready sees of an engine that has exited with code 1."""

    returncode = 1

    def poll(self) -> int:
        return self.returncode


@pytest.mark.parametrize(("log", "free", "expected"), [
    ("Loading weights\nOSError: [Errno 28] No space left on device\n", PLENTY, "The disk filled up"),
    ("", 0, "(the log is empty)\nThe log is empty and"),
])
def test_an_engine_that_died_of_a_full_disk_says_so(tmp_path, free_space, log, free, expected):
    free_space(free)
    log_path = tmp_path / "engine.log"
    log_path.write_text(log)
    with pytest.raises(EngineError) as raised:
        wait_until_ready(ExitedProcess(), ["http://127.0.0.1:9/health"], 60, log_path, "vllm serve")
    message = str(raised.value)
    assert "vllm serve exited with code 1 before it was ready" in message
    assert expected in message and "point YARDSTICK_HOME elsewhere" in message


def test_the_mount_named_is_the_one_holding_the_path(tmp_path):
    mount = mount_point(tmp_path / "not-yet-made" / "logs")
    assert mount.is_mount() and tmp_path.resolve().is_relative_to(mount)


def test_a_warehouse_write_on_a_full_disk_is_refused_before_anything_is_written(tmp_path, free_space):
    import pandas as pd

    from resources.warehouse import WarehouseResource

    warehouse = WarehouseResource(path=str(tmp_path / "warehouse.duckdb"))
    warehouse.query("SELECT 1")   # the file, with its schema
    before = (tmp_path / "warehouse.duckdb").read_bytes()
    free_space(1 * MIB)
    row = pd.DataFrame([{"variant": "v", "run_id": "r", "engine": "vllm", "base_url": "http://h/v1",
                         "served_model": "m", "started_at": pd.Timestamp("2026-12-01"), "status": "running"}])
    with pytest.raises(DiskSpaceError, match=r"writing to the warehouse .*needs at least 64 MiB"):
        warehouse.upsert("engine_deployments", row)
    assert (tmp_path / "warehouse.duckdb").read_bytes() == before
    with warehouse.connect(read_only=True) as reader:   # reading needs no room
        assert reader.execute("SELECT count(*) FROM engine_deployments").fetchone() == (0,)
