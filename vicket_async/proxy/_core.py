"""
The proxy itself, apart from any web framework.

A front end (the aiohttp sub-application or the ASGI application) turns its
request into an `Inbound`, awaits `Proxy.handle`, and writes out the
`Outbound` it gets back. Everything else happens here: routing, CORS, the
visitor limits, reading bodies as streams, calling the client and turning
its exceptions back into the API's error envelope.
"""

from __future__ import annotations

import contextlib
import logging
import math
import time
from collections.abc import AsyncIterator, Iterable, Mapping
from typing import Any

import attrs
import orjson
from multidict import CIMultiDict, CIMultiDictProxy

from .._client import VicketClient
from .._protocol.budget import RateLimit
from .._protocol.codec import unstructure
from .._protocol.endpoints import Endpoint, redact_text
from .._protocol.retries import describe
from ..exceptions import (
    AnswerValidationError,
    APIError,
    ConfigurationError,
    RateLimitError,
    TransportError,
    UnexpectedResponseError,
    UploadError,
    VicketError,
    VicketTimeoutError,
)
from ._body import (
    JSON_LIMIT,
    ProxyError,
    RequestBody,
    VisitorGoneError,
    too_large,
)
from ._forms import read_reply_form, read_ticket_form, ticket_fields
from ._multipart import boundary_of
from ._visitors import (
    TrustedProxies,
    VisitorLimiter,
    merge_limits,
    trusted_networks,
    visitor_of,
)

__all__ = [
    "DEFAULT_MAX_BODY_SIZE",
    "Inbound",
    "Outbound",
    "Proxy",
    "ProxyOptions",
]

log = logging.getLogger("vicket_async.proxy")

#: Uploads larger than this are refused with 413 unless configured.
DEFAULT_MAX_BODY_SIZE = 25 * 1024 * 1024

_ROUTES: dict[str, Endpoint] = {
    "/init": Endpoint.INIT,
    "/tickets": Endpoint.CREATE_TICKET,
    "/ticket": Endpoint.GET_TICKET,
    "/ticket/messages": Endpoint.REPLY,
}
_ARTICLES = "/articles/"
_JSON = "application/json"
_BASE_HEADERS = (
    ("Content-Type", "application/json"),
    # Thread pages hold a visitor's messages: no shared cache may keep them.
    ("Cache-Control", "no-store"),
    ("X-Content-Type-Options", "nosniff"),
)


@attrs.frozen(kw_only=True)
class ProxyOptions:
    """The proxy's settings, checked once when the app is made."""

    max_body_size: int = DEFAULT_MAX_BODY_SIZE
    cors_origins: frozenset[str] = frozenset()
    trusted_proxies: TrustedProxies = 0
    visitor_limits: Mapping[str, RateLimit | None] = attrs.field(factory=dict)
    budget_wait: float | None = 10.0

    @classmethod
    def build(
        cls,
        *,
        max_body_size: int = DEFAULT_MAX_BODY_SIZE,
        cors_origins: Iterable[str] = (),
        trusted_proxies: int | Iterable[str] = 0,
        visitor_limits: Mapping[str, RateLimit | None] | None = None,
        budget_wait: float | None = 10.0,
    ) -> ProxyOptions:
        """Check the options given to ``make_*_app`` and gather them."""
        if not isinstance(max_body_size, int) or max_body_size < 1:
            msg = (
                f"max_body_size must be a positive int, got {max_body_size!r}"
            )
            raise ConfigurationError(msg)
        if budget_wait is not None and budget_wait < 0:
            msg = f"budget_wait cannot be negative, got {budget_wait!r}"
            raise ConfigurationError(msg)

        return cls(
            max_body_size=max_body_size,
            cors_origins=_check_origins(cors_origins),
            trusted_proxies=trusted_networks(trusted_proxies),
            visitor_limits=merge_limits(visitor_limits),
            budget_wait=budget_wait,
        )


@attrs.frozen(kw_only=True)
class Inbound:
    """A request as the front end received it."""

    method: str
    #: The path below the proxy's prefix, starting with ``/``.
    path: str
    query: Mapping[str, str]
    headers: CIMultiDictProxy[str] | CIMultiDict[str]
    #: The address of the connection's other end.
    peer: str | None
    body: AsyncIterator[bytes]


@attrs.frozen
class Outbound:
    """What the front end sends back."""

    status: int
    headers: tuple[tuple[str, str], ...]
    body: bytes


