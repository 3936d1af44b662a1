"""
A server-side proxy that gives browser code the support API without its key.

The website's API key must never reach a browser. Mount the proxy in your
web app and point the page's scripts at it: it serves the five endpoints
under a prefix of your choosing, adds the key on the server, answers reads
from the client's cache, limits each visitor, and streams uploads through.

With aiohttp::

    app.add_subapp("/support-api", make_aiohttp_app(client))

With any ASGI framework, such as FastAPI or Starlette::

    app.mount("/support-api", make_asgi_app(client))
"""

from ._aiohttp import make_aiohttp_app
from ._asgi import ASGIProxy, make_asgi_app
from ._core import DEFAULT_MAX_BODY_SIZE
from ._visitors import DEFAULT_VISITOR_LIMITS

__all__ = [
    "DEFAULT_MAX_BODY_SIZE",
    "DEFAULT_VISITOR_LIMITS",
    "ASGIProxy",
    "make_aiohttp_app",
    "make_asgi_app",
]

# Show public names in reprs and tracebacks, not the private modules.
ASGIProxy.__module__ = __name__
