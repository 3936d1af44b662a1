"""
The aiohttp layer: send one prepared request, hand back what came back.

This is the only module that talks to aiohttp's client. It owns the
``ClientSession`` (unless the user lent one), follows redirects itself so the
API key never leaves the configured origin, and turns aiohttp's exceptions
into ours.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncGenerator
from types import SimpleNamespace
from typing import TYPE_CHECKING

import aiohttp
import attrs
from multidict import CIMultiDict, CIMultiDictProxy
from yarl import URL

from ._protocol.answers import Body
from ._protocol.endpoints import Endpoint, origin_of, redact_text
from .exceptions import (
    ClientStateError,
    TransportError,
    UnexpectedResponseError,
    UnsafeRedirectError,
    UploadError,
    VicketConnectionError,
    VicketTimeoutError,
)

if TYPE_CHECKING:
    from ._budgets import Slot

__all__ = ["Attempt", "RawResponse", "Timeouts", "Transport"]

log = logging.getLogger("vicket_async.http")

_REDIRECTS = frozenset({301, 302, 303, 307, 308})
_MAX_REDIRECTS = 5
#: Answers of this API are small JSON documents; anything far larger is not.
_MAX_BODY = 32 * 1024 * 1024


@attrs.frozen(kw_only=True)
class Timeouts:
    """
    How long a request may take, in seconds.

    ``connect`` bounds getting a connection, ``read`` the wait for each piece
    of the answer, and ``total`` the whole request (None: no bound, so that
    large uploads are not cut short).
    """

    connect: float = 10.0
    read: float = 30.0
    total: float | None = None

    def to_aiohttp(self) -> aiohttp.ClientTimeout:
        return aiohttp.ClientTimeout(
            total=self.total, connect=self.connect, sock_read=self.read
        )


@attrs.frozen(kw_only=True)
class RawResponse:
    """An HTTP answer as received."""

    status: int
    headers: CIMultiDictProxy[str]
    body: bytes
    elapsed: float


class Attempt:
    """
    One attempt at a request, and whether it went out.

    ``sent`` becomes True when the request's headers were written; the
    budget slot, if any, is stamped at that moment. On a session lent by
    the user that moment cannot be observed, so the request counts as sent
    from the start, unless the connection was never made.
    """

    __slots__ = ("sent", "slot")

    def __init__(self, slot: Slot | None = None) -> None:
        self.slot = slot
        self.sent = False

    def __deepcopy__(self, memo: dict[int, object]) -> Attempt:
        # A live handle on one request: a copy would be detached from it.
        # (Test tools that record request arguments deep-copy them.)
        return self

    async def went_out(self) -> None:
        if not self.sent:
            self.sent = True
            if self.slot is not None:
                await self.slot.mark_sent()


async def _on_headers_sent(
    session: aiohttp.ClientSession,
    context: SimpleNamespace,
    params: aiohttp.TraceRequestHeadersSentParams,
) -> None:
    attempt = (context.trace_request_ctx or {}).get("attempt")
    if isinstance(attempt, Attempt):
        await attempt.went_out()


class Transport:
    """Sends requests to one origin with the API key, over aiohttp."""

    def __init__(
        self,
        *,
        base_url: str,
        api_key: str,
        session: aiohttp.ClientSession | None,
        timeouts: Timeouts,
        user_agent: str,
    ) -> None:
        self._origin = origin_of(base_url)
        self._prefix = base_url.rstrip("/") + "/"
        self._api_key = api_key
        self._session = session
        self._owns_session = session is None
        self._timeouts = timeouts
        self._user_agent = user_agent
        self._closed = False

    def __repr__(self) -> str:
        scheme, host, port = self._origin
        return f"<Transport {scheme}://{host}:{port}>"

    @property
    def closed(self) -> bool:
        return self._closed

    def _get_session(self) -> aiohttp.ClientSession:
        if self._closed:
            msg = "this VicketClient is closed; create a new one"
            raise ClientStateError(msg)
        if self._session is None:
            tracing = aiohttp.TraceConfig()
            tracing.on_request_headers_sent.append(_on_headers_sent)
            self._session = aiohttp.ClientSession(
                timeout=self._timeouts.to_aiohttp(),
                trace_configs=[tracing],
                # One client serves many visitors of a support page: a
                # cookie set in answer to one must not travel with the
                # requests of another. The API itself sets none.
                cookie_jar=aiohttp.DummyCookieJar(),
            )
        elif self._session.closed:
            msg = "the aiohttp session lent to this VicketClient is closed"
            raise ClientStateError(msg)

        return self._session

    async def aclose(self) -> None:
        """Close the session if we created it; safe to call twice."""
        if self._closed:
            return
        self._closed = True
        if self._owns_session and self._session is not None:
            await self._session.close()

    def _headers(self, url: str, body: Body | None) -> dict[str, str]:
        headers = {
            "Accept": "application/json",
            "User-Agent": self._user_agent,
        }
        # Every URL starts at base_url, and redirects are followed only
        # within its origin; the prefix test keeps the key home regardless.
        if url.startswith(self._prefix):
            headers["X-Api-Key"] = self._api_key
        if body is not None and not body.is_multipart:
            headers["Content-Type"] = "application/json"

        return headers

    async def send(
        self,
        endpoint: Endpoint,
        url: str,
        body: Body | None = None,
        *,
        secrets: tuple[str, ...] = (),
        attempt: Attempt | None = None,
    ) -> RawResponse:
        """
        Send one request and read the whole answer.

        Same-origin redirects are followed; any other redirect raises
        `UnsafeRedirectError` before a byte goes to the other host.
        ``attempt`` learns when the request went out.
        """
        session = self._get_session()
        attempt = attempt or Attempt()
        if not self._owns_session:
            await attempt.went_out()
        method = endpoint.method
        started = time.monotonic()
        for _ in range(_MAX_REDIRECTS + 1):
            streams: list[AsyncGenerator[bytes, None]] = []
            data = _request_data(body, streams) if body else None
            try:
                status, headers, payload = await self._exchange(
                    session, endpoint, method, url, body, data, attempt
                )
            except aiohttp.ClientError as error:
                if isinstance(error, aiohttp.ClientConnectorError):
                    # Nothing went out; the slot of a lent session stays
                    # spent, which only errs on the safe side.
                    attempt.sent = False
                raise _transport_error(endpoint, error, secrets) from error
            except TimeoutError as error:
                msg = "the server did not answer in time"
                raise VicketTimeoutError(msg, endpoint=endpoint) from error
            finally:
                # aiohttp stops reading a body when the server answers
                # early; close the file streams it left open.
                for stream in streams:
                    await stream.aclose()
            location = headers.get("Location")
            if status in _REDIRECTS and location:
                url, method = self._follow(
                    endpoint, method, status, URL(url, encoded=True), location
                )
                body = _body_for_redirect(endpoint, status, body)
                continue

            return RawResponse(
                status=status,
                headers=headers,
                body=payload,
                elapsed=time.monotonic() - started,
            )

        msg = f"more than {_MAX_REDIRECTS} redirects"
        raise UnsafeRedirectError(msg, endpoint=endpoint)

    async def _exchange(
        self,
        session: aiohttp.ClientSession,
        endpoint: Endpoint,
        method: str,
        url: str,
        body: Body | None,
        data: bytes | aiohttp.MultipartWriter | None,
        attempt: Attempt,
    ) -> tuple[int, CIMultiDictProxy[str], bytes]:
        """One request and its answer: status, headers, body."""
        async with session.request(
            method,
            URL(url, encoded=True),
            headers=self._headers(url, body),
            data=data,
            allow_redirects=False,
            trace_request_ctx={"attempt": attempt},
        ) as response:
            # An answer proves the request went out, also where no trace
            # told us so.
            await attempt.went_out()
            if response.status in _REDIRECTS:
                return response.status, response.headers, b""

            return (
                response.status,
                response.headers,
                await _read_body(endpoint, response),
            )

    def _follow(
        self,
        endpoint: Endpoint,
        method: str,
        status: int,
        current: URL,
        location: str,
    ) -> tuple[str, str]:
        target = current.join(URL(location))
        scheme, host, port = origin_of(str(target))
        if scheme == "http" and self._origin[0] == "https":
            msg = (
                f"refused a redirect from https to plain http "
                f"({host}:{port}): the API key would travel unencrypted"
            )
            raise UnsafeRedirectError(msg, endpoint=endpoint)
        if (scheme, host, port) != self._origin:
            msg = (
                f"refused a redirect to another origin "
                f"({scheme}://{host}:{port}); the API key is only sent to "
                f"the configured base_url. If the API moved, set base_url "
                f"to the new origin"
            )
            raise UnsafeRedirectError(msg, endpoint=endpoint)
        if status == 303:
            method = "GET"

        return str(target), method


def _request_data(
    body: Body, streams: list[AsyncGenerator[bytes, None]]
) -> bytes | aiohttp.MultipartWriter:
    """The request's payload; file streams opened are added to ``streams``."""
    if not body.is_multipart:
        return body.payload
    writer = aiohttp.MultipartWriter("form-data")
    data_part = writer.append(body.payload.decode())
    data_part.set_content_disposition("form-data", name="data")
    for part in body.files:
        upload = part.upload
        stream = upload.chunks()
        streams.append(stream)
        file_part = writer.append(
            aiohttp.AsyncIterablePayload(stream),
            CIMultiDict({"Content-Type": upload.content_type}),
        )
        file_part.set_content_disposition(
            "form-data", name=part.field, filename=upload.filename
        )

    return writer


