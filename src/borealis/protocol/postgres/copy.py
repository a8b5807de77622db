"""COPY's data formats, sans I/O: rows from ``COPY ... FROM STDIN`` and to ``COPY ... TO
STDOUT`` in PostgreSQL's text, CSV and binary formats.

``CopyInDecoder`` is fed the CopyData payloads as they arrive (a row may span payloads, a
payload may hold many rows; in CSV a quoted field may hold newlines) and returns the rows
it completed, each value decoded for its column's type into its storage form. An error
names the line (or row) it is on, as PostgreSQL's ``CONTEXT: COPY t, line 3`` does.
``encode_rows`` writes rows for COPY TO in text or CSV.
"""

from __future__ import annotations

import csv
import io
import struct
from collections.abc import Iterator, Sequence
from typing import Any

from borealis.errors import BorealisError
from borealis.protocol.postgres import types as pgtypes
from borealis.protocol.postgres.translate import CopyAction

BINARY_SIGNATURE = b"PGCOPY\n\xff\r\n\x00"
_ESCAPES = {"b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t", "v": "\v", "\\": "\\"}


class CopyDataError(BorealisError):
    """Data that COPY cannot load; ``sqlstate`` as PostgreSQL reports it."""

    def __init__(self, message: str, sqlstate: str = "22P04") -> None:
        super().__init__(message)
        self.sqlstate = sqlstate


class CopyInDecoder:
    """The rows of a COPY FROM STDIN stream, for columns of ``types``."""

    def __init__(self, action: CopyAction, types: Sequence[pgtypes.PgType]) -> None:
        self.action = action
        self.types = list(types)
        self.line = 0
        self._buffer = bytearray()
        self._skip_header = action.header and action.format != "binary"
        self._binary_header = False
        self._binary_ended = False
        self._ended = False  # text format's end-of-data marker

    def feed(self, data: bytes) -> list[tuple[Any, ...]]:
        self._buffer += data
        if self.action.format == "binary":
            return self._binary()
        return [row for record in self._records() if (row := self._row(record)) is not None]

    def finish(self) -> list[tuple[Any, ...]]:
        """The rows left at CopyDone (a last line without its newline)."""
        if self.action.format == "binary":
            if not self._binary_header or not self._binary_ended or self._buffer:
                raise self._error("unexpected end of the binary COPY data", "22P04")
            return []
        rest = bytes(self._buffer)
        self._buffer.clear()
        if not rest.strip(b"\r\n"):
            return []
        row = self._row(rest.rstrip(b"\r"))
        return [row] if row is not None else []

    # -- text and CSV --------------------------------------------------------------------
    def _records(self) -> Iterator[bytes]:
        """Complete records (without their line end) at the front of the buffer."""
        buffer = self._buffer
        if self.action.format != "csv":
            while (end := buffer.find(b"\n")) >= 0:
                record = bytes(buffer[:end])
                del buffer[:end + 1]
                yield record[:-1] if record.endswith(b"\r") else record
            return
        quote = self.action.quote.encode()[0]
        escape = self.action.escape.encode()[0]
        start, position, quoted = 0, 0, False
        while position < len(buffer):
            byte = buffer[position]
            if quoted and byte == escape and escape != quote and position + 1 < len(buffer):
                position += 2
                continue
            if byte == quote:
                quoted = not quoted
            elif byte == 0x0A and not quoted:
                record = bytes(buffer[start:position])
                start = position + 1
                yield record[:-1] if record.endswith(b"\r") else record
            position += 1
        del buffer[:start]

    def _row(self, record: bytes) -> tuple[Any, ...] | None:
        self.line += 1
        if self._skip_header:
            self._skip_header = False
            return None
        if self._ended:
            return None
        if record == b"\\.":
            if self.action.format == "text":
                self._ended = True
            return None
        try:
            text = record.decode("utf-8")
        except UnicodeDecodeError:
            raise self._error("invalid byte sequence for encoding \"UTF8\"", "22021") from None
        fields = self._csv_fields(text) if self.action.format == "csv" else self._text_fields(
            text)
        if len(fields) != len(self.types):
            what = "extra data after last expected column" if len(fields) > len(
                self.types) else f"missing data for column {len(fields) + 1}"
            raise self._error(what, "22P04")
        try:
            return tuple(None if f is None else pgtypes.decode_text(t, f.encode())
                         for t, f in zip(self.types, fields, strict=True))
        except pgtypes.PgValueError as exc:
            raise self._error(str(exc), exc.sqlstate) from None

    def _text_fields(self, text: str) -> list[str | None]:
        null = self.action.null
        return [None if raw == null else _unescape(raw)
                for raw in text.split(self.action.delimiter)]

    def _csv_fields(self, text: str) -> list[str | None]:
        action = self.action
        reader = csv.reader(io.StringIO(text), delimiter=action.delimiter,
                            quotechar=action.quote, doublequote=action.escape == action.quote,
                            escapechar=None if action.escape == action.quote else action.escape,
                            strict=True)
        try:
            parsed = next(reader, [])
        except csv.Error as exc:
            raise self._error(f"malformed CSV: {exc}", "22P04") from None
        # An unquoted field equal to the NULL string is NULL; a quoted one is a string.
        unquoted = _unquoted_fields(text, action)
        unquoted += [True] * (len(parsed) - len(unquoted))
        return [None if f == action.null and bare else f
                for f, bare in zip(parsed, unquoted, strict=False)]

    # -- binary --------------------------------------------------------------------------
    def _binary(self) -> list[tuple[Any, ...]]:
        buffer = self._buffer
        out: list[tuple[Any, ...]] = []
        if not self._binary_header:
            if len(buffer) < 19:
                return out
            if bytes(buffer[:11]) != BINARY_SIGNATURE:
                raise self._error("COPY file signature not recognized", "22P04")
            flags, extension = struct.unpack_from(">iI", buffer, 11)
            if flags & 0x10000:
                raise self._error("COPY files with OIDs are not supported", "0A000")
            if len(buffer) < 19 + extension:
                return out
            del buffer[:19 + extension]
            self._binary_header = True
        while not self._binary_ended and len(buffer) >= 2:
            (count,) = struct.unpack_from(">h", buffer, 0)
            if count == -1:
                self._binary_ended = True
                del buffer[:2]
                break
            if count != len(self.types):
                raise self._error(f"row field count is {count}, expected {len(self.types)}",
                                  "22P04")
            offset = 2
            values: list[Any] = []
            for pgtype in self.types:
                if len(buffer) < offset + 4:
                    return out
                (length,) = struct.unpack_from(">i", buffer, offset)
                offset += 4
                if length == -1:
                    values.append(None)
                    continue
                if length < 0:
                    raise self._error(f"invalid field length {length}", "22P04")
                if len(buffer) < offset + length:
                    return out
                try:
                    values.append(pgtypes.decode_binary(
                        pgtype, bytes(buffer[offset:offset + length])))
                except pgtypes.PgValueError as exc:
                    self.line += 1
                    raise self._error(str(exc), exc.sqlstate) from None
                offset += length
            del buffer[:offset]
            self.line += 1
            out.append(tuple(values))
        if self._binary_ended and buffer:
            raise self._error("data after the end of the binary COPY data", "22P04")
        return out

    def _error(self, message: str, sqlstate: str) -> CopyDataError:
        where = f"COPY {self.action.table or 'query'}, line {max(self.line, 1)}"
        return CopyDataError(f"{message} ({where})", sqlstate)


