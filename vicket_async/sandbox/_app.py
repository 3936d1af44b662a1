"""The aiohttp application: the public support API and its middlewares."""

from __future__ import annotations

import asyncio
import http
import logging
import math
import re
from collections.abc import Awaitable, Callable
from typing import NoReturn

import orjson
from aiohttp import web

from ._admin import ADMIN_PREFIX, add_admin_routes
from ._endpoints import API_PREFIX, ENDPOINTS
from ._faults import Fault
from ._ratelimit import RateDecision
from ._records import Attachment, RequestRecord, Ticket, Website
from ._render import (
    render_article,
    render_init,
    render_reply,
    render_thread,
)
from ._seed import demo_website
from ._state import SandboxState
from ._uploads import next_part, open_multipart, read_field, read_file
from ._validation import validate_ticket
from ._web import STATE_KEY, ApiError, envelope_response

__all__ = ["API_PREFIX", "ENDPOINTS", "make_app"]

log = logging.getLogger("vicket_async.sandbox")

_Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
_WEBSITE = web.RequestKey("vicket_sandbox_website", Website)
_FAULT = web.RequestKey("vicket_sandbox_fault", str)
_JSON_TYPES = ("application/json",)
_MULTIPART = "multipart/form-data"
_FILES_FIELD = re.compile(r"files\[([^\[\]]+)\]")
_MAX_DATA_FIELD = 1024 * 1024
_HTTP_CODES = {
    400: "bad-request",
    404: "not-found",
    405: "method-not-allowed",
    413: "payload-too-large",
}


def make_app(state: SandboxState | None = None) -> web.Application:
    """
    Build the sandbox's aiohttp application around *state*.

    Without a state, a fresh one is made and the demo website is seeded
    into it.  Serve the application with any aiohttp runner; the API lives
    under ``/api/v1/public/support`` and the sandbox's control endpoints
    under ``/_sandbox``.
    """
    if state is None:
        state = SandboxState()
        state.add_website(demo_website())
    app = web.Application(
        middlewares=[_record, _inject_faults, _envelope, _gate]
    )
    app[STATE_KEY] = state
    router = app.router
    router.add_get(f"{API_PREFIX}/init", _init, name="init")
    router.add_post(f"{API_PREFIX}/tickets", _create, name="create_ticket")
    router.add_get(f"{API_PREFIX}/ticket", _thread, name="get_ticket")
    router.add_post(f"{API_PREFIX}/ticket/messages", _reply, name="reply")
    router.add_get(f"{API_PREFIX}/articles/{{slug}}", _article, name="article")
    add_admin_routes(app)

    return app


# Middlewares, outermost first.


@web.middleware
async def _record(
    request: web.Request, handler: _Handler
) -> web.StreamResponse:
    """Log every request that is not addressed to the control endpoints."""
    if request.path.startswith(ADMIN_PREFIX + "/"):
        return await handler(request)
    state = request.app[STATE_KEY]
    arrived = state.clock.now()
    status: int | None = None
    try:
        response = await handler(request)
        status = response.status
    except web.HTTPException as exc:
        status = exc.status
        raise
    finally:
        fault = request.get(_FAULT)
        state.record_request(
            RequestRecord(
                method=request.method,
                path=request.path,
                query=dict(request.query),
                headers=request.headers,
                status=None if fault == "drop" else status,
                time=arrived,
                endpoint=_endpoint(request),
                fault=fault,
            )
        )

    return response


@web.middleware
async def _inject_faults(
    request: web.Request, handler: _Handler
) -> web.StreamResponse:
    """Apply latency jitter and the first armed fault for the endpoint."""
    endpoint = _endpoint(request)
    if endpoint is None:
        return await handler(request)
    faults = request.app[STATE_KEY].faults
    pause = faults.jitter_seconds()
    if pause:
        await asyncio.sleep(pause)
    fault = faults.take(endpoint)
    if fault is None:
        return await handler(request)
    request[_FAULT] = fault.kind
    log.debug("Injecting fault %s on %s", fault.kind, endpoint)

    return await _apply_fault(fault, request, handler)


