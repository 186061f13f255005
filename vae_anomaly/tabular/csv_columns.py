"""CSV text built a column at a time (Arrow compute), byte for byte what pandas writes.

``DataFrame.to_csv(index=False, header=False)`` (on Python 3.12 or newer: see
``QUOTED_CHARACTERS``) formats a float column with
``numpy.ndarray.astype(str)`` (the shortest text that reads back as the same float, as
``repr``; NaN as an empty cell), booleans as ``True``/``False``, and hands the rows to
Python's ``csv.writer`` (minimal quoting, lines ending in ``\\n``). The functions here
give the same text for whole columns, and ``csv_lines`` joins them into the same bytes,
without a Python object per cell: the per-row cost of writing a chunk.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

# Arrow's float-to-text cast writes the same digits as repr (both are the shortest text
# that reads back), and the same text in this range for a value with a fraction; outside
# it (exponents, integral values written without ".0") repr is called per value.
_ARROW_FLOAT_RANGE = (1e-4, 1e10)


# The characters that make a field quoted: the delimiter, the quote character and both
# line-break characters. Python's csv.writer quotes "\r" from Python 3.12 on; before, with
# pandas' line terminator "\n", it leaves a "\r" bare, and CSV readers (pandas, csv.reader)
# then split the row in two there. The text here is what 3.12 writes, on every version.
QUOTED_CHARACTERS = (",", '"', "\n", "\r")


def float_text(values: np.ndarray) -> pa.Array:
    """Each float as ``str(value)`` (= ``repr``), NaN as an empty cell: [n] strings."""
    values = np.asarray(values, dtype=np.float64)
    if len(values) > 64:  # few distinct values (p-values): each is written once
        bits, inverse = np.unique(values.view(np.int64), return_inverse=True)
        if len(bits) * 4 < len(values):
            return float_text(bits.view(np.float64)).take(pa.array(inverse.ravel()))
    magnitude = np.abs(values)
    low, high = _ARROW_FLOAT_RANGE
    with np.errstate(invalid="ignore"):
        by_arrow = (magnitude >= low) & (magnitude < high) & (values != np.trunc(values))
    text = pc.cast(pa.array(np.where(by_arrow, values, 0.5)), pa.string())
    other = np.flatnonzero(~by_arrow)
    if other.size == 0:
        return text
    # Distinct by bits, so that -0.0 and 0.0 stay apart.
    bits, inverse = np.unique(values[other].view(np.int64), return_inverse=True)
    unique = bits.view(np.float64).tolist()
    written = np.array(["" if np.isnan(v) else repr(v) for v in unique], dtype=object)
    mask = np.zeros(len(values), dtype=bool)
    mask[other] = True
    replacements = pa.array(written[inverse], type=pa.string())
    return pc.replace_with_mask(text, pa.array(mask), replacements)


def int_text(values: np.ndarray) -> pa.Array:
    """Integers as decimal text: [n] strings."""
    return pc.cast(pa.array(np.asarray(values, dtype=np.int64)), pa.string())


def bool_text(values: np.ndarray) -> pa.Array:
    """``True`` or ``False`` per value: [n] strings."""
    return pc.if_else(pa.array(np.asarray(values, dtype=bool)), "True", "False")


def quoted(text) -> pa.Array:
    """Text cells as csv.writer writes them: in double quotes (each quote doubled) when
    they hold a delimiter, quote or line break (``QUOTED_CHARACTERS``), else as they are."""
    if isinstance(text, pa.ChunkedArray):
        text = text.combine_chunks()
    data = text.buffers()[2]
    data = np.frombuffer(data, dtype=np.uint8) if data is not None else np.empty(0, np.uint8)
    if not any((data == ord(c)).any() for c in QUOTED_CHARACTERS):
        return text  # no cell needs quotes (the buffer holds every cell's bytes)
    needs = None
    for character in QUOTED_CHARACTERS:
        found = pc.match_substring(text, character)
        needs = found if needs is None else pc.or_(needs, found)
    if needs is None or not pc.any(needs).as_py():
        return text
    escaped = pc.binary_join_element_wise(
        '"', pc.replace_substring(text, '"', '""'), '"', ""
    )  # '"' + cell + '"', joined with nothing between
    return pc.if_else(needs, escaped, text)


def csv_lines(columns: list) -> bytes:
    """The CSV lines of rows given by column (each an Arrow string array, or a string
    for a column holding one value on every row): cells joined by "," and each line
    ended by "\\n"."""
    arrays = [c for c in columns if not isinstance(c, str)]
    if not arrays or len(arrays[0]) == 0:
        return b""
    lines = pc.binary_join_element_wise(*columns, ",")
    lines = pc.binary_join_element_wise(lines, "", "\n")  # line + "\n" + ""
    lines = lines.combine_chunks() if isinstance(lines, pa.ChunkedArray) else lines
    offsets = np.frombuffer(lines.buffers()[1], dtype=np.int32)[
        lines.offset : lines.offset + len(lines) + 1
    ]
    return lines.buffers()[2].to_pybytes()[offsets[0] : offsets[-1]]