def _unquoted_fields(text: str, action: CopyAction) -> list[bool]:
    """Per CSV field, whether it was written without quotes."""
    out: list[bool] = []
    quoted = False
    field_start = True
    was_quoted = False
    i = 0
    while i < len(text):
        ch = text[i]
        if field_start:
            was_quoted = ch == action.quote
            field_start = False
        if quoted and ch == action.escape and action.escape != action.quote:
            i += 2
            continue
        if ch == action.quote:
            quoted = not quoted
        elif ch == action.delimiter and not quoted:
            out.append(not was_quoted)
            field_start = True
        i += 1
    out.append(not was_quoted if not field_start else True)
    return out


def _unescape(field: str) -> str:
    if "\\" not in field:
        return field
    out: list[str] = []
    i = 0
    while i < len(field):
        ch = field[i]
        if ch == "\\" and i + 1 < len(field):
            nxt = field[i + 1]
            out.append(_ESCAPES.get(nxt, nxt))
            i += 2
        else:
            out.append(ch)
            i += 1
    return "".join(out)


def encode_rows(action: CopyAction, names: Sequence[str],
                types: Sequence[pgtypes.PgType | None],
                rows: Sequence[Sequence[Any]]) -> Iterator[bytes]:
    """COPY TO STDOUT's lines (one CopyData payload each) in text or CSV."""
    if action.header and action.format == "csv":
        yield _csv_line(list(names), action)
    for row in rows:
        texts: list[str | None] = []
        for pgtype, value in zip(types, row, strict=True):
            if value is None:
                texts.append(None)
            elif pgtype is None:
                texts.append(str(value))
            else:
                encoded = pgtypes.encode_text(pgtype, value)
                texts.append(None if encoded is None else encoded.decode())
        yield _csv_line(texts, action) if action.format == "csv" else _text_line(texts, action)


def _text_line(values: list[str | None], action: CopyAction) -> bytes:
    out = []
    for value in values:
        if value is None:
            out.append(action.null)
            continue
        escaped = (value.replace("\\", "\\\\").replace("\n", "\\n").replace("\r", "\\r")
                   .replace("\t", "\\t"))
        if action.delimiter != "\t":
            escaped = escaped.replace(action.delimiter, "\\" + action.delimiter)
        out.append(escaped)
    return (action.delimiter.join(out) + "\n").encode()


def _csv_line(values: list[str | None], action: CopyAction) -> bytes:
    out = []
    for value in values:
        if value is None:
            out.append(action.null)
        elif (value == "" or action.delimiter in value or action.quote in value
              or "\n" in value or "\r" in value or value == action.null):
            out.append(action.quote + value.replace(action.quote, action.escape + action.quote)
                       + action.quote)
        else:
            out.append(value)
    return (action.delimiter.join(out) + "\n").encode()
