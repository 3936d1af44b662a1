"""
Control endpoints under ``/_sandbox``: inspect and drive a running sandbox.

They need no API key and are not part of the Vicket API; tests and demos
use them to read the outbox, act as a support agent, expire links and
look at the requests that reached the API, also when the sandbox runs in
another process.
"""

from __future__ import annotations

import html
from typing import Any, cast

import orjson
from aiohttp import web

from ._clock import format_timestamp
from ._faults import FaultKind
from ._records import Attachment, Email, RequestRecord, Ticket
from ._render import FILES_PATH, render_ticket_admin
from ._web import STATE_KEY, ApiError, envelope_response

__all__ = ["ADMIN_PREFIX", "add_admin_routes", "email_json", "request_json"]

ADMIN_PREFIX = "/_sandbox"


def add_admin_routes(app: web.Application) -> None:
    """Add the control endpoints to *app*."""
    p = ADMIN_PREFIX
    router = app.router
    router.add_get(f"{p}/health", _health)
    router.add_post(f"{p}/reset", _reset)
    router.add_get(f"{p}/outbox", _outbox)
    router.add_delete(f"{p}/outbox", _clear_outbox)
    router.add_get(f"{p}/tickets", _tickets)
    router.add_get(f"{p}/tickets/{{ticket_id}}", _ticket)
    router.add_patch(f"{p}/tickets/{{ticket_id}}", _update_ticket)
    router.add_post(f"{p}/tickets/{{ticket_id}}/agent-reply", _agent_reply)
    router.add_post(
        f"{p}/tickets/{{ticket_id}}/system-message", _system_message
    )
    router.add_post(f"{p}/tickets/{{ticket_id}}/expire", _expire_ticket)
    router.add_post(f"{p}/tokens/{{token}}/expire", _expire_token)
    router.add_get(f"{p}/requests", _requests)
    router.add_delete(f"{p}/requests", _clear_requests)
    router.add_get(f"{p}/clock", _clock)
    router.add_post(f"{p}/clock/advance", _advance_clock)
    router.add_get(f"{p}/faults", _faults)
    router.add_post(f"{p}/faults", _add_fault)
    router.add_delete(f"{p}/faults", _clear_faults)
    router.add_put(f"{p}/faults/jitter", _set_jitter)
    router.add_delete(f"{p}/faults/jitter", _clear_jitter)
    router.add_get(f"{p}/rate-limits", _rate_limits)
    router.add_put(f"{p}/rate-limits", _configure_rate_limits)
    router.add_post(f"{p}/rate-limits/reset", _reset_rate_limits)
    router.add_get(f"{FILES_PATH}/{{file_id}}", _file)
    router.add_get(f"{p}/view", _view)


def email_json(mail: Email) -> dict[str, Any]:
    """An outbox email as JSON."""
    return {
        "to": mail.to,
        "subject": mail.subject,
        "token": mail.token,
        "link": mail.link,
        "kind": mail.kind,
        "ticket_id": mail.ticket_id,
        "sent_at": format_timestamp(mail.sent_at),
    }


def request_json(record: RequestRecord) -> dict[str, Any]:
    """A logged request as JSON."""
    return {
        "method": record.method,
        "path": record.path,
        "query": dict(record.query),
        "headers": {str(k): v for k, v in record.headers.items()},
        "status": record.status,
        "time": format_timestamp(record.time),
        "endpoint": record.endpoint,
        "fault": record.fault,
    }


async def json_body(request: web.Request) -> dict[str, Any]:
    """The JSON object a control request carries (``{}`` when empty)."""
    raw = await request.read()
    if not raw.strip():
        return {}
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        msg = f"The request body is not valid JSON: {exc}"
        raise ApiError(400, "invalid-json", msg) from None
    if not isinstance(body, dict):
        msg = "The request body must be a JSON object"
        raise ApiError(400, "validation-error", msg)

    return body


def _origin(request: web.Request) -> str:
    return str(request.url.origin())


def _find_ticket(request: web.Request) -> Ticket:
    state = request.app[STATE_KEY]
    ticket_id = request.match_info["ticket_id"]
    try:
        return state.ticket(ticket_id)
    except KeyError:
        msg = f"No ticket has the id {ticket_id!r}"
        raise ApiError(404, "ticket-not-found", msg) from None


def _text(body: dict[str, Any], field: str, *, required: bool) -> str | None:
    value = body.get(field)
    if value is None and not required:
        return None
    if not isinstance(value, str) or not value.strip():
        msg = f"The field {field!r} must be non-empty text"
        raise ApiError(400, "validation-error", msg)

    return value


async def _health(request: web.Request) -> web.StreamResponse:
    state = request.app[STATE_KEY]

    return envelope_response(
        {
            "status": "ok",
            "shape": state.shape,
            "time_scale": state.clock.time_scale,
            "websites": len(state.websites),
        }
    )


async def _reset(request: web.Request) -> web.StreamResponse:
    request.app[STATE_KEY].reset()

    return envelope_response({"reset": True})


