"""How a benchmark item becomes a chat request under a protocol."""

from __future__ import annotations

from typing import Protocol as TypingProtocol


class PromptProtocol(TypingProtocol):
    system_prompt: str | None
    prompt_suffix: str


def build_messages(problem: str, protocol: PromptProtocol, answer_format: str | None = None) -> list[dict[str, str]]:
    """DeepSeek-R1 style: no system prompt unless the protocol has one; the instruction follows the problem. A
    code problem carries its own instruction (a fenced block, not \\boxed{}), so the protocol's is not added."""
    messages = []
    if protocol.system_prompt:
        messages.append({"role": "system", "content": protocol.system_prompt})
    content = (f"{problem}\n{protocol.prompt_suffix}" if protocol.prompt_suffix and answer_format != "code"
               else problem)
    messages.append({"role": "user", "content": content})
    return messages
