"""Items: rows checked and turned into problems with normalised gold, the first `limit` kept."""

import json

import pytest

from assets.benchmarks.arith import ARITH
from assets.benchmarks.items import load_items, normalise_rows
from assets.benchmarks.sources import BenchmarkDataError
from tests.conftest import SHARED_BENCHMARKS, needs_shared

pytestmark = pytest.mark.unit


def test_rows_become_items_with_every_column():
    items = normalise_rows(ARITH, [{"id": "a", "problem": "1+1?", "answer": "2.0"}, {"id": "b", "problem": "?",
                                                                                      "answer": 3}], "here", None)
    assert items[0] == {"benchmark": "arith", "item_id": "a", "position": 0, "problem": "1+1?", "gold": "2",
                        "gold_raw": "2.0", "answer_format": "integer", "source": "here"}
    assert [item["item_id"] for item in items] == ["a", "b"]


@pytest.mark.parametrize(("rows", "error"), [
    ([{"id": "a", "problem": "?"}], r"here row 1 lacks field\(s\) \['answer'\] needed by benchmark 'arith'"),
    ([{"id": "a", "problem": "?", "answer": 1}, {"id": "a", "problem": "?", "answer": 2}],
     "here row 2: item id 'a' is also row 1"),
    ([{"id": "a", "problem": "?", "answer": 1}, {"id": "b", "problem": "?", "answer": "1.5"}],
     "here row 2: bad gold answer: expected an integer answer"),   # past the limit, still checked
])
def test_every_row_is_checked_even_past_the_limit(rows, error):
    with pytest.raises(BenchmarkDataError, match=error):
        normalise_rows(ARITH, rows, "here", 1)


def test_options_a_benchmark_does_not_take_are_refused():
    with pytest.raises(BenchmarkDataError, match="benchmark 'arith' takes no options"):
        load_items("arith", None, 2, {"release": "v1"})


def test_a_livecodebench_window_keeps_the_rows_dated_inside_it(tmp_path):
    rows = [{"question_id": f"q{day}", "question_content": "Print 1.", "contest_date": f"2024-05-{day:02d}T00:00:00",
             "public_test_cases": json.dumps([{"input": "", "output": "1\n", "testtype": "stdin"}])}
            for day in (1, 10, 20)]
    (tmp_path / "livecodebench.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    items = load_items("livecodebench", tmp_path, None, {"since": "2024-05-05", "until": "2024-05-20"})
    assert [(item["item_id"], item["position"]) for item in items] == [("q10", 0), ("q20", 1)]


@needs_shared
@pytest.mark.parametrize(("name", "count", "first_id", "first_gold", "answer_format"), [
    ("gsm8k", 1319, "0", "18", "number"),
    ("math500", 500, "test/precalculus/807.json", "\\left( 3, \\frac{\\pi}{2} \\right)", "latex"),
    ("aime24", 30, "60", "204", "integer"),
    ("mmlu_stem", 3018, "0", "C", "choice"),
    ("humaneval", 164, "HumanEval/0", None, "code"),
    ("arith", 200, "arith-000", None, "integer"),
])
def test_the_offline_benchmarks_load(name, count, first_id, first_gold, answer_format):
    items = load_items(name, SHARED_BENCHMARKS, None)
    assert (len(items), items[0]["item_id"], items[0]["answer_format"]) == (count, first_id, answer_format)
    assert first_gold is None or items[0]["gold"] == first_gold


@needs_shared
def test_benchmark_file_missing_a_field(tmp_path):
    rows = [json.loads(line) for line in (SHARED_BENCHMARKS / "gsm8k_test.jsonl").open()][:3]
    del rows[1]["answer"]
    (tmp_path / "gsm8k_test.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    with pytest.raises(BenchmarkDataError,
                       match=r"gsm8k_test.jsonl row 2 lacks field\(s\) \['answer'\] .*present: \['question'\]"):
        load_items("gsm8k", tmp_path, None)


@needs_shared
def test_every_row_of_a_mirror_file_is_checked_whatever_the_item_limit(tmp_path):
    rows = [json.loads(line) for line in (SHARED_BENCHMARKS / "aime24.jsonl").open()][:6]
    del rows[4]["answer"]   # beyond the 2 items asked for
    (tmp_path / "aime24.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    with pytest.raises(BenchmarkDataError, match=r"aime24.jsonl row 5 lacks field\(s\) \['answer'\]"):
        load_items("aime24", tmp_path, 2)
    rows[4]["answer"] = rows[3]["answer"]
    rows[5]["id"] = rows[1]["id"]   # a duplicate id, which the warehouse's key would refuse without a word of where
    (tmp_path / "aime24.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    with pytest.raises(BenchmarkDataError, match=rf"aime24.jsonl row 6: item id '{rows[1]['id']}' is also row 2"):
        load_items("aime24", tmp_path, 2)


@needs_shared
@pytest.mark.parametrize(("name", "count", "first_gold"), [
    ("gsm8k", 1319, "18"), ("math500", 500, "\\left( 3, \\frac{\\pi}{2} \\right)"), ("aime24", 30, None),
    ("aime25", 30, "70"), ("amc23", 40, "27"),
])
def test_every_mirror_file_loads_with_normalised_gold(name, count, first_gold):
    items = load_items(name, SHARED_BENCHMARKS, None)
    assert len(items) == count
    assert len({item["item_id"] for item in items}) == count
    if first_gold is not None:
        assert items[0]["gold"] == first_gold
    if name in ("aime24", "aime25", "amc23"):
        assert all(item["gold"].lstrip("-").isdigit() and not item["gold"].startswith("0") or item["gold"] == "0"
                   for item in items)


def _mirror(tmp_path, name, lines):
    (tmp_path / name).write_bytes(b"".join(lines))
    return tmp_path


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
