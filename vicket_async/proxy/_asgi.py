"""
The proxy as an ASGI application, written against the ASGI specification.

It needs no framework: mount it in FastAPI or Starlette
(``app.mount("/support-api", make_asgi_app(client))``) or serve it with any
ASGI server. Under a mount the part of the path that the mount consumed is
in ``root_path``; it is taken off before routing.
"""

from __future__ import annotations

from collections.abc import (
    AsyncIterator,
    Awaitable,
    Callable,
    Iterable,
    Mapping,
    MutableMapping,
)
from typing import Any, TypeAlias
from urllib.parse import parse_qsl

from multidict import CIMultiDict

from .._client import VicketClient
from .._protocol.budget import RateLimit
from ._body import VisitorGoneError
from ._core import DEFAULT_MAX_BODY_SIZE, Inbound, Proxy, ProxyOptions

__all__ = ["ASGIProxy", "Receive", "Scope", "Send", "make_asgi_app"]

Scope: TypeAlias = MutableMapping[str, Any]
Message: TypeAlias = MutableMapping[str, Any]
Receive: TypeAlias = Callable[[], Awaitable[Message]]
Send: TypeAlias = Callable[[Message], Awaitable[None]]


class ASGIProxy:
    """An ASGI 3 application serving the proxy's routes."""

    def __init__(self, proxy: Proxy) -> None:
        self.proxy = proxy

    def __repr__(self) -> str:
        return f"<ASGIProxy for {self.proxy.client!r}>"

    async def __call__(
        self, scope: Scope, receive: Receive, send: Send
    ) -> None:
        kind = scope["type"]
        if kind == "lifespan":
            await _lifespan(receive, send)
            return
        if kind != "http":
            msg = f"the support proxy serves HTTP only, not {kind}"
            raise RuntimeError(msg)
        inbound = Inbound(
            method=scope["method"],
            path=_path(scope),
            query=dict(
                parse_qsl(
                    scope.get("query_string", b"").decode("latin-1"),
                    keep_blank_values=True,
                )
            ),
            headers=CIMultiDict(
                (name.decode("latin-1"), value.decode("latin-1"))
                for name, value in scope.get("headers", ())
            ),
            peer=(scope.get("client") or (None,))[0],
            body=_body(receive),
        )
        try:
            outbound = await self.proxy.handle(inbound)
        except VisitorGoneError:
            return
        await send(
            {
                "type": "http.response.start",
                "status": outbound.status,
                "headers": [
                    (name.lower().encode("latin-1"), value.encode("latin-1"))
                    for name, value in outbound.headers
                ],
            }
        )
        await send({"type": "http.response.body", "body": outbound.body})


def make_asgi_app(
    client: VicketClient,
    *,
    max_body_size: int = DEFAULT_MAX_BODY_SIZE,
    cors_origins: Iterable[str] = (),
    trusted_proxies: int | Iterable[str] = 0,
    visitor_limits: Mapping[str, RateLimit | None] | None = None,
    budget_wait: float | None = 10.0,
) -> ASGIProxy:
    """
    The five endpoints for browser code, as an ASGI application.

    Args:
        client: the `VicketClient` that holds the key; lent, not owned.
        max_body_size: the largest request body accepted, in bytes;
            larger ones are refused with 413 as soon as the count passes it.
        cors_origins: origins (``"https://www.example.com"``) whose pages
            may call the proxy from another origin; none by default.
        trusted_proxies: how far ``X-Forwarded-For`` is believed: a number
            of reverse proxies in front of the app, or their networks
            (``["10.0.0.0/8"]``). 0, the default, uses the peer address.
        visitor_limits: calls per visitor by method name (``"init"``,
            ``"create_ticket"``, ``"get_ticket"``, ``"reply"``,
            ``"get_article"``), overriding the defaults; None turns one
            off.
        budget_wait: seconds a request may wait for the website's rate
            budget before the visitor gets 429; None waits as long as it
            takes.

    Raises:
        ConfigurationError: an option that cannot work.
    """
    options = ProxyOptions.build(
        max_body_size=max_body_size,
        cors_origins=cors_origins,
        trusted_proxies=trusted_proxies,
        visitor_limits=visitor_limits,
        budget_wait=budget_wait,
    )

    return ASGIProxy(Proxy(client, options))


def _path(scope: Scope) -> str:
    path: str = scope["path"]
    root: str = scope.get("root_path", "")
    # Servers and frameworks differ on whether "path" still holds the
    # mount's prefix; take it off when it does.
    if root and path.startswith(root):
        path = path[len(root) :]

    return path or "/"


async def _body(receive: Receive) -> AsyncIterator[bytes]:
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            msg = "the visitor closed the connection"
            raise VisitorGoneError(msg)
        chunk = message.get("body", b"")
        if chunk:
            yield chunk
        if not message.get("more_body", False):
            return


async def _lifespan(receive: Receive, send: Send) -> None:
    # Served on its own, the proxy has nothing to start or stop; the client
    # belongs to whoever made it.
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return
