"""`VicketClient`: the five endpoints as typed async methods."""

from __future__ import annotations

import asyncio
import itertools
import logging
import os
import time
from collections.abc import Awaitable, Iterable, Mapping
from types import TracebackType
from typing import Any, Generic, Self, TypeVar

import aiohttp
import attrs
from multidict import CIMultiDictProxy

from ._budgets import Budget, BudgetStore, budget_key, shared_budget
from ._cache import TTLCache, cache_for
from ._events import EventHook, RateLimited, RetryScheduled, emit
from ._models import (
    Article,
    Message,
    SupportPage,
    Template,
    Ticket,
    TicketCreated,
)
from ._protocol import answers as checks
from ._protocol.budget import DEFAULT_RATE_LIMITS, BudgetStatus, RateLimit
from ._protocol.codec import DecodeError, decode
from ._protocol.endpoints import (
    DEFAULT_BASE_URL,
    Endpoint,
    build_url,
    check_base_url,
    redact_url,
)
from ._protocol.responses import excerpt, read_envelope
from ._protocol.retries import RetryPolicy, decide, describe
from ._transport import Attempt, RawResponse, Timeouts, Transport
from ._uploads import FileLike
from ._version import __version__
from .exceptions import (
    AnswerProblem,
    AnswerValidationError,
    ClientStateError,
    ConfigurationError,
    RateLimitError,
    UnexpectedResponseError,
    VicketError,
)

__all__ = ["Response", "ResponseMethods", "VicketClient"]

log = logging.getLogger("vicket_async")

T = TypeVar("T")

_DEFAULT_TIMEOUTS = Timeouts()
_DEFAULT_RETRY = RetryPolicy()


@attrs.frozen(kw_only=True)
class Response(Generic[T]):
    """A decoded answer together with its HTTP status and headers."""

    data: T
    status: int
    headers: CIMultiDictProxy[str] = attrs.field(repr=False)
    elapsed: float


