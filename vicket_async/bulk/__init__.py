"""
Bulk ticket import: move tickets from another helpdesk, resumably.

`import_tickets` creates one ticket per input row at the pace the rate
budget allows and records every step in a SQLite journal, so that a run
interrupted at any moment resumes where it stopped, without losing a row
and without sending one twice. `read_rows` streams a CSV or JSON Lines
file into it. The ``vicket import`` command is a thin layer over both.
"""

from ._engine import RowOutcome, RowState, import_tickets
from ._errors import ImportHaltedError, InputFileError, JournalError
from ._journal import default_journal_path
from ._rows import Row, RowFile, read_rows

__all__ = [
    "ImportHaltedError",
    "InputFileError",
    "JournalError",
    "Row",
    "RowFile",
    "RowOutcome",
    "RowState",
    "default_journal_path",
    "import_tickets",
    "read_rows",
]

# Show public names in reprs and tracebacks, not the private modules.
for _name in __all__:
    _obj = globals()[_name]
    if getattr(_obj, "__module__", "").startswith("vicket_async.bulk._"):
        _obj.__module__ = "vicket_async.bulk"
del _name, _obj
