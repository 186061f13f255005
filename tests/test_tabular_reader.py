"""The scoring job's columnar path: the Arrow chunk reader, whole-column encoding, CSV
text built by column and the overlapped local engine, each against what it replaces."""

import dataclasses
import io
import json
import re
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv
import pytest
from conftest import eagerly

from vae_anomaly.machine_records import make_machine_records
from vae_anomaly.schema import _encode_numeric, _missing, _parse_numbers
from vae_anomaly.tabular import reader as reader_module
from vae_anomaly.tabular import score_job as score_job_module
from vae_anomaly.tabular.config import JobConfig
from vae_anomaly.tabular.csv_columns import bool_text, csv_lines, float_text, int_text, quoted
from vae_anomaly.tabular.engines import run_pipeline
from vae_anomaly.tabular.fit_job import fit_job
from vae_anomaly.tabular.reader import plan_chunks, read_chunk, read_chunk_columns, read_header
from vae_anomaly.tabular.score_job import score_job


def odd_lines_file(path: Path) -> Path:
    """Machine records with a line of every kind the reader tells apart: wrong field
    counts, not UTF-8, blank (ASCII and Unicode spaces), quoted fields (good, doubled
    quotes, broken, text after a closing quote, a quoted line break), carriage returns
    (CRLF, inside a line, several at the end), missing cells, unseen categories, numbers
    that are not plain, and no line break after the last line."""
    _, new, _ = make_machine_records(n_train=10, n_new=60, n_per_kind=0, seed=5)
    lines = [line.encode() for line in new.splitlines()]
    header, body = lines[0], lines[1:]
    good = body[0].split(b",")

    def cell(index: int, value: bytes) -> bytes:
        return b",".join([*good[:index], value, *good[index + 1 :]])

    odd = [
        cell(0, b'"1,2"'),
        cell(1, b'"noon ""sharp"""'),
        cell(3, b'"north"x'),
        cell(3, b'no"rth'),
        cell(2, b'"pu\rmp"'),
        cell(0, b"a\rb"),
        cell(0, b'"x\ny"'),
        cell(0, b'"open'),
        cell(4, b""),
        cell(5, b" n/a "),
        cell(6, b" 12.5"),
        cell(6, b"1_000"),
        cell(6, b"-0"),
        cell(7, b"Infinity"),
        cell(2, b"lathe"),
        cell(3, b"north "),
        cell(9, b"YES"),
        cell(9, b"2"),
        cell(1, b"caf\xc3\xa9"),
        cell(1, b"\xff"),
        cell(0, b"\xef\xbb\xbf1"),
        cell(0, b"x\x00y"),
        b"",
        b"   ",
        b"\t\r",
        b"\xc2\xa0",
        b"\xe3\x80\x80",
        b"," * 9,
        b"," * 10,
        b",".join(good[:-1]),
        body[1] + b"\r",
        body[2] + b"\r\r",
    ]
    text = b"\n".join([header, *body[:20], *odd, *body[20:40]])  # no break at the end
    path.write_bytes(text)
    return path


def crlf_file(path: Path) -> Path:
    _, new, _ = make_machine_records(n_train=10, n_new=30, n_per_kind=0, seed=6)
    path.write_bytes(new.replace("\n", "\r\n").encode())
    return path


def cells(chunk, name) -> list:
    column = chunk.cells[name]
    return column.to_pylist() if isinstance(column, pa.Array) else list(column)


def latin1_file(path: Path) -> Path:
    """Every third line in Latin-1 (not UTF-8), the others in UTF-8 with accents."""
    _, new, _ = make_machine_records(n_train=10, n_new=60, n_per_kind=0, seed=7)
    lines = new.replace("north", "nörth").splitlines()
    encoded = [line.encode("latin-1" if i % 3 == 2 else "utf-8") for i, line in enumerate(lines)]
    path.write_bytes(b"\n".join(encoded) + b"\n")
    return path


