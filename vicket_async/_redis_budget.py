"""
Rate budgets shared by many processes and hosts, kept in Redis.

Each decision is one Lua script run atomically on the Redis server, on the
Redis server's clock (``TIME``), so hosts whose clocks disagree still agree
on the budget. The log is a sorted set of send times in microseconds; a
small hash holds the pause a 429 imposed, the end of a pacing period and the
last send. Keys are namespaced and named after a hash of the API key (the
key itself is never stored), and every write renews their expiry, so an
unused budget disappears on its own.

When Redis cannot be reached the store either fails (`BudgetStoreError`) or
falls back to an in-process budget of ``calls // workers``, logged once; it
asks Redis again every few seconds and, once Redis answers, keeps consulting
the local log for one more window, because Redis did not see what was sent
in the meantime.

``redis`` is an optional dependency: ``pip install 'vicket-async[redis]'``.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import math
import weakref
from collections.abc import Coroutine
from typing import TYPE_CHECKING, Any, Literal

import attrs

from ._budgets import Grant, Ledger, LocalLedger
from ._protocol.budget import BudgetStatus, Mode, RateLimit
from ._protocol.endpoints import Endpoint, redact_text
from .exceptions import ConfigurationError, VicketError

if TYPE_CHECKING:
    from redis.asyncio import Redis
    from redis.commands.core import AsyncScript

__all__ = ["BudgetStoreError", "RedisBudgetStore"]

log = logging.getLogger("vicket_async.budget")


# KEYS: the log (sorted set), the state (hash), the slot counter.
# ARGV: operation, calls, window µs, interval µs, argument, pacing (0/1).
_SCRIPT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local op = ARGV[1]
local calls = tonumber(ARGV[2])
local window = tonumber(ARGV[3])
local interval = tonumber(ARGV[4])
local arg = tonumber(ARGV[5])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
local paused = tonumber(redis.call('HGET', KEYS[2], 'paused') or 0)
local pacing_until = tonumber(redis.call('HGET', KEYS[2], 'pacing') or 0)
local last = tonumber(redis.call('HGET', KEYS[2], 'last') or 0)
local pacing = ARGV[6] == '1' or now < pacing_until

local function keep()
  local horizon = math.max(window, paused - now, pacing_until - now)
  local ms = math.floor(horizon / 1000) + 1000
  redis.call('PEXPIRE', KEYS[1], ms)
  redis.call('PEXPIRE', KEYS[2], ms)
  redis.call('PEXPIRE', KEYS[3], ms)
end

local function wait_time()
  local wait = paused - now
  local count = redis.call('ZCARD', KEYS[1])
  if count >= calls then
    local nth = redis.call('ZRANGE', KEYS[1], -calls, -calls, 'WITHSCORES')
    wait = math.max(wait, window - (now - tonumber(nth[2])))
  end
  if pacing then
    wait = math.max(wait, interval - (now - last))
  end
  return wait, count
end

if op == 'take' then
  local wait = wait_time()
  if wait > 0 then
    return {0, math.floor(wait) + 1}
  end
  local slot = redis.call('INCR', KEYS[3])
  redis.call('ZADD', KEYS[1], now, slot)
  redis.call('HSET', KEYS[2], 'last', now)
  keep()
  return {1, slot}
elseif op == 'sent' then
  local score = redis.call('ZSCORE', KEYS[1], arg)
  if score and tonumber(score) < now then
    redis.call('ZADD', KEYS[1], 'XX', now, arg)
    if now > last then
      redis.call('HSET', KEYS[2], 'last', now)
    end
  end
  return {1, 0}
elseif op == 'give_back' then
  redis.call('ZREM', KEYS[1], arg)
  return {1, 0}
elseif op == 'pause' then
  paused = math.max(paused, now + arg)
  redis.call('HSET', KEYS[2], 'paused', paused)
  keep()
  return {1, 0}
elseif op == 'pace' then
  pacing_until = math.max(pacing_until, now + arg)
  redis.call('HSET', KEYS[2], 'pacing', pacing_until)
  keep()
  return {1, 0}
end
local wait, count = wait_time()
return {count, math.max(0, math.floor(wait)), math.max(0, paused - now),
        pacing and 1 or 0}
"""