class Proxy:
    """Answers the five routes for browser code, with the client's key."""

    def __init__(self, client: VicketClient, options: ProxyOptions) -> None:
        self.client = client
        self.options = options
        self.visitors = VisitorLimiter(options.visitor_limits)
        self._init_memo: tuple[object, bytes] | None = None

    def __repr__(self) -> str:
        return f"<Proxy for {self.client!r}>"

    async def handle(self, inbound: Inbound) -> Outbound:
        """Answer one request; never raises, except when the visitor left."""
        started = time.monotonic()
        endpoint, slug = _route(inbound.path)
        origin = inbound.headers.get("Origin")
        try:
            outbound = await self._dispatch(inbound, endpoint, slug)
        except ProxyError as error:
            outbound = _error(error)
        except VisitorGoneError:
            raise
        except Exception:
            log.exception(
                "proxy: %s failed",
                endpoint.label if endpoint else inbound.method,
            )
            outbound = _error(
                ProxyError(500, "internal-error", "The request failed")
            )
        outbound = self._with_cors(outbound, origin, inbound)
        if log.isEnabledFor(logging.DEBUG):
            log.debug(
                "proxy: %s %s -> %d in %.1f ms",
                inbound.method,
                endpoint.path if endpoint else "(no route)",
                outbound.status,
                (time.monotonic() - started) * 1000,
            )

        return outbound

    # Routing, CORS and the visitor limits.

    async def _dispatch(
        self, inbound: Inbound, endpoint: Endpoint | None, slug: str | None
    ) -> Outbound:
        if endpoint is None:
            msg = "Nothing is served at this address"
            raise ProxyError(404, "not-found", msg)
        method = inbound.method.upper()
        if method == "OPTIONS" and self.options.cors_origins:
            return self._preflight(inbound, endpoint)
        if method != endpoint.method:
            msg = f"{method} is not allowed here; use {endpoint.method}"
            raise ProxyError(
                405,
                "method-not-allowed",
                msg,
                headers=[("Allow", endpoint.method)],
            )
        if endpoint.is_write:
            self._refuse_cross_site(inbound)
        visitor = visitor_of(
            inbound.peer,
            inbound.headers.getall("X-Forwarded-For", []),
            self.options.trusted_proxies,
        )
        wait = self.visitors.hit(visitor, endpoint.value)
        if wait is not None:
            seconds = max(1, math.ceil(wait))
            msg = f"Too many requests; try again in {seconds} s"
            raise ProxyError(
                429,
                "rate-limit-exceeded",
                msg,
                headers=[("Retry-After", str(seconds))],
            )
        token = inbound.query.get("token", "")
        try:
            return await self._call(inbound, endpoint, slug, token)
        except VicketError as error:
            raise _from_sdk(error, endpoint, token) from None

    def _preflight(self, inbound: Inbound, endpoint: Endpoint) -> Outbound:
        origin = inbound.headers.get("Origin", "")
        if origin not in self.options.cors_origins:
            msg = "This origin may not call the support API"
            raise ProxyError(403, "origin-not-allowed", msg)
        wanted = inbound.headers.get("Access-Control-Request-Method", "")
        if wanted.upper() != endpoint.method:
            msg = f"{wanted or 'that method'} is not allowed here"
            raise ProxyError(
                405,
                "method-not-allowed",
                msg,
                headers=[("Allow", endpoint.method)],
            )
        headers = (
            ("Access-Control-Allow-Methods", endpoint.method),
            ("Access-Control-Allow-Headers", "Content-Type"),
            ("Access-Control-Max-Age", "600"),
        )

        return Outbound(204, headers, b"")

    def _refuse_cross_site(self, inbound: Inbound) -> None:
        # A form on another site can POST multipart bodies here without any
        # preflight; browsers say so in Sec-Fetch-Site.
        site = inbound.headers.get("Sec-Fetch-Site", "").lower()
        origin = inbound.headers.get("Origin", "")
        if site == "cross-site" and origin not in self.options.cors_origins:
            msg = "Requests from other sites are not accepted"
            raise ProxyError(403, "cross-site-request", msg)

    def _with_cors(
        self, outbound: Outbound, origin: str | None, inbound: Inbound
    ) -> Outbound:
        if not self.options.cors_origins:
            return outbound
        headers = [*outbound.headers, ("Vary", "Origin")]
        if origin is not None and origin in self.options.cors_origins:
            headers.append(("Access-Control-Allow-Origin", origin))
            if inbound.method.upper() != "OPTIONS":
                headers.append(
                    ("Access-Control-Expose-Headers", "Retry-After")
                )

        return attrs.evolve(outbound, headers=tuple(headers))

    # The endpoints.

    async def _call(
        self,
        inbound: Inbound,
        endpoint: Endpoint,
        slug: str | None,
        token: str,
    ) -> Outbound:
        client = self.client
        wait = self.options.budget_wait
        if endpoint is Endpoint.INIT:
            page = await client.with_response.init(deadline=wait)
            return Outbound(200, _BASE_HEADERS, self._init_body(page.data))
        if endpoint is Endpoint.GET_ARTICLE:
            assert slug is not None  # the route has one
            article = await client.get_article(slug, deadline=wait)
            return _success(unstructure(article))
        if endpoint is Endpoint.GET_TICKET:
            ticket = await client.get_ticket(token, deadline=wait)
            data = unstructure(ticket)
            data.pop("token", None)
            return _success(data, secrets=(token,))
        body = self._open_body(inbound)
        try:
            if endpoint is Endpoint.CREATE_TICKET:
                created = await self._create_ticket(inbound, body)
                return _success(unstructure(created), status=201)
            message = await self._reply(inbound, body, token)
            return _success(unstructure(message), status=201, secrets=(token,))
        except VicketError:
            # An upload that broke while streaming into the client shows up
            # there as a lost connection; say what really happened.
            if body.failure is not None:
                raise body.failure from None
            raise

    def _init_body(self, page: object) -> bytes:
        # Cached pages come back as the same object: serialise them once.
        memo = self._init_memo
        if memo is not None and memo[0] is page:
            return memo[1]
        body = orjson.dumps({"success": True, "data": unstructure(page)})
        self._init_memo = (page, body)

        return body

    def _open_body(self, inbound: Inbound) -> RequestBody:
        kind = inbound.headers.get("Content-Type", "")
        if not (_is_json(kind) or boundary_of(kind) is not None):
            msg = (
                "Send the body as application/json or multipart/form-data "
                "(with a boundary)"
            )
            raise ProxyError(415, "unsupported-media-type", msg)
        limit = self.options.max_body_size
        declared = inbound.headers.get("Content-Length", "")
        if declared.isdigit() and int(declared) > limit:
            raise too_large(limit)

        return RequestBody(inbound.body, limit)

    async def _create_ticket(self, inbound: Inbound, body: RequestBody) -> Any:
        client = self.client
        wait = self.options.budget_wait
        # With the templates known, the client checks the answers before
        # anything is sent; the page is almost always cached already.
        with contextlib.suppress(VicketError):
            await client.init(deadline=wait)
        kind = inbound.headers.get("Content-Type", "")
        boundary = boundary_of(kind)
        if boundary is None:
            payload = _parse_json(await body.read(min(JSON_LIMIT, body.limit)))
            email, title, template, answers = ticket_fields(payload)
            return await client.create_ticket(
                email=email,
                title=title,
                template=template,
                answers=answers,
                deadline=wait,
            )
        async with contextlib.AsyncExitStack() as stack:
            form = await read_ticket_form(body, boundary, stack)
            return await client.create_ticket(
                email=form.email,
                title=form.title,
                template=form.template,
                answers=form.answers,
                deadline=wait,
            )

    async def _reply(
        self, inbound: Inbound, body: RequestBody, token: str
    ) -> Any:
        client = self.client
        wait = self.options.budget_wait
        boundary = boundary_of(inbound.headers.get("Content-Type", ""))
        if boundary is None:
            payload = _parse_json(await body.read(min(JSON_LIMIT, body.limit)))
            return await client.reply(
                token, _reply_content(payload), deadline=wait
            )
        async with contextlib.AsyncExitStack() as stack:
            form = await read_reply_form(body, boundary, stack)
            return await client.reply(
                token,
                _reply_content(form.payload),
                attachments=form.attachments,
                deadline=wait,
            )


