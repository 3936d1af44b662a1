"""
The support proxy mounted in a FastAPI app, served by uvicorn.

Run it with one command (``pip install vicket-async[examples]`` first)::

    python examples/fastapi_app.py

Without ``VICKET_BASE_URL`` in the environment it starts a Vicket sandbox in
the same process. The proxy is an ordinary ASGI application, so the same
``app.mount(...)`` line works in Starlette or under any ASGI server.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import socket
import sys
from collections.abc import AsyncIterator, Sequence

import uvicorn
from fastapi import FastAPI
from fastapi.responses import HTMLResponse

from vicket_async import VicketClient
from vicket_async.proxy import make_asgi_app
from vicket_async.sandbox import Sandbox

API_PREFIX = "/support-api"

PAGE = """<!DOCTYPE html>
<html lang="en">
<head><meta charset="utf-8"><title>Help centre</title></head>
<body>
<h1 id="name">Help centre</h1>
<h2>What can we help with?</h2>
<ul id="templates"></ul>
<h2>Articles</h2>
<ul id="articles"></ul>
<script>
// The page only ever talks to the proxy; the API key stays on the server.
fetch("{{prefix}}/init").then(r => r.json()).then(answer => {
  const page = answer.data;
  document.getElementById("name").textContent =
    (page.website && page.website.name) || "Help centre";
  for (const [list, items, text] of [
    ["templates", page.templates, t => t.name],
    ["articles", page.articles || [], a => a.title],
  ]) {
    for (const item of items) {
      const li = document.createElement("li");
      li.textContent = text(item);
      document.getElementById(list).append(li);
    }
  }
});
</script>
</body>
</html>
""".replace("{{prefix}}", API_PREFIX)


def create_app(client: VicketClient) -> FastAPI:
    """A FastAPI app with a page of its own and the proxy mounted."""

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        await client.aclose()

    app = FastAPI(title="Help centre", lifespan=lifespan)

    @app.get("/", response_class=HTMLResponse)
    async def home() -> str:
        return PAGE

    @app.get("/healthz")
    async def health() -> dict[str, bool]:
        return {"ok": True}

    app.mount(API_PREFIX, make_asgi_app(client))

    return app


@contextlib.asynccontextmanager
async def backend() -> AsyncIterator[VicketClient]:
    """A client for VICKET_BASE_URL, or for a sandbox started here."""
    if os.environ.get("VICKET_BASE_URL"):
        yield VicketClient()
        return
    async with Sandbox() as sandbox:
        _say(f"Sandbox (no VICKET_BASE_URL set): {sandbox.base_url}")
        yield VicketClient(api_key=sandbox.api_key, base_url=sandbox.base_url)


async def serve(host: str, port: int) -> None:
    async with backend() as client:
        config = uvicorn.Config(
            create_app(client),
            host=host,
            port=port,
            # Access logs would print ticket tokens from query strings.
            access_log=False,
            log_level="warning",
        )
        server = uvicorn.Server(config)
        # Bind here, so the port is known (and printed) before serving;
        # connections wait in the backlog until uvicorn accepts them.
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(128)
        bound = sock.getsockname()[1]
        _say(f"FASTAPI_APP_URL=http://{host}:{bound}/")
        await server.serve(sockets=[sock])


def _say(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument(
        "--port", type=int, default=8001, help="0 picks a free port"
    )
    args = parser.parse_args(argv)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve(args.host, args.port))

    return 0


if __name__ == "__main__":
    sys.exit(main())
