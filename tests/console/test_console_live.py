"""The console's live-update hub (gateway.console.live): fan-out per execution, a bounded queue
that turns a backlog into one resync, a cap on streams, and streams woken when the gateway stops."""

from __future__ import annotations

import asyncio

import pytest

from gateway.console.live import QUEUE_SIZE, ChangeHub, HubFull


def test_hub_execution_stream_gets_only_its_execution_and_the_list_stream_everything() -> None:
    async def scenario() -> None:
        hub = ChangeHub()
        async with hub.subscribe("exec_a") as one, hub.subscribe() as every:
            hub.publish(frozenset({"exec_a", "exec_b"}))
            hub.publish(frozenset({"exec_b"}))
            assert one.queue.get_nowait() == frozenset({"exec_a"}) and one.queue.empty()
            assert every.queue.qsize() == 2
        assert hub.subscribers == 0
    asyncio.run(scenario())


def test_hub_slow_stream_gets_one_resync_instead_of_a_backlog() -> None:
    async def scenario() -> None:
        hub = ChangeHub()
        async with hub.subscribe() as slow:
            for n in range(QUEUE_SIZE + 5):
                hub.publish(frozenset({f"exec_{n}"}))
            items = [slow.queue.get_nowait() for _ in range(slow.queue.qsize())]
            assert None in items and len(items) <= QUEUE_SIZE
    asyncio.run(scenario())


def test_hub_past_its_cap_or_closed_refuses_streams_and_close_wakes_the_open_ones() -> None:
    async def scenario() -> None:
        hub = ChangeHub(max_subscribers=1)
        async with hub.subscribe() as only:
            with pytest.raises(HubFull):
                async with hub.subscribe():
                    pass
            hub.close()
            assert await asyncio.wait_for(only.queue.get(), 1) is None
        with pytest.raises(HubFull):
            async with hub.subscribe():
                pass
    asyncio.run(scenario())
