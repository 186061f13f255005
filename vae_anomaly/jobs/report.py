"""The accounting every job reports: each item read is scored or rejected, by reason.

    read = scored + rejected,   rejected = sum over reasons of rejected_by_reason[reason]

A reason is counted by its kind: the text before its first ":" or " (", so that
"not a number: column 'x' = 'n/a'" and "not a number: column 'y' = '?'" count together.
"""

from __future__ import annotations

from collections import Counter


def reason_kind(reason: str) -> str:
    """The reason without its details (the key it is counted under)."""
    return reason.split(":")[0].split(" (")[0]


class Tally:
    """Counts of one run (or one file of it): scored, flagged, and rejected by kind."""

    def __init__(self) -> None:
        self.scored = 0
        self.flagged = 0
        self.rejected: Counter = Counter()

    def reject(self, reasons) -> None:
        self.rejected.update(reason_kind(reason) for reason in reasons)

    def score(self, n: int, flagged: int) -> None:
        self.scored += n
        self.flagged += flagged

    @property
    def read(self) -> int:
        return self.scored + sum(self.rejected.values())

    def counts(self, unit: str) -> dict:
        """``{unit}_read``, ``{unit}_scored``, ``{unit}_rejected`` (read = scored + rejected)."""
        rejected = sum(self.rejected.values())
        return {
            f"{unit}_read": self.scored + rejected,
            f"{unit}_scored": self.scored,
            f"{unit}_rejected": rejected,
        }