def _route(path: str) -> tuple[Endpoint | None, str | None]:
    endpoint = _ROUTES.get(path)
    if endpoint is not None:
        return endpoint, None
    if path.startswith(_ARTICLES):
        slug = path[len(_ARTICLES) :]
        if slug and "/" not in slug:
            return Endpoint.GET_ARTICLE, slug

    return None, None


def _check_origins(origins: Iterable[str]) -> frozenset[str]:
    if isinstance(origins, str):
        msg = "cors_origins takes a list of origins, not one string"
        raise ConfigurationError(msg)
    checked = set()
    for origin in origins:
        scheme, sep, rest = origin.partition("://")
        if (
            scheme not in ("http", "https")
            or not sep
            or not rest
            or "/" in rest
            or "*" in rest
        ):
            msg = (
                f"cors_origins has {origin!r}; give exact origins such as "
                f"'https://www.example.com', without a path or wildcard"
            )
            raise ConfigurationError(msg)
        checked.add(origin)

    return frozenset(checked)


def _is_json(content_type: str) -> bool:
    return content_type.split(";", 1)[0].strip().lower() == _JSON


def _parse_json(raw: bytes) -> object:
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        msg = "The body is not valid JSON"
        raise ProxyError(400, "invalid-json", msg) from None


def _reply_content(payload: object) -> str:
    content = payload.get("content") if isinstance(payload, dict) else None
    if not isinstance(content, str):
        msg = "A reply is a JSON object with a text field 'content'"
        raise ProxyError(
            400,
            "validation-error",
            msg,
            problems=[{"field": "content", "message": "must be text"}],
        )

    return content


