"""The request body as a counted stream, and the proxy's error answer."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable

__all__ = [
    "JSON_LIMIT",
    "ProxyError",
    "RequestBody",
    "VisitorGoneError",
    "too_large",
]

#: The most a JSON body, or the ``data`` field of a form, may take.
JSON_LIMIT = 1024 * 1024


class VisitorGoneError(ConnectionError):
    """The visitor's connection closed before the request body arrived."""


class ProxyError(Exception):
    """An answer in the error envelope, raised from anywhere in a handler."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        *,
        headers: Iterable[tuple[str, str]] = (),
        problems: list[dict[str, str]] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = tuple(headers)
        self.problems = problems


def too_large(limit: int) -> ProxyError:
    msg = f"The body is larger than the limit of {limit} bytes"
    return ProxyError(413, "payload-too-large", msg)


class RequestBody:
    """
    The request body as a stream, counted against the size limit.

    ``failure`` keeps the first reason the stream broke: an upload that
    streams into the client surfaces there only as a lost connection, and
    the proxy wants to answer with the real reason.
    """

    def __init__(self, chunks: AsyncIterator[bytes], limit: int) -> None:
        self._chunks = chunks
        self.limit = limit
        self.received = 0
        self.failure: BaseException | None = None

    def __repr__(self) -> str:
        return f"<RequestBody received={self.received} limit={self.limit}>"

    def __aiter__(self) -> RequestBody:
        return self

    async def __anext__(self) -> bytes:
        try:
            chunk = await anext(self._chunks)
        except StopAsyncIteration:
            raise
        except VisitorGoneError as error:
            self.fail(error)
            raise
        self.received += len(chunk)
        if self.received > self.limit:
            refusal = too_large(self.limit)
            self.fail(refusal)
            raise refusal

        return chunk

    def fail(self, error: BaseException) -> None:
        """Remember why the stream broke, unless a reason is known."""
        if self.failure is None:
            self.failure = error

    async def read(self, limit: int) -> bytes:
        """The whole body, which must be at most ``limit`` bytes."""
        data = bytearray()
        async for chunk in self:
            data += chunk
            if len(data) > limit:
                raise too_large(limit)

        return bytes(data)
