"""CSV files read in chunks of physical lines, every line accounted for.

``plan_chunks`` scans a file once (bytes only) and returns where each chunk of
``chunk_rows`` data lines starts, so that any chunk can be read on its own, by this
process or by a Dask worker. ``read_chunk`` returns the chunk's text cells by column,
and the lines it could not split (wrong field count, not UTF-8, blank) with the reason.

``read_chunk_columns`` reads the same chunk into Arrow string columns with
``pyarrow.csv`` and gives the same cells, rows and rejects (the scoring job's reader);
``read_chunk`` reads it line by line in Python, and is the fallback for a chunk that
Arrow cannot parse.

One record is one physical line: a quoted field may hold the delimiter but not a line
break (such a record is rejected with its line number rather than silently merged).
"""

from __future__ import annotations

import csv
import glob
import hashlib
import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..jobs.paths import is_glob

_BLOCK = 1 << 22


@dataclass(frozen=True)
class ChunkPlan:
    """Where one chunk of a file starts: byte offset, first line number (1-based), lines,
    and the SHA-256 of its bytes (what a resumed job compares, and ``read_chunk`` checks)."""

    path: str
    index: int  # chunk number within the file
    offset: int
    first_line: int
    n_lines: int
    sha256: str = ""
    n_bytes: int = -1  # length of the chunk's bytes (-1: unknown, read up to n_lines breaks)


@dataclass
class Chunk:
    plan: ChunkPlan
    header: list[str]
    cells: dict  # column -> text cells of the rows that split correctly (NumPy or Arrow)
    lines: np.ndarray  # line number of each of those rows
    raw: Sequence[str]  # raw text of those rows
    rejected: list[tuple[int, str, str]]  # (line number, reason, raw line)


def expand_inputs(patterns) -> list[Path]:
    """Paths and globs, in the order given (each glob sorted; a path that exists is itself,
    whatever its characters: "export [1].csv"); errors name what matched nothing, and
    what is not a file."""
    paths = []
    for pattern in patterns:
        matches = sorted(glob.glob(str(pattern))) if is_glob(pattern) else [pattern]
        if not matches:
            raise FileNotFoundError(f"--input {pattern}: no file matches this pattern.")
        for match in matches:
            path = Path(match)
            if not path.exists():
                raise FileNotFoundError(f"--input {path}: no such file.")
            if not path.is_file():
                kind = (
                    "a folder" if path.is_dir() else "not a regular file (a FIFO, socket or device)"
                )
                raise FileNotFoundError(
                    f"--input {path}: is {kind}; the tabular jobs read CSV files."
                )
            try:  # the outputs name each row's file: its name must be writable text
                str(path).encode("utf-8")
            except UnicodeEncodeError:
                shown = os.fsencode(path).decode("utf-8", "backslashreplace")
                raise ValueError(
                    f"--input {shown}: the file name is not UTF-8, so the outputs could not "
                    "name it (source_file, the rejects' file); rename the file."
                ) from None
            if path.resolve() not in {p.resolve() for p in paths}:  # a file is scored once
                paths.append(path)
    return paths


# A quoted field may hold a whole multi-megabyte cell, as an unquoted one may (the csv
# module's default limit, 131,072 characters, rejected such rows as "cannot split").
csv.field_size_limit(2**31 - 1)  # the largest a C long holds everywhere


def _split(line: str, delimiter: str) -> list[str]:
    if '"' not in line:
        return line.split(delimiter)
    return next(csv.reader([line], delimiter=delimiter, strict=True))


def read_header(path, delimiter: str = ",") -> tuple[list[str], int]:
    """(column names, byte length of the header line); errors name the file."""
    with open(path, "rb") as handle:
        first = handle.readline()
    if not first.strip():
        raise ValueError(f"{path}, line 1: the file is empty or its header line is blank.")
    try:
        text = first.decode("utf-8-sig").rstrip("\r\n")
        if "\r" in text:
            raise ValueError(
                "the header line holds a carriage return (\\r) before its end: lines ended "
                "by \\r alone (classic Mac OS line endings) are not lines here, so the whole "
                "file would be read as its header. Convert its line endings to \\n or \\r\\n"
            )
        names = [name.strip() for name in _split(text, delimiter)]
    except (UnicodeDecodeError, csv.Error, ValueError) as error:
        raise ValueError(f"{path}, line 1: cannot read the header: {error}.") from error
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates or "" in names:
        raise ValueError(f"{path}, line 1: header has empty or repeated column names: {names}.")
    return names, len(first)