def _success(
    data: Any, *, status: int = 200, secrets: tuple[str, ...] = ()
) -> Outbound:
    body = orjson.dumps({"success": True, "data": data})
    for secret in secrets:
        if secret:
            body = body.replace(secret.encode(), b"[redacted]")

    return Outbound(status, _BASE_HEADERS, body)


def _error(error: ProxyError) -> Outbound:
    envelope: dict[str, Any] = {
        "success": False,
        "error": error.message,
        "error_code": error.code,
    }
    if error.problems is not None:
        envelope["problems"] = error.problems

    return Outbound(
        error.status,
        (*_BASE_HEADERS, *error.headers),
        orjson.dumps(envelope),
    )


def _from_sdk(
    error: VicketError, endpoint: Endpoint, token: str
) -> ProxyError:
    """The answer for an SDK exception, without the key or the token."""
    secrets = (token,) if token else ()
    if isinstance(error, AnswerValidationError):
        problems = [
            {
                "field": problem.field,
                "message": redact_text(problem.message, secrets),
                **({"label": problem.label} if problem.label else {}),
            }
            for problem in error.problems
        ]
        count = len(problems)
        noun = "problem" if count == 1 else "problems"
        msg = f"Nothing was sent: {count} {noun} to fix"
        return ProxyError(400, "validation-error", msg, problems=problems)
    if isinstance(error, RateLimitError):
        return _rate_limited(error, endpoint)
    if isinstance(error, APIError) and error.status is not None:
        if error.status >= 500:
            log.warning(
                "proxy: %s answered %s upstream", endpoint.label, error.status
            )
        return ProxyError(
            error.status,
            error.error_code or "upstream-error",
            redact_text(error.server_message, secrets),
        )
    if isinstance(error, VicketTimeoutError):
        log.warning("proxy: %s timed out upstream", endpoint.label)
        msg = "The support service did not answer in time"
        return ProxyError(504, "gateway-timeout", msg)
    if isinstance(error, TransportError | UnexpectedResponseError):
        log.warning(
            "proxy: %s failed upstream (%s)", endpoint.label, describe(error)
        )
        msg = "The support service could not be reached"
        return ProxyError(502, "bad-gateway", msg)
    if isinstance(error, UploadError):
        msg = "An uploaded file could not be read"
        return ProxyError(400, "upload-failed", msg)
    log.error("proxy: %s failed (%s)", endpoint.label, type(error).__name__)

    return ProxyError(500, "internal-error", "The request failed")


def _rate_limited(error: RateLimitError, endpoint: Endpoint) -> ProxyError:
    retry = error.retry_after
    seconds = max(1, math.ceil(retry)) if retry is not None else 60
    log.warning(
        "proxy: %s refused for lack of rate budget (retry in %d s)",
        endpoint.label,
        seconds,
    )
    msg = (
        f"The support service is busy; try again in {seconds} s"
        if error.status is None
        else error.server_message
    )

    return ProxyError(
        429,
        error.error_code or "rate-limit-exceeded",
        msg,
        headers=[("Retry-After", str(seconds))],
    )
