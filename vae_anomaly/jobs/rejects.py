"""Reject files: one CSV row per input line or item that was not scored, with the reason.

    file, line, reason, raw_line, raw_length

For the image jobs, ``file`` is the item (a file's path, or ``path:key#index`` for an
image of an array file), and ``line`` and ``raw_line`` are empty.

``raw_line`` holds at most ``MAX_RAW_CHARS`` characters of the line and ``reason`` at most
``MAX_REASON_CHARS`` (a cut reason ends in "…"); ``raw_length`` is the line's full length
in characters, so a 50 MB line costs a reject file a few kB, and what was cut is known.

``RejectWriter`` writes to a temporary name and renames on a clean exit, so a reject file
that exists is complete.
"""

from __future__ import annotations

import csv
from pathlib import Path

from ..atomic import atomic_open

REJECT_FIELDS = ("file", "line", "reason", "raw_line", "raw_length")
MAX_RAW_CHARS = 1000
MAX_REASON_CHARS = 300


def reject_row(file, line, reason: str, raw: str) -> tuple:
    """One row of a reject file, capped (see the module docstring)."""
    if len(reason) > MAX_REASON_CHARS:
        reason = reason[: MAX_REASON_CHARS - 1] + "…"
    return (str(file), line, reason, raw[:MAX_RAW_CHARS], len(raw))


class RejectWriter:
    """Context manager collecting rejected lines into ``path``."""

    def __init__(self, path):
        self.path = Path(path)
        self.count = 0
        self.count_before_encoding = 0  # lines rejected by the reader (not split into cells)

    def __enter__(self):
        self._context = atomic_open(self.path)
        self._writer = csv.writer(self._context.__enter__())
        self._writer.writerow(REJECT_FIELDS)
        return self

    def add(self, path, rejected) -> None:
        """Lines the reader rejected: (line, reason, raw) tuples."""
        for line, reason, raw in rejected:
            self._writer.writerow(reject_row(path, line, reason, raw))
            self.count += 1
            self.count_before_encoding += 1

    def add_in_order(self, paths, unsplit, encoding) -> None:
        """Rejected lines of the files ``paths``, in file and line order: ``unsplit``
        (file index, line, reason, raw) from the reader, ``encoding`` the same from the
        encoder (the in-memory and the streamed fit write the same file)."""
        bad = [(*entry, True) for entry in unsplit] + [(*entry, False) for entry in encoding]
        for file_index, line, reason, raw, whole in sorted(bad, key=lambda entry: entry[:2]):
            if whole:
                self.add(paths[file_index], [(line, reason, raw)])
            else:
                self.add_one(paths[file_index], line, reason, raw)

    def add_items(self, rejected) -> None:
        """Items that are not lines (an image file, an array's image): (item, reason)."""
        for item, reason in rejected:
            self._writer.writerow(reject_row(item, "", reason, ""))
            self.count += 1

    def add_one(self, path, line: int, reason: str, raw: str) -> None:
        self._writer.writerow(reject_row(path, line, reason, raw))
        self.count += 1

    def __exit__(self, kind, value, traceback):
        return self._context.__exit__(kind, value, traceback)
