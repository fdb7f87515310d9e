"""What every benchmark is: the `Benchmark` base class its own module instantiates (or subclasses where its rows
need reading of their own), and the gold-answer rules several benchmarks share."""

from __future__ import annotations

import math
import string
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from assets.benchmarks.sources import Source
from assets.grading.formats import AnswerFormat

LETTERS = string.ascii_uppercase


@dataclass(frozen=True)
class Benchmark:
    """A benchmark: its name, where its rows come from, the answer format it is graded in, the fields each row
    needs (and the one that is its id; None: its position), and how its gold answer is normalised.

    A row becomes an item by `item(row, position)` (problem text, raw gold): by default the first two of
    `fields`. `keeps(row, options)` narrows the rows by the benchmark's options, which `checked_options` checks;
    by default a benchmark takes none."""

    name: str
    source: Source
    answer_format: AnswerFormat
    normalise_gold: Callable[[Any], str]
    fields: tuple[str, ...] = ("problem", "answer")
    id_field: str | None = None

    def item(self, row: dict, position: int) -> tuple[str, Any]:
        return str(row[self.fields[0]]), row[self.fields[1]]

    def checked_options(self, options: dict | None) -> dict:
        """The options as given, once checked (ValueError says what is wrong)."""
        if options:
            raise ValueError(f"benchmark '{self.name}' takes no options, got {sorted(options)}")
        return {}

    def keeps(self, row: dict, options: dict) -> bool:
        return True


def refuse_non_finite(raw: Any) -> None:
    """No gold answer is NaN or infinite: refuse what float() reads as one (NaN, Infinity, 'inf', '1e999')."""
    try:
        value = float(str(raw).strip())
    except ValueError:
        return
    if not math.isfinite(value):
        raise ValueError(f"{raw!r} is not a finite number, and no gold answer is one")


def integer_gold(raw: Any) -> str:
    """AIME writes zero-padded strings ('025'), AIME 2025 ints, AMC floats ('27.0'): all become '25'."""
    refuse_non_finite(raw)
    value = float(str(raw).strip())
    if not value.is_integer():
        raise ValueError(f"expected an integer answer, got {raw!r}")
    return str(int(value))


def latex_gold(raw: Any) -> str:
    refuse_non_finite(raw)
    return str(raw).strip()


def choice_gold(raw: Any) -> str:
    """A choice letter, given as a letter ('C') or as a 0-based index (2)."""
    if isinstance(raw, int) or str(raw).strip().isdigit():
        index = int(raw)
        if not 0 <= index < len(LETTERS):
            raise ValueError(f"choice index {raw!r} is outside 0-{len(LETTERS) - 1}")
        return LETTERS[index]
    letter = str(raw).strip().upper()
    if len(letter) != 1 or letter not in LETTERS:
        raise ValueError(f"expected a choice letter or index, got {raw!r}")
    return letter


def lettered(options: list[str]) -> str:
    """Options listed under a question as 'A. …', one a line."""
    return "\n".join(f"{LETTERS[i]}. {option}" for i, option in enumerate(options))