def assert_same_chunk(line_by_line, columnar):
    assert columnar.header == line_by_line.header
    assert columnar.rejected == line_by_line.rejected
    assert columnar.lines.tolist() == line_by_line.lines.tolist()
    assert list(columnar.raw) == list(line_by_line.raw)
    for name in line_by_line.header:
        assert cells(columnar, name) == cells(line_by_line, name), name


@pytest.mark.parametrize("chunk_rows", [1, 7, 1000])
@pytest.mark.parametrize("make", [odd_lines_file, crlf_file, latin1_file])
def test_the_arrow_reader_gives_the_line_readers_cells_rows_and_rejects(
    tmp_path, monkeypatch, make, chunk_rows
):
    path = make(tmp_path / "in.csv")
    fallbacks = []
    real = reader_module.read_chunk
    monkeypatch.setattr(
        reader_module, "read_chunk", lambda *args: fallbacks.append(args) or real(*args)
    )
    for plan in plan_chunks(path, chunk_rows):
        assert_same_chunk(real(plan), read_chunk_columns(plan))
    assert fallbacks == []  # every chunk went through Arrow


def test_every_reject_reason_of_the_line_reader_is_met(tmp_path):
    path = odd_lines_file(tmp_path / "in.csv")
    chunk = read_chunk_columns(plan_chunks(path, 1000)[0])
    kinds = {reason.split(":")[0] for _, reason, _ in chunk.rejected}
    assert kinds == {"wrong field count", "not valid UTF-8", "blank line", "cannot split"}


def test_a_chunk_arrow_cannot_parse_is_read_line_by_line(tmp_path, monkeypatch):
    path = odd_lines_file(tmp_path / "in.csv")
    plans = plan_chunks(path, 25)
    expected = [read_chunk(plan) for plan in plans]

    def broken(*args, **kwargs):
        raise pa.ArrowInvalid("CSV parse error: simulated")

    monkeypatch.setattr(pacsv, "read_csv", broken)
    for plan, line_by_line in zip(plans, expected, strict=True):
        chunk = read_chunk_columns(plan)
        assert isinstance(chunk.cells[chunk.header[0]], np.ndarray)  # the line reader's
        assert_same_chunk(line_by_line, read_chunk_columns(plan))


def test_a_row_arrow_reports_as_invalid_sends_the_chunk_to_the_line_reader(tmp_path, monkeypatch):
    path = crlf_file(tmp_path / "in.csv")
    plan = plan_chunks(path, 1000)[0]
    real = pacsv.read_csv

    class Row:  # what Arrow passes to invalid_row_handler
        expected_columns, actual_columns, number, text = 10, 11, 3, "x"

    def reporting(source, *, parse_options, **kwargs):
        parse_options.invalid_row_handler(Row())
        return real(source, parse_options=parse_options, **kwargs)

    monkeypatch.setattr(pacsv, "read_csv", reporting)
    chunk = read_chunk_columns(plan)
    assert isinstance(chunk.cells[chunk.header[0]], np.ndarray)
    assert_same_chunk(read_chunk(plan), chunk)


def test_an_edited_chunk_is_refused_by_the_arrow_reader(tmp_path):
    path = crlf_file(tmp_path / "in.csv")
    plan = plan_chunks(path, 10)[1]
    data = bytearray(path.read_bytes())
    data[plan.offset] = ord("9") if data[plan.offset] != ord("9") else ord("8")
    path.write_bytes(bytes(data))  # one byte of the chunk, the same size
    with pytest.raises(ValueError, match="the file changed while the job was running"):
        read_chunk_columns(plan)


# ----------------------------------------------------------------------------- encoding

NUMBER_CELLS = [
    "1", "-0.0", "+3", ".5", "5.", "1e3", "1E+05", "-.5e-3", "01", "1e-400", "1.8e308",
    "123456789012345678901234567890", "0.1", "2.675", " 12.5", "12.5 ", "\t1", "1_000",
    "0x10", "1e", "e5", ".", "-", "--1", "1..2", "1,5", "١٢", "inf", "-Infinity", "INF",
    "nan", "NaN", "", "NA", " n/a ", "null", "None", "?", "fast", "1f",
]  # fmt: skip


