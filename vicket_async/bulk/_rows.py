"""
Reading an import file one row at a time.

A CSV file starts with a header row; every later record is a row, numbered
from 1 (blank lines count, so that the numbers stay put when the file is
read again). A JSON Lines file holds one JSON object per line, and a row's
number is its line number. Neither reader keeps more than one row in
memory, and a `RowFile` can be read any number of times.
"""

from __future__ import annotations

import csv
import os
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, Literal, TypeAlias

import attrs
import orjson

from ._errors import InputFileError

__all__ = ["FORMATS", "Format", "Row", "RowFile", "format_of", "read_rows"]

Format: TypeAlias = Literal["csv", "tsv", "jsonl"]
FORMATS: tuple[Format, ...] = ("csv", "tsv", "jsonl")

_EXTENSIONS: Mapping[str, Format] = {
    ".csv": "csv",
    ".tsv": "tsv",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
}

# Ticket descriptions exported from other helpdesks can be long; the csv
# module's default cap of 128 KiB per field would reject them.
csv.field_size_limit(min(sys.maxsize, 2**31 - 1))


@attrs.frozen
class Row:
    """
    One input row: its number and fields, or why it could not be read.

    ``number`` counts from 1 and identifies the row in the journal, so it
    must stay the same when the input is read again.
    """

    number: int
    fields: Mapping[str, Any] = attrs.field(factory=dict, repr=False)
    problem: str | None = None


def format_of(path: str | os.PathLike[str]) -> Format | None:
    """The format a file name's extension implies, if any."""
    return _EXTENSIONS.get(Path(path).suffix.lower())


class RowFile:
    """
    The rows of a CSV or JSON Lines file, read lazily on each iteration.

    Creating it checks that the file can be opened and, for CSV, that the
    header is usable; `InputFileError` says what is wrong.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        format: Format | None = None,
        encoding: str = "utf-8-sig",
        delimiter: str | None = None,
    ) -> None:
        self.path = Path(path)
        chosen = format or format_of(self.path)
        if chosen is None:
            known = ", ".join(sorted(_EXTENSIONS))
            msg = (
                f"{self.path}: cannot tell the format from the extension "
                f"(known: {known}); say which with --format csv or jsonl"
            )
            raise InputFileError(msg)
        if chosen not in FORMATS:
            msg = f"unknown format {chosen!r}; use one of {FORMATS}"
            raise InputFileError(msg)
        self.format: Format = chosen
        self.encoding = encoding
        self.delimiter = delimiter or ("\t" if chosen == "tsv" else ",")
        self.columns: tuple[str, ...] = ()
        with self._open() as file:
            if self.format != "jsonl":
                self.columns = self._header(csv.reader(file, **self._csv()))

    def __repr__(self) -> str:
        return f"<RowFile {str(self.path)!r} format={self.format}>"

    def __iter__(self) -> Iterator[Row]:
        if self.format == "jsonl":
            return self._json_lines()
        return self._csv_rows()

    def _open(self) -> Any:
        try:
            return self.path.open(encoding=self.encoding, newline="")
        except OSError as error:
            reason = error.strerror or str(error)
            msg = f"cannot read {self.path}: {reason}"
            raise InputFileError(msg) from None
        except LookupError:
            msg = f"unknown text encoding {self.encoding!r}"
            raise InputFileError(msg) from None

    def _csv(self) -> dict[str, Any]:
        return {"delimiter": self.delimiter, "strict": False}

    def _header(self, reader: Iterator[list[str]]) -> tuple[str, ...]:
        try:
            header = next(reader, None)
        except UnicodeDecodeError:
            raise self._not_text() from None
        except csv.Error as error:
            msg = f"{self.path}: cannot read the header row: {error}"
            raise InputFileError(msg) from None
        if not header or not any(cell.strip() for cell in header):
            msg = (
                f"{self.path}: the first line must be a header naming the "
                f"columns (email, title, template and the answers)"
            )
            raise InputFileError(msg)
        columns = tuple(cell.strip() for cell in header)
        seen: set[str] = set()
        for column in columns:
            if column and column in seen:
                msg = f"{self.path}: the column {column!r} appears twice"
                raise InputFileError(msg)
            seen.add(column)

        return columns

    def _csv_rows(self) -> Iterator[Row]:
        number = 0
        with self._open() as file:
            reader = csv.reader(file, **self._csv())
            columns = self._header(reader)
            width = len(columns)
            try:
                for cells in reader:
                    number += 1
                    if not cells:
                        continue
                    if len(cells) > width and any(
                        cell.strip() for cell in cells[width:]
                    ):
                        yield Row(
                            number,
                            problem=(
                                f"the row has {len(cells)} cells but the "
                                f"header names {width} columns"
                            ),
                        )
                        continue
                    yield Row(number, dict(zip(columns, cells, strict=False)))
            except UnicodeDecodeError:
                raise self._not_text() from None
            except csv.Error as error:
                msg = f"{self.path}: cannot read row {number + 1}: {error}"
                raise InputFileError(msg) from None

    def _json_lines(self) -> Iterator[Row]:
        number = 0
        with self._open() as file:
            try:
                for line in file:
                    number += 1
                    if not line.strip():
                        continue
                    yield _json_row(number, line)
            except UnicodeDecodeError:
                raise self._not_text() from None

    def _not_text(self) -> InputFileError:
        # The decoder reads ahead, so the row being read says little about
        # where the bad bytes are.
        msg = (
            f"{self.path} is not {self.encoding} text; name its encoding "
            f"(--encoding, for example cp1252 or latin-1)"
        )
        return InputFileError(msg)


def _json_row(number: int, line: str) -> Row:
    try:
        value = orjson.loads(line)
    except orjson.JSONDecodeError as error:
        return Row(number, problem=f"the line is not valid JSON ({error})")
    if not isinstance(value, dict):
        kind = type(value).__name__
        return Row(number, problem=f"the line holds a {kind}, not an object")

    return Row(number, value)


def read_rows(
    path: str | os.PathLike[str],
    *,
    format: Format | None = None,
    encoding: str = "utf-8-sig",
    delimiter: str | None = None,
) -> RowFile:
    """
    The rows of a CSV (with a header row) or JSON Lines file.

    The format follows the extension (``.csv``, ``.tsv``, ``.jsonl``,
    ``.ndjson``) unless ``format`` is given. The file is read lazily, one
    row at a time, each time the result is iterated.

    Raises:
        InputFileError: the file cannot be opened, or its header is unusable.
    """
    return RowFile(path, format=format, encoding=encoding, delimiter=delimiter)
