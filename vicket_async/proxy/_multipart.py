"""
A streaming reader of ``multipart/form-data`` bodies.

It works on any async iterator of byte chunks, so the aiohttp and the ASGI
front ends share it. A part's content is handed on chunk by chunk as it
arrives; the reader holds at most one incoming chunk plus the length of the
boundary, however large the part.
"""

from __future__ import annotations

import email.message
from collections.abc import AsyncIterator

__all__ = ["MalformedBodyError", "MultipartReader", "Part", "boundary_of"]

#: The most that the headers of one part may take.
MAX_PART_HEADERS = 16 * 1024
#: The most that the text before the first boundary may take.
MAX_PREAMBLE = 16 * 1024


class MalformedBodyError(ValueError):
    """The body is not the multipart form it claims to be."""


def boundary_of(content_type: str) -> bytes | None:
    """The boundary of a ``multipart/form-data`` content type, if any."""
    message = email.message.Message()
    message["Content-Type"] = content_type
    if message.get_content_type() != "multipart/form-data":
        return None
    boundary = message.get_param("boundary")
    if not isinstance(boundary, str) or not 0 < len(boundary) <= 200:
        return None
    try:
        return boundary.encode("ascii")
    except UnicodeEncodeError:
        return None


class Part:
    """One part of the body: its form field name, file name and type."""

    __slots__ = ("_reader", "content_type", "filename", "name")

    def __init__(
        self,
        reader: MultipartReader,
        name: str,
        filename: str | None,
        content_type: str,
    ) -> None:
        self._reader = reader
        self.name = name
        self.filename = filename
        self.content_type = content_type

    def __repr__(self) -> str:
        return (
            f"<Part name={self.name!r} filename={self.filename!r} "
            f"content_type={self.content_type!r}>"
        )

    def chunks(self) -> AsyncIterator[bytes]:
        """The part's content, chunk by chunk, as it arrives."""
        return self._reader._content(self)

    async def read(self, limit: int) -> bytes:
        """The whole content of a small part, refusing more than ``limit``."""
        data = bytearray()
        async for chunk in self.chunks():
            data += chunk
            if len(data) > limit:
                msg = f"the field {self.name!r} is larger than {limit} bytes"
                raise MalformedBodyError(msg)

        return bytes(data)


class MultipartReader:
    """Reads the parts of one body in order; each part only once."""

    def __init__(self, body: AsyncIterator[bytes], boundary: bytes) -> None:
        self._body = body
        self._dash = b"--" + boundary
        self._delimiter = b"\r\n--" + boundary
        self._buffer = bytearray()
        self._started = False
        self._finished = False
        self._current: Part | None = None
        self._in_content = False

    async def next_part(self) -> Part | None:
        """The next part, or None after the last; skips what was not read."""
        if self._current is not None:
            async for _ in self._current.chunks():
                pass
        if self._finished:
            return None
        if not self._started:
            await self._skip_preamble()
            self._started = True
            if await self._after_delimiter():
                return None
        headers = await self._read_headers()
        self._current = _part(self, headers)
        self._in_content = True

        return self._current

    async def _pull(self) -> bool:
        """Read one more chunk into the buffer; False at the body's end."""
        while (chunk := await anext(self._body, None)) is not None:
            if chunk:
                self._buffer += chunk
                return True

        return False

    async def _skip_preamble(self) -> None:
        while True:
            index = self._find_first_boundary()
            if index >= 0:
                del self._buffer[: index + len(self._dash)]
                return
            if len(self._buffer) > MAX_PREAMBLE:
                msg = "no boundary where the body should start"
                raise MalformedBodyError(msg)
            if not await self._pull():
                msg = "the body ended before its first boundary"
                raise MalformedBodyError(msg)

    def _find_first_boundary(self) -> int:
        if self._buffer.startswith(self._dash):
            return 0
        index = self._buffer.find(self._delimiter)

        return index + 2 if index >= 0 else -1

    async def _after_delimiter(self) -> bool:
        """Consume what follows a boundary; True when it closed the body."""
        while len(self._buffer) < 2:
            if not await self._pull():
                msg = "the body ended right after a boundary"
                raise MalformedBodyError(msg)
        if self._buffer.startswith(b"--"):
            self._finished = True
            self._buffer.clear()
            # The epilogue, if any, means nothing; drain it.
            while await self._pull():
                self._buffer.clear()
            return True
        while (end := self._buffer.find(b"\r\n")) < 0:
            if len(self._buffer) > MAX_PART_HEADERS:
                msg = "a boundary line does not end"
                raise MalformedBodyError(msg)
            if not await self._pull():
                msg = "the body ended inside a boundary line"
                raise MalformedBodyError(msg)
        if self._buffer[:end].strip(b" \t"):
            msg = "unexpected bytes after a boundary"
            raise MalformedBodyError(msg)
        del self._buffer[: end + 2]

        return False

    async def _read_headers(self) -> list[tuple[str, str]]:
        while (end := self._buffer.find(b"\r\n\r\n")) < 0:
            if len(self._buffer) > MAX_PART_HEADERS:
                msg = "the headers of a part are too long"
                raise MalformedBodyError(msg)
            if not await self._pull():
                msg = "the body ended inside the headers of a part"
                raise MalformedBodyError(msg)
        if self._buffer.startswith(b"\r\n"):
            msg = "a part has no headers"
            raise MalformedBodyError(msg)
        block = bytes(self._buffer[:end])
        del self._buffer[: end + 4]
        headers = []
        for line in block.decode("utf-8", "replace").split("\r\n"):
            name, colon, value = line.partition(":")
            if not colon:
                msg = "a part has a malformed header line"
                raise MalformedBodyError(msg)
            headers.append((name.strip().lower(), value.strip()))

        return headers

    async def _content(self, part: Part) -> AsyncIterator[bytes]:
        if part is not self._current or not self._in_content:
            return
        keep = len(self._delimiter) - 1
        while True:
            index = self._buffer.find(self._delimiter)
            if index >= 0:
                chunk = bytes(self._buffer[:index])
                del self._buffer[: index + len(self._delimiter)]
                self._in_content = False
                # Read past the boundary before the last yield, so that the
                # reader is ready for the next part even if the consumer
                # stops iterating after the last chunk.
                await self._after_delimiter()
                if chunk:
                    yield chunk
                return
            if len(self._buffer) > keep:
                # Hold back what could be the start of the delimiter.
                cut = len(self._buffer) - keep
                chunk = bytes(self._buffer[:cut])
                del self._buffer[:cut]
                yield chunk
            if not await self._pull():
                msg = f"the body ended inside the part {part.name!r}"
                raise MalformedBodyError(msg)


def _part(reader: MultipartReader, headers: list[tuple[str, str]]) -> Part:
    message = email.message.Message()
    for name, value in headers:
        if name in ("content-disposition", "content-type"):
            message[name] = value
    if message.get_content_disposition() != "form-data":
        msg = "each part must be form-data with a name"
        raise MalformedBodyError(msg)
    field = message.get_param("name", header="content-disposition")
    if not isinstance(field, str) or not field:
        msg = "a part has no field name"
        raise MalformedBodyError(msg)
    filename = message.get_filename()
    content_type = (
        message.get_content_type()
        if "content-type" in message
        else "application/octet-stream"
    )

    return Part(reader, field, filename, content_type)
