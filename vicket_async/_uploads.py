"""
Files to upload, read in chunks from their source on every attempt.

A `FileUpload` never holds a whole file in memory. Each attempt to send it
calls `FileUpload.chunks`, which starts again from the beginning: a path is
re-opened, bytes are sliced without copying, a seekable file object is
rewound to where it stood when the upload was made. An async iterable can be
read only once; a second attempt raises `UploadError` rather than sending an
empty or truncated file.
"""

from __future__ import annotations

import asyncio
import contextlib
import mimetypes
import os
from collections.abc import AsyncGenerator, AsyncIterable
from pathlib import Path
from typing import BinaryIO, TypeAlias

from .exceptions import UploadError

__all__ = ["CHUNK_SIZE", "FileLike", "FileUpload", "as_upload"]

#: Bytes read from a source at a time.
CHUNK_SIZE = 256 * 1024

Source: TypeAlias = (
    "str | os.PathLike[str] | bytes | bytearray | memoryview | BinaryIO"
    " | AsyncIterable[bytes]"
)


class FileUpload:
    """
    A file for a FILE question or a reply attachment.

    Args:
        source: a path, ``bytes``, a binary file object opened by the caller
            (left open, and rewound before each attempt when it can be), or
            an async iterable of ``bytes`` (sent once, never retried).
        filename: the name the server sees; defaults to the path's or the
            file object's name, else ``"upload.bin"``.
        content_type: defaults to a guess from the file name, else
            ``application/octet-stream``.
    """

    __slots__ = (
        "_consumed",
        "_size",
        "_source",
        "_start",
        "content_type",
        "filename",
    )

    def __init__(
        self,
        source: Source,
        *,
        filename: str | None = None,
        content_type: str | None = None,
    ) -> None:
        self._source = source
        self._start: int | None = None
        self._consumed = False
        self._size: int | None = None
        if isinstance(source, str | os.PathLike):
            path = Path(source)
            default_name = path.name
        elif isinstance(source, bytes | bytearray | memoryview):
            default_name = None
            self._size = memoryview(source).nbytes
        elif isinstance(source, AsyncIterable):
            default_name = None
        elif hasattr(source, "read"):
            default_name = _name_of(source)
            if _seekable(source):
                self._start = source.tell()
        else:
            msg = (
                f"cannot upload a {type(source).__name__}: pass a path, "
                f"bytes, a binary file object or an async iterable of bytes"
            )
            raise UploadError(msg)
        self.filename = filename or default_name or "upload.bin"
        guessed, _ = mimetypes.guess_type(self.filename)
        self.content_type = (
            content_type or guessed or "application/octet-stream"
        )

    def __repr__(self) -> str:
        kind = type(self._source).__name__
        return (
            f"FileUpload(filename={self.filename!r}, "
            f"content_type={self.content_type!r}, source={kind})"
        )

    @property
    def replayable(self) -> bool:
        """Whether the upload can be sent again from its start."""
        if isinstance(self._source, AsyncIterable):
            return not self._consumed
        if _is_file_object(self._source):
            return self._start is not None or not self._consumed
        return True

    @property
    def size(self) -> int | None:
        """The number of bytes, when it is known without reading."""
        if self._size is not None:
            return self._size
        if isinstance(self._source, str | os.PathLike):
            try:
                return Path(self._source).stat().st_size
            except OSError:
                return None
        return None

    def check(self) -> str | None:
        """Why this upload cannot be sent now, or None when it can."""
        if isinstance(self._source, str | os.PathLike):
            path = Path(self._source)
            if not path.is_file():
                return f"{path} is not a readable file"
        elif not self.replayable:
            return "its source was already read and cannot be rewound"
        return None

    async def chunks(self) -> AsyncGenerator[bytes, None]:
        """Yield the content from its start, one chunk at a time."""
        source = self._source
        if isinstance(source, bytes | bytearray | memoryview):
            view = memoryview(source).cast("B")
            for offset in range(0, view.nbytes, CHUNK_SIZE):
                yield bytes(view[offset : offset + CHUNK_SIZE])
        elif isinstance(source, str | os.PathLike):
            async with contextlib.aclosing(_read_path(Path(source))) as path:
                async for chunk in path:
                    yield chunk
        elif isinstance(source, AsyncIterable):
            if self._consumed:
                raise _not_replayable(self.filename)
            self._consumed = True
            async for chunk in source:
                yield bytes(chunk)
        else:
            async with contextlib.aclosing(
                self._read_file_object(source)
            ) as file:
                async for chunk in file:
                    yield chunk

    async def _read_file_object(
        self, file: BinaryIO
    ) -> AsyncGenerator[bytes, None]:
        loop = asyncio.get_running_loop()
        if self._start is not None:
            await loop.run_in_executor(None, file.seek, self._start)
        elif self._consumed:
            raise _not_replayable(self.filename)
        self._consumed = True
        while chunk := await loop.run_in_executor(None, file.read, CHUNK_SIZE):
            yield chunk


FileLike: TypeAlias = "FileUpload | os.PathLike[str]"


def as_upload(value: object) -> FileUpload | None:
    """A `FileUpload` for ``value``, or None if it is not a file at all."""
    if isinstance(value, FileUpload):
        return value
    if isinstance(value, os.PathLike):
        return FileUpload(value)

    return None


async def _read_path(path: Path) -> AsyncGenerator[bytes, None]:
    loop = asyncio.get_running_loop()
    try:
        # Opened here, not in a worker thread: a task cancelled while a
        # thread opens the file would leave that file open.
        file = path.open("rb")
    except OSError as error:
        msg = f"cannot read {path}: {error.strerror or error}"
        raise UploadError(msg) from error
    with file:
        while chunk := await loop.run_in_executor(None, file.read, CHUNK_SIZE):
            yield chunk


def _not_replayable(filename: str) -> UploadError:
    msg = (
        f"{filename!r} comes from a stream that was already sent once and "
        f"cannot be sent again; pass a path or bytes to allow retries"
    )
    return UploadError(msg)


def _is_file_object(source: object) -> bool:
    return hasattr(source, "read") and not isinstance(
        source, bytes | bytearray | memoryview | str | os.PathLike
    )


def _seekable(file: BinaryIO) -> bool:
    try:
        return bool(file.seekable())
    except (AttributeError, OSError, ValueError):
        return False


def _name_of(file: object) -> str | None:
    name = getattr(file, "name", None)
    if isinstance(name, str) and name:
        return Path(name).name

    return None