def test_numbers_are_parsed_and_judged_as_pandas_parses_them():
    rng = np.random.default_rng(0)
    plain = [repr(x) for x in rng.normal(size=200) * 10.0 ** rng.integers(-30, 30, 200)]
    for cells in (NUMBER_CELLS, plain, [*plain, "NA"]):
        values = np.array(cells, dtype=object)
        numbers, problems = _encode_numeric(pa.array(cells))
        expected = _parse_numbers(values)  # pd.to_numeric, cell by cell semantics
        bad = np.isnan(expected) & ~_missing(values)
        infinite = np.isinf(expected)
        expected[bad | infinite] = np.nan
        np.testing.assert_array_equal(numbers[:, 0], expected)
        assert problems[0][1].tolist() == bad.tolist()
        assert problems[1][1].tolist() == infinite.tolist()


# ----------------------------------------------------------------------------- writing


def test_csv_text_built_by_column_is_what_pandas_writes():
    rng = np.random.default_rng(0)
    n = 3000
    floats = rng.normal(size=n) * 10.0 ** rng.integers(-12, 22, n)
    floats[::7] = np.round(floats[::7])
    floats[::11] = np.nan
    floats[:6] = [-0.0, 0.0, np.inf, 1e-4, 1e10, 0.00010000000000000002]
    texts = rng.choice(["a", "b,c", 'd"e', "f\ng", "h\ri", "", " j ", "é", "x;y", '"'], n)
    texts = np.array(texts, dtype=object)
    ints, flags = rng.integers(0, 10**12, n), rng.random(n) < 0.5
    p_values = rng.integers(1, 602, n) / 602  # few distinct values: written once each
    p_values[::5], p_values[1], p_values[2] = np.nan, -0.0, 0.0
    frame = pd.DataFrame({"t": texts, "f": "/a,b/c.csv", "i": ints, "x": floats, "b": flags})
    frame["p"] = p_values
    path = quoted(pa.array(["/a,b/c.csv"])).to_pylist()[0]
    columns = [quoted(pa.array(texts, pa.string())), path, int_text(ints)]
    columns += [float_text(floats), bool_text(flags), float_text(p_values)]
    assert csv_lines(columns) == pandas_csv(frame)
    # A column of one value last, and a single column: each line still ends in "\n".
    assert csv_lines([*columns, path]) == pandas_csv(frame.assign(g="/a,b/c.csv"))
    assert csv_lines([int_text(ints)]) == pandas_csv(frame[["i"]])


def pandas_csv(frame) -> bytes:
    """What ``to_csv`` writes on Python 3.12 or newer, on any version: a cell holding "\r"
    quoted (Python 3.11's csv.writer quotes it only when "\r" is in the line terminator;
    no cell here holds "\r\n", so the line ends alone are replaced)."""
    text = frame.to_csv(index=False, header=False, lineterminator="\r\n")
    return text.replace("\r\n", "\n").encode()


def test_a_carriage_return_in_a_cell_is_quoted_so_readers_keep_the_row_whole():
    cells = ["a\rb", "c"]
    text = csv_lines([quoted(pa.array(cells)), quoted(pa.array(["x", "y"]))])
    assert text == b'"a\rb",x\nc,y\n'
    assert pd.read_csv(io.BytesIO(text), header=None)[0].tolist() == cells


# ----------------------------------------------------------------------------- the job


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    train, _, _ = make_machine_records(n_train=400, n_new=10, n_per_kind=0)
    folder = tmp_path_factory.mktemp("reader")
    (folder / "train.csv").write_text(train)
    config = JobConfig(model={"epochs": 2, "random_state": 0}, calibration_fraction=0.3)
    with eagerly():  # two epochs: the plumbing is tested, not the model
        fit_job([folder / "train.csv"], folder / "model", config)
    return folder / "model"


