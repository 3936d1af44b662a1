"""The sandbox clock: wall time that can run faster than real time."""

from __future__ import annotations

import datetime as dt
import time

__all__ = ["SandboxClock", "format_timestamp"]


class SandboxClock:
    """
    Time as the sandbox sees it, in seconds since the Unix epoch.

    Sandbox time starts at the real wall time (or at *start*) and runs
    *time_scale* times faster than real time, so with ``time_scale=60`` a
    sandbox minute passes in one real second.  Rate windows, token expiry
    and the email limit are all measured on this clock, which lets tests
    cross an hour-long window in a moment.  :meth:`advance` jumps forward
    without waiting at all.
    """

    def __init__(
        self, *, time_scale: float = 1.0, start: float | None = None
    ) -> None:
        _check_scale(time_scale)
        self._scale = time_scale
        self._anchor = time.time() if start is None else start
        self._anchor_mono = time.monotonic()

    def __repr__(self) -> str:
        return (
            f"<SandboxClock now={format_timestamp(self.now())} "
            f"time_scale={self._scale}>"
        )

    @property
    def time_scale(self) -> float:
        """How many sandbox seconds pass per real second."""
        return self._scale

    def set_time_scale(self, time_scale: float) -> None:
        """Change the speed of the clock from now on, without a jump."""
        _check_scale(time_scale)
        self._rebase()
        self._scale = time_scale

    def now(self) -> float:
        """The current sandbox time in seconds since the epoch."""
        elapsed = time.monotonic() - self._anchor_mono

        return self._anchor + elapsed * self._scale

    def advance(self, seconds: float) -> None:
        """Jump *seconds* of sandbox time forward."""
        if seconds < 0:
            msg = f"the sandbox clock only moves forward, not by {seconds}"
            raise ValueError(msg)
        self._anchor += seconds

    def to_real(self, sandbox_seconds: float) -> float:
        """Convert a sandbox duration into real seconds."""
        return sandbox_seconds / self._scale

    def to_sandbox(self, real_seconds: float) -> float:
        """Convert a real duration into sandbox seconds."""
        return real_seconds * self._scale

    def isoformat(self) -> str:
        """The current sandbox time as ISO 8601 UTC text."""
        return format_timestamp(self.now())

    def _rebase(self) -> None:
        self._anchor = self.now()
        self._anchor_mono = time.monotonic()


def format_timestamp(timestamp: float) -> str:
    """Render epoch seconds the way the API does: ``2026-03-08T10:00:00Z``."""
    moment = dt.datetime.fromtimestamp(timestamp, tz=dt.UTC)

    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def _check_scale(time_scale: float) -> None:
    if not time_scale > 0:
        msg = f"time_scale must be a positive number, not {time_scale!r}"
        raise ValueError(msg)
