"""
Reading ticket and reply forms from a multipart stream.

The browser sends what the API takes: a ``data`` field with the JSON payload
first, then the files. A file is handed to the client as an async iterable
`FileUpload` that reads straight from the visitor's connection, so the
proxy holds one chunk at a time whatever the file's size.

The client lays out its outgoing body before it sends a byte, so it needs
every file's name and type up front, while the incoming stream tells them
one part at a time. So only the last file can be streamed through; any file
before it is copied to a temporary file on disk first (memory still holds
one chunk at a time). For a ticket the last file is known in advance, from
the ``"__isFile:true"`` answers in ``data``; a reply does not say how many
files follow, so its files are all copied to disk before the reply is sent.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import tempfile
from collections.abc import AsyncIterator
from pathlib import PurePosixPath
from typing import Any

import attrs
import orjson

from .._protocol.answers import FILE_MARKER
from .._uploads import FileUpload
from ._body import JSON_LIMIT, ProxyError, RequestBody
from ._multipart import MalformedBodyError, MultipartReader, Part

__all__ = [
    "ReplyForm",
    "TicketForm",
    "read_reply_form",
    "read_ticket_form",
    "ticket_fields",
]

_TICKET_FILE = re.compile(r"files\[([^\[\]]+)\]")
_GENERIC_TYPES = frozenset({"application/octet-stream"})
#: Bytes gathered before each write to a temporary file.
_SPOOL_WRITE = 1024 * 1024
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


@attrs.frozen
class TicketForm:
    email: str
    title: str
    template: str
    answers: dict[str, Any]


@attrs.frozen
class ReplyForm:
    payload: object
    attachments: list[FileUpload]


def ticket_fields(payload: object) -> tuple[str, str, str, dict[str, Any]]:
    """Email, title, template id and answers of a ticket's JSON payload."""
    if not isinstance(payload, dict):
        msg = "A ticket is a JSON object"
        raise ProxyError(400, "validation-error", msg)
    problems = []
    values = []
    for field in ("email", "title", "templateId"):
        value = payload.get(field)
        if not isinstance(value, str):
            problems.append({"field": field, "message": "must be text"})
        values.append(value if isinstance(value, str) else "")
    answers = payload.get("answers", {})
    if answers is None:
        answers = {}
    if not isinstance(answers, dict):
        problems.append(
            {"field": "answers", "message": "must be an object by question"}
        )
        answers = {}
    if problems:
        count = len(problems)
        noun = "problem" if count == 1 else "problems"
        msg = f"Nothing was sent: {count} {noun} to fix"
        raise ProxyError(400, "validation-error", msg, problems=problems)
    email, title, template = values

    return email, title, template, dict(answers)


async def read_ticket_form(
    body: RequestBody, boundary: bytes, stack: contextlib.AsyncExitStack
) -> TicketForm:
    """
    Read a ticket's form up to its last file, which is left streaming.

    Temporary files are closed by ``stack``.
    """
    reader = MultipartReader(body, boundary)
    email, title, template, answers = ticket_fields(await _data(reader))
    expected = [q for q, value in answers.items() if value == FILE_MARKER]
    for question in expected:
        # Answered below by the file itself, or left unanswered if none
        # comes, for the template check to judge.
        del answers[question]
    waiting = set(expected)
    while waiting:
        part = await _next(reader)
        if part is None:
            break
        match = _TICKET_FILE.fullmatch(part.name)
        if match is None or match.group(1) not in waiting:
            msg = (
                f"Unexpected part {part.name!r}: a ticket takes a 'data' "
                f"field, then a files[QUESTION_ID] file for each question "
                f"answered with {FILE_MARKER!r}"
            )
            raise ProxyError(400, "invalid-multipart", msg)
        question = match.group(1)
        waiting.discard(question)
        if not part.filename:
            # An empty file input: the browser sends a part with no name.
            continue
        if waiting:
            answers[question] = await _spool(part, stack)
        else:
            answers[question] = _upload(part, _through(part, reader, body))
            return TicketForm(email, title, template, answers)
    await _end(reader)

    return TicketForm(email, title, template, answers)


async def read_reply_form(
    body: RequestBody, boundary: bytes, stack: contextlib.AsyncExitStack
) -> ReplyForm:
    """Read a reply's form; its files are copied to temporary files."""
    reader = MultipartReader(body, boundary)
    payload = await _data(reader)
    attachments = []
    while (part := await _next(reader)) is not None:
        if part.name != "files":
            msg = (
                f"Unexpected part {part.name!r}: a reply takes a 'data' "
                f"field and 'files' files"
            )
            raise ProxyError(400, "invalid-multipart", msg)
        if part.filename:
            attachments.append(await _spool(part, stack))

    return ReplyForm(payload, attachments)


async def _data(reader: MultipartReader) -> object:
    part = await _next(reader)
    if part is None or part.name != "data" or part.filename is not None:
        msg = "The first part of the form must be the 'data' field"
        raise ProxyError(400, "invalid-multipart", msg)
    try:
        raw = await part.read(JSON_LIMIT)
    except MalformedBodyError as error:
        raise _malformed(error) from None
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        msg = "The field 'data' is not valid JSON"
        raise ProxyError(400, "invalid-json", msg) from None


async def _next(reader: MultipartReader) -> Part | None:
    try:
        return await reader.next_part()
    except MalformedBodyError as error:
        raise _malformed(error) from None


async def _end(reader: MultipartReader) -> None:
    part = await _next(reader)
    if part is not None:
        msg = f"Unexpected part {part.name!r} after the files"
        raise ProxyError(400, "invalid-multipart", msg)


def _malformed(error: MalformedBodyError) -> ProxyError:
    msg = f"The multipart body could not be read: {error}"
    return ProxyError(400, "invalid-multipart", msg)


async def _through(
    part: Part, reader: MultipartReader, body: RequestBody
) -> AsyncIterator[bytes]:
    """The last file's content, straight from the visitor's connection."""
    try:
        async for chunk in part.chunks():
            yield chunk
        await _end(reader)
    except MalformedBodyError as error:
        body.fail(_malformed(error))
        raise
    except ProxyError as error:
        body.fail(error)
        raise


async def _spool(part: Part, stack: contextlib.AsyncExitStack) -> FileUpload:
    """Copy a file part to a temporary file, a chunk at a time."""
    loop = asyncio.get_running_loop()
    file = await loop.run_in_executor(None, tempfile.TemporaryFile)
    stack.callback(file.close)
    pending = bytearray()
    try:
        async for chunk in part.chunks():
            pending += chunk
            if len(pending) >= _SPOOL_WRITE:
                await loop.run_in_executor(None, file.write, pending)
                pending.clear()
    except MalformedBodyError as error:
        raise _malformed(error) from None
    if pending:
        await loop.run_in_executor(None, file.write, pending)
    await loop.run_in_executor(None, file.seek, 0)

    return _upload(part, file)


def _upload(part: Part, source: Any) -> FileUpload:
    return FileUpload(
        source,
        filename=_safe_name(part.filename or ""),
        content_type=(
            None if part.content_type in _GENERIC_TYPES else part.content_type
        ),
    )


def _safe_name(filename: str) -> str:
    # Some browsers send a whole Windows path; keep the last component.
    name = PurePosixPath(filename.replace("\\", "/")).name
    name = _CONTROL.sub("", name).strip()[:255]

    return name or "upload.bin"