def plan_chunks(path, chunk_rows: int, delimiter: str = ",") -> list[ChunkPlan]:
    """Chunk starts of a CSV: one scan of its bytes for line breaks (``scan_file``)."""
    return scan_file(path, chunk_rows, delimiter)[0]


def scan_file(path, chunk_rows: int, delimiter: str = ",") -> tuple[list[ChunkPlan], str]:
    """(chunk plans, SHA-256 of the whole file) from one scan of the file's bytes.

    Each plan carries the SHA-256 of its own bytes, so inputs and committed chunks are
    known by content, not by name, size or modification time. The whole file's digest is
    computed in a second thread, a block behind (``hashlib`` lets go of the GIL), so the
    scan takes one hash's time, not two.
    """
    if chunk_rows < 1:
        raise ValueError(f"chunk_rows must be >= 1, got {chunk_rows!r}.")
    _, header_bytes = read_header(path, delimiter)
    plans, start, start_line, in_chunk, offset, last = [], header_bytes, 2, 0, header_bytes, b""
    whole, chunk_digest = hashlib.sha256(), hashlib.sha256()
    with open(path, "rb") as handle, ThreadPoolExecutor(1) as hasher:
        hashed = hasher.submit(whole.update, handle.read(header_bytes))
        while block := handle.read(_BLOCK):
            hashed.result()  # at most one block waits for the whole file's digest
            hashed = hasher.submit(whole.update, block)
            view, taken = memoryview(block), 0
            breaks = np.flatnonzero(np.frombuffer(block, dtype=np.uint8) == ord("\n"))
            ends = breaks[chunk_rows - in_chunk - 1 :: chunk_rows]  # last break of each chunk
            for end in ends:
                chunk_digest.update(view[taken : int(end) + 1])
                taken = int(end) + 1
                plans.append(
                    ChunkPlan(
                        str(path),
                        len(plans),
                        start,
                        start_line,
                        chunk_rows,
                        chunk_digest.hexdigest(),
                        offset + int(end) + 1 - start,
                    )
                )
                chunk_digest = hashlib.sha256()
                start, start_line = offset + int(end) + 1, start_line + chunk_rows
            chunk_digest.update(view[taken:])
            in_chunk += breaks.size - ends.size * chunk_rows
            offset, last = offset + len(block), block[-1:]
        hashed.result()
    if start < offset:  # the lines after the last full chunk; the very last may lack a break
        n_lines = in_chunk + (0 if last == b"\n" else 1)
        plans.append(
            ChunkPlan(
                str(path),
                len(plans),
                start,
                start_line,
                n_lines,
                chunk_digest.hexdigest(),
                offset - start,
            )
        )
    return plans, whole.hexdigest()


def _line_fields(number: int, data: bytes, n_columns: int, delimiter: str):
    """(fields, None) for a line that splits into ``n_columns`` fields, else (None, (line
    number, reason, raw text)); ``data`` is the line's bytes with or without its break."""
    try:
        line = data.decode("utf-8").rstrip("\r\n")
    except UnicodeDecodeError:
        return None, (number, "not valid UTF-8", data.decode("utf-8", "replace").rstrip("\r\n"))
    if not line.strip():
        return None, (number, "blank line", line)
    try:
        fields = _split(line, delimiter)
    except csv.Error as error:
        return None, (number, f"cannot split: {error}", line)
    if len(fields) != n_columns:
        reason = f"wrong field count: {len(fields)} fields, header has {n_columns}"
        return None, (number, reason, line)
    return fields, None


def _changed(plan: ChunkPlan) -> ValueError:
    return ValueError(
        f"{plan.path}, lines {plan.first_line}-{plan.first_line + plan.n_lines - 1}: the "
        "file changed while the job was running (its bytes no longer match the plan); "
        "run the job again."
    )


def read_chunk(plan: ChunkPlan, delimiter: str = ",") -> Chunk:
    """The text cells of one planned chunk, and its lines that do not split into the header."""
    header, _ = read_header(plan.path, delimiter)
    rows, lines, raw, rejected = [], [], [], []
    digest = hashlib.sha256()
    with open(plan.path, "rb") as handle:
        handle.seek(plan.offset)
        for number in range(plan.first_line, plan.first_line + plan.n_lines):
            data = handle.readline()
            digest.update(data)
            fields, reject = _line_fields(number, data, len(header), delimiter)
            if reject:
                rejected.append(reject)
                continue
            rows.append(fields)
            lines.append(number)
            raw.append(data.decode("utf-8").rstrip("\r\n"))
    if plan.sha256 and digest.hexdigest() != plan.sha256:
        raise _changed(plan)
    table = np.array(rows, dtype=object).reshape(len(rows), len(header))
    cells = {name: table[:, j] for j, name in enumerate(header)}
    return Chunk(plan, header, cells, np.array(lines, dtype=np.int64), raw, rejected)