class VicketClient:
    """
    An async client for one Vicket website's public support API.

    Use it as an async context manager, or call `aclose` when done::

        async with VicketClient() as vicket:
            page = await vicket.init()

    Args:
        api_key: the website's API key; defaults to ``VICKET_API_KEY``.
        base_url: the API origin; defaults to ``VICKET_BASE_URL``, then
            ``https://api.vicket.app``.
        session: an aiohttp session to use instead of creating one; the
            client never closes a session it was lent.
        timeout: a `Timeouts`, or seconds for each HTTP request.
        rate_limits: client-side budgets by method name (``"init"``,
            ``"create_ticket"``, ``"get_ticket"``, ``"reply"``,
            ``"get_article"``) overriding the documented limits; ``None``
            for a name turns its budget off.
        retry: how failed attempts are retried; see `RetryPolicy`.
        deadline: seconds a call may take in all, waits for budget and
            retries included; None for no bound. Each method also takes
            ``deadline=`` for one call.
        on_event: called with each `BudgetWaited`, `RetryScheduled`,
            `RateLimited` and `ModeChanged` event as it happens.
        budget_store: where rate budgets live; by default in this process.
            A `RedisBudgetStore` shares them between processes and hosts.
        redis_url: a shorter way to the same: keep the budgets in the Redis
            server at this URL (``VICKET_REDIS_URL`` by default), with a
            store the client opens and closes itself.
        allow_insecure_http: allow ``http://`` to hosts other than loopback.
        strict: reject answers with fields this SDK does not know, for
            testing a contract against the API.
        cache_ttl: seconds that `init` and `get_article` answers are
            reused; None or 0 turns the cache off.
        stale_for: seconds past ``cache_ttl`` that the last good answer is
            still served while refreshes fail or are rate limited.
        cache_size: how many articles the cache keeps.

    Raises:
        ConfigurationError: no API key, or an unusable ``base_url``.
    """

    def __init__(
        self,
        api_key: str | None = None,
        base_url: str | None = None,
        *,
        session: aiohttp.ClientSession | None = None,
        timeout: Timeouts | float = _DEFAULT_TIMEOUTS,
        rate_limits: Mapping[str, RateLimit | None] | None = None,
        retry: RetryPolicy = _DEFAULT_RETRY,
        deadline: float | None = None,
        on_event: EventHook | None = None,
        budget_store: BudgetStore | None = None,
        redis_url: str | None = None,
        allow_insecure_http: bool = False,
        strict: bool = False,
        cache_ttl: float | None = 60.0,
        stale_for: float = 300.0,
        cache_size: int = 256,
    ) -> None:
        key = api_key or os.environ.get("VICKET_API_KEY", "")
        if not key.strip():
            msg = (
                "no API key: pass api_key=... or set the VICKET_API_KEY "
                "environment variable to the website's key"
            )
            raise ConfigurationError(msg)
        base = (
            base_url or os.environ.get("VICKET_BASE_URL") or DEFAULT_BASE_URL
        )
        try:
            self._base_url = check_base_url(
                base, allow_insecure_http=allow_insecure_http
            )
        except ValueError as error:
            raise ConfigurationError(str(error)) from None
        if not isinstance(timeout, Timeouts):
            timeout = Timeouts(total=float(timeout))
        self._transport = Transport(
            base_url=self._base_url,
            api_key=key.strip(),
            session=session,
            timeouts=timeout,
            user_agent=f"vicket-async/{__version__}",
        )
        self._limits = _merge_limits(rate_limits)
        # The budget's name: a hash of the origin and the key, never the key.
        self._budget_id = budget_key(f"{self._base_url} {key.strip()}")
        if budget_store is not None and redis_url is not None:
            msg = "pass budget_store or redis_url, not both"
            raise ConfigurationError(msg)
        self._owns_store = budget_store is None
        if budget_store is None:
            redis_url = redis_url or os.environ.get("VICKET_REDIS_URL")
        if budget_store is None and redis_url:
            from ._redis_budget import RedisBudgetStore

            budget_store = RedisBudgetStore(redis_url)
        self._store = budget_store
        self._retry = retry
        self._deadline = deadline
        self._on_event = on_event
        self._strict = strict
        self._loop: asyncio.AbstractEventLoop | None = None
        self._templates: dict[str, Template] = {}
        self._init_cache: TTLCache[str, Response[SupportPage]] | None = (
            cache_for(cache_ttl, stale_for, max_entries=1, name="init")
        )
        self._article_cache: TTLCache[str, Response[Article]] | None = (
            cache_for(
                cache_ttl,
                stale_for,
                max_entries=cache_size,
                name="get_article",
            )
        )
        self.with_response = ResponseMethods(self)

    def __repr__(self) -> str:
        return f"<VicketClient base_url={self._base_url!r}>"

    @property
    def base_url(self) -> str:
        return self._base_url

    async def __aenter__(self) -> Self:
        self._bind_loop()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the client's HTTP session; calling it again does nothing."""
        if self._transport.closed:
            return
        self._bind_loop()
        await self._transport.aclose()
        if self._owns_store and self._store is not None:
            await self._store.aclose()

    def clear_cache(self) -> None:
        """Forget cached `init` and article answers; the next reads ask."""
        for cache in (self._init_cache, self._article_cache):
            if cache is not None:
                cache.clear()

    async def budget_status(self) -> dict[str, BudgetStatus]:
        """
        Each budgeted endpoint's state: calls left, next free slot, pause.

        Keys are method names; endpoints whose budget is off are left out.
        """
        self._bind_loop()
        statuses = {}
        for endpoint in Endpoint:
            budget = self._budget(endpoint)
            if budget is not None:
                statuses[endpoint.value] = await budget.ledger.status()

        return statuses

    # The endpoints. Each returns the decoded data; `with_response` has the
    # same methods returning a `Response` with the status and headers too.

    async def init(
        self, *, fresh: bool = False, deadline: float | None = None
    ) -> SupportPage:
        """
        Load the website's name, ticket templates, articles and FAQs.

        The answer is cached for ``cache_ttl`` seconds; ``fresh=True`` asks
        the API again.
        """
        response = await self.with_response.init(
            fresh=fresh, deadline=deadline
        )

        return response.data

    async def create_ticket(
        self,
        *,
        email: str,
        title: str,
        template: Template | str,
        answers: Mapping[str, Any] | None = None,
        deadline: float | None = None,
    ) -> TicketCreated:
        """
        Open a ticket; Vicket emails the reporter a link to its thread.

        ``template`` is a `Template` or its id. Answers are keyed by question
        id: strings for TEXT, TEXTAREA and SELECT (an option's value), a bool
        for CHECKBOX, a ``datetime.date`` or ISO date for DATE, and a
        `FileUpload` or path for FILE. When the template is known (passed
        in, or loaded by an earlier `init` of this client) the answers are
        checked against it first.

        Raises:
            AnswerValidationError: listing every problem; nothing was sent.
        """
        response = await self.with_response.create_ticket(
            email=email,
            title=title,
            template=template,
            answers=answers,
            deadline=deadline,
        )

        return response.data

    async def get_ticket(
        self, token: str, *, deadline: float | None = None
    ) -> Ticket:
        """
        Read a ticket's thread with the secure token from the email.

        Raises:
            TicketLinkExpiredError: the link expired; Vicket has emailed a
                new one to the reporter.
        """
        return (
            await self.with_response.get_ticket(token, deadline=deadline)
        ).data

    async def reply(
        self,
        token: str,
        content: str,
        *,
        attachments: Iterable[FileLike] = (),
        deadline: float | None = None,
    ) -> Message:
        """Post the reporter's reply to a ticket, with optional files."""
        response = await self.with_response.reply(
            token, content, attachments=attachments, deadline=deadline
        )

        return response.data

    async def get_article(
        self, slug: str, *, fresh: bool = False, deadline: float | None = None
    ) -> Article:
        """Read one published article by its slug, cached like `init`."""
        response = await self.with_response.get_article(
            slug, fresh=fresh, deadline=deadline
        )

        return response.data

    # Implementation.

    def _remember_templates(self, page: SupportPage) -> None:
        self._templates = {t.id: t for t in page.templates}

    def _ticket_body(
        self,
        email: str,
        title: str,
        template: Template | str,
        answers: Mapping[str, Any] | None,
    ) -> checks.Body:
        known: Template | None
        if isinstance(template, Template):
            template_id, known = template.id, template
        else:
            template_id, known = template, self._templates.get(template)
        json_answers, files, problems = checks.check_ticket(
            email=email,
            title=title,
            template_id=template_id,
            template=known,
            answers=answers or {},
        )
        if problems:
            raise AnswerValidationError(
                problems, endpoint=Endpoint.CREATE_TICKET
            )

        return checks.ticket_body(
            email=email,
            title=title,
            template_id=template_id,
            answers=json_answers,
            files=files,
        )

    def _bind_loop(self) -> None:
        loop = asyncio.get_running_loop()
        if self._loop is None:
            self._loop = loop
        elif self._loop is not loop:
            msg = (
                "this VicketClient was first used in another event loop "
                "(another asyncio.run() or thread). A client and its "
                "connections belong to one loop: create one client per "
                "event loop, inside that loop"
            )
            raise ClientStateError(msg)

    def _budget(self, endpoint: Endpoint) -> Budget | None:
        limit = self._limits.get(endpoint.value)
        if limit is None:
            return None

        store = self._store
        if store is None:
            return shared_budget(self._budget_id, endpoint, limit)

        return shared_budget(
            self._budget_id,
            endpoint,
            limit,
            store=store,
            make_ledger=lambda: store.ledger(self._budget_id, endpoint, limit),
        )

    async def _call(
        self,
        endpoint: Endpoint,
        model: type[T],
        *,
        token: str | None = None,
        slug: str | None = None,
        body: checks.Body | None = None,
        deadline: float | None = None,
    ) -> Response[T]:
        self._bind_loop()
        loop = asyncio.get_running_loop()
        started = loop.time()
        seconds = deadline if deadline is not None else self._deadline
        until = None if seconds is None else started + seconds
        secrets = (token,) if token else ()
        url = build_url(self._base_url, endpoint, token=token, slug=slug)
        budget = self._budget(endpoint)
        for number in itertools.count(1):
            attempt = Attempt()
            try:
                if budget is not None:
                    attempt.slot = await budget.acquire(
                        deadline=until, on_event=self._on_event
                    )
                raw = await self._send(
                    endpoint, url, body, secrets, attempt, number
                )
                data = read_envelope(
                    endpoint,
                    raw.status,
                    raw.headers,
                    raw.body,
                    secrets=secrets,
                )
                return Response(
                    data=self._decode(endpoint, raw, data, model, secrets),
                    status=raw.status,
                    headers=raw.headers,
                    elapsed=raw.elapsed,
                )
            except VicketError as error:
                failure = error
            finally:
                # Before any backoff: a slot whose request never went out
                # goes back to the budget now, not after the sleep.
                if attempt.slot is not None:
                    await attempt.slot.release()
            delay = await self._after_failure(
                endpoint, failure, budget, attempt, number, started, until
            )
            if delay is not None and (stuck := _spent_stream(body)):
                failure.add_note(f"not retried: {stuck}")
                delay = None
            if delay is None:
                raise failure
            if delay:
                await asyncio.sleep(delay)
        raise AssertionError  # pragma: no cover - the loop never ends

    async def _send(
        self,
        endpoint: Endpoint,
        url: str,
        body: checks.Body | None,
        secrets: tuple[str, ...],
        attempt: Attempt,
        number: int,
    ) -> RawResponse:
        started = time.monotonic()
        try:
            raw = await self._transport.send(
                endpoint, url, body, secrets=secrets, attempt=attempt
            )
        except VicketError as error:
            if log.isEnabledFor(logging.DEBUG):
                log.debug(
                    "%s %s failed after %.1f ms (attempt %d): %s",
                    endpoint.method,
                    redact_url(url),
                    (time.monotonic() - started) * 1000,
                    number,
                    describe(error),
                )
            raise
        if log.isEnabledFor(logging.DEBUG):
            log.debug(
                "%s %s -> %d in %.1f ms (attempt %d)",
                endpoint.method,
                redact_url(url),
                raw.status,
                raw.elapsed * 1000,
                number,
            )

        return raw

    async def _after_failure(
        self,
        endpoint: Endpoint,
        error: VicketError,
        budget: Budget | None,
        attempt: Attempt,
        number: int,
        started: float,
        until: float | None,
    ) -> float | None:
        """
        Seconds to wait before the next attempt, or None to give up.

        A 429 pauses the endpoint's whole budget; the next attempt then
        waits in line for it rather than sleeping here.
        """
        loop = asyncio.get_running_loop()
        now = loop.time()
        if isinstance(error, RateLimitError) and error.status == 429:
            log.warning(
                "%s: the server answered 429 (retry after %s s)",
                endpoint.label,
                "?" if error.retry_after is None else f"{error.retry_after:g}",
            )
            emit(
                self._on_event,
                RateLimited(
                    endpoint=endpoint.value, retry_after=error.retry_after
                ),
            )
            if budget is not None:
                await budget.server_refused(
                    error.retry_after, on_event=self._on_event
                )
        decision = decide(
            self._retry,
            endpoint,
            error,
            attempt=number,
            elapsed=now - started,
            reached_server=attempt.sent,
        )
        if decision.delay is None:
            if decision.reason != describe(error):
                error.add_note(decision.reason)
            return None
        if until is not None and now + decision.delay > until:
            error.add_note("not retried: the wait would pass the deadline")
            return None
        emit(
            self._on_event,
            RetryScheduled(
                endpoint=endpoint.value,
                attempt=number,
                delay=decision.delay,
                reason=decision.reason,
            ),
        )
        if budget is not None and isinstance(error, RateLimitError):
            return 0.0

        return decision.delay

    def _decode(
        self,
        endpoint: Endpoint,
        raw: RawResponse,
        data: Any,
        model: type[T],
        secrets: tuple[str, ...],
    ) -> T:
        try:
            return decode(data, model, strict=self._strict)
        except DecodeError as error:
            msg = f"{raw.status}: the answer {error}"
            raise UnexpectedResponseError(
                msg,
                endpoint=endpoint,
                status=raw.status,
                body_excerpt=excerpt(raw.body, secrets),
                headers=raw.headers,
            ) from None


