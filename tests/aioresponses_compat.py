"""
Make aioresponses work with aiohttp 3.14.

aioresponses 0.7.9 builds its fake responses without the ``stream_writer``
argument that aiohttp 3.14 made required, so every mocked request fails with
a TypeError. This adapter gives it a response class that supplies a stand-in
writer. It changes nothing else: aioresponses still skips client middlewares
and follows redirects as GETs, so redirect and security behaviour are tested
against the real sandbox, never through this mock.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import aioresponses.core
from aiohttp import ClientResponse
from aioresponses import aioresponses as _aioresponses


class _FinishedUpload:
    """Stands in for the writer of a request whose body was already sent."""

    output_size = 0


class CompatClientResponse(ClientResponse):
    def __init__(self, method: str, url: Any, **kwargs: Any) -> None:
        kwargs.setdefault("stream_writer", _FinishedUpload())
        super().__init__(method, url, **kwargs)


@contextmanager
def mocked_aiohttp() -> Iterator[_aioresponses]:
    """`aioresponses()` with a response class that aiohttp 3.14 accepts."""
    original = aioresponses.core.ClientResponse  # type: ignore[attr-defined]
    aioresponses.core.ClientResponse = CompatClientResponse  # type: ignore[attr-defined]
    try:
        with _aioresponses() as mock:
            yield mock
    finally:
        aioresponses.core.ClientResponse = original  # type: ignore[attr-defined]
