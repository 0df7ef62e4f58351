"""What the human oracles share: waiting for answers that a person gives outside the run."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def wait_for(fetch: Callable[[], T | None], wait: bool, poll_seconds: float, timeout_seconds: float | None) -> T | None:
    """`fetch()` once, or with `wait` every `poll_seconds` until it returns something or `timeout_seconds` pass."""
    deadline = None if timeout_seconds is None else time.monotonic() + timeout_seconds
    while (found := fetch()) is None:
        if not wait or (deadline is not None and time.monotonic() >= deadline):
            return None
        time.sleep(poll_seconds)
    return found
