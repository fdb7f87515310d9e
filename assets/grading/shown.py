"""Text that came from a model, as it may be printed or logged: bounded, and with control characters shown rather
than sent. A response can hold terminal escape sequences (`\x1b]0;title\x07`, colours, a cleared screen) and
megabytes; a log line must not carry them to the operator's terminal."""

from __future__ import annotations

import logging
import re

SHOWN_CHARACTERS = 300
# C0 and C1 controls (tab and newline included: one log line stays one line), DEL, and the bidirectional
# overrides and isolates that make a terminal show text in another order than it is.
_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")
# The libraries that log what they were given to parse (math-verify logs the whole answer it timed out on).
MODEL_TEXT_LOGGERS = ("math_verify.parser", "math_verify.grader", "math_verify.metric", "math_verify.tasks",
                      "latex2sympy2_extended")


def shown(text: str, limit: int = SHOWN_CHARACTERS) -> str:
    """`text` cut to `limit` characters (saying how many more there were), each control character as its escape."""
    cut = text[:limit]
    escaped = _UNSAFE.sub(lambda match: match.group().encode("unicode_escape").decode("ascii"), cut)
    return escaped if len(text) <= limit else f"{escaped}… ({len(text) - limit} more characters)"


class ModelTextFilter(logging.Filter):
    """Makes every record of a logger it is on printable: its message bounded and escaped by `shown`."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg, record.args = shown(record.getMessage()), ()
        return True


def guard_library_logs() -> None:
    """Put the filter on the loggers of the libraries that log model text (once per process)."""
    for name in MODEL_TEXT_LOGGERS:
        logger = logging.getLogger(name)
        if not any(isinstance(existing, ModelTextFilter) for existing in logger.filters):
            logger.addFilter(ModelTextFilter())
