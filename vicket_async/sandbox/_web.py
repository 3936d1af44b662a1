"""aiohttp plumbing the handlers share: errors, envelopes, app keys."""

from __future__ import annotations

from collections.abc import Mapping

import orjson
from aiohttp import web

from ._state import SandboxState

__all__ = ["STATE_KEY", "ApiError", "envelope_response", "json_response"]

STATE_KEY = web.AppKey("vicket_sandbox_state", SandboxState)


class ApiError(Exception):
    """
    An error answer: HTTP status, machine-readable code, human message.

    Handlers raise it anywhere; a middleware turns it into the API's error
    envelope ``{"success": false, "error": ..., "error_code": ...}``.
    """

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        *,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers: dict[str, str] = dict(headers or {})

    def to_response(self) -> web.Response:
        """The error envelope for this error."""
        body = {
            "success": False,
            "error": self.message,
            "error_code": self.code,
        }

        return json_response(body, status=self.status, headers=self.headers)


def json_response(
    body: object,
    *,
    status: int = 200,
    headers: Mapping[str, str] | None = None,
) -> web.Response:
    """A JSON response serialised with orjson."""
    return web.Response(
        body=orjson.dumps(body),
        status=status,
        content_type="application/json",
        headers=headers,
    )


def envelope_response(
    data: object,
    *,
    status: int = 200,
    headers: Mapping[str, str] | None = None,
) -> web.Response:
    """The success envelope ``{"success": true, "data": ...}``."""
    return json_response(
        {"success": True, "data": data}, status=status, headers=headers
    )
