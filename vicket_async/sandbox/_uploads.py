"""Streaming reads of multipart parts: hash everything, keep little."""

from __future__ import annotations

import hashlib
import mimetypes

from aiohttp import BodyPartReader, MultipartReader, web
from aiohttp.http_exceptions import HttpProcessingError

from ._records import Attachment
from ._state import new_id
from ._web import ApiError

__all__ = ["next_part", "open_multipart", "read_field", "read_file"]

_CHUNK = 64 * 1024
_GENERIC_TYPES = ("", "application/octet-stream")
# What aiohttp raises on a body that breaks the multipart format.
_MALFORMED = (ValueError, RuntimeError, AssertionError, HttpProcessingError)


async def open_multipart(request: web.Request) -> MultipartReader:
    """A reader for the request's multipart body, or a 400 answer."""
    try:
        return await request.multipart()
    except _MALFORMED as exc:
        msg = f"The multipart body could not be read: {exc}"
        raise ApiError(400, "invalid-multipart", msg) from None


async def next_part(reader: MultipartReader) -> BodyPartReader | None:
    """
    The next part of a multipart body, or ``None`` at its end.

    Malformed bodies and nested multiparts become a 400 answer.
    """
    try:
        part = await reader.next()
    except _MALFORMED as exc:
        msg = f"The multipart body could not be read: {exc}"
        raise ApiError(400, "invalid-multipart", msg) from None
    if isinstance(part, MultipartReader):
        msg = "Nested multipart bodies are not accepted"
        raise ApiError(400, "invalid-multipart", msg)

    return part


async def read_field(part: BodyPartReader, *, limit: int) -> bytes:
    """Read a small form field, refusing to buffer more than *limit*."""
    data = bytearray()
    while chunk := await _read_chunk(part):
        data.extend(chunk)
        if len(data) > limit:
            msg = f"The field {part.name!r} is larger than {limit} bytes"
            raise ApiError(400, "invalid-multipart", msg)

    return bytes(data)


async def read_file(part: BodyPartReader, *, keep_limit: int) -> Attachment:
    """
    Stream a file part through a SHA-256 hash, chunk by chunk.

    The bytes are kept only while the file is at most *keep_limit* bytes
    long, so a huge upload costs the sandbox one chunk of memory at a
    time rather than its full size.
    """
    filename = part.filename
    if not filename:
        msg = f"The part {part.name!r} must be a file with a filename"
        raise ApiError(400, "invalid-multipart", msg)
    digest = hashlib.sha256()
    size = 0
    kept: bytearray | None = bytearray()
    while chunk := await _read_chunk(part):
        digest.update(chunk)
        size += len(chunk)
        if kept is not None:
            if size > keep_limit:
                kept = None
            else:
                kept.extend(chunk)

    return Attachment(
        id=new_id("att"),
        original_filename=filename,
        mime_type=_mime_type(part, filename),
        size=size,
        sha256=digest.hexdigest(),
        content=bytes(kept) if kept is not None else None,
    )


async def _read_chunk(part: BodyPartReader) -> bytes:
    try:
        return await part.read_chunk(_CHUNK)
    except _MALFORMED as exc:
        msg = f"The part {part.name!r} could not be read: {exc}"
        raise ApiError(400, "invalid-multipart", msg) from None


def _mime_type(part: BodyPartReader, filename: str) -> str:
    declared = part.headers.get("Content-Type", "").split(";")[0].strip()
    if declared.lower() not in _GENERIC_TYPES:
        return declared.lower()
    guessed, _ = mimetypes.guess_type(filename)

    return guessed or "application/octet-stream"