def _body_for_redirect(
    endpoint: Endpoint,
    status: int,
    body: Body | None,
) -> Body | None:
    if body is None:
        return None
    if status in (301, 302, 303):
        # Turning a POST into a GET, as browsers do, would drop the ticket
        # or the reply without telling anyone.
        msg = (
            f"{status}: the server redirected a {endpoint.method} in a way "
            f"that would drop its body; nothing was created"
        )
        raise UnexpectedResponseError(msg, endpoint=endpoint, status=status)
    for part in body.files:
        if not part.upload.replayable:
            msg = (
                f"the server redirected the upload of "
                f"{part.upload.filename!r}, whose stream cannot be sent again"
            )
            raise UploadError(msg, endpoint=endpoint)

    return body


async def _read_body(
    endpoint: Endpoint, response: aiohttp.ClientResponse
) -> bytes:
    length = response.content_length
    if length is not None and length > _MAX_BODY:
        msg = (
            f"{response.status}: an answer of {length} bytes is not the API's"
        )
        raise UnexpectedResponseError(
            msg, endpoint=endpoint, status=response.status
        )

    return await response.read()


def _transport_error(
    endpoint: Endpoint, error: aiohttp.ClientError, secrets: tuple[str, ...]
) -> TransportError:
    detail = redact_text(str(error) or type(error).__name__, secrets)
    if isinstance(error, aiohttp.ServerTimeoutError):
        msg = f"the server did not answer in time ({detail})"
        return VicketTimeoutError(msg, endpoint=endpoint)
    if isinstance(error, aiohttp.ClientConnectorError):
        msg = (
            f"could not connect to {error.host}:{error.port} ({detail}); "
            f"check base_url and the network"
        )
        return VicketConnectionError(msg, endpoint=endpoint)
    if isinstance(
        error,
        aiohttp.ServerDisconnectedError
        | aiohttp.ClientOSError
        | aiohttp.ClientPayloadError,
    ):
        msg = f"the connection was lost before the answer was read ({detail})"
        return VicketConnectionError(msg, endpoint=endpoint)

    msg = f"the request failed: {detail}"
    return TransportError(msg, endpoint=endpoint)
