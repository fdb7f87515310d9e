"""Calibration sets (assets/models/calibration.py): drawn from training data, never from test items."""

import pytest

from assets.benchmarks.synthetic import arithmetic_items
from assets.models.calibration import CalibrationError, calibration_texts, parse_source

pytestmark = pytest.mark.unit


def test_calibration_never_uses_test_items():
    with pytest.raises(CalibrationError, match="the split the 'math500' benchmark tests on"):
        parse_source("hf:HuggingFaceH4/MATH-500@test")
    assert parse_source("hf:openai/gsm8k:main@train").split == "train"
    questions = {row["problem"] for row in arithmetic_items()}
    texts = calibration_texts(parse_source("arith-train"), FakeTemplate(), 50)
    assert len(texts) == 50 and not any(question in text for text in texts for question in questions)


class FakeTemplate:
    """Renders a chat as plain text; enough to see which questions a calibration set holds."""

    @staticmethod
    def apply_chat_template(messages, tokenize=False, add_generation_prompt=False):
        return "".join(message["content"] for message in messages) + "|"
