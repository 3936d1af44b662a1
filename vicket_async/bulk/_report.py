"""Counting outcomes, the closing summary, and the JSON Lines report."""

from __future__ import annotations

import os
from collections import Counter
from pathlib import Path
from types import TracebackType
from typing import IO, Self

import orjson

from ._engine import RowOutcome, RowState

__all__ = ["ReportWriter", "Tally", "summary_lines"]


class Tally:
    """Counts of row outcomes by state; ``earlier`` counts past runs'."""

    def __init__(self) -> None:
        self.states: Counter[RowState] = Counter()
        self.earlier: Counter[RowState] = Counter()
        self.email_limit_reached = 0
        self.warnings = 0

    def __repr__(self) -> str:
        counts = ", ".join(f"{k}={v}" for k, v in sorted(self.states.items()))
        return f"<Tally {counts}>"

    def add(self, outcome: RowOutcome) -> None:
        self.states[outcome.state] += 1
        if outcome.earlier:
            self.earlier[outcome.state] += 1
        if outcome.email_limit_reached:
            self.email_limit_reached += 1
        if outcome.warning:
            self.warnings += 1

    @property
    def rows(self) -> int:
        return sum(self.states.values())

    @property
    def sent(self) -> int:
        """Rows whose request went out in this run."""
        now = self.states - self.earlier

        return (
            now[RowState.DONE] + now[RowState.FAILED] + now[RowState.AMBIGUOUS]
        )

    @property
    def clean(self) -> bool:
        """Whether every row is done (or, in a dry run, ready to send)."""
        trouble = (
            RowState.FAILED,
            RowState.SKIPPED,
            RowState.AMBIGUOUS,
            RowState.CHANGED,
        )
        return not any(self.states[state] for state in trouble)


_NOTES = {
    RowState.DONE: "created",
    RowState.SKIPPED: "invalid, not sent; fix them and run again",
    RowState.FAILED: (
        "not created; running the same command again retries them"
    ),
    RowState.AMBIGUOUS: (
        "may or may not have been created; check in Vicket, then add "
        "--resend-ambiguous to send those that are missing"
    ),
    RowState.CHANGED: (
        "changed since they were sent; not sent again (see the report)"
    ),
}


def summary_lines(tally: Tally, *, dry_run: bool) -> list[str]:
    """The table that ends a run, one line per state that occurred."""
    states = tally.states
    lines = []
    if dry_run:
        pending = states[RowState.PENDING]
        lines.append(
            f"  {'to send':<10} {pending:>9}  each creates a ticket and "
            f"emails its reporter"
        )
    for state in (
        RowState.DONE,
        RowState.SKIPPED,
        RowState.FAILED,
        RowState.AMBIGUOUS,
        RowState.CHANGED,
    ):
        count = states[state]
        if not count:
            continue
        note = _NOTES[state]
        earlier = tally.earlier[state]
        if state is RowState.DONE and (dry_run or earlier == count):
            note = "created by earlier runs"
        elif state is RowState.DONE and earlier:
            note = f"created ({count - earlier} now, {earlier} earlier)"
        lines.append(f"  {state.value:<10} {count:>9}  {note}")
    lines.append(f"  {'rows':<10} {tally.rows:>9}")
    if tally.email_limit_reached:
        lines.append(
            f"  {tally.email_limit_reached} reporters got no email: they had "
            f"reached Vicket's email limit (the tickets exist)"
        )
    if tally.warnings:
        lines.append(
            f"  {tally.warnings} tickets came with a warning from the "
            f"server (see the report)"
        )

    return lines


class ReportWriter:
    """
    Writes each outcome as one JSON line, as it comes.

    Raises:
        OSError: the report file cannot be created.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self._file: IO[bytes] = self.path.open("wb")

    def __repr__(self) -> str:
        return f"<ReportWriter {str(self.path)!r}>"

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def write(self, outcome: RowOutcome) -> None:
        line = {
            "row": outcome.row,
            "key": outcome.key,
            "state": outcome.state.value,
            "reason": outcome.reason,
            "email_limit_reached": outcome.email_limit_reached,
            "warning": outcome.warning,
            "earlier": outcome.earlier,
            "email": outcome.email,
            "title": outcome.title,
        }
        self._file.write(orjson.dumps(line) + b"\n")

    def close(self) -> None:
        self._file.close()
