"""The archive file: gzip around JSON lines. A header, then each table (a line naming it and its
columns, then one JSON array per row), then a trailer with the row counts and the sha256 of
every line before it. Nothing is loaded before the whole file has been read and its checksum
matched, so a truncated or altered archive is refused whole."""

from __future__ import annotations

import gzip
import hashlib
import os
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO, Literal

import orjson

FORMAT = "chatgate-backup"
VERSION = 1
COMPRESSION_LEVEL = 6
# The data keys travel in a file of their own (docs/backup.md, "The data keys, kept apart").
Part = Literal["data", "keys"]


class BackupError(Exception):
    """A refusal with a stable code, printed by the CLI as `chatgate: <message> (<code>)`."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True, slots=True)
class Header:
    schema_revision: str
    dialect: str
    created_at: str
    part: Part
    format: str = FORMAT
    version: int = VERSION


@dataclass(frozen=True, slots=True)
class TableStart:
    name: str
    columns: list[str]


@dataclass(slots=True)
class Trailer:
    rows: dict[str, int] = field(default_factory=dict)
    sha256: str = ""


class ArchiveWriter:
    """Writes to `<path>.partial` and renames it to `path` on `finish`: a backup that failed
    half-way never leaves a file that looks like an archive."""

    def __init__(self, path: Path, header: Header) -> None:
        self.path = path
        self._partial = path.with_name(path.name + ".partial")
        try:
            self._raw: BinaryIO = open(self._partial, "wb")  # noqa: SIM115  (finish/abort close)
        except OSError as exc:
            why = f"cannot write {path}: {exc.strerror}"
            raise BackupError("archive_unwritable", why) from None
        self._gzip = gzip.GzipFile(fileobj=self._raw, mode="wb", compresslevel=COMPRESSION_LEVEL)
        self._digest = hashlib.sha256()
        self._trailer = Trailer()
        self._table = ""
        self._line(orjson.dumps(header))  # a dataclass: its fields, in order

    def start_table(self, name: str, columns: list[str]) -> None:
        self._table = str(name)
        self._trailer.rows[self._table] = 0
        self._line(orjson.dumps({"table": name, "columns": columns}))

    def write_rows(self, rows: list[list[Any]]) -> None:
        self._trailer.rows[self._table] += len(rows)
        self._gzip.write(b"".join(self._hashed(orjson.dumps(row) + b"\n") for row in rows))

    def finish(self) -> dict[str, int]:
        self._trailer.sha256 = self._digest.hexdigest()
        trailer = {"end": {"rows": self._trailer.rows, "sha256": self._trailer.sha256}}
        self._gzip.write(orjson.dumps(trailer) + b"\n")
        self._gzip.close()
        self._raw.flush()
        os.fsync(self._raw.fileno())
        self._raw.close()
        os.replace(self._partial, self.path)
        return self._trailer.rows

    def abort(self) -> None:
        self._gzip.close()
        self._raw.close()
        self._partial.unlink(missing_ok=True)

    def _hashed(self, line: bytes) -> bytes:
        self._digest.update(line)
        return line

    def _line(self, payload: bytes) -> None:
        self._gzip.write(self._hashed(payload + b"\n"))


def _lines(path: Path) -> Iterator[bytes]:
    try:
        with gzip.open(path, "rb") as stream:
            yield from stream
    except FileNotFoundError:
        raise BackupError("archive_missing", f"no archive at {path}") from None
    except (OSError, EOFError, zlib.error) as exc:
        raise BackupError(
            "archive_corrupt", f"{path} is not a whole chatgate archive (truncated or altered: "
            f"{exc or type(exc).__name__})"
        ) from None  # fmt: skip


def verify(path: Path, part: Part) -> tuple[Header, Trailer]:
    """Reads the whole archive once: its header, its trailer, and the checksum of everything
    in between; raises BackupError unless all of it is whole and of a format this code reads.
    A damaged line is judged after the checksum, which names the damage best."""
    digest = hashlib.sha256()
    header: Header | None = None
    trailer: Trailer | None = None
    counted: dict[str, int] = {}
    damage: BackupError | None = None
    for line in _lines(path):
        if trailer is not None:
            damage = damage or _corrupt(path, "content after the trailer")
        elif line.startswith(b'{"end"'):
            trailer = _trailer(path, line)
        else:
            digest.update(line)
            if header is None:
                header = _header(path, _parse(path, line), part)  # a stranger is told at once
            elif damage is None:
                damage = _count(path, line, counted)
    if header is None or trailer is None:
        raise _corrupt(path, "it ends before its trailer (truncated)")
    if trailer.sha256 != digest.hexdigest():
        raise BackupError("archive_checksum", f"{path} does not match its sha256: it was altered")
    if damage is not None:
        raise damage
    if trailer.rows != counted:
        raise _corrupt(path, "its row counts differ from its trailer")
    return header, trailer


def _count(path: Path, line: bytes, counted: dict[str, int]) -> BackupError | None:
    """Counts a row to the table last named, or names a table; the damage, if the line is not
    one or the other."""
    if not line.startswith(b"{"):
        if not counted:
            return _corrupt(path, "a row before any table")
        counted[next(reversed(counted))] += 1
        return None
    try:
        counted[str(_parse(path, line)["table"])] = 0
    except (KeyError, TypeError):
        return _corrupt(path, "a line is neither a table nor a row")
    except BackupError as exc:
        return exc
    return None


def _trailer(path: Path, line: bytes) -> Trailer:
    try:
        end = _parse(path, line)["end"]
        return Trailer(rows=dict(end["rows"]), sha256=str(end["sha256"]))
    except (KeyError, TypeError, ValueError):
        raise _corrupt(path, "its trailer is damaged") from None


def read_lines(path: Path, trailer: Trailer) -> Iterator[TableStart | list[Any]]:
    """The tables and rows of an archive `verify` has accepted, in order; checked against the
    checksum again as they are read, so that a file changed since cannot be committed."""
    digest = hashlib.sha256()
    for line in _lines(path):
        if line.startswith(b'{"end"'):
            break
        digest.update(line)
        parsed = orjson.loads(line)
        if isinstance(parsed, list):
            yield parsed
        elif "table" in parsed:
            yield TableStart(name=parsed["table"], columns=parsed["columns"])
    if digest.hexdigest() != trailer.sha256:
        raise BackupError("archive_checksum", f"{path} changed while it was being restored")


def _header(path: Path, fields: Any, part: Part) -> Header:
    if not isinstance(fields, dict) or fields.get("format") != FORMAT:
        raise BackupError("archive_format", f"{path} is not a chatgate archive")
    if fields.get("version") != VERSION:
        raise BackupError(
            "archive_version",
            f"{path} is archive format version {fields.get('version')}; this chatgate reads "
            f"version {VERSION}",
        )
    try:
        header = Header(**fields)
    except TypeError:
        raise _corrupt(path, "its header is damaged") from None
    if header.part != part:
        raise BackupError("archive_part", f"{path} holds the {header.part} part, not the {part}")
    return header


def _parse(path: Path, line: bytes) -> Any:
    try:
        return orjson.loads(line)
    except orjson.JSONDecodeError:
        raise _corrupt(path, "a line is not JSON") from None


def _corrupt(path: Path, why: str) -> BackupError:
    return BackupError("archive_corrupt", f"{path} is not a whole chatgate archive: {why}")
