"""
Reading an HTTP answer: the success envelope, the error envelope, headers.

`read_envelope` turns status, headers and body into the ``data`` member of a
successful answer, or raises the matching exception from
``vicket_async.exceptions``. It never lets a parser's own exception escape.
"""

from __future__ import annotations

import email.utils
import time
from collections.abc import Mapping
from typing import Any

from ..exceptions import (
    APIError,
    AuthenticationError,
    BadRequestError,
    NotFoundError,
    RateLimitError,
    ServerError,
    TicketLinkExpiredError,
    UnexpectedResponseError,
)
from .codec import loads
from .endpoints import Endpoint, redact_text

__all__ = ["EXCERPT_LENGTH", "parse_retry_after", "read_envelope"]

#: How much of an unexpected body is quoted in an error message.
EXCERPT_LENGTH = 200

_ERRORS_BY_STATUS: dict[int, type[APIError]] = {
    400: BadRequestError,
    401: AuthenticationError,
    403: AuthenticationError,
    404: NotFoundError,
    410: TicketLinkExpiredError,
    429: RateLimitError,
}


def excerpt(body: bytes, secrets: tuple[str, ...] = ()) -> str:
    """The start of a body as text, with the secrets hidden."""
    text = body[: EXCERPT_LENGTH * 4].decode("utf-8", "replace")
    text = " ".join(text.split())
    text = redact_text(text, secrets)
    if len(text) > EXCERPT_LENGTH:
        text = text[:EXCERPT_LENGTH] + "…"

    return text


def read_envelope(
    endpoint: Endpoint,
    status: int,
    headers: Mapping[str, str],
    body: bytes,
    *,
    secrets: tuple[str, ...] = (),
    now: float | None = None,
) -> Any:
    """
    The ``data`` of a successful answer, or the exception it stands for.

    ``secrets`` are hidden from any text quoted in an error; ``now`` (epoch
    seconds) is used to read a ``Retry-After`` given as an HTTP date.
    """
    try:
        document = loads(body) if body else None
    except ValueError:
        document = None
    if isinstance(document, dict) and document.get("success") is False:
        raise _api_error(
            endpoint, status, headers, document, secrets=secrets, now=now
        )
    if status >= 400 or not isinstance(document, dict):
        raise _unexpected(endpoint, status, headers, body, secrets=secrets)
    if document.get("success") is not True or "data" not in document:
        raise _unexpected(
            endpoint,
            status,
            headers,
            body,
            secrets=secrets,
            why="a JSON body without the success envelope",
        )

    return document["data"]


def _api_error(
    endpoint: Endpoint,
    status: int,
    headers: Mapping[str, str],
    document: Mapping[str, Any],
    *,
    secrets: tuple[str, ...],
    now: float | None,
) -> APIError:
    message = document.get("error") or document.get("message")
    code = document.get("error_code")
    text = redact_text(str(message or "no message"), secrets)
    code_text = str(code) if code is not None else None
    if status == 429:
        return RateLimitError(
            text,
            endpoint=endpoint,
            status=status,
            error_code=code_text,
            headers=headers,
            retry_after=parse_retry_after(headers, now=now),
        )
    if code_text == "ticket-link-expired":
        cls: type[APIError] = TicketLinkExpiredError
    elif status >= 500:
        cls = ServerError
    else:
        cls = _ERRORS_BY_STATUS.get(status, APIError)

    return cls(
        text,
        endpoint=endpoint,
        status=status,
        error_code=code_text,
        headers=headers,
    )


def _unexpected(
    endpoint: Endpoint,
    status: int,
    headers: Mapping[str, str],
    body: bytes,
    *,
    secrets: tuple[str, ...],
    why: str | None = None,
) -> UnexpectedResponseError:
    content_type = headers.get("Content-Type", "no content type")
    quoted = excerpt(body, secrets)
    if why is None:
        why = "an empty body" if not body else f"a {content_type} body"
    message = (
        f"{status}: expected the API's JSON, got {why}"
        + (f": {quoted!r}" if quoted else "")
        + ". A proxy or gateway in front of the API may have answered;"
        " check base_url"
    )

    return UnexpectedResponseError(
        message,
        endpoint=endpoint,
        status=status,
        body_excerpt=quoted,
        headers=headers,
    )


def parse_retry_after(
    headers: Mapping[str, str], *, now: float | None = None
) -> float | None:
    """
    Seconds to wait, from ``Retry-After`` or the rate-limit reset headers.

    ``Retry-After`` may be seconds or an HTTP date. Failing that, the
    ``RateLimit-Reset`` and ``X-RateLimit-Reset`` headers are read as
    seconds from now, or as epoch seconds when the number is that large.
    """
    now = time.time() if now is None else now
    value = _header(headers, "Retry-After")
    if value is not None:
        seconds = _seconds_or_date(value, now)
        if seconds is not None:
            return seconds
    for name in ("RateLimit-Reset", "X-RateLimit-Reset"):
        value = _header(headers, name)
        if value is None:
            continue
        try:
            number = float(value)
        except ValueError:
            continue
        # Large numbers are epoch timestamps, small ones a delay.
        seconds = number - now if number > 1_000_000_000 else number
        return max(0.0, seconds)

    return None


def _header(headers: Mapping[str, str], name: str) -> str | None:
    value = headers.get(name)
    if value is None:
        lower = name.lower()
        for key, candidate in headers.items():
            if key.lower() == lower:
                return candidate.strip()
        return None

    return value.strip()


def _seconds_or_date(value: str, now: float) -> float | None:
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None

    return max(0.0, when.timestamp() - now)
