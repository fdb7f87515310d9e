"""GPQA Diamond (assets/benchmarks/gpqa_diamond.py): options shuffled with a fixed seed, gold a letter."""

import json

import pytest

from assets.benchmarks.items import load_items

pytestmark = pytest.mark.unit


def test_gpqa_rows_get_a_seeded_shuffle_and_a_letter(tmp_path):
    row = {"Record ID": "rec1", "Question": "Which is heaviest?", "Correct Answer": "lead",
           "Incorrect Answer 1": "air", "Incorrect Answer 2": "water", "Incorrect Answer 3": "wood"}
    (tmp_path / "gpqa_diamond.jsonl").write_text(json.dumps(row) + "\n" + json.dumps({**row, "Record ID": "rec2"}))
    first, _ = load_items("gpqa_diamond", tmp_path, None)
    assert first == load_items("gpqa_diamond", tmp_path, None)[0]
    assert first["answer_format"] == "choice" and first["item_id"] == "rec1"
    options = dict(line.split(". ", 1) for line in first["problem"].split("\n\n")[1].splitlines())
    assert options[first["gold"]] == "lead" and sorted(options.values()) == ["air", "lead", "water", "wood"]