def _merge_limits(
    overrides: Mapping[str, RateLimit | None] | None,
) -> dict[str, RateLimit | None]:
    limits = dict(DEFAULT_RATE_LIMITS)
    for name, limit in (overrides or {}).items():
        if name not in limits:
            known = ", ".join(sorted(limits))
            msg = f"rate_limits has an unknown endpoint {name!r} ({known})"
            raise ConfigurationError(msg)
        if limit is not None and not isinstance(limit, RateLimit):
            msg = f"rate_limits[{name!r}] must be a RateLimit or None"
            raise ConfigurationError(msg)
        limits[name] = limit

    return limits


def _spent_stream(body: checks.Body | None) -> str | None:
    """Why ``body`` cannot be sent again, if one of its files is spent."""
    for part in body.files if body is not None else ():
        if not part.upload.replayable:
            return (
                f"{part.upload.filename!r} was streamed from a source that "
                f"cannot be read again"
            )

    return None


def _check_token(endpoint: Endpoint, token: str) -> None:
    if not isinstance(token, str) or not token.strip():
        problem = AnswerProblem("token", "the token is empty")
        raise AnswerValidationError([problem], endpoint=endpoint)


class ResponseMethods:
    """
    The client's endpoints, returning a `Response` with status and headers.

    Reach it as ``client.with_response``, for example to read the rate-limit
    headers: ``(await vicket.with_response.init()).headers``.
    """

    def __init__(self, client: VicketClient) -> None:
        self._client = client

    async def init(
        self, *, fresh: bool = False, deadline: float | None = None
    ) -> Response[SupportPage]:
        client = self._client

        async def fetch() -> Response[SupportPage]:
            response = await client._call(
                Endpoint.INIT, SupportPage, deadline=deadline
            )
            client._remember_templates(response.data)

            return response

        # A cached answer must not let the client slip into another loop.
        client._bind_loop()
        if client._init_cache is None:
            return await fetch()

        return await client._init_cache.get(
            "init", fetch, fresh=fresh, deadline=deadline
        )

    async def create_ticket(
        self,
        *,
        email: str,
        title: str,
        template: Template | str,
        answers: Mapping[str, Any] | None = None,
        deadline: float | None = None,
    ) -> Response[TicketCreated]:
        client = self._client
        body = client._ticket_body(email, title, template, answers)

        return await client._call(
            Endpoint.CREATE_TICKET, TicketCreated, body=body, deadline=deadline
        )

    async def get_ticket(
        self, token: str, *, deadline: float | None = None
    ) -> Response[Ticket]:
        _check_token(Endpoint.GET_TICKET, token)

        return await self._client._call(
            Endpoint.GET_TICKET, Ticket, token=token, deadline=deadline
        )

    async def reply(
        self,
        token: str,
        content: str,
        *,
        attachments: Iterable[FileLike] = (),
        deadline: float | None = None,
    ) -> Response[Message]:
        files, problems = checks.check_reply(content, attachments)
        if not isinstance(token, str) or not token.strip():
            problems.insert(0, AnswerProblem("token", "the token is empty"))
        if problems:
            raise AnswerValidationError(problems, endpoint=Endpoint.REPLY)
        body = checks.reply_body(content, files)

        return await self._client._call(
            Endpoint.REPLY, Message, token=token, body=body, deadline=deadline
        )

    async def get_article(
        self, slug: str, *, fresh: bool = False, deadline: float | None = None
    ) -> Response[Article]:
        if not isinstance(slug, str) or not slug.strip():
            problem = AnswerProblem("slug", "the slug is empty")
            raise AnswerValidationError(
                [problem], endpoint=Endpoint.GET_ARTICLE
            )
        client = self._client

        def fetch() -> Awaitable[Response[Article]]:
            return client._call(
                Endpoint.GET_ARTICLE, Article, slug=slug, deadline=deadline
            )

        client._bind_loop()
        if client._article_cache is None:
            return await fetch()

        return await client._article_cache.get(
            slug, fetch, fresh=fresh, deadline=deadline
        )
