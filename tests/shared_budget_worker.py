"""
One process of the multi-process shared-budget test.

Run as ``python -m tests.shared_budget_worker BASE_URL KEY REDIS PREFIX
CALLERS CALLS PERIOD``: it sends CALLERS concurrent ``init`` calls through a
Redis-backed budget and prints one JSON line with what it saw.
"""

from __future__ import annotations

import asyncio
import json
import sys

from vicket_async import (
    Event,
    RateLimit,
    RateLimited,
    RedisBudgetStore,
    VicketClient,
)


async def main(argv: list[str]) -> None:
    base_url, key, redis_url, prefix = argv[:4]
    callers, calls, period = int(argv[4]), int(argv[5]), float(argv[6])
    events: list[Event] = []
    store = RedisBudgetStore(redis_url, prefix=prefix)
    async with VicketClient(
        api_key=key,
        base_url=base_url,
        budget_store=store,
        rate_limits={"init": RateLimit(calls, period)},
        on_event=events.append,
        cache_ttl=None,
    ) as vicket:
        await asyncio.gather(*(vicket.init() for _ in range(callers)))
    await store.aclose()
    refused = sum(isinstance(e, RateLimited) for e in events)
    sys.stdout.write(json.dumps({"sent": callers, "refused": refused}) + "\n")


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1:]))
