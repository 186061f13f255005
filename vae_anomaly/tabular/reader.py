"""CSV files read in chunks of physical lines, every line accounted for.

``plan_chunks`` scans a file once (bytes only) and returns where each chunk of
``chunk_rows`` data lines starts, so that any chunk can be read on its own, by this
process or by a Dask worker. ``read_chunk`` returns the chunk's text cells by column,
and the lines it could not split (wrong field count, not UTF-8, blank) with the reason.

One record is one physical line: a quoted field may hold the delimiter but not a line
break (such a record is rejected with its line number rather than silently merged).
"""

from __future__ import annotations

import csv
import glob
import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

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


@dataclass
class Chunk:
    plan: ChunkPlan
    header: list[str]
    cells: dict[str, np.ndarray]  # column -> text cells of the rows that split correctly
    lines: np.ndarray  # line number of each of those rows
    raw: list[str]  # raw text of those rows
    rejected: list[tuple[int, str, str]]  # (line number, reason, raw line)


def expand_inputs(patterns) -> list[Path]:
    """Paths and globs, in the order given (each glob sorted); errors name what matched nothing."""
    paths = []
    for pattern in patterns:
        matches = sorted(glob.glob(str(pattern))) if glob.has_magic(str(pattern)) else [pattern]
        if not matches:
            raise FileNotFoundError(f"--input {pattern}: no file matches this pattern.")
        for match in matches:
            path = Path(match)
            if not path.is_file():
                raise FileNotFoundError(f"--input {path}: no such file.")
            if path.resolve() not in {p.resolve() for p in paths}:  # a file is scored once
                paths.append(path)
    return paths


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
        names = [name.strip() for name in _split(text, delimiter)]
    except (UnicodeDecodeError, csv.Error) as error:
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
    known by content, not by name, size or modification time.
    """
    if chunk_rows < 1:
        raise ValueError(f"chunk_rows must be >= 1, got {chunk_rows!r}.")
    _, header_bytes = read_header(path, delimiter)
    plans, start, start_line, in_chunk, offset, last = [], header_bytes, 2, 0, header_bytes, b""
    whole, chunk_digest = hashlib.sha256(), hashlib.sha256()
    with open(path, "rb") as handle:
        whole.update(handle.read(header_bytes))
        while block := handle.read(_BLOCK):
            whole.update(block)
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
                    )
                )
                chunk_digest = hashlib.sha256()
                start, start_line = offset + int(end) + 1, start_line + chunk_rows
            chunk_digest.update(view[taken:])
            in_chunk += breaks.size - ends.size * chunk_rows
            offset, last = offset + len(block), block[-1:]
    if start < offset:  # the lines after the last full chunk; the very last may lack a break
        n_lines = in_chunk + (0 if last == b"\n" else 1)
        plans.append(
            ChunkPlan(str(path), len(plans), start, start_line, n_lines, chunk_digest.hexdigest())
        )
    return plans, whole.hexdigest()


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
            text = data.decode("utf-8", errors="replace").rstrip("\r\n")
            try:
                line = data.decode("utf-8").rstrip("\r\n")
            except UnicodeDecodeError:
                rejected.append((number, "not valid UTF-8", text))
                continue
            if not line.strip():
                rejected.append((number, "blank line", line))
                continue
            try:
                fields = _split(line, delimiter)
            except csv.Error as error:
                rejected.append((number, f"cannot split: {error}", line))
                continue
            if len(fields) != len(header):
                rejected.append(
                    (
                        number,
                        f"wrong field count: {len(fields)} fields, header has {len(header)}",
                        line,
                    )
                )
                continue
            rows.append(fields)
            lines.append(number)
            raw.append(line)
    if plan.sha256 and digest.hexdigest() != plan.sha256:
        raise ValueError(
            f"{plan.path}, lines {plan.first_line}-{plan.first_line + plan.n_lines - 1}: the "
            "file changed while the job was running (its bytes no longer match the plan); "
            "run the job again."
        )
    table = np.array(rows, dtype=object).reshape(len(rows), len(header))
    cells = {name: table[:, j] for j, name in enumerate(header)}
    return Chunk(plan, header, cells, np.array(lines, dtype=np.int64), raw, rejected)