class BudgetStoreError(VicketError):
    """The shared budget store (Redis) could not be reached."""


def _unreachable() -> tuple[type[BaseException], ...]:
    """The errors that mean Redis cannot be reached right now."""
    from redis.exceptions import ConnectionError as RedisConnectionError
    from redis.exceptions import TimeoutError as RedisTimeoutError

    return (RedisConnectionError, RedisTimeoutError, OSError)


def _micro(seconds: float) -> int:
    return math.ceil(seconds * 1_000_000)


@attrs.frozen
class _Keys:
    log: str
    state: str
    counter: str


class RedisLedger:
    """One budget's decisions, made by a Lua script on the Redis server."""

    def __init__(
        self, store: RedisBudgetStore, keys: _Keys, limit: RateLimit
    ) -> None:
        self.limit = limit
        self._store = store
        self._keys = keys

    async def _run(self, op: str, arg: int = 0) -> list[int]:
        limit = self.limit
        keys = self._keys
        result = await self._store.script()(
            keys=[keys.log, keys.state, keys.counter],
            args=[
                op,
                limit.calls,
                _micro(limit.window),
                _micro(limit.interval),
                arg,
                1 if limit.pacing else 0,
            ],
        )

        return [int(value) for value in result]

    async def try_take(self, max_wait: float | None) -> Grant:
        granted, value = await self._run("take")
        if granted:
            return Grant(value)

        return Grant(None, value / 1_000_000)

    async def give_back(self, slot: int) -> None:
        await self._run("give_back", slot)

    async def mark_sent(self, slot: int) -> None:
        # Sent in the background: the request must not wait a round trip
        # for it. The slot already counts from when it was granted; moving
        # its stamp later matters only when it nears the window's end, long
        # after this lands.
        self._store.in_background(self._run("sent", slot))

    async def pause(self, seconds: float) -> None:
        await self._run("pause", _micro(seconds))

    async def pace(self, seconds: float) -> None:
        await self._run("pace", _micro(seconds))

    async def status(self) -> BudgetStatus:
        count, wait, paused, pacing = await self._run("status")
        mode = Mode.PACE if pacing else Mode.BURST
        remaining = max(0, self.limit.calls - count)
        if mode is Mode.PACE or paused > 0:
            remaining = min(remaining, 0 if wait > 0 else 1)

        return BudgetStatus(
            limit=self.limit,
            remaining=remaining,
            next_free_in=wait / 1_000_000,
            paused_for=paused / 1_000_000,
            mode=mode,
        )


class FallbackLedger:
    """
    A Redis ledger that can lean on a local one while Redis is away.

    Slot ids handed out are its own; each maps to the Redis slot and the
    local slot behind it, either of which may be absent.
    """

    def __init__(
        self,
        store: RedisBudgetStore,
        redis: RedisLedger,
        local: LocalLedger,
        name: str,
    ) -> None:
        self.limit = redis.limit
        self._store = store
        self._redis = redis
        self._local = local
        self._name = name
        self._slots: dict[int, tuple[int | None, int | None]] = {}
        self._ids = itertools.count(1)
        self._local_until = float("-inf")

    def _now(self) -> float:
        return asyncio.get_running_loop().time()

    def _use_local(self) -> bool:
        return self._now() < self._local_until

    async def _redis_call(self, op: str, *args: Any) -> Any:
        """Run one Redis operation; None when Redis is away (fallback)."""
        if not self._store.redis_expected():
            return None
        try:
            method = getattr(self._redis, op)
            result = await method(*args)
        except _unreachable() as error:
            self._store.lost(error, self._name)
            return None
        if self._store.recovered():
            # Redis missed what went out meanwhile: keep the local log in
            # force for one more window.
            self._local_until = self._now() + self.limit.window
        return result if result is not None else True

    async def try_take(self, max_wait: float | None) -> Grant:
        away = not self._store.redis_expected()
        if away or self._use_local():
            local = await self._local.try_take(max_wait)
            if local.slot is None:
                return local
        else:
            local = Grant(None)
        remote = await self._redis_call("try_take", max_wait)
        if remote is None:
            if local.slot is None:
                # Redis just went away: decide locally from now on.
                self._local_until = float("inf")
                return await self._local.try_take(max_wait)
        elif remote.slot is None:
            if local.slot is not None:
                await self._local.give_back(local.slot)
            return Grant(None, remote.wait)
        slot = next(self._ids)
        self._slots[slot] = (
            None if remote is None else remote.slot,
            local.slot,
        )

        return Grant(slot)

    async def give_back(self, slot: int) -> None:
        remote, local = self._slots.pop(slot, (None, None))
        if remote is not None:
            await self._redis_call("give_back", remote)
        if local is not None:
            await self._local.give_back(local)

    async def mark_sent(self, slot: int) -> None:
        remote, local = self._slots.pop(slot, (None, None))
        if remote is not None:
            await self._redis_call("mark_sent", remote)
        if local is not None:
            await self._local.mark_sent(local)

    async def pause(self, seconds: float) -> None:
        await self._local.pause(seconds)
        await self._redis_call("pause", seconds)

    async def pace(self, seconds: float) -> None:
        await self._local.pace(seconds)
        await self._redis_call("pace", seconds)

    async def status(self) -> BudgetStatus:
        remote = await self._redis_call("status")
        if isinstance(remote, BudgetStatus) and not self._use_local():
            return remote
        return await self._local.status()


