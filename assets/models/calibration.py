"""Calibration sets for quantization methods that need data (GPTQ, SmoothQuant): drawn from a named source
that is never the items a variant is tested on.

Sources:
- `arith-train`: the generated arithmetic training distribution of the offline tiny model (disjoint from the
  `arith` benchmark's items by construction).
- `hf:<dataset>[:<config>]@<split>`: a hub dataset split loaded with `datasets.load_dataset`; rows with a chat
  `messages` list are rendered with the model's chat template, rows with a `text` field are used as they are.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from assets.benchmarks.registry import BENCHMARKS
from assets.benchmarks.sources import hub_test_split

_HUB_SOURCE = re.compile(r"^hf:(?P<dataset>[^:@]+)(?::(?P<config>[^@]+))?@(?P<split>.+)$")


class CalibrationError(ValueError):
    """The calibration source is unknown, unreadable, or would leak test items."""


@dataclass(frozen=True)
class CalibrationSource:
    name: str
    dataset: str | None = None
    config: str | None = None
    split: str | None = None

    @property
    def generated(self) -> bool:
        return self.dataset is None


def parse_source(name: str) -> CalibrationSource:
    """Check a calibration source's name; refuse any benchmark's test split."""
    if name == "arith-train":
        return CalibrationSource(name)
    match = _HUB_SOURCE.match(name or "")
    if not match:
        raise CalibrationError(f"calibration source '{name}' unknown; use 'arith-train' or "
                               "'hf:<dataset>[:<config>]@<split>' "
                               "(for example hf:HuggingFaceH4/ultrachat_200k@train_sft)")
    source = CalibrationSource(name, match["dataset"], match["config"], match["split"])
    for benchmark in BENCHMARKS.values():
        if hub_test_split(benchmark.source) == (source.dataset, source.split):
            raise CalibrationError(
                f"calibration source '{name}' is the split the '{benchmark.name}' benchmark tests on; calibrating "
                "on test items would flatter the quantized model. Use another split or dataset")
    return source


def calibration_texts(source: CalibrationSource, tokenizer, count: int, seed: int = 0) -> list[str]:
    """`count` calibration texts from `source`, rendered as the model sees its inputs."""
    if source.generated:
        from assets.benchmarks.synthetic import training_examples

        return [_chat(tokenizer, [{"role": "user", "content": q}], add_generation_prompt=True) + completion
                for q, completion in training_examples(count)]
    import datasets

    try:
        rows = datasets.load_dataset(source.dataset, source.config, split=source.split)
    except Exception as error:  # offline, gated or misspelt: say which source and what to do
        raise CalibrationError(f"cannot load calibration source {source.name} ({type(error).__name__}: {error}); "
                               "check the name, HF_TOKEN for gated sets, or use a mirror") from error
    rows = rows.shuffle(seed=seed).select(range(min(count, len(rows))))
    if "messages" in rows.column_names:
        return [_chat(tokenizer, row["messages"]) for row in rows]
    if "text" in rows.column_names:
        return list(rows["text"])
    raise CalibrationError(f"calibration source {source.name} has neither 'messages' nor 'text' columns "
                           f"(it has {rows.column_names})")


def _chat(tokenizer, messages: list[dict], add_generation_prompt: bool = False) -> str:
    return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=add_generation_prompt)
