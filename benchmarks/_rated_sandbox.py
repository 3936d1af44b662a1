"""
A sandbox with its rate limits on, in a process of its own, on a fast clock.

``python -m vicket_async.sandbox`` runs it; jitter in its answers is set
through the control routes, so the benchmark measures clients against a
server that is neither instant nor perfectly regular.
"""

from __future__ import annotations

import subprocess
from types import TracebackType
from typing import Self

import aiohttp

from ._common import ROOT, child_command, child_env

__all__ = ["RatedSandbox"]


class RatedSandbox:
    """``python -m vicket_async.sandbox --rate-limit-mode MODE ...``."""

    def __init__(self, *, mode: str, time_scale: float) -> None:
        self._args = [
            "--port=0",
            f"--rate-limit-mode={mode}",
            f"--time-scale={time_scale:g}",
            "--email-limit=0",
        ]
        self._process: subprocess.Popen[str] | None = None
        self.base_url = ""
        self.api_key = ""

    def __enter__(self) -> Self:
        process = subprocess.Popen(
            child_command("vicket_async.sandbox", *self._args),
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
            cwd=ROOT,
            env=child_env(),
        )
        self._process = process
        assert process.stdout is not None
        for _ in range(2):
            key, _, value = process.stdout.readline().strip().partition("=")
            if key == "VICKET_SANDBOX_URL":
                self.base_url = value
            elif key == "VICKET_SANDBOX_API_KEY":
                self.api_key = value
        if not self.base_url:
            self._stop()
            msg = "the sandbox process did not start"
            raise RuntimeError(msg)

        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._stop()

    def _stop(self) -> None:
        process, self._process = self._process, None
        if process is None:
            return
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        if process.stdout is not None:
            process.stdout.close()

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
