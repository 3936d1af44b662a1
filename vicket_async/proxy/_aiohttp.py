"""The proxy as an aiohttp sub-application."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable, Mapping

from aiohttp import web

from .._client import VicketClient
from .._protocol.budget import RateLimit
from ._body import VisitorGoneError
from ._core import DEFAULT_MAX_BODY_SIZE, Inbound, Proxy, ProxyOptions

__all__ = ["PROXY_KEY", "make_aiohttp_app"]

#: Where the sub-application keeps its `Proxy`, for tests and tooling.
PROXY_KEY = web.AppKey("vicket_proxy", Proxy)

_CHUNK = 64 * 1024


def make_aiohttp_app(
    client: VicketClient,
    *,
    max_body_size: int = DEFAULT_MAX_BODY_SIZE,
    cors_origins: Iterable[str] = (),
    trusted_proxies: int | Iterable[str] = 0,
    visitor_limits: Mapping[str, RateLimit | None] | None = None,
    budget_wait: float | None = 10.0,
) -> web.Application:
    """
    The five endpoints for browser code, as an aiohttp sub-application.

    Mount it under a prefix of your choosing::

        app.add_subapp("/support-api", make_aiohttp_app(client))

    The arguments are those of `make_asgi_app`. The client is lent, not
    owned: close it yourself when the web app stops.
    """
    options = ProxyOptions.build(
        max_body_size=max_body_size,
        cors_origins=cors_origins,
        trusted_proxies=trusted_proxies,
        visitor_limits=visitor_limits,
        budget_wait=budget_wait,
    )
    proxy = Proxy(client, options)

    async def handle(request: web.Request) -> web.StreamResponse:
        inbound = Inbound(
            method=request.method,
            path="/" + request.match_info["tail"],
            query=request.query,
            headers=request.headers,
            peer=request.remote,
            body=_body(request),
        )
        try:
            outbound = await proxy.handle(inbound)
        except VisitorGoneError:
            # Nobody is left to read an answer.
            return web.Response(status=400)

        return web.Response(
            status=outbound.status,
            headers=list(outbound.headers),
            body=outbound.body,
        )

    app = web.Application()
    app[PROXY_KEY] = proxy
    app.router.add_route("*", "/{tail:.*}", handle)

    return app


async def _body(request: web.Request) -> AsyncIterator[bytes]:
    try:
        async for chunk in request.content.iter_chunked(_CHUNK):
            yield chunk
    except ConnectionError as error:
        msg = "the visitor closed the connection"
        raise VisitorGoneError(msg) from error