async def _outbox(request: web.Request) -> web.StreamResponse:
    state = request.app[STATE_KEY]
    to = request.query.get("to")
    mails = state.emails_to(to) if to else state.outbox

    return envelope_response([email_json(mail) for mail in mails])


async def _clear_outbox(request: web.Request) -> web.StreamResponse:
    request.app[STATE_KEY].clear_outbox()

    return envelope_response({"cleared": True})


async def _tickets(request: web.Request) -> web.StreamResponse:
    state = request.app[STATE_KEY]
    email = request.query.get("email")
    found = state.tickets_for(email) if email else state.all_tickets()
    origin = _origin(request)

    return envelope_response(
        [render_ticket_admin(ticket, origin) for ticket in found]
    )


async def _ticket(request: web.Request) -> web.StreamResponse:
    ticket = _find_ticket(request)

    return envelope_response(render_ticket_admin(ticket, _origin(request)))


async def _update_ticket(request: web.Request) -> web.StreamResponse:
    state = request.app[STATE_KEY]
    ticket = _find_ticket(request)
    body = await json_body(request)
    status = _text(body, "status", required=False)
    priority = _text(body, "priority", required=False)
    if status is not None:
        state.set_status(ticket, status)
    if priority is not None:
        state.set_priority(ticket, priority)

    return envelope_response(render_ticket_admin(ticket, _origin(request)))


async def _agent_reply(request: web.Request) -> web.StreamResponse:
    state = request.app[STATE_KEY]
    ticket = _find_ticket(request)
    body = await json_body(request)
    content = _text(body, "content", required=True)
    author = _text(body, "author_name", required=False)
    assert content is not None
    message = state.agent_reply(ticket, content, author_name=author)

    return envelope_response({"id": message.id}, status=201)


async def _system_message(request: web.Request) -> web.StreamResponse:
    state = request.app[STATE_KEY]
    ticket = _find_ticket(request)
    body = await json_body(request)
    content = _text(body, "content", required=True)
    assert content is not None
    message = state.system_message(ticket, content)

    return envelope_response({"id": message.id}, status=201)


async def _expire_ticket(request: web.Request) -> web.StreamResponse:
    state = request.app[STATE_KEY]
    expired = state.expire_ticket_tokens(_find_ticket(request))

    return envelope_response({"expired": expired})


async def _expire_token(request: web.Request) -> web.StreamResponse:
    state = request.app[STATE_KEY]
    token = request.match_info["token"]
    try:
        state.expire_token(token)
    except KeyError:
        msg = "The sandbox never issued that token"
        raise ApiError(404, "token-not-found", msg) from None

    return envelope_response({"expired": [token]})


async def _requests(request: web.Request) -> web.StreamResponse:
    state = request.app[STATE_KEY]
    endpoint = request.query.get("endpoint")
    records = (
        state.requests_for(endpoint) if endpoint else list(state.requests)
    )

    return envelope_response([request_json(record) for record in records])


async def _clear_requests(request: web.Request) -> web.StreamResponse:
    request.app[STATE_KEY].clear_requests()

    return envelope_response({"cleared": True})


async def _clock(request: web.Request) -> web.StreamResponse:
    clock = request.app[STATE_KEY].clock

    return envelope_response(
        {
            "now": clock.isoformat(),
            "epoch": clock.now(),
            "time_scale": clock.time_scale,
        }
    )


async def _advance_clock(request: web.Request) -> web.StreamResponse:
    clock = request.app[STATE_KEY].clock
    body = await json_body(request)
    seconds = body.get("seconds")
    if (
        isinstance(seconds, bool)
        or not isinstance(seconds, int | float)
        or seconds < 0
    ):
        msg = "The field 'seconds' must be a number of seconds, 0 or more"
        raise ApiError(400, "validation-error", msg)
    clock.advance(float(seconds))

    return envelope_response({"now": clock.isoformat(), "epoch": clock.now()})


def _faults_json(request: web.Request) -> dict[str, Any]:
    faults = request.app[STATE_KEY].faults
    jitter = faults.jitter

    return {
        "faults": [fault.to_json() for fault in faults.active],
        "jitter": None
        if jitter is None
        else {"min_ms": jitter[0], "max_ms": jitter[1]},
    }


async def _faults(request: web.Request) -> web.StreamResponse:
    return envelope_response(_faults_json(request))


async def _add_fault(request: web.Request) -> web.StreamResponse:
    faults = request.app[STATE_KEY].faults
    body = await json_body(request)
    unknown = set(body) - _FAULT_FIELDS
    if unknown:
        msg = f"Unknown fault fields: {', '.join(sorted(unknown))}"
        raise ApiError(400, "validation-error", msg)
    try:
        fault = faults.add(
            # add() checks the kind; the cast only informs the type checker.
            cast("FaultKind", body.get("kind")),
            body.get("endpoint", "*"),
            times=body.get("times", 1),
            status=body.get("status"),
            delay=float(body.get("delay", 0.0)),
            retry_after=body.get("retry_after"),
            location=body.get("location"),
        )
    except (TypeError, ValueError) as exc:
        raise ApiError(400, "validation-error", str(exc)) from None

    return envelope_response(fault.to_json(), status=201)


