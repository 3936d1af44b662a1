"""Rate budgets shared through a real Redis server."""

from __future__ import annotations

import asyncio
import json
import logging
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from vicket_async import (
    BudgetStoreError,
    ConfigurationError,
    RateLimit,
    RedisBudgetStore,
    VicketClient,
)
from vicket_async._budgets import Budget
from vicket_async._protocol.endpoints import Endpoint
from vicket_async.sandbox import SandboxProcess

from .bulk_support import SandboxProcess as BulkSandbox
from .bulk_support import feature_rows, write_csv
from .redis_server import free_port, redis_server

KEY = "vk_redis_test_key_never_stored"


@pytest.fixture
def prefix() -> str:
    return f"test:{uuid.uuid4().hex}"


@pytest.fixture
async def store(
    redis_url: str, prefix: str
) -> AsyncIterator[RedisBudgetStore]:
    shared = RedisBudgetStore(redis_url, prefix=prefix)
    yield shared
    await shared.aclose()


def budget_for(store: RedisBudgetStore, limit: RateLimit) -> Budget:
    ledger = store.ledger("owner", Endpoint.REPLY, limit)
    return Budget("reply", ledger)


async def settle() -> None:
    for _ in range(50):
        await asyncio.sleep(0.001)


class TestLedger:
    async def test_burst_then_wait(self, store: RedisBudgetStore) -> None:
        ledger = store.ledger("owner", Endpoint.REPLY, RateLimit(3, 60.0))
        grants = [await ledger.try_take(None) for _ in range(4)]

        assert [g.slot is not None for g in grants] == [True] * 3 + [False]
        assert grants[3].wait == pytest.approx(61, abs=0.5)
        status = await ledger.status()
        assert status.remaining == 0

        slot = grants[0].slot
        assert slot is not None
        await ledger.give_back(slot)
        assert (await ledger.try_take(None)).slot is not None

    async def test_pause_and_pacing(self, store: RedisBudgetStore) -> None:
        ledger = store.ledger("owner", Endpoint.INIT, RateLimit(10, 60.0))
        await ledger.pause(5.0)
        paused = await ledger.try_take(None)
        status = await ledger.status()

        assert paused.slot is None
        assert paused.wait == pytest.approx(5, abs=0.5)
        assert status.paused_for == pytest.approx(5, abs=0.5)

        await ledger.pause(0.0)
        other = store.ledger("other", Endpoint.INIT, RateLimit(10, 60.0))
        await other.pace(600.0)
        assert (await other.try_take(None)).slot is not None
        spaced = await other.try_take(None)
        assert spaced.wait == pytest.approx(60 / 9 + 1, abs=0.2)
        assert (await other.status()).mode == "pace"

    async def test_keys_are_hashed_namespaced_and_expire(
        self, redis_url: str, prefix: str
    ) -> None:
        import redis.asyncio

        store = RedisBudgetStore(redis_url, prefix=prefix)
        async with VicketClient(
            api_key=KEY, base_url="http://127.0.0.1:9", budget_store=store
        ) as vicket:
            budget = vicket._budget(Endpoint.REPLY)
            assert budget is not None
            slot = await budget.acquire()
            await slot.mark_sent()
        await store.aclose()

        raw = redis.asyncio.Redis.from_url(redis_url)
        keys = [k.decode() async for k in raw.scan_iter(f"{prefix}:*")]
        dump = " ".join(keys)
        for key in keys:
            ttl = await raw.pttl(key)
            assert 0 < ttl <= 62_000
            if key.endswith(":state"):
                dump += str(await raw.hgetall(key))
        await raw.aclose()

        assert len(keys) == 3
        assert KEY not in dump
        assert all(k.startswith(f"{prefix}:") for k in keys)


