"""Fan-out of alert transitions to live subscribers (the SSE streams of open boards)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from kpi_service.alerts.model import Transition


class Hub:
    """Each subscriber gets its own bounded queue; a board that stops reading is dropped."""

    def __init__(self, queue_size: int = 1000) -> None:
        self.queue_size = queue_size
        self._subscribers: set[asyncio.Queue[Transition | None]] = set()

    def publish(self, transition: Transition) -> None:
        for queue in list(self._subscribers):
            try:
                queue.put_nowait(transition)
            except asyncio.QueueFull:
                self._subscribers.discard(queue)
                while not queue.empty():
                    queue.get_nowait()
                queue.put_nowait(None)

    @asynccontextmanager
    async def subscribe(self) -> AsyncIterator[asyncio.Queue[Transition | None]]:
        """A queue of transitions; ``None`` means "you fell behind, reconnect"."""
        queue: asyncio.Queue[Transition | None] = asyncio.Queue(self.queue_size)
        self._subscribers.add(queue)
        try:
            yield queue
        finally:
            self._subscribers.discard(queue)

    @property
    def subscribers(self) -> int:
        return len(self._subscribers)
