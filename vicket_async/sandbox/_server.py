"""The :class:`Sandbox`: the application served on a loopback port."""

from __future__ import annotations

from collections.abc import Mapping
from types import TracebackType
from typing import Self

from aiohttp import web

from ._app import API_PREFIX, make_app
from ._clock import SandboxClock
from ._faults import FaultInjector
from ._ratelimit import RateLimiter, RateLimitMode
from ._records import Email, RequestRecord
from ._seed import DEMO_API_KEY, demo_website
from ._state import DEFAULT_LINK_TEMPLATE, MIB, SandboxState, Shape

__all__ = ["Sandbox"]


class Sandbox:
    """
    A local Vicket server for tests and demos, run as an async context.

    Inside ``async with Sandbox() as sandbox:`` the server listens on
    :attr:`base_url` (point the client at it) and answers requests that
    carry :attr:`api_key`.  The demo website is seeded unless *seed* is
    false; :attr:`state` holds everything the sandbox knows and the
    actions of a support agent.

    Args:
        host: The address to listen on.
        port: The port to listen on; 0 picks a free one.
        api_key: The API key of the seeded demo website.
        shape: ``"vendor"`` answers exactly like the vendor's reference;
            ``"integration"`` like the variants a real integration saw.
        sparse_init: Leave ``website.name``, ``articles`` and ``faqs``
            out of ``/init``, as some real sites do.
        time_scale: How many sandbox seconds pass per real second.
        token_ttl: How long, in sandbox seconds, ticket links work;
            ``None`` means forever.
        email_limit: How many emails one reporter gets per
            *email_window*; ``None`` means no limit.
        email_window: The email limit's window in sandbox seconds.
        keep_file_bytes: Uploaded files up to this size are kept and
            served back; larger ones are only hashed.
        link_template: How emailed links are written, with ``{origin}``
            and ``{token}`` placeholders.
        rate_limit_mode: ``"rolling"``, ``"fixed"``, ``"token_bucket"``,
            ``"sliding_counter"``, or ``None`` for no rate limits.
        rate_limits: Per-endpoint overrides of the documented limits
            (requests per period; ``None`` for unlimited), keyed by
            endpoint name such as ``"init"`` or ``"create_ticket"``.
        rate_limit_period: The rate-limit window in sandbox seconds.
        retry_after_header: Whether a 429 carries ``Retry-After``.
        count_rejected: Whether refused requests count against the rate
            limit too.
        seed: Whether to seed the demo website.
        state: Serve this state instead of building one; the arguments
            above that configure the state are then ignored.
    """

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        api_key: str = DEMO_API_KEY,
        shape: Shape = "vendor",
        sparse_init: bool = False,
        time_scale: float = 1.0,
        token_ttl: float | None = None,
        email_limit: int | None = 20,
        email_window: float = 3600.0,
        keep_file_bytes: int = MIB,
        link_template: str = DEFAULT_LINK_TEMPLATE,
        rate_limit_mode: RateLimitMode | None = "rolling",
        rate_limits: Mapping[str, int | None] | None = None,
        rate_limit_period: float = 60.0,
        retry_after_header: bool = True,
        count_rejected: bool = False,
        seed: bool = True,
        state: SandboxState | None = None,
    ) -> None:
        if state is None:
            state = SandboxState(
                clock=SandboxClock(time_scale=time_scale),
                shape=shape,
                sparse_init=sparse_init,
                token_ttl=token_ttl,
                email_limit=email_limit,
                email_window=email_window,
                keep_file_bytes=keep_file_bytes,
                link_template=link_template,
                rate_limiter=RateLimiter(
                    mode=rate_limit_mode,
                    limits=rate_limits,
                    period=rate_limit_period,
                    retry_after_header=retry_after_header,
                    count_rejected=count_rejected,
                ),
            )
            if seed:
                state.add_website(demo_website(api_key))
        self.host = host
        self.port = port
        self._api_key = api_key
        self._state = state
        self._runner: web.AppRunner | None = None
        self._base_url: str | None = None

    def __repr__(self) -> str:
        where = self._base_url or "not running"

        return f"<Sandbox {where} shape={self._state.shape!r}>"

    async def __aenter__(self) -> Self:
        await self.start()

        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    async def start(self) -> None:
        """Start listening; :attr:`base_url` is known afterwards."""
        if self._runner is not None:
            msg = "the sandbox is already running"
            raise RuntimeError(msg)
        # A short shutdown timeout: a test that leaves a slow request in
        # flight should not hold up the end of the test for a minute.
        runner = web.AppRunner(
            make_app(self._state), access_log=None, shutdown_timeout=1.0
        )
        await runner.setup()
        try:
            site = web.TCPSite(runner, self.host, self.port)
            await site.start()
        except BaseException:
            await runner.cleanup()
            raise
        self._runner = runner
        host, port = runner.addresses[0][:2]
        self.port = port
        if ":" in host:
            host = f"[{host}]"
        self._base_url = f"http://{host}:{port}"

    async def stop(self) -> None:
        """Stop listening and close every connection."""
        runner, self._runner = self._runner, None
        self._base_url = None
        if runner is not None:
            await runner.cleanup()

    @property
    def running(self) -> bool:
        """Whether the sandbox is listening."""
        return self._runner is not None

    @property
    def base_url(self) -> str:
        """The origin the sandbox listens on, e.g. ``http://127.0.0.1:8080``."""
        if self._base_url is None:
            msg = "the sandbox is not running; use it inside 'async with'"
            raise RuntimeError(msg)

        return self._base_url

    @property
    def api_url(self) -> str:
        """Where the API's endpoints live: the base URL plus the prefix."""
        return self.base_url + API_PREFIX

    @property
    def api_key(self) -> str:
        """The API key of the demo website."""
        return self._api_key

    @property
    def state(self) -> SandboxState:
        """The in-memory store, with the support-agent helpers."""
        return self._state

    @property
    def clock(self) -> SandboxClock:
        """The sandbox clock."""
        return self._state.clock

    @property
    def faults(self) -> FaultInjector:
        """The fault injector: arm faults here, clear them here."""
        return self._state.faults

    @property
    def rate_limiter(self) -> RateLimiter:
        """The rate limiter, whose mode and limits can change any time."""
        return self._state.rate_limiter

    @property
    def outbox(self) -> list[Email]:
        """A snapshot of the emails sent so far, oldest first."""
        return list(self._state.outbox)

    @property
    def requests(self) -> list[RequestRecord]:
        """A snapshot of the requests that reached the API, oldest first."""
        return list(self._state.requests)

    def clear_requests(self) -> None:
        """Empty the request log."""
        self._state.clear_requests()
