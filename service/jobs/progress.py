"""Tile progress from the engine to a job's record: throttled, with a cancellation check per tile batch.

Why throttled: the engine reports every batch (tens per second for small tiles); the record (a Redis hash
across the network, or the page's SSE stream) needs a few updates a second, not one write per tile.
"""

from __future__ import annotations

import time
from collections.abc import Callable

PUBLISH_EVERY_S = 0.25


class JobCancelled(Exception):
    """Raised from inside the engine's tile loop when the job was cancelled: inference stops there."""


class ProgressReporter:
    """The engine's `on_progress(n_tiles)`: counts tiles, publishes the count at most every
    PUBLISH_EVERY_S seconds (and always the last one), and asks `cancelled()` after every batch."""

    def __init__(
        self,
        total: int,
        publish: Callable[[int], None],
        cancelled: Callable[[], bool],
        every_s: float = PUBLISH_EVERY_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.total, self.done = total, 0
        self._publish, self._cancelled, self._every, self._clock = publish, cancelled, every_s, clock
        self._last = clock()
        self.published = 0  # how many writes it made (tests check the throttle)

    def __call__(self, tiles: int) -> None:
        self.done += tiles
        if self._cancelled():
            raise JobCancelled
        now = self._clock()
        if self.done >= self.total or now - self._last >= self._every:
            self._last = now
            self.published += 1
            self._publish(self.done)