@web.middleware
async def _envelope(
    request: web.Request, handler: _Handler
) -> web.StreamResponse:
    """Answer every error with the API's error envelope."""
    try:
        return await handler(request)
    except ApiError as exc:
        return exc.to_response()
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        code = _HTTP_CODES.get(exc.status, "http-error")
        headers = {}
        message = exc.reason
        if exc.status == 404:
            message = f"Nothing is served at {request.path}"
        elif exc.status == 405:
            allowed = exc.headers.get("Allow", "")
            headers["Allow"] = allowed
            message = (
                f"{request.method} is not allowed on {request.path}; "
                f"use {allowed.replace(',', ', ')}"
            )
        error = ApiError(exc.status, code, message, headers=headers)

        return error.to_response()
    except Exception:
        log.exception(
            "The sandbox failed on %s %s", request.method, request.path
        )
        msg = "The sandbox hit an unexpected error"

        return ApiError(500, "internal-error", msg).to_response()


@web.middleware
async def _gate(request: web.Request, handler: _Handler) -> web.StreamResponse:
    """Check the API key, then the rate limit, of API requests."""
    endpoint = _endpoint(request)
    if endpoint is None:
        return await handler(request)
    state = request.app[STATE_KEY]
    website = state.website_for_key(request.headers.get("X-Api-Key"))
    if website is None:
        msg = "The X-Api-Key header is missing or holds an unknown key"
        raise ApiError(401, "invalid-api-key", msg)
    request[_WEBSITE] = website
    decision = state.rate_limiter.hit(
        website.api_key, endpoint, state.clock.now()
    )
    if decision is None:
        return await handler(request)
    headers = _rate_headers(state, decision)
    if not decision.allowed:
        period = state.rate_limiter.period
        per = "minute" if period == 60 else f"{period:g} seconds"
        msg = (
            f"Too many requests to {endpoint}: the limit is "
            f"{decision.limit} per {per}"
        )
        raise ApiError(429, "rate-limit-exceeded", msg, headers=headers)
    try:
        response = await handler(request)
    except ApiError as exc:
        exc.headers.update(headers)
        raise
    response.headers.update(headers)

    return response


# The five endpoints.


async def _init(request: web.Request) -> web.StreamResponse:
    state = request.app[STATE_KEY]
    data = render_init(
        request[_WEBSITE], state.shape, sparse=state.sparse_init
    )

    return envelope_response(data)


async def _create(request: web.Request) -> web.StreamResponse:
    state = request.app[STATE_KEY]
    website = request[_WEBSITE]
    files: dict[str, Attachment] = {}
    kind = request.content_type
    if kind in _JSON_TYPES:
        payload = await _read_json(request)
    elif kind == _MULTIPART:
        payload, files = await _read_ticket_multipart(request, state)
    else:
        _unsupported(kind)
    draft = validate_ticket(
        website, payload, files, multipart=kind == _MULTIPART
    )
    for attachment in files.values():
        state.store_file(attachment)
    receipt = state.create_ticket(
        website,
        email=draft.email,
        title=draft.title,
        template=draft.template,
        answers=draft.answers,
        origin=_origin(request),
    )
    warning = None
    if receipt.email_limit_reached:
        warning = (
            "Your ticket was created, but you reached the limit of emails "
            "we send you for now, so no email with its link was sent"
        )

    return envelope_response(
        {
            "email_limit_reached": receipt.email_limit_reached,
            "warning": warning,
        },
        status=201,
    )


async def _thread(request: web.Request) -> web.StreamResponse:
    state = request.app[STATE_KEY]
    ticket, token = _open_ticket(request)
    data = render_thread(ticket, token, state.shape, _origin(request))

    return envelope_response(data)


async def _reply(request: web.Request) -> web.StreamResponse:
    state = request.app[STATE_KEY]
    ticket, _ = _open_ticket(request)
    attachments: list[Attachment] = []
    kind = request.content_type
    if kind in _JSON_TYPES:
        payload = await _read_json(request)
    elif kind == _MULTIPART:
        payload, attachments = await _read_reply_multipart(request, state)
    else:
        _unsupported(kind)
    content = _reply_content(payload)
    for attachment in attachments:
        state.store_file(attachment)
    message = state.add_reporter_message(ticket, content, attachments)
    data = render_reply(message, state.shape, _origin(request))

    return envelope_response(data, status=201)