def outputs(model_dir, source, out: Path, chunk_rows: int) -> dict:
    out.mkdir()
    config = JobConfig(**json.loads((model_dir / "schema.json").read_text())["settings"])
    names = ("scored.csv", "rejects.csv", "report.json", "alerts.jsonl")
    score_job(
        model_dir,
        [source],
        *[out / name for name in names],
        config=config.with_overrides(chunk_rows=chunk_rows),
        progress=False,
    )
    report = json.loads((out / "report.json").read_text())
    del report["elapsed_seconds"], report["outputs"]
    alerts = [json.loads(line) for line in (out / "alerts.jsonl").read_text().splitlines()]
    for alert in alerts:
        del alert["scored_at"]
    return {
        "scored": (out / "scored.csv").read_bytes(),
        "rejects": (out / "rejects.csv").read_bytes(),
        "report": report,
        "alerts": alerts,
    }


@pytest.mark.parametrize("make", [odd_lines_file, crlf_file])
def test_the_job_writes_the_bytes_of_the_line_by_line_path(model_dir, tmp_path, monkeypatch, make):
    source = make(tmp_path / "in.csv")
    columnar = outputs(model_dir, source, tmp_path / "columnar", chunk_rows=9)
    monkeypatch.setattr(score_job_module, "read_chunk_columns", read_chunk)
    line_by_line = outputs(model_dir, source, tmp_path / "lines", chunk_rows=9)
    assert columnar == line_by_line
    data = source.read_bytes()
    assert columnar["report"]["rows_read"] == data.count(b"\n") + (data[-1:] != b"\n") - 1
    assert columnar["alerts"] and columnar["report"]["rows_rejected"] >= 10 * (
        make is odd_lines_file
    )
    # Read back by a CSV reader, each output row is one row, a cell holding "\r" too.
    scored = pd.read_csv(io.BytesIO(columnar["scored"]), dtype=str, keep_default_na=False)
    rejects = pd.read_csv(io.BytesIO(columnar["rejects"]), dtype=str, keep_default_na=False)
    assert len(scored) == columnar["report"]["rows_scored"]
    assert len(rejects) == columnar["report"]["rows_rejected"]
    numbers = scored["source_line"].astype(int).tolist() + rejects["line"].astype(int).tolist()
    assert sorted(numbers) == list(range(2, columnar["report"]["rows_read"] + 2))
    if make is odd_lines_file:
        assert "a\rb" in scored["record_id"].tolist()


def test_a_broken_quote_rejects_its_line_and_the_rest_is_scored(model_dir, tmp_path):
    _, new, _ = make_machine_records(n_train=10, n_new=40, n_per_kind=0, seed=8)
    lines = new.splitlines()
    lines[5] = lines[5].replace(",", ',"', 1)  # a quote opened and never closed
    source = tmp_path / "in.csv"
    source.write_text("\n".join(lines) + "\n")
    result = outputs(model_dir, source, tmp_path / "out", chunk_rows=1000)
    rejects = pd.read_csv(pd.io.common.BytesIO(result["rejects"]))
    assert rejects["line"].tolist() == [6]
    assert rejects["reason"].tolist() == ["cannot split: unexpected end of data"]
    assert result["report"]["rows_scored"] == 39


# ----------------------------------------------------------------------------- engine


@pytest.mark.parametrize("compute_threads", [1, 2, 3])
def test_the_pipeline_keeps_order_and_a_bounded_number_of_chunks_alive(compute_threads):
    prepared, yielded, alive, running, most_running = [], [], [], [0], [0]
    lock = threading.Lock()

    def prepare(task):
        prepared.append(task["i"])
        alive.append(len(prepared) - len(yielded))  # prepared and not yet yielded
        return task

    def compute(task):
        with lock:
            running[0] += 1
            most_running[0] = max(most_running[0], running[0])
        time.sleep(0.01)  # slower than prepare: an unbounded reader would run far ahead
        with lock:
            running[0] -= 1
        return task | {"computed": True}

    tasks = [{"i": i} for i in range(40)]
    for result in run_pipeline(tasks, prepare, compute, dict, compute_threads):
        yielded.append(result["i"])
        assert result["computed"]
    assert yielded == list(range(40))
    assert max(alive) <= compute_threads + 3
    assert most_running[0] == compute_threads  # chunks are scored side by side