class TestSharing:
    async def test_two_stores_share_one_budget(
        self, redis_url: str, prefix: str
    ) -> None:
        # Two stores stand for two processes: they share only Redis.
        first = RedisBudgetStore(redis_url, prefix=prefix)
        second = RedisBudgetStore(redis_url, prefix=prefix)
        limit = RateLimit(5, 60.0)
        budgets = [budget_for(first, limit), budget_for(second, limit)]
        tasks = [
            asyncio.create_task(budget.acquire())
            for _ in range(5)
            for budget in budgets
        ]
        await settle()

        assert sum(task.done() for task in tasks) == 5
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await first.aclose()
        await second.aclose()

    def test_four_processes_draw_no_429(
        self, redis_url: str, prefix: str
    ) -> None:
        with SandboxProcess("--time-scale", "60") as sandbox:
            workers = [
                subprocess.Popen(
                    [
                        sys.executable,
                        "-m",
                        "tests.shared_budget_worker",
                        sandbox.base_url,
                        sandbox.api_key,
                        redis_url,
                        prefix,
                        "40",
                        "30",
                        "1.0",
                    ],
                    stdout=subprocess.PIPE,
                    text=True,
                )
                for _ in range(4)
            ]
            results = [
                json.loads(w.communicate(timeout=120)[0]) for w in workers
            ]
            statuses = asyncio.run(_init_statuses(sandbox.base_url))

        assert [r["sent"] for r in results] == [40] * 4
        assert [r["refused"] for r in results] == [0] * 4
        assert statuses.count(200) == 160
        assert 429 not in statuses


async def _init_statuses(base_url: str) -> list[int]:
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"{base_url}/_sandbox/requests?endpoint=init") as answer,
    ):
        document: Any = await answer.json()
    records = document.get("data", document)
    if isinstance(records, dict):
        records = records.get("requests", [])

    return [int(r["status"]) for r in records]


class TestRedisAway:
    async def test_fail_mode_raises_quickly_then_recovers(self) -> None:
        port = free_port()
        with redis_server(port) as url:
            store = RedisBudgetStore(url, prefix="away")
            budget = budget_for(store, RateLimit(5, 60.0))
            await budget.acquire()
        loop = asyncio.get_running_loop()
        started = loop.time()

        with pytest.raises(BudgetStoreError) as info:
            await budget.acquire()

        assert loop.time() - started < 2
        assert "on_error='local'" in str(info.value)
        assert type(info.value.__cause__).__name__ == "ConnectionError"

        # Back again: the next call is decided by Redis once more (a fresh
        # server, so the budget starts empty).
        with redis_server(port):
            slot = await budget.acquire()
            status = await budget.ledger.status()
            await slot.mark_sent()
            await store.aclose()

        assert status.remaining == 4

    async def test_local_fallback_and_return(
        self, caplog: pytest.LogCaptureFixture
    ) -> None:
        port = free_port()
        limit = RateLimit(4, 60.0)
        with redis_server(port) as url:
            store = RedisBudgetStore(
                url,
                prefix="fallback",
                on_error="local",
                workers=2,
                probe_interval=0.2,
            )
            budget = budget_for(store, limit)
            (await budget.acquire()).sent = True

        with caplog.at_level(logging.WARNING, logger="vicket_async"):
            # Redis is gone: the local share is 4 // 2 = 2 calls.
            local = [asyncio.create_task(budget.acquire()) for _ in range(3)]
            await settle()
            assert sum(task.done() for task in local) == 2
            for task in local:
                task.cancel()
            await asyncio.gather(*local, return_exceptions=True)
        assert caplog.text.count("Redis is unreachable") == 1

        with redis_server(port):
            await asyncio.sleep(0.3)
            # Back on Redis, which has forgotten everything; the local log
            # still holds its two calls for one more window.
            status = await budget.ledger.status()
            assert status.remaining == 0
            await store.aclose()
        assert "Redis is back" in caplog.text

    def test_redis_is_optional(self) -> None:
        with pytest.raises(ConfigurationError, match="url or a client"):
            RedisBudgetStore()


class TestImportShards:
    def test_shards_share_one_budget_through_redis(
        self, redis_url: str, tmp_path: Path
    ) -> None:
        source = write_csv(tmp_path / "tickets.csv", feature_rows(40))
        with BulkSandbox(time_scale=60) as sandbox:
            shards = [
                subprocess.Popen(
                    [
                        sys.executable,
                        "-m",
                        "vicket_async",
                        "import",
                        str(source),
                        "--template",
                        "tpl_feature",
                        "--yes",
                        "--rate-limit",
                        "10/1",
                        "--shard",
                        f"{index}/2",
                        "--redis-url",
                        redis_url,
                    ],
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                    env=sandbox.env(),
                )
                for index in (1, 2)
            ]
            statuses = [shard.wait(120) for shard in shards]
            tickets = sandbox.tickets()
            created = sandbox.control("GET", "requests?endpoint=create_ticket")

        assert statuses == [0, 0]
        assert sorted(t["title"] for t in tickets) == sorted(
            f"Idea {n}" for n in range(1, 41)
        )
        # Each shard alone keeps to 10 a window; only the shared budget
        # keeps the two together from drawing 429s.
        assert [r["status"] for r in created] == [201] * 40
