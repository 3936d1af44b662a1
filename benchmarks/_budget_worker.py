"""
One process of the shared-budget benchmark.

``python -m benchmarks._budget_worker BASE_URL KEY REDIS_URL|- CALLERS
SECONDS PERIOD`` creates tickets from CALLERS coroutines for SECONDS, with a
budget of 10 per PERIOD kept in Redis (or, with ``-``, in this process
only), and prints one JSON line: tickets created and 429s met.
"""

from __future__ import annotations

import asyncio
import json
import logging
import sys
import time

from vicket_async import (
    Event,
    RateLimit,
    RateLimited,
    RedisBudgetStore,
    RetryPolicy,
    VicketClient,
    VicketError,
)

ANSWERS = {"q_idea": "faster exports", "q_contact_ok": True}


async def main(argv: list[str]) -> None:
    # The parent counts 429s from the server's log; keep stderr quiet.
    logging.getLogger("vicket_async").setLevel(logging.ERROR)
    base_url, key, redis_url = argv[:3]
    callers, seconds, period = int(argv[3]), float(argv[4]), float(argv[5])
    store = RedisBudgetStore(redis_url) if redis_url != "-" else None
    events: list[Event] = []
    created = 0
    # Start together: the parent passes the moment to begin.
    start_at = float(argv[6])
    await asyncio.sleep(max(0.0, start_at - time.time()))
    stop_at = time.monotonic() + seconds
    async with VicketClient(
        api_key=key,
        base_url=base_url,
        budget_store=store,
        rate_limits={"create_ticket": RateLimit(10, period)},
        retry=RetryPolicy(attempts=5, total=30),
        on_event=events.append,
    ) as vicket:

        async def caller() -> None:
            nonlocal created
            while (left := stop_at - time.monotonic()) > 0:
                try:
                    await vicket.create_ticket(
                        email="bench@example.com",
                        title="shared budget",
                        template="tpl_feature",
                        answers=ANSWERS,
                        deadline=left,
                    )
                except VicketError:
                    continue
                if time.monotonic() <= stop_at:
                    created += 1

        await asyncio.gather(*(caller() for _ in range(callers)))
    if store is not None:
        await store.aclose()
    refused = sum(isinstance(event, RateLimited) for event in events)
    sys.stdout.write(json.dumps({"created": created, "refused": refused}))
    sys.stdout.write("\n")


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1:]))