@pytest.mark.parametrize("stage", ["prepare", "compute", "commit"])
def test_an_error_in_any_step_of_the_pipeline_is_raised_and_stops_its_threads(stage):
    def step(name):
        def run(task):
            if name == stage and task["i"] == 3:
                raise OSError(f"{name} failed")
            return task

        return run

    before = threading.active_count()
    with pytest.raises(OSError, match=f"{stage} failed"):
        list(
            run_pipeline(
                [{"i": i} for i in range(20)], step("prepare"), step("compute"), step("commit")
            )
        )
    assert threading.active_count() == before


def test_the_first_error_of_the_pipeline_in_time_is_the_one_raised():
    failed = threading.Event()

    def compute(task):
        if task["i"] == 4:  # fails too, but after commit 3, which comes first in line
            failed.wait(5)
            raise ValueError("compute 4 failed")
        return task

    def commit(task):
        if task["i"] == 3:
            failed.set()
            raise OSError("commit 3 failed")
        return task

    with pytest.raises(OSError, match="commit 3 failed"):
        list(run_pipeline([{"i": i} for i in range(20)], dict, compute, commit))


def test_after_a_failed_commit_the_commits_already_queued_are_skipped():
    committed = []

    def commit(task):
        if task["i"] == 3:
            time.sleep(0.3)  # meanwhile commit 4 is queued behind it
            raise OSError("commit 3 failed")
        committed.append(task["i"])
        return task

    with pytest.raises(OSError, match="commit 3 failed"):
        list(run_pipeline([{"i": i} for i in range(20)], dict, dict, commit))
    assert committed == [0, 1, 2]


def test_a_pipeline_closed_early_leaves_no_thread_behind():
    before = threading.active_count()
    results = run_pipeline([{"i": i} for i in range(20)], dict, dict, dict)
    assert next(results) == {"i": 0}
    results.close()
    assert threading.active_count() == before


def test_a_plan_without_its_byte_length_reads_up_to_its_last_line_break(tmp_path):
    path = crlf_file(tmp_path / "in.csv")
    for plan in plan_chunks(path, 7):
        unsized = dataclasses.replace(plan, n_bytes=-1)
        assert_same_chunk(read_chunk(plan), read_chunk_columns(unsized))


@pytest.mark.parametrize("block", [64, 1 << 22])  # many blocks per chunk and per file; one
def test_the_scan_gives_the_sha256_of_the_file_and_of_each_chunks_bytes(
    tmp_path, monkeypatch, block
):
    import hashlib

    monkeypatch.setattr(reader_module, "_BLOCK", block)
    path = odd_lines_file(tmp_path / "odd.csv")
    data = path.read_bytes()
    plans, digest = reader_module.scan_file(path, 7)
    assert digest == hashlib.sha256(data).hexdigest()
    assert len(plans) > 3
    for plan in plans:
        chunk = data[plan.offset : plan.offset + plan.n_bytes]
        assert plan.sha256 == hashlib.sha256(chunk).hexdigest()
    assert plans[-1].offset + plans[-1].n_bytes == len(data)


# ----------------------------------------------------------------------------- the header


@pytest.mark.parametrize(
    "data, message",
    [
        # Lines ended by "\r" alone: one line, read whole as the header, its record lost.
        (b"a,b\r1,2\r", r"line 1: cannot read the header: the header line holds a carriage"),
        (b"a,b\r1,2", r"line 1: cannot read the header: the header line holds a carriage"),
        (b"", r"line 1: the file is empty or its header line is blank"),
        (b"a,a\n1,2\n", r"line 1: header has empty or repeated column names"),
        (b"a,,b\n1,2,3\n", r"line 1: header has empty or repeated column names"),
    ],
)
def test_a_header_that_cannot_be_read_is_an_error_naming_the_file_and_line(tmp_path, data, message):
    path = tmp_path / "in.csv"
    path.write_bytes(data)
    with pytest.raises(ValueError, match=rf"{re.escape(str(path))}, {message}"):
        plan_chunks(path, 1000)


def test_a_header_ending_in_crlf_is_read(tmp_path):
    path = tmp_path / "in.csv"
    path.write_bytes(b"a,b\r\n1,2\r\n")
    assert read_header(path) == (["a", "b"], 5)