class RedisBudgetStore:
    """
    Keep rate budgets in Redis, so that processes and hosts share them.

    Args:
        url: a Redis URL such as ``redis://127.0.0.1:6379/0``; or pass
            ``client=``, an existing ``redis.asyncio.Redis``.
        on_error: ``"fail"`` raises `BudgetStoreError` when Redis cannot be
            reached; ``"local"`` falls back to an in-process budget.
        workers: with ``on_error="local"``, how many processes share the
            key; each takes ``calls // workers`` (at least one) meanwhile.
        prefix: the namespace of the keys in Redis.
        timeout: seconds to wait for Redis before counting it as away.
        probe_interval: with ``on_error="local"``, how often to ask Redis
            again while it is away.
    """

    def __init__(
        self,
        url: str | None = None,
        *,
        client: Redis | None = None,
        on_error: Literal["fail", "local"] = "fail",
        workers: int = 1,
        prefix: str = "vicket:budget",
        timeout: float = 0.25,
        probe_interval: float = 2.0,
    ) -> None:
        if (url is None) == (client is None):
            msg = "RedisBudgetStore needs a url or a client, not both"
            raise ConfigurationError(msg)
        if on_error not in ("fail", "local"):
            msg = f"on_error must be 'fail' or 'local', got {on_error!r}"
            raise ConfigurationError(msg)
        if workers < 1:
            msg = f"workers must be at least 1, got {workers!r}"
            raise ConfigurationError(msg)
        try:
            import redis.asyncio  # noqa: F401 - checked here, used later
        except ImportError:
            msg = (
                "the Redis budget store needs the redis package: "
                "pip install 'vicket-async[redis]'"
            )
            raise ConfigurationError(msg) from None
        self._url = url
        self._lent = client
        self._clients: weakref.WeakKeyDictionary[
            asyncio.AbstractEventLoop, Redis
        ] = weakref.WeakKeyDictionary()
        self._scripts: weakref.WeakKeyDictionary[Redis, AsyncScript] = (
            weakref.WeakKeyDictionary()
        )
        self.on_error = on_error
        self.workers = workers
        self.prefix = prefix
        self.timeout = timeout
        self.probe_interval = probe_interval
        self._pending: set[asyncio.Task[object]] = set()
        self._away_since: float | None = None
        self._next_probe = 0.0
        self._came_back = False

    def __repr__(self) -> str:
        where = redact_text(self._url or "a lent client", ())
        if self._url and "@" in where:
            where = where.split("@", 1)[1]
        return f"<RedisBudgetStore {where} on_error={self.on_error!r}>"

    def client(self) -> Redis:
        """The Redis client of the running event loop."""
        if self._lent is not None:
            return self._lent
        from redis.asyncio import Redis
        from redis.asyncio.retry import Retry
        from redis.backoff import NoBackoff

        loop = asyncio.get_running_loop()
        client = self._clients.get(loop)
        if client is None:
            assert self._url is not None
            # redis-py retries three times with backoff by default, which
            # took seconds to notice an unreachable server.
            client = Redis.from_url(
                self._url,
                socket_timeout=self.timeout,
                socket_connect_timeout=self.timeout,
                retry=Retry(NoBackoff(), 0),
                retry_on_timeout=False,
            )
            self._clients[loop] = client

        return client

    def script(self) -> AsyncScript:
        """The budget script, bound to the running loop's client."""
        client = self.client()
        script = self._scripts.get(client)
        if script is None:
            # A registered script reloads itself if Redis lost it.
            script = self._scripts[client] = client.register_script(_SCRIPT)

        return script

    def ledger(
        self, owner: str, endpoint: Endpoint, limit: RateLimit
    ) -> Ledger:
        """The ledger of one budget: ``owner`` is the hashed key's name."""
        base = f"{self.prefix}:{owner}:{endpoint.value}"
        shape = f"{limit.calls}:{limit.period:g}"
        keys = _Keys(
            log=f"{base}:{shape}:log",
            state=f"{base}:{shape}:state",
            counter=f"{base}:{shape}:ids",
        )
        remote = RedisLedger(self, keys, limit)
        if self.on_error == "fail":
            return _FailingLedger(self, remote, endpoint.value)
        share = attrs.evolve(limit, calls=max(1, limit.calls // self.workers))

        return FallbackLedger(self, remote, LocalLedger(share), endpoint.value)

    def redis_expected(self) -> bool:
        """Whether to ask Redis now (it is up, or due to be probed)."""
        if self._away_since is None:
            return True
        return asyncio.get_running_loop().time() >= self._next_probe

    def lost(self, error: BaseException, name: str) -> None:
        now = asyncio.get_running_loop().time()
        if self._away_since is None:
            self._away_since = now
            log.warning(
                "Redis is unreachable (%s); the %s budget and the others "
                "fall back to in-process budgets of calls // %d until it "
                "returns",
                type(error).__name__,
                name,
                self.workers,
            )
        self._next_probe = now + self.probe_interval

    def recovered(self) -> bool:
        """True once, on the first success after Redis was away."""
        if self._away_since is None:
            return False
        self._away_since = None
        log.warning("Redis is back; budgets are shared again")

        return True

    def in_background(self, work: Coroutine[Any, Any, object]) -> None:
        """Run ``work`` without waiting for it; failures are logged."""
        task = asyncio.get_running_loop().create_task(work)
        self._pending.add(task)
        task.add_done_callback(self._finished)

    def _finished(self, task: asyncio.Task[object]) -> None:
        self._pending.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.debug(
                "a background budget update failed: %r", task.exception()
            )

    async def aclose(self) -> None:
        """Close the clients this store opened; a lent client stays open."""
        if self._pending:
            await asyncio.wait(list(self._pending), timeout=self.timeout)
        for client in list(self._clients.values()):
            await client.aclose()
        self._clients.clear()


class _FailingLedger:
    """A Redis ledger whose failures raise `BudgetStoreError`."""

    def __init__(
        self, store: RedisBudgetStore, redis: RedisLedger, name: str
    ) -> None:
        self.limit = redis.limit
        self._redis = redis
        self._name = name

    async def _call(self, op: str, *args: Any) -> Any:
        from redis.exceptions import RedisError

        try:
            return await getattr(self._redis, op)(*args)
        except (RedisError, OSError) as error:
            msg = (
                f"the shared rate budget for {self._name} is kept in Redis, "
                f"which did not answer ({type(error).__name__}); nothing was "
                f"sent. Check the Redis server, or pass "
                f"RedisBudgetStore(..., on_error='local') to fall back to "
                f"in-process budgets"
            )
            raise BudgetStoreError(
                msg, endpoint=Endpoint(self._name)
            ) from error

    async def try_take(self, max_wait: float | None) -> Grant:
        grant: Grant = await self._call("try_take", max_wait)
        return grant

    async def give_back(self, slot: int) -> None:
        await self._call("give_back", slot)

    async def mark_sent(self, slot: int) -> None:
        await self._call("mark_sent", slot)

    async def pause(self, seconds: float) -> None:
        await self._call("pause", seconds)

    async def pace(self, seconds: float) -> None:
        await self._call("pace", seconds)

    async def status(self) -> BudgetStatus:
        status: BudgetStatus = await self._call("status")
        return status
