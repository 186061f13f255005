"""Column layouts of mixed-type data: which encoded columns each likelihood block models.

A layout is a sequence of blocks ``(family, width)`` over the encoded columns, in order:

    ("gaussian", w)     w numeric columns, one output (column) each
    ("bernoulli", w)    w 0/1 columns, one output each
    ("categorical", w)  ONE categorical column, one-hot over w levels: one output

An *output* is an original column: the unit of ``score_features`` and of missingness
(a categorical column is missing when its whole one-hot group is NaN).
"""

from __future__ import annotations

from numbers import Integral

import numpy as np

BLOCK_FAMILIES = ("gaussian", "bernoulli", "categorical")


def normalize_layout(layout) -> tuple[tuple[str, int], ...]:
    """The layout as a tuple of (family, width) pairs; ValueError names a bad block."""
    try:
        blocks = [tuple(block) for block in layout]
    except TypeError as error:
        raise ValueError(
            f"A layout is a sequence of (family, width) pairs, got {layout!r}."
        ) from error
    if not blocks:
        raise ValueError("A layout needs at least one (family, width) block.")
    normalized = []
    for index, block in enumerate(blocks):
        if len(block) != 2:
            raise ValueError(f"Layout block {index} must be (family, width), got {block!r}.")
        family, width = block
        if family not in BLOCK_FAMILIES:
            raise ValueError(
                f"Layout block {index}: family must be one of {BLOCK_FAMILIES}, got {family!r}."
            )
        if not isinstance(width, Integral) or isinstance(width, bool) or width < 1:
            raise ValueError(f"Layout block {index}: width must be an int >= 1, got {width!r}.")
        if family == "categorical" and width < 2:
            raise ValueError(f"Layout block {index}: a categorical column needs >= 2 levels.")
        normalized.append((str(family), int(width)))
    return tuple(normalized)


def layout_width(layout) -> int:
    """Number of encoded columns the layout covers."""
    return sum(width for _, width in layout)


def output_spans(layout) -> list[tuple[str, int, int]]:
    """(family, start, stop) of the encoded columns behind each output, in output order."""
    spans, start = [], 0
    for family, width in layout:
        if family == "categorical":
            spans.append((family, start, start + width))
        else:
            spans.extend((family, start + j, start + j + 1) for j in range(width))
        start += width
    return spans


def observed_outputs(X: np.ndarray, layout) -> np.ndarray:
    """Boolean [n, outputs]: True where the output's encoded entries are present (not NaN)."""
    present = ~np.isnan(X)
    return np.stack([present[:, a:b].all(axis=1) for _, a, b in output_spans(layout)], axis=1)
