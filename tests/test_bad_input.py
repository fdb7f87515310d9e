"""Bad input is refused before anything is written, naming the file and the line or row, and saying what to do:
benchmark mirror files and price catalogs. (The matrix and variant names: test_errors, test_make_run; the
grade command's input: test_grade_command.)"""

import json
from datetime import UTC, datetime, timedelta

import pytest

from assets.benchmarks.items import load_items
from assets.benchmarks.sources import BenchmarkDataError
from resources.prices import PriceCatalogError, PriceCatalogResource

pytestmark = pytest.mark.unit

GSM8K_ROW = {"question": "1 + 1?", "answer": "one and one\n#### 2"}


def _mirror(tmp_path, name, lines):
    (tmp_path / name).write_bytes(b"".join(lines))
    return tmp_path


def test_an_invalid_byte_in_a_mirror_file_names_the_file_and_line(tmp_path):
    good = json.dumps(GSM8K_ROW).encode() + b"\n"
    mirror = _mirror(tmp_path, "gsm8k_test.jsonl", [good, good, b'{"question": "caf\xe9", "answer": "#### 3"}\n'])
    with pytest.raises(BenchmarkDataError, match=r"gsm8k_test.jsonl line 3 is not valid UTF-8 .*save the file"):
        load_items("gsm8k", mirror, limit=None)


def test_the_whole_mirror_file_is_checked_whatever_the_limit(tmp_path):
    """A limit of 2 items still reads every line: a file broken further down is refused now, not the day the
    limit is raised, so one file never gives one answer for 2 items and another for 200."""
    good = json.dumps(GSM8K_ROW).encode() + b"\n"
    mirror = _mirror(tmp_path, "gsm8k_test.jsonl", [good, good, good, b"not json\n"])
    with pytest.raises(BenchmarkDataError, match="line 4 is not valid JSON"):
        load_items("gsm8k", mirror, limit=2)


def test_a_byte_order_mark_is_not_an_error(tmp_path):
    mirror = _mirror(tmp_path, "gsm8k_test.jsonl", [b"\xef\xbb\xbf" + json.dumps(GSM8K_ROW).encode() + b"\n"])
    assert [item["gold"] for item in load_items("gsm8k", mirror, limit=None)] == ["2"]


@pytest.mark.parametrize(("benchmark", "mirror_file", "row"), [
    ("gsm8k", "gsm8k_test.jsonl", '{"question": "q", "answer": "#### NaN"}'),
    ("gsm8k", "gsm8k_test.jsonl", '{"question": "q", "answer": "#### 1e999"}'),
    ("gsm8k", "gsm8k_test.jsonl", '{"question": "q", "answer": Infinity}'),
    ("math500", "math500.jsonl", '{"problem": "p", "answer": NaN, "unique_id": "x"}'),
    ("math500", "math500.jsonl", '{"problem": "p", "answer": "inf", "unique_id": "x"}'),
    ("aime24", "aime24.jsonl", '{"problem": "p", "answer": "-Infinity", "id": 1}'),
])
def test_a_non_finite_gold_in_a_mirror_is_refused_with_its_row(tmp_path, benchmark, mirror_file, row):
    mirror = _mirror(tmp_path, mirror_file, [row.encode() + b"\n"])
    with pytest.raises(BenchmarkDataError, match=r"row 1: bad gold answer: .*not a finite number"):
        load_items(benchmark, mirror, limit=None)


def _instances(tmp_path, *rows):
    catalog = tmp_path / "instances.csv"
    catalog.write_text("hardware,usd_per_hour,price_date,source\n" + "".join(row + "\n" for row in rows))
    return PriceCatalogResource(instances_path=str(catalog))


@pytest.mark.parametrize("date", ["June 2026", "2026-13-01", "2026/06/01", "01-06-2026", "yesterday"])
def test_a_price_date_that_is_not_a_date_is_refused_naming_the_row(tmp_path, date):
    prices = _instances(tmp_path, "box-a,1.0,2026-06-01,list price", f"box-b,2.0,{date},list price")
    with pytest.raises(PriceCatalogError, match=rf"row 2 \(hardware 'box-b'\): price_date '{date}' is not a date"):
        prices.instances()


def test_a_price_dated_in_the_future_is_refused_naming_the_row(tmp_path):
    tomorrow = (datetime.now(UTC).date() + timedelta(days=1)).isoformat()
    prices = _instances(tmp_path, f"box-a,1.0,{tomorrow},list price", "box-b,2.0,2026-06-01,list price")
    with pytest.raises(PriceCatalogError, match=rf"row 1 \(hardware 'box-a'\): price_date {tomorrow} is in the future"):
        prices.instances()


