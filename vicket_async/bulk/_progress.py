"""
A progress line for long imports, on a terminal or in a log.

On a terminal one line is redrawn in place; anywhere else (a log file, a
CI job) a plain line is written every so often, so that the output stays
readable. The time left is worked out from the rate limit, not only from
the rate seen so far: at the start of an import the first burst of the
budget goes out at once and would promise far too early an end.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TextIO

from .._protocol.budget import RateLimit
from ._engine import RowOutcome, RowState

__all__ = ["Progress", "duration", "rate_text"]


def duration(seconds: float) -> str:
    """``2h 05m``, ``3m 20s`` or ``45s``."""
    seconds = max(0, round(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h {minutes:02d}m"
    if minutes:
        return f"{minutes}m {secs:02d}s"

    return f"{secs}s"


def rate_text(per_second: float) -> str:
    """A rate per second, or per minute when that reads better."""
    if per_second >= 1:
        return f"{per_second:.1f}/s"

    return f"{per_second * 60:.1f}/min"


class Progress:
    """
    Counts outcomes and shows rows done, failed and skipped, rate and ETA.

    ``to_send`` is how many rows this run expects to send, and ``limit``
    the ``create_ticket`` budget (None when it is off).
    """

    def __init__(
        self,
        stream: TextIO,
        *,
        to_send: int,
        limit: RateLimit | None,
        tty: bool | None = None,
        interval: float | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._stream = stream
        self._tty = stream.isatty() if tty is None else tty
        self._interval = (
            interval if interval is not None else 0.2 if self._tty else 10.0
        )
        self._clock = clock
        self._started = clock()
        self._shown = float("-inf")
        self._to_send = to_send
        self._limit = limit
        self._sent = 0
        self._done = 0
        self._failed = 0
        self._ambiguous = 0
        self._skipped = 0
        self._drawn = False

    def __repr__(self) -> str:
        return f"<Progress {self._sent}/{self._to_send}>"

    def add(self, outcome: RowOutcome) -> None:
        """Count one outcome; the line is redrawn when it is due."""
        if outcome.earlier:
            return
        state = outcome.state
        if state is RowState.SKIPPED:
            self._skipped += 1
        elif state in (RowState.DONE, RowState.FAILED, RowState.AMBIGUOUS):
            self._sent += 1
            if state is RowState.DONE:
                self._done += 1
            elif state is RowState.FAILED:
                self._failed += 1
            else:
                self._ambiguous += 1
        self.tick()

    def rate(self) -> float | None:
        """Rows sent per second so far, once there is enough to tell."""
        elapsed = self._clock() - self._started
        # Within the first windows the budget's burst makes the rate look
        # far higher than it can last.
        settle = 5.0 if self._limit is None else 2 * self._limit.window
        if not self._sent or elapsed < settle:
            return None

        return self._sent / elapsed

    def eta(self) -> float | None:
        """Seconds until the rows left are sent, as far as can be told."""
        left = max(0, self._to_send - self._sent)
        if not left:
            return 0.0
        limited = None
        if self._limit is not None:
            limited = self._limit.calls / self._limit.window
        seen = self.rate()
        candidates = [r for r in (limited, seen) if r]
        if not candidates:
            return None

        return left / min(candidates)

    def line(self) -> str:
        parts = [f"{self._done}/{self._to_send} done"]
        if self._failed:
            parts.append(f"{self._failed} failed")
        if self._ambiguous:
            parts.append(f"{self._ambiguous} ambiguous")
        parts.append(f"{self._skipped} skipped")
        seen = self.rate()
        if seen is not None:
            parts.append(rate_text(seen))
        elif self._limit is not None:
            limit = self._limit
            parts.append(f"limit {limit.calls}/{limit.period:g}s")
        eta = self.eta()
        if eta is not None and self._sent < self._to_send:
            parts.append(f"ETA {duration(eta)}")
        parts.append(f"elapsed {duration(self._clock() - self._started)}")

        return " · ".join(parts)

    def tick(self, *, force: bool = False) -> None:
        """Redraw (or print) the line if it is due."""
        now = self._clock()
        if not force and now - self._shown < self._interval:
            return
        self._shown = now
        if self._tty:
            self._stream.write(f"\r\x1b[K{self.line()}")
            self._drawn = True
        else:
            self._stream.write(f"{self.line()}\n")
        self._stream.flush()

    def note(self, text: str) -> None:
        """Print a message line without garbling the progress line."""
        self._clear()
        self._stream.write(f"{text}\n")
        self._stream.flush()
        if self._tty:
            self._shown = float("-inf")

    def finish(self) -> None:
        """Show the final counts and leave the line."""
        self.tick(force=True)
        if self._drawn:
            self._stream.write("\n")
            self._drawn = False
        self._stream.flush()

    def _clear(self) -> None:
        if self._drawn:
            self._stream.write("\r\x1b[K")
            self._drawn = False