async def _article(request: web.Request) -> web.StreamResponse:
    state = request.app[STATE_KEY]
    slug = request.match_info["slug"]
    article = request[_WEBSITE].articles.get(slug)
    if article is None:
        msg = f"No published article has the slug {slug!r}"
        raise ApiError(404, "article-not-found", msg)

    return envelope_response(render_article(article, state.shape))


# Helpers.


def _real_seconds(state: SandboxState, sandbox_seconds: float) -> int:
    """A sandbox duration as whole real seconds, rounded up."""
    real = state.clock.to_real(sandbox_seconds)

    # The slack keeps float noise such as 1.0000000002 from becoming 2.
    return max(0, math.ceil(real - 1e-6))


def _rate_headers(
    state: SandboxState, decision: RateDecision
) -> dict[str, str]:
    headers = {
        "X-RateLimit-Limit": str(decision.limit),
        "X-RateLimit-Remaining": str(decision.remaining),
        "X-RateLimit-Reset": str(_real_seconds(state, decision.reset_after)),
    }
    if not decision.allowed and state.rate_limiter.retry_after_header:
        wait = _real_seconds(state, decision.retry_after)
        headers["Retry-After"] = str(max(1, wait))

    return headers


# Fault answers.


_STATUS_CODES = {
    500: "internal-error",
    502: "bad-gateway",
    503: "service-unavailable",
    504: "gateway-timeout",
}
_TRUNCATED_JSON = b'{"success": true, "data": {"id": "tick_'
_HTML_PAGE = """<!DOCTYPE html>
<html>
<head><title>{status} {reason}</title></head>
<body>
<center><h1>{status} {reason}</h1></center>
<hr><center>nginx</center>
</body>
</html>
"""


async def _apply_fault(
    fault: Fault, request: web.Request, handler: _Handler
) -> web.StreamResponse:
    """Answer (or not) the way *fault* says."""
    status = fault.status or 500
    if fault.kind == "drop":
        if request.transport is not None:
            request.transport.close()
        # aiohttp notices the closed transport when it writes this and
        # drops it quietly.
        return web.Response(status=204)
    if fault.kind == "delay":
        response = await handler(request)
        await asyncio.sleep(fault.delay)

        return response
    if fault.kind == "malformed_json":
        return web.Response(
            body=_TRUNCATED_JSON,
            status=status,
            content_type="application/json",
        )
    if fault.kind == "html_error":
        reason = _reason(status)
        page = _HTML_PAGE.format(status=status, reason=reason)

        return web.Response(text=page, status=status, content_type="text/html")
    if fault.kind == "redirect":
        location = fault.location or "/"

        return web.Response(status=status, headers={"Location": location})
    headers = {}
    if fault.retry_after is not None:
        headers["Retry-After"] = str(fault.retry_after)
    if fault.kind == "rate_limited":
        msg = "Too many requests: slow down"
        error = ApiError(429, "rate-limit-exceeded", msg, headers=headers)
    else:
        code = _STATUS_CODES.get(status, "injected-error")
        msg = f"The service failed to answer ({status} {_reason(status)})"
        error = ApiError(status, code, msg, headers=headers)

    return error.to_response()


def _reason(status: int) -> str:
    try:
        return http.HTTPStatus(status).phrase
    except ValueError:
        return "Error"


def _endpoint(request: web.Request) -> str | None:
    """The API endpoint a request was routed to, if it was."""
    name = request.match_info.route.name

    return name if name in ENDPOINTS else None


def _origin(request: web.Request) -> str:
    return str(request.url.origin())