# ----------------------------------------------------------------------------- columnar

# Bytes that Python's str.strip() does not remove, and that are ASCII: a line that
# starts or ends with one is not blank.
_ASCII_SPACE = np.zeros(256, dtype=bool)
_ASCII_SPACE[[9, 10, 11, 12, 13, 28, 29, 30, 31, 32]] = True
_SOLID = ~_ASCII_SPACE
_SOLID[128:] = False


class _RawLines(Sequence):
    """The raw text of a chunk's rows, decoded from the chunk's bytes when asked for."""

    def __init__(self, data: bytes, starts: np.ndarray, ends: np.ndarray):
        self._data, self._starts, self._ends = data, starts, ends

    def __len__(self) -> int:
        return len(self._starts)

    def __getitem__(self, i):
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(len(self)))]
        return self._data[self._starts[i] : self._ends[i]].decode("utf-8")


class _ArrowFailed(Exception):
    """Arrow could not parse the chunk as the line reader would: read it line by line."""


def _read_bytes(plan: ChunkPlan) -> bytes:
    """The chunk's bytes, checked against the plan's SHA-256."""
    with open(plan.path, "rb") as handle:
        handle.seek(plan.offset)
        if plan.n_bytes >= 0:
            data = handle.read(plan.n_bytes)
        else:  # a plan without its length: up to its last line break
            data, found = b"", 0
            while found < plan.n_lines and (block := handle.read(_BLOCK)):
                data += block
                found = data.count(b"\n")
            ends = np.flatnonzero(np.frombuffer(data, np.uint8) == ord("\n"))
            if ends.size >= plan.n_lines:
                data = data[: int(ends[plan.n_lines - 1]) + 1]
    if plan.sha256 and hashlib.sha256(data).hexdigest() != plan.sha256:
        raise _changed(plan)
    return data


def read_chunk_columns(plan: ChunkPlan, delimiter: str = ",") -> Chunk:
    """``read_chunk`` through ``pyarrow.csv``: the same cells (as Arrow string arrays),
    rows, raw lines and rejects, with their reasons.

    A scan of the chunk's bytes (NumPy) finds each line's start, end and what it holds.
    Plain lines (valid UTF-8, no quote, no carriage return inside, some non-space
    character, no leading byte-order mark) are parsed by Arrow without quoting, exactly
    as ``str.split`` splits them; Arrow's ``invalid_row_handler`` reports those with
    another field count, which are rejected (each reported row is checked to be the line
    it stands for). Every other line (not UTF-8, maybe blank, quoted, with a carriage
    return inside) goes through ``read_chunk``'s own per-line code, so its reason is the
    line reader's. If Arrow fails, or reports a row that is not the line it should be,
    the whole chunk is read by ``read_chunk``.
    """
    header, _ = read_header(plan.path, delimiter)
    data = _read_bytes(plan)
    if len(delimiter) != 1 or delimiter in '"\r\n' or ord(delimiter) > 127:
        return read_chunk(plan, delimiter)
    try:
        return _arrow_chunk(plan, header, data, delimiter)
    except _ArrowFailed:
        return read_chunk(plan, delimiter)


