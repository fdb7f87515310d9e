"""How an item becomes the messages sent: the protocol's system prompt and instruction, unless the item's answer
format states its own."""

from dataclasses import dataclass

import pytest

from assets.benchmarks.prompts import build_messages

pytestmark = pytest.mark.unit


@dataclass(frozen=True)
class Protocol:
    system_prompt: str | None
    prompt_suffix: str


SUFFIX = "Please reason step by step, and put your final answer within \\boxed{}."


@pytest.mark.parametrize(("protocol", "format_name", "messages"), [
    (Protocol(None, SUFFIX), "latex", [{"role": "user", "content": f"P\n{SUFFIX}"}]),
    (Protocol(None, SUFFIX), "choice", [{"role": "user", "content": f"P\n{SUFFIX}"}]),
    (Protocol(None, SUFFIX), None, [{"role": "user", "content": f"P\n{SUFFIX}"}]),
    (Protocol(None, SUFFIX), "code", [{"role": "user", "content": "P"}]),
    (Protocol(None, ""), "integer", [{"role": "user", "content": "P"}]),
    (Protocol("Be brief.", SUFFIX), "number", [{"role": "system", "content": "Be brief."},
                                                {"role": "user", "content": f"P\n{SUFFIX}"}]),
    (Protocol("Be brief.", SUFFIX), "code", [{"role": "system", "content": "Be brief."},
                                              {"role": "user", "content": "P"}]),
])
def test_messages(protocol, format_name, messages):
    assert build_messages("P", protocol, format_name) == messages


def test_an_unknown_format_is_refused():
    with pytest.raises(ValueError, match="answer format 'essay' unknown"):
        build_messages("P", Protocol(None, SUFFIX), "essay")
