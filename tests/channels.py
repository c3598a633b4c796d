"""A stand-in for the pool's ``redactor.pool.Channel`` for chunks run one after the other in the test process."""
from __future__ import annotations

from typing import Callable


class LocalChannel:
    """What a chunk publishes is there for the chunks run after it; ``fetch`` never waits."""

    def __init__(self, progress: Callable[[int], None] | None = None):
        self.shared: dict = {}
        self._progress = progress

    def progress(self, n: int) -> None:
        if self._progress is not None:
            self._progress(n)

    def publish(self, items: dict) -> None:
        self.shared.update(items)

    def fetch(self, keys: list, wait: bool = False) -> dict:
        return {k: self.shared[k] for k in keys if k in self.shared}