def _per_line(positions: np.ndarray, starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """Per line: how many of the byte ``positions`` lie in its [start, end)."""
    line = np.searchsorted(starts, positions, side="right") - 1
    inside = positions < ends[line]
    return np.bincount(line[inside], minlength=len(starts))


def _arrow_chunk(plan: ChunkPlan, header: list[str], data: bytes, delimiter: str) -> Chunk:
    import pyarrow as pa
    import pyarrow.csv as pacsv

    raw_bytes = np.frombuffer(data, dtype=np.uint8)
    breaks = np.flatnonzero(raw_bytes == ord("\n"))
    starts = np.concatenate([[0], breaks + 1])
    ends = np.concatenate([breaks, [len(data)]])
    if len(data) == 0 or data.endswith(b"\n"):
        starts, ends = starts[:-1], ends[:-1]  # no line after the last break
    if len(starts) != plan.n_lines:
        raise _ArrowFailed
    # A line without its break and one trailing carriage return (rstrip("\r\n") may take
    # more: such a line has a carriage return inside and goes to Python).
    content_end = ends - ((ends > starts) & (raw_bytes[np.maximum(ends - 1, 0)] == 13))
    bad_utf8 = np.zeros(len(starts), dtype=bool)
    if not data.isascii():  # decode only the lines with a byte above 127, one at a time
        wide = _per_line(np.flatnonzero(raw_bytes >= 128), starts, ends) > 0
        for i in np.flatnonzero(wide):
            try:
                data[starts[i] : ends[i]].decode("utf-8")
            except UnicodeDecodeError:
                bad_utf8[i] = True

    def has(byte: bytes) -> np.ndarray:
        if byte not in data:
            return np.zeros(len(starts), dtype=bool)
        positions = np.flatnonzero(raw_bytes == ord(byte))
        return _per_line(positions, starts, content_end) > 0

    last = raw_bytes[np.maximum(content_end - 1, 0)]
    first = raw_bytes[np.minimum(starts, max(len(data) - 1, 0))]
    python_path = (
        bad_utf8
        | has(b'"')
        | has(b"\r")
        # Maybe blank (neither end is a non-space ASCII character): judged in Python.
        | (content_end == starts)
        | ~(_SOLID[first] | _SOLID[last])
        # Arrow drops a byte-order mark that starts its input; the line reader keeps it.
        | (first == 0xEF)
    )
    numbers = plan.first_line + np.arange(len(starts))
    rejected = []
    python_rows, python_lines = [], []
    for i in np.flatnonzero(python_path):
        row, reject = _line_fields(
            int(numbers[i]), data[starts[i] : ends[i]], len(header), delimiter
        )
        if reject:
            rejected.append(reject)
        else:
            python_rows.append(row)
            python_lines.append(i)
    rejected.sort()

    names = [f"f{j}" for j in range(len(header))]
    candidates = np.flatnonzero(~python_path)  # the lines given to Arrow, in order
    wrong_count = []  # (line index, fields) of the rows Arrow reports

    def invalid_row(row) -> str:
        index = candidates[row.number - 1] if 0 < row.number <= len(candidates) else -1
        if index < 0 or data[starts[index] : content_end[index]].decode("utf-8") != row.text:
            raise _ArrowFailed  # not the line it should be: read the chunk line by line
        wrong_count.append((int(index), row.actual_columns))
        return "skip"

    if candidates.size == len(starts):
        text = data
    else:
        keep = np.repeat(~python_path, np.diff(np.concatenate([starts, [len(data)]])))
        text = raw_bytes[keep].tobytes()
    try:
        table = (
            pacsv.read_csv(
                pa.py_buffer(text),
                read_options=pacsv.ReadOptions(
                    column_names=names, use_threads=False, block_size=max(1 << 20, len(text) + 1)
                ),
                parse_options=pacsv.ParseOptions(
                    delimiter=delimiter,
                    quote_char=False,
                    escape_char=False,
                    newlines_in_values=False,
                    ignore_empty_lines=True,
                    invalid_row_handler=invalid_row,
                ),
                convert_options=pacsv.ConvertOptions(
                    column_types=dict.fromkeys(names, pa.string()), strings_can_be_null=False
                ),
            )
            if candidates.size
            else None
        )
    except (pa.ArrowException, ValueError) as error:
        raise _ArrowFailed from error
    arrow_rows = ~python_path
    for index, fields in wrong_count:
        arrow_rows[index] = False
        reason = f"wrong field count: {fields} fields, header has {len(header)}"
        rejected.append(
            (int(numbers[index]), reason, data[starts[index] : content_end[index]].decode("utf-8"))
        )
    rejected.sort()
    if table is not None and table.num_rows != int(arrow_rows.sum()):
        raise _ArrowFailed

    positions = np.concatenate([np.flatnonzero(arrow_rows), np.array(python_lines, dtype=np.int64)])
    order = np.argsort(positions, kind="stable")
    in_order = None if not python_rows else pa.array(order)
    cells = {}
    for j, name in enumerate(header):
        parts = [] if table is None else table.column(j).chunks
        if python_rows:
            parts = [*parts, pa.array([row[j] for row in python_rows], type=pa.string())]
        column = pa.concat_arrays(parts) if parts else pa.array([], type=pa.string())
        cells[name] = column if in_order is None else column.take(in_order)
    rows = positions[order]
    raw_end = content_end.copy()
    for i in python_lines:  # rstrip("\r\n") of a Python-path line may take more than one \r
        raw_end[i] = starts[i] + len(data[starts[i] : ends[i]].rstrip(b"\r\n"))
    raw = _RawLines(data, starts[rows], raw_end[rows])
    return Chunk(plan, header, cells, numbers[rows].astype(np.int64), raw, rejected)
