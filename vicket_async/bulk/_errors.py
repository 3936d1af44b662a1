"""The errors that stop a bulk import before or while it reads its input."""

from __future__ import annotations

from ..exceptions import VicketError

__all__ = ["ImportHaltedError", "InputFileError", "JournalError"]


class InputFileError(VicketError):
    """
    The input file cannot be read: missing, undecodable or malformed.

    A single bad row does not raise this; it is reported as an invalid row.
    """


class JournalError(VicketError):
    """
    The journal cannot be used for this import.

    It is held by another running import, belongs to another shard or
    another API origin, or is not a journal at all.
    """


class ImportHaltedError(VicketError):
    """
    The import stopped itself because going on could only fail.

    Raised after the outcomes of the rows in flight were yielded, for
    instance when the API key is refused or the server keeps failing. Rows
    not reached yet are sent by the next run.
    """
