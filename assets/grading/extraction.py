"""From a model's whole output to its final answer: reasoning split off, and the text rules the answer formats
(assets.grading.formats) are made of."""

from __future__ import annotations

import re
from dataclasses import dataclass

THINK_CLOSE = "</think>"
THINK_OPEN = "<think>"
BOXED_COMMANDS = ("\\boxed", "\\fbox")
NUMBER_PATTERN = re.compile(r"-?\d[\d,]*(?:\.\d+)?")
GSM8K_MARKER_PATTERN = re.compile(r"####\s*(-?[\d,]*\.?\d+)")
CLOCK_PATTERN = re.compile(r"^\s*(\d{1,2}):(\d{2})(?:\s*([ap])\.?\s*m\.?)?\s*$", re.IGNORECASE)
# A choice is a lone letter, maybe bracketed, maybe followed by its option text: never a letter inside a word.
CHOICE_PATTERN = re.compile(r"^(?:option\s+|choice\s+)?\(?([A-Ja-j])\)?(?:[.:)]|\s|$)", re.IGNORECASE)
# "The answer is C", "Answer: (C)", "**Answer:** C": the word, then "is" or a colon, then the letter.
ANSWER_IS_CHOICE_PATTERN = re.compile(
    r"(?i:answer)(?:\*\*)?(?:\s*:|\s+is(?:\s*:)?)(?:\*\*)?\s*\(?([A-J])\)?(?![A-Za-z])")
# A capital letter in parentheses, "(C)": taken only when the answer names exactly one.
PARENTHESIZED_CHOICE_PATTERN = re.compile(r"\(([A-J])\)")


@dataclass(frozen=True)
class SplitResponse:
    reasoning: str
    answer: str
    terminated: bool  # False when the reasoning block never closed: there is no answer to grade


def split_reasoning(
    response: str,
    reasoning_content: str | None = None,
    reasoning_prefilled: bool = True,
    finish_reason: str | None = None,
) -> SplitResponse:
    """Everything up to the last </think> (or the engine's separate reasoning_content) is reasoning.

    With a prefilled "<think>\\n" the reply starts inside the reasoning block, so text without </think>
    is all reasoning. An engine that split reasoning itself returns an empty answer when </think> never came.
    Otherwise the response decides: an opened <think> never closed is cut short; with neither tag the
    response is the answer, unless the length limit cut it (finish_reason 'length').
    """
    if THINK_CLOSE in response:
        before, after = response.rsplit(THINK_CLOSE, 1)
        return SplitResponse((reasoning_content or "") + before, after, True)
    if reasoning_content:
        terminated = bool(response.strip()) or finish_reason not in ("length", None)
        return SplitResponse(reasoning_content, response, terminated)
    if reasoning_prefilled or THINK_OPEN in response:
        return SplitResponse(response, "", False)
    return SplitResponse("", response, finish_reason != "length")


def last_boxed(text: str) -> str | None:
    """Content of the last \\boxed{...} (nested braces allowed) or \\boxed x; None when there is none."""
    best_start = max(text.rfind(command) for command in BOXED_COMMANDS)
    if best_start < 0:
        return None
    command = next(c for c in BOXED_COMMANDS if text.startswith(c, best_start))
    rest = text[best_start + len(command):]
    if rest.startswith(" "):
        match = re.match(r"\s+([^\s$]+)", rest)
        return match.group(1) if match else None
    if not rest.startswith("{"):
        return None
    depth = 0
    for index, char in enumerate(rest):
        if char == "{":
            depth += 1
        elif char == "}":
            depth -= 1
            if depth == 0:
                return rest[1:index].strip()
    return None


def choice_letter(text: str) -> str | None:
    """'C', '(C)', 'C)', 'C.', '\\text{C}', 'C. 42 kg', 'Option C' → 'C'; anything else → None."""
    cleaned = re.sub(r"\\text(?:bf)?\{([^{}]*)\}", r"\1", text).strip().strip("$").strip()
    match = CHOICE_PATTERN.match(cleaned)
    return match.group(1).upper() if match else None


def clock_time(text: str) -> tuple[int, int, str | None] | None:
    """'4:30', '4:30 p.m.', '\\text{4:30 p.m.}', '4:30 \\text{ PM}' → (4, 30, 'p' or None); else None."""
    unwrapped = re.sub(r"\\text\{([^{}]*)\}", r"\1", text).replace("\\ ", " ").replace("~", " ")
    match = CLOCK_PATTERN.match(unwrapped)
    if not match:
        return None
    return int(match.group(1)), int(match.group(2)), match.group(3).lower() if match.group(3) else None


def as_number(text: str) -> float | None:
    """A plain number written the usual ways ('1,450', '$18', '27.0', '10,\\!000', '\\$5'); else None."""
    cleaned = text.strip().strip("$").replace("\\!", "").replace("{,}", "").replace(",", "")
    cleaned = re.sub(r"^\\\$|\\%$|%$|\\text\{[^{}]*\}$", "", cleaned).strip()
    try:
        return float(cleaned)
    except ValueError:
        return None
