"""Functions the worker-pool tests run in worker processes (importable by name, as spawn requires)."""

import os
import time


def echo_hang_or_crash(value: str) -> str:
    if value == "hang":
        time.sleep(600)
    if value == "crash":
        os._exit(3)
    if value == "raise":
        raise ValueError("bad input")
    return value