def _open_ticket(request: web.Request) -> tuple[Ticket, str]:
    """
    The ticket behind the request's ``token``, or the matching error.

    Opening an expired link emails the reporter a new one, as the service
    does, and answers 410.
    """
    state = request.app[STATE_KEY]
    token = request.query.get("token", "")
    if not token:
        msg = "A ticket token is required: add ?token=... to the URL"
        raise ApiError(401, "invalid-token", msg)
    found = state.resolve_token(token, request[_WEBSITE])
    if found is None:
        msg = "The ticket link is not valid"
        raise ApiError(401, "invalid-token", msg)
    ticket, record = found
    if record.expired(state.clock.now()):
        state.send_new_link(ticket, _origin(request))
        msg = (
            "This ticket link has expired; a new link was emailed to the "
            "reporter"
        )
        raise ApiError(410, "ticket-link-expired", msg)

    return ticket, token


def _unsupported(kind: str) -> NoReturn:
    msg = (
        f"Send the body as application/json or multipart/form-data, not {kind}"
    )
    raise ApiError(400, "unsupported-content-type", msg)


def _parse_json(raw: bytes, where: str) -> object:
    if not raw.strip():
        msg = f"{where} is empty"
        raise ApiError(400, "invalid-json", msg)
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        msg = f"{where} is not valid JSON: {exc}"
        raise ApiError(400, "invalid-json", msg) from None


async def _read_json(request: web.Request) -> object:
    return _parse_json(await request.read(), "The request body")


async def _read_ticket_multipart(
    request: web.Request, state: SandboxState
) -> tuple[object, dict[str, Attachment]]:
    """Stream a ticket's multipart body: one ``data`` field and files."""
    reader = await open_multipart(request)
    payload: object = None
    seen_data = False
    files: dict[str, Attachment] = {}
    while (part := await next_part(reader)) is not None:
        name = part.name or ""
        match = _FILES_FIELD.fullmatch(name)
        if name == "data":
            if seen_data:
                _bad_part("The field 'data' was sent twice")
            raw = await read_field(part, limit=_MAX_DATA_FIELD)
            payload = _parse_json(raw, "The field 'data'")
            seen_data = True
        elif match is not None:
            question_id = match.group(1)
            if question_id in files:
                msg = f"The part {name} was sent twice"
                _bad_part(msg)
            files[question_id] = await read_file(
                part, keep_limit=state.keep_file_bytes
            )
        else:
            msg = (
                f"Unexpected part {name!r}: a ticket takes a 'data' field "
                f"and files[QUESTION_ID] files"
            )
            _bad_part(msg)
    if not seen_data:
        _bad_part("The multipart body has no 'data' field")

    return payload, files


async def _read_reply_multipart(
    request: web.Request, state: SandboxState
) -> tuple[object, list[Attachment]]:
    """Stream a reply's multipart body: one ``data`` field and files."""
    reader = await open_multipart(request)
    payload: object = None
    seen_data = False
    files: list[Attachment] = []
    while (part := await next_part(reader)) is not None:
        name = part.name or ""
        if name == "data":
            if seen_data:
                _bad_part("The field 'data' was sent twice")
            raw = await read_field(part, limit=_MAX_DATA_FIELD)
            payload = _parse_json(raw, "The field 'data'")
            seen_data = True
        elif name == "files":
            files.append(
                await read_file(part, keep_limit=state.keep_file_bytes)
            )
        else:
            msg = (
                f"Unexpected part {name!r}: a reply takes a 'data' field and "
                f"'files' files"
            )
            _bad_part(msg)
    if not seen_data:
        _bad_part("The multipart body has no 'data' field")

    return payload, files


def _bad_part(message: str) -> NoReturn:
    raise ApiError(400, "invalid-multipart", message)


def _reply_content(payload: object) -> str:
    if not isinstance(payload, dict):
        msg = "A reply must be a JSON object with a 'content' field"
        raise ApiError(400, "validation-error", msg)
    content = payload.get("content")
    if content is None:
        msg = "The field 'content' is required"
        raise ApiError(400, "validation-error", msg)
    if not isinstance(content, str):
        msg = "The field 'content' must be text"
        raise ApiError(400, "validation-error", msg)
    if not content.strip():
        msg = "A reply must not be empty"
        raise ApiError(400, "validation-error", msg)

    return content
