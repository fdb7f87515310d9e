"""How a benchmark item becomes a chat request under a protocol."""

from __future__ import annotations

from typing import Protocol as TypingProtocol

from assets.grading.formats import answer_format


class PromptProtocol(TypingProtocol):
    system_prompt: str | None
    prompt_suffix: str


def build_messages(problem: str, protocol: PromptProtocol, format_name: str | None = None) -> list[dict[str, str]]:
    """DeepSeek-R1 style: no system prompt unless the protocol has one; the instruction follows the problem. A
    problem whose answer format states its own instruction (code: a fenced block, not \\boxed{}) does not get the
    protocol's."""
    messages = []
    if protocol.system_prompt:
        messages.append({"role": "system", "content": protocol.system_prompt})
    instructed = format_name is None or answer_format(format_name).uses_protocol_instruction
    content = f"{problem}\n{protocol.prompt_suffix}" if protocol.prompt_suffix and instructed else problem
    messages.append({"role": "user", "content": content})
    return messages