_FAULT_FIELDS = frozenset(
    {
        "kind",
        "endpoint",
        "times",
        "status",
        "delay",
        "retry_after",
        "location",
    }
)


async def _clear_faults(request: web.Request) -> web.StreamResponse:
    request.app[STATE_KEY].faults.clear(request.query.get("endpoint"))

    return envelope_response(_faults_json(request))


async def _set_jitter(request: web.Request) -> web.StreamResponse:
    faults = request.app[STATE_KEY].faults
    body = await json_body(request)
    try:
        faults.set_jitter(
            float(body.get("min_ms", 0)), float(body.get("max_ms", 0))
        )
    except (TypeError, ValueError) as exc:
        raise ApiError(400, "validation-error", str(exc)) from None

    return envelope_response(_faults_json(request))


async def _clear_jitter(request: web.Request) -> web.StreamResponse:
    request.app[STATE_KEY].faults.clear_jitter()

    return envelope_response(_faults_json(request))


async def _rate_limits(request: web.Request) -> web.StreamResponse:
    return envelope_response(request.app[STATE_KEY].rate_limiter.describe())


async def _configure_rate_limits(request: web.Request) -> web.StreamResponse:
    limiter = request.app[STATE_KEY].rate_limiter
    body = await json_body(request)
    try:
        if "mode" in body:
            mode = body["mode"]
            limiter.mode = None if mode in (None, "off") else mode
        if "period" in body:
            limiter.period = float(body["period"])
        for endpoint, limit in dict(body.get("limits") or {}).items():
            limiter.set_limit(endpoint, limit)
        if "retry_after_header" in body:
            limiter.retry_after_header = bool(body["retry_after_header"])
        if "count_rejected" in body:
            limiter.count_rejected = bool(body["count_rejected"])
    except (TypeError, ValueError) as exc:
        raise ApiError(400, "validation-error", str(exc)) from None

    return envelope_response(limiter.describe())


async def _reset_rate_limits(request: web.Request) -> web.StreamResponse:
    limiter = request.app[STATE_KEY].rate_limiter
    limiter.reset()

    return envelope_response(limiter.describe())


async def _file(request: web.Request) -> web.StreamResponse:
    state = request.app[STATE_KEY]
    file_id = request.match_info["file_id"]
    attachment = state.files.get(file_id)
    if attachment is None:
        msg = f"No file has the id {file_id!r}"
        raise ApiError(404, "file-not-found", msg)
    if attachment.content is None:
        msg = (
            f"The file {attachment.original_filename!r} was too large to "
            f"keep; only its size and SHA-256 were recorded"
        )
        raise ApiError(404, "file-not-stored", msg)
    disposition = f'attachment; filename="{_quoted(attachment)}"'

    return web.Response(
        body=attachment.content,
        content_type=attachment.mime_type,
        headers={"Content-Disposition": disposition},
    )


def _quoted(attachment: Attachment) -> str:
    name = attachment.original_filename

    return name.replace("\\", "_").replace('"', "_").replace("\r", "_")


async def _view(request: web.Request) -> web.StreamResponse:
    """A plain HTML page of a ticket, where the emailed links lead."""
    state = request.app[STATE_KEY]
    token = request.query.get("token", "")
    ticket = state.ticket_for_token(token)
    record = state.tokens.get(token)
    if ticket is None or record is None:
        body = "<p>This ticket link is not valid.</p>"
        return _page("Ticket not found", body, status=404)
    if record.expired(state.clock.now()):
        body = (
            "<p>This link has expired. Opening it through the API emails "
            "a new one.</p>"
        )
        return _page("Link expired", body, status=410)
    parts = [
        f"<p>Status: {html.escape(ticket.status)} &middot; "
        f"Priority: {html.escape(ticket.priority)}</p>"
    ]
    for message in ticket.messages:
        who = html.escape(f"{message.author_name} ({message.author_type})")
        when = format_timestamp(message.created_at)
        # Message content is HTML written by the sandbox or the reporter;
        # escaping it keeps the page inert whatever it holds.
        parts.append(
            f"<article><h2>{who}, {when}</h2>"
            f"<pre>{html.escape(message.content)}</pre></article>"
        )

    return _page(ticket.title, "\n".join(parts))


def _page(title: str, body: str, *, status: int = 200) -> web.Response:
    text = (
        '<!doctype html>\n<html><head><meta charset="utf-8">'
        f"<title>{html.escape(title)}</title></head>\n"
        f"<body><h1>{html.escape(title)}</h1>\n{body}\n</body></html>\n"
    )

    return web.Response(text=text, status=status, content_type="text/html")