def test_a_price_dated_today_is_accepted(tmp_path):
    today = datetime.now(UTC).date().isoformat()
    assert list(_instances(tmp_path, f"box-a,1.0,{today},list price").instances()["hardware"]) == ["box-a"]


# What an operator gives the commands: each wrong thing refused with what, where and what to do, exit status 2, and
# nothing written.
def test_a_matrix_that_is_not_utf8_is_named_with_the_byte(tmp_path, capsys):
    from pipelines.cli import main as yardstick

    matrix = tmp_path / "matrix.yaml"
    matrix.write_bytes(b"variants:\n  caf\xe9: {}\n")
    assert yardstick(["variants", "--matrix", str(matrix)]) == 2
    assert f"matrix file {matrix} is not UTF-8 text (invalid continuation byte at byte 16" in capsys.readouterr().err
    assert yardstick(["variants", "--matrix", str(tmp_path)]) == 2
    assert "cannot be read (Is a directory); name a YAML file" in capsys.readouterr().err


def _warehouse_file(tmp_path):
    from resources.warehouse import WarehouseResource

    path = tmp_path / "warehouse.duckdb"
    WarehouseResource(path=str(path)).query("SELECT 1")
    return path


def test_a_damaged_warehouse_is_named_with_what_to_do(tmp_path, capsys):
    from pipelines.cli import main as yardstick

    path = _warehouse_file(tmp_path)
    path.write_bytes(path.read_bytes()[:5000])   # cut short, as a full disk or a copy that stopped leaves it
    assert yardstick(["leaderboard", "--warehouse", str(path)]) == 2
    message = capsys.readouterr().err
    assert f"the warehouse {path} is damaged or not a DuckDB file" in message and "move it aside" in message
    path.write_bytes(b"not a database\n" * 100)
    assert yardstick(["report", "--warehouse", str(path)]) == 2
    assert "is damaged or not a DuckDB file" in capsys.readouterr().err


def _leaderboard_as_another_user(path) -> tuple[int, str]:
    """`yardstick leaderboard --warehouse PATH`'s exit status and stderr, run by a user other than the file's owner:
    as root, a forked child turned into the unprivileged `nobody` (forked, not started afresh, so that it needs
    nothing of the checkout, which `nobody` may not be allowed to read); else this user, the file made unreadable."""
    import contextlib
    import io
    import os

    import assets.leaderboard.printing  # noqa: F401 - imported before the fork: `nobody` may not read the checkout
    from pipelines.cli import main as yardstick

    def run() -> str:
        stderr = io.StringIO()
        with contextlib.redirect_stderr(stderr):
            status = yardstick(["leaderboard", "--warehouse", str(path)])
        return f"{status}\n{stderr.getvalue()}"

    if os.geteuid() != 0:
        path.chmod(0o000)
        status, _, stderr = run().partition("\n")
        return int(status), stderr
    reader, writer = os.pipe()
    child = os.fork()
    if child == 0:   # pragma: no cover - the child reports through the pipe
        try:
            os.close(reader)
            os.setgroups([])
            os.setgid(65534)
            os.setuid(65534)
            answer = run()
        except BaseException as error:   # noqa: BLE001 - whatever it is, the parent reports it
            answer = f"99\n{type(error).__name__}: {error}"
        os.write(writer, answer.encode())
        os._exit(0)
    os.close(writer)
    with os.fdopen(reader) as pipe:
        answer = pipe.read()
    os.waitpid(child, 0)
    status, _, stderr = answer.partition("\n")
    return int(status), stderr


def test_a_warehouse_this_user_may_not_read_is_named_with_what_to_do(tmp_path, capsys):
    path = _warehouse_file(tmp_path)
    path.chmod(0o600)
    status, stderr = _leaderboard_as_another_user(path)
    assert status == 2, stderr[-2000:]
    assert f"the warehouse {path} cannot be read here" in stderr and "Traceback" not in stderr


def test_grading_a_folder_or_an_empty_file_says_so_and_writes_nothing(tmp_path, capsys):
    from pipelines.cli import main as yardstick

    output = tmp_path / "out.jsonl"
    assert yardstick(["grade", "--benchmark", "gsm8k", "--input", str(tmp_path), "--output", str(output)]) == 2
    assert f"{tmp_path} cannot be read (Is a directory); name a JSONL file" in capsys.readouterr().err
    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n\n")
    assert yardstick(["grade", "--benchmark", "gsm8k", "--input", str(empty), "--output", str(output)]) == 2
    assert f"{empty} has no lines to grade; nothing was written" in capsys.readouterr().err
    assert not output.exists()
