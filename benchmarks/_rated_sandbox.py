"""
A sandbox with its rate limits on, in a process of its own, on a fast clock.

``python -m vicket_async.sandbox`` runs it; jitter in its answers is set
through the control routes, so the benchmark measures clients against a
server that is neither instant nor perfectly regular.
"""

from __future__ import annotations

from vicket_async.sandbox import SandboxProcess

__all__ = ["RatedSandbox"]


class RatedSandbox(SandboxProcess):
    """``python -m vicket_async.sandbox --rate-limit-mode MODE ...``."""

    def __init__(self, *, mode: str, time_scale: float) -> None:
        super().__init__(
            f"--rate-limit-mode={mode}",
            f"--time-scale={time_scale:g}",
            "--email-limit=0",
        )

    def statuses(self, endpoint: str) -> list[int]:
        """The statuses the sandbox answered on ``endpoint``, in order."""
        records = self.control("GET", f"requests?endpoint={endpoint}")
        assert isinstance(records, list)

        return [int(record["status"]) for record in records]
