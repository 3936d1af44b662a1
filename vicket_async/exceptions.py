"""
Every exception the SDK raises derives from `VicketError`.

    VicketError
    ├── ConfigurationError          bad arguments to the client (ValueError)
    ├── UnknownNameError            no such template or question (KeyError)
    ├── AnswerValidationError       a ticket refused before it was sent
    ├── ClientStateError            closed client, or used from another loop
    ├── UploadError                 a file source that cannot be read
    ├── TransportError              the request did not get an answer
    │   ├── VicketConnectionError   (also a ConnectionError)
    │   ├── VicketTimeoutError      (also a TimeoutError)
    │   └── UnsafeRedirectError     a redirect we refused to follow
    ├── UnexpectedResponseError     an answer that is not the API's JSON
    └── APIError                    the API answered with its error envelope
        ├── BadRequestError         400
        ├── AuthenticationError     401
        ├── NotFoundError           404
        ├── TicketLinkExpiredError  410
        ├── RateLimitError          429, or the local budget ran out
        └── ServerError             5xx

Messages never contain the API key, and ticket tokens are redacted.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

import attrs

if TYPE_CHECKING:
    from ._protocol.endpoints import Endpoint

__all__ = [
    "APIError",
    "AnswerProblem",
    "AnswerValidationError",
    "AuthenticationError",
    "BadRequestError",
    "ClientStateError",
    "ConfigurationError",
    "NotFoundError",
    "RateLimitError",
    "ServerError",
    "TicketLinkExpiredError",
    "TransportError",
    "UnexpectedResponseError",
    "UnknownNameError",
    "UnsafeRedirectError",
    "UploadError",
    "VicketConnectionError",
    "VicketError",
    "VicketTimeoutError",
]


class VicketError(Exception):
    """
    Base class of every error raised by vicket-async.

    ``endpoint`` names the call that failed ("GET /init"), when there was
    one.
    """

    endpoint: Endpoint | None

    def __init__(
        self, message: str, *, endpoint: Endpoint | None = None
    ) -> None:
        super().__init__(message)
        self.message = message
        self.endpoint = endpoint

    def __str__(self) -> str:
        if self.endpoint is None:
            return self.message
        return f"{self.endpoint.label}: {self.message}"


class ConfigurationError(VicketError, ValueError):
    """The client was given arguments it cannot work with."""


class UnknownNameError(VicketError, KeyError):
    """A template or question was looked up by an id or name it lacks."""


class ClientStateError(VicketError, RuntimeError):
    """The client was closed, or used from an event loop it does not own."""


class UploadError(VicketError):
    """A file to upload cannot be read, or cannot be sent again."""


@attrs.frozen
class AnswerProblem:
    """One reason why a ticket was refused before it was sent."""

    field: str
    message: str
    label: str | None = None

    def __str__(self) -> str:
        if self.label:
            return f"{self.field} ({self.label}): {self.message}"
        return f"{self.field}: {self.message}"


class AnswerValidationError(VicketError, ValueError):
    """
    A ticket or reply was checked locally and refused; nothing was sent.

    ``problems`` lists every problem found, not only the first.
    """

    def __init__(
        self,
        problems: Sequence[AnswerProblem],
        *,
        endpoint: Endpoint | None = None,
    ) -> None:
        self.problems = tuple(problems)
        lines = "\n".join(f"  - {p}" for p in self.problems)
        count = len(self.problems)
        noun = "problem" if count == 1 else "problems"
        message = f"nothing was sent, {count} {noun} to fix:\n{lines}"
        super().__init__(message, endpoint=endpoint)


class TransportError(VicketError):
    """The request did not get an HTTP answer."""


class VicketConnectionError(TransportError, ConnectionError):
    """The connection failed or was dropped."""


class VicketTimeoutError(TransportError, TimeoutError):
    """The server did not answer in time."""


class UnsafeRedirectError(TransportError):
    """The server redirected to a place the API key must not go."""


class UnexpectedResponseError(VicketError):
    """
    The server answered with something that is not the API's JSON.

    Typical causes are an HTML error page from a proxy, a truncated body or a
    successful answer of the wrong shape. ``body_excerpt`` holds the start of
    the body, with any ticket token redacted.
    """

    def __init__(
        self,
        message: str,
        *,
        endpoint: Endpoint | None,
        status: int,
        body_excerpt: str = "",
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message, endpoint=endpoint)
        self.status = status
        self.body_excerpt = body_excerpt
        self.headers: Mapping[str, str] = headers or {}


class APIError(VicketError):
    """
    The API answered with its error envelope.

    Attributes: ``status`` (the HTTP status), ``error_code`` (the server's
    machine-readable code), ``server_message`` (its human-readable text),
    ``endpoint`` and ``headers``.
    """

    hint = ""

    def __init__(
        self,
        server_message: str,
        *,
        endpoint: Endpoint | None,
        status: int | None,
        error_code: str | None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        self.status = status
        self.error_code = error_code
        self.server_message = server_message
        self.headers: Mapping[str, str] = headers or {}
        parts = [str(status) if status is not None else "local"]
        if error_code:
            parts.append(error_code)
        message = f"{' '.join(parts)}: {server_message}"
        if self.hint:
            message = f"{message} ({self.hint})"
        super().__init__(message, endpoint=endpoint)


class BadRequestError(APIError):
    """400: the server refused the request's content."""


class AuthenticationError(APIError):
    """401: the API key, or the ticket token, was not accepted."""

    hint = "check the website API key, or the ticket's secure token"


class NotFoundError(APIError):
    """404: no such article, or no such route."""


class TicketLinkExpiredError(APIError):
    """
    410: the ticket's secure link expired.

    The service has already emailed a new link to the reporter; ask them to
    open the newest email.
    """

    hint = "a new link was emailed to the reporter"


class RateLimitError(APIError):
    """
    429 from the server, or the local rate budget would make the call wait
    longer than allowed.

    ``retry_after`` is the number of seconds until the call may be tried
    again, when known.
    """

    def __init__(
        self,
        server_message: str,
        *,
        endpoint: Endpoint | None,
        status: int | None,
        error_code: str | None,
        headers: Mapping[str, str] | None = None,
        retry_after: float | None = None,
    ) -> None:
        self.retry_after = retry_after
        super().__init__(
            server_message,
            endpoint=endpoint,
            status=status,
            error_code=error_code,
            headers=headers,
        )
        if retry_after is not None:
            self.message = f"{self.message}; retry in {retry_after:.3g} s"


class ServerError(APIError):
    """5xx: the server failed."""
