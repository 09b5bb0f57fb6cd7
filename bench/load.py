"""Loopback HTTP load for the gateway: open-loop create latency, closed-loop capacity.

Every load is bounded in count and in time and stops by itself.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp

from gateway.webhook import signature_header


def _pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * len(ordered)) - 1))]


def _create_body(plan: Any) -> bytes:
    return json.dumps({
        "proposal_id": plan.raw["proposal_id"], "version_no": plan.raw["version_no"],
        "execution_policy": {"time_in_force": "DAY", "allow_partial_fills": True, "max_slippage_bps": "25",
                             "dry_run": False},
        "actor": {"requested_by": "advisor_001", "channel": "ADVISOR_APP"},
    }).encode()


def _other(statuses: dict[int, int], ok: int) -> str:
    rest = {s: n for s, n in statuses.items() if s != ok}
    return "" if not rest else "; other statuses " + ", ".join(f"{s}×{n}" for s, n in sorted(rest.items()))


async def create_latency(port: int, token: str, plans: list[Any], rate: float) -> dict[str, Any]:
    """POST /rebalance/executions at a fixed offered rate (open loop); latency until 201."""
    url = f"http://127.0.0.1:{port}/rebalance/executions"
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    connector = aiohttp.TCPConnector(limit=1000)
    timeout = aiohttp.ClientTimeout(total=30)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        async def one(plan: Any) -> None:
            headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json",
                       "Idempotency-Key": f"bench-{uuid.uuid4().hex}"}
            started = time.perf_counter()
            try:
                async with session.post(url, data=_create_body(plan), headers=headers) as response:
                    await response.read()
                    status = response.status
            except (TimeoutError, aiohttp.ClientError):
                status = 0
            statuses[status] = statuses.get(status, 0) + 1
            if status == 201:
                latencies.append((time.perf_counter() - started) * 1000)

        tasks = []
        began = time.perf_counter()
        for index, plan in enumerate(plans):
            delay = began + index / rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(one(plan)))
        offered = len(plans) / (time.perf_counter() - began)
        await asyncio.wait_for(asyncio.gather(*tasks), 60)
    return {"sent": len(plans), "ok": statuses.get(201, 0), "offered_rps": offered, "p50": _pct(latencies, 50),
            "p95": _pct(latencies, 95), "p99": _pct(latencies, 99), "other": _other(statuses, 201)}


async def _saturate(seconds: float, concurrency: int, request: Callable[[], Awaitable[int | None]],
                    ok_status: int) -> dict[str, Any]:
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    deadline = time.perf_counter() + seconds
    began = time.perf_counter()

    async def worker() -> None:
        while time.perf_counter() < deadline:
            started = time.perf_counter()
            status = await request()
            if status is None:  # nothing left to send
                return
            statuses[status] = statuses.get(status, 0) + 1
            if status == ok_status:
                latencies.append((time.perf_counter() - started) * 1000)

    await asyncio.wait_for(asyncio.gather(*(worker() for _ in range(concurrency))), seconds + 60)
    elapsed = time.perf_counter() - began
    return {"rps": len(latencies) / elapsed, "seconds": elapsed, "concurrency": concurrency,
            "p50": _pct(latencies, 50), "p99": _pct(latencies, 99), "other": _other(statuses, ok_status)}


async def create_capacity(port: int, token: str, plans: list[Any], seconds: float,
                          concurrency: int = 64) -> dict[str, Any]:
    url = f"http://127.0.0.1:{port}/rebalance/executions"
    queue = iter(plans)
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=concurrency),
                                     timeout=aiohttp.ClientTimeout(total=30)) as session:
        async def request() -> int | None:
            plan = next(queue, None)
            if plan is None:
                return None
            headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json",
                       "Idempotency-Key": f"bench-{uuid.uuid4().hex}"}
            try:
                async with session.post(url, data=_create_body(plan), headers=headers) as response:
                    await response.read()
                    return response.status
            except (TimeoutError, aiohttp.ClientError):
                return 0

        result = await _saturate(seconds, concurrency, request, 201)
    result["exhausted"] = next(queue, None) is None
    return result


async def webhook_capacity(port: int, secret: str, token: str, targets: list[tuple[str, list[str]]],
                           seconds: float, concurrency: int = 64) -> dict[str, Any]:
    """Signed OMS webhooks (a status report each, unique event id) for known executions and tickets."""
    cycle = itertools.cycle([(eid, tid) for eid, tickets in targets for tid in tickets])
    counter = itertools.count()
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=concurrency),
                                     timeout=aiohttp.ClientTimeout(total=30)) as session:
        async def request() -> int:
            execution_id, ticket_id = next(cycle)
            body = json.dumps({
                "event_id": f"wh-bench-{next(counter)}-{uuid.uuid4().hex[:8]}", "source": "OMS_BENCH",
                "event_type": "ORDER_ACCEPTED", "ticket_id": ticket_id, "external_order_id": f"oms-{ticket_id}",
                "occurred_at": "2026-02-18T12:00:00Z",
            }).encode()
            headers = {"Content-Type": "application/json", "Authorization": f"Bearer {token}",
                       "X-Signature": signature_header(secret, body)}
            try:
                async with session.post(f"http://127.0.0.1:{port}/rebalance/executions/{execution_id}/events",
                                        data=body, headers=headers) as response:
                    await response.read()
                    return response.status
            except (TimeoutError, aiohttp.ClientError):
                return 0

        return await _saturate(seconds, concurrency, request, 202)
