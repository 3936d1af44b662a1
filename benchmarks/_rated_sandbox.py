"""
A sandbox with its rate limits on, in a process of its own, on a fast clock.

``python -m vicket_async.sandbox`` runs it; jitter in its answers is set
through the control routes, so the benchmark measures clients against a
server that is neither instant nor perfectly regular.
"""

from __future__ import annotations

import aiohttp

from vicket_async.sandbox import SandboxProcess

__all__ = ["RatedSandbox"]


class RatedSandbox(SandboxProcess):
    """``python -m vicket_async.sandbox --rate-limit-mode MODE ...``."""

    def __init__(self, *, mode: str, time_scale: float) -> None:
        self._args = [
            f"--rate-limit-mode={mode}",
            f"--time-scale={time_scale:g}",
            "--email-limit=0",
        ]
        super().__init__(*self._args)

    def _stop(self) -> None:
        self.stop()

    async def control(
        self, method: str, path: str, payload: object = None
    ) -> object:
        """Call a ``/_sandbox`` control route; returns its ``data``."""
        async with (
            aiohttp.ClientSession() as session,
            session.request(
                method, f"{self.base_url}/_sandbox/{path}", json=payload
            ) as answer,
        ):
            document = await answer.json()
        if not answer.ok:
            msg = f"{method} /_sandbox/{path}: {answer.status} {document}"
            raise RuntimeError(msg)

        return document.get("data") if isinstance(document, dict) else None

    async def statuses(self, endpoint: str) -> list[int]:
        """The statuses the sandbox answered on ``endpoint``, in order."""
        records = await self.control("GET", f"requests?endpoint={endpoint}")
        assert isinstance(records, list)

        return [int(record["status"]) for record in records]
