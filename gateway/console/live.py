"""Live updates: the read model's stream of applied changes, fanned out in the gateway process to
the console's server-sent-event streams. No browser ever reads Kafka, and the read model does no
more work per browser: each written batch calls `publish` once with the execution ids it changed.

Each subscriber has a small bounded queue of id sets. A subscriber that does not keep up (its
queue full) is told to refresh everything once (`None`) instead of growing a backlog.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

QUEUE_SIZE = 16
Update = frozenset[str] | None  # the executions that changed; None: resynchronise (some were missed)


class Subscription:
    def __init__(self, execution_id: str | None) -> None:
        self.execution_id = execution_id  # only this execution's changes; None: every change
        self.queue: asyncio.Queue[Update] = asyncio.Queue(QUEUE_SIZE)
        self.closed = asyncio.Event()

    def offer(self, changed: frozenset[str]) -> None:
        if self.execution_id is not None:
            if self.execution_id not in changed:
                return
            changed = frozenset((self.execution_id,))
        try:
            self.queue.put_nowait(changed)
        except asyncio.QueueFull:  # slow reader: one resync instead of a backlog
            while not self.queue.empty():
                self.queue.get_nowait()
            self.queue.put_nowait(None)


class ChangeHub:
    def __init__(self, max_subscribers: int = 256) -> None:
        self.max_subscribers = max_subscribers
        self._subscribers: set[Subscription] = set()
        self.closed = False

    @property
    def subscribers(self) -> int:
        return len(self._subscribers)

    def publish(self, changed: frozenset[str]) -> None:
        """Called on the loop by the read model after each written batch."""
        for subscription in tuple(self._subscribers):
            subscription.offer(changed)

    @asynccontextmanager
    async def subscribe(self, execution_id: str | None = None) -> AsyncIterator[Subscription]:
        if self.closed or len(self._subscribers) >= self.max_subscribers:
            raise HubFull
        subscription = Subscription(execution_id)
        self._subscribers.add(subscription)
        try:
            yield subscription
        finally:
            self._subscribers.discard(subscription)

    def close(self) -> None:
        """End every stream (the gateway is stopping)."""
        self.closed = True
        for subscription in self._subscribers:
            subscription.closed.set()
            while not subscription.queue.empty():  # wake the stream now, not at its next keep-alive
                subscription.queue.get_nowait()
            subscription.queue.put_nowait(None)


class HubFull(Exception):
    """No more live streams (the cap reached, or the gateway is stopping)."""
