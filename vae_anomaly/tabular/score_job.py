"""``vae-anomaly score``: a saved model and CSV(s) -> scored output, rejects, alerts, report.

Every input line ends in exactly one place: a row of the output, or a row of the rejects
file (file, line, reason, raw line). Per file, rows_read = rows_scored + rows_rejected.

The work is split into chunks of ``chunk_rows`` lines (``reader.plan_chunks``). Each
chunk is scored on its own (``score_chunk``: by this process, or by a Dask worker) and
its results are committed as part files in ``.OUTPUT.parts/``, the stats file last (the
local engine appends the scored rows to one log instead: ``scored_log``). When every chunk
is committed, the parts are joined into the outputs, each written under a temporary name
and renamed (the log's is a hard link to it), and the report is written last. ``--resume`` keeps the
committed chunks of an interrupted run of the same job and scores only the others.
Peak memory depends on ``chunk_rows``, not on the size of the files.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import time
from collections import Counter
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from ..alerts import AlertSink, check_alerts_path, flagged_records, json_line, smallest_first
from ..atomic import atomic_open, atomic_path, write_bytes_atomically
from ..exit_status import ExitStatus
from ..jobs.model_dir import threshold_info
from ..jobs.paths import guarded, input_globs, score_outputs
from ..jobs.progress import Progress
from ..jobs.rejects import REJECT_FIELDS, reject_row
from ..jobs.report import reason_kind
from ..report import ScoreSummary, require_matplotlib
from ..schema import as_text
from ..thresholds import verdicts
from .config import SCORE_COLUMNS, SOURCE_COLUMNS, JobConfig, check_passthrough_names
from .csv_columns import bool_text, csv_lines, float_text, int_text, quoted
from .engines import run_pipeline, run_tasks
from .labels import check_labels
from .reader import ChunkPlan, expand_inputs, read_chunk_columns, scan_file
from .saved import SCHEMA_FILE, model_fingerprint, read_model_dir
from .scored_log import RANGE_KEY, SCORED_LOG, append, join, reconcile

# 2: a local run's scored rows are in one log (``scored_log``). A part directory of
# layout 1 (before the log; no "layout" in its job.json) is resumed as it is; a version
# that knows only layout 1 refuses to resume a layout 2 directory (another job).
# 3: chunks read as 2's were not (rows of empty cells rejected, categorical cells
# stripped, columns named against their typical terms): a layout 2 directory is another
# job, not resumed, so that one output never mixes the two.
PARTS_LAYOUT = 3
_loaded_models: dict[tuple[str, str], tuple] = {}  # per process: each worker loads once


def cached_model(model_dir: str, fingerprint: str):
    """(detector, schema, document) of a model directory, loaded once per process, that
    must be the model of ``fingerprint`` (``saved.read_model_dir``): a Dask worker
    loading after a fit replaced the directory refuses instead of scoring with another."""
    key = (model_dir, fingerprint)
    if key not in _loaded_models:
        _loaded_models.clear()
        _loaded_models[key] = read_model_dir(model_dir, fingerprint)
    return _loaded_models[key]


def _part_stem(plan: ChunkPlan, file_index: int) -> str:
    return f"{file_index:05d}-{plan.index:07d}"


def score_chunk(task: dict) -> dict:
    """Score one chunk and commit its part files; returns the chunk's stats (what a Dask
    worker runs: ``prepare_chunk``, ``score_prepared`` and ``commit_chunk`` in turn)."""
    return commit_chunk(score_prepared(prepare_chunk(task)))


def prepare_chunk(task: dict) -> dict:
    """Read and encode one chunk (``reader.read_chunk_columns``, ``schema.encode``)."""
    plan = ChunkPlan(**task["plan"])
    settings = JobConfig(**task["settings"])
    detector, schema, _ = cached_model(task["model_dir"], task["fingerprint"])
    chunk = read_chunk_columns(plan, settings.delimiter)
    rejected = [(line, reason, raw) for line, reason, raw in chunk.rejected]
    absent = [name for name in schema.required if name not in chunk.header]
    n = len(chunk.lines)
    if absent:  # every row of the file lacks these columns
        reason = f"required column missing: {absent} not in the header of {plan.path}"
        rejected += [(int(chunk.lines[i]), reason, chunk.raw[i]) for i in range(n)]
        encoded_rows, X, unknown = np.empty(0, int), None, {}
    else:
        scaling = (detector.center_, detector.scale_)
        encoded = schema.encode(chunk.cells, n, scaling=scaling, reject_empty=True)
        rejected += [(int(chunk.lines[i]), reason, chunk.raw[i]) for i, reason in encoded.rejected]
        encoded_rows, X, unknown = encoded.kept, encoded.X, encoded.unknown
    rejected.sort()
    return {
        "task": task,
        "plan": plan,
        "settings": settings,
        "chunk": chunk,
        "rejected": rejected,
        "rows": encoded_rows,
        "X": X,
        "unknown": unknown,
    }


def score_prepared(prepared: dict) -> dict:
    """The model's terms for the chunk's encoded rows (None when there are none)."""
    task = prepared["task"]
    detector, _, _ = cached_model(task["model_dir"], task["fingerprint"])
    rows = prepared["rows"]
    terms = detector.score_terms(prepared["X"]) if len(rows) else None
    return prepared | {"terms": terms}


def commit_chunk(scored: dict) -> dict:
    """Write the chunk's part files (the stats file last: the commit); its stats."""
    task, plan, settings = scored["task"], scored["plan"], scored["settings"]
    rejected, unknown = scored["rejected"], scored["unknown"]
    detector, schema, _ = cached_model(task["model_dir"], task["fingerprint"])
    parts = Path(task["parts_dir"])
    stem = _part_stem(plan, task["file_index"])
    columns = _scored_columns(detector, schema, settings, scored)
    flagged = np.flatnonzero(columns["is_anomaly"]) if columns else np.empty(0, int)
    alerts = []
    if len(flagged):
        alerts = _alerts(
            detector,
            schema,
            settings,
            _scored_frame(schema, plan, columns, flagged),
            columns["feature_terms"][flagged],
        )

    scored_range = {}
    if settings.format == "parquet":
        with atomic_path(parts / f"{stem}.scored.parquet") as temporary:
            _scored_frame(schema, plan, columns).to_parquet(temporary, index=False)
    elif task.get("scored_log"):  # the local engine: one commit at a time, in plan order
        rows = _scored_csv(schema, plan, columns)
        scored_range[RANGE_KEY] = append(Path(task["scored_log"]), rows)
    else:
        write_bytes_atomically(parts / f"{stem}.scored.csv", _scored_csv(schema, plan, columns))
    write_bytes_atomically(parts / f"{stem}.rejects.csv", _rejects_csv(plan.path, rejected))
    write_bytes_atomically(
        parts / f"{stem}.alerts.jsonl",
        "".join(json_line(a) for a in alerts).encode(),
    )
    summary = ScoreSummary()  # for --html: this chunk's scores, p-values and top alerts
    if columns:
        summary.add(
            np.asarray(columns["anomaly_score"], dtype=np.float64),
            np.asarray(columns["p_value"], dtype=np.float64),
            alerts,
        )
    write_bytes_atomically(
        parts / f"{stem}.summary.json", json.dumps(summary.to_dict(), allow_nan=False).encode()
    )
    stats = {
        "file": plan.path,
        "chunk": plan.index,
        "sha256": plan.sha256,
        "rows_read": plan.n_lines,
        "rows_scored": len(scored["rows"]),
        "rows_rejected": len(rejected),
        "rows_flagged": len(flagged),
        "unknown_categories": unknown,
        "reject_reasons": dict(Counter(reason_kind(reason) for _, reason, _ in rejected)),
        **scored_range,
    }
    if stats["rows_scored"] + stats["rows_rejected"] != stats["rows_read"]:
        raise RuntimeError(f"Accounting error in {plan.path} chunk {plan.index}: {stats}.")
    write_bytes_atomically(
        parts / f"{stem}.stats.json", json.dumps(stats, allow_nan=False).encode()
    )  # commit
    return stats


def _scored_columns(detector, schema, settings, scored) -> dict | None:
    """Per output column of the chunk's scored rows: passthrough cells (Arrow), source
    lines, anomaly scores, p-values, flags, top-column indices; their per-column
    log-likelihood terms. None when no row was scored."""
    rows, terms, chunk = scored["rows"], scored["terms"], scored["chunk"]
    if len(rows) == 0:
        return None
    take = pa.array(rows)
    columns = {
        c.name: as_text(chunk.cells[c.name]).take(take) for c in schema.by_role("passthrough")
    }
    columns["source_line"] = chunk.lines[rows]
    columns["anomaly_score"], columns["p_value"], columns["is_anomaly"] = verdicts(
        terms.estimate(detector.score_method),
        detector.offset_,
        getattr(detector, "calibration_scores_", None),
    )
    # Ranked by each term against its typical training value, in scaled units (``ScoreTerms``).
    ranked = terms.relative_feature_log_likelihood
    columns["top_order"] = smallest_first(ranked, settings.top_columns)
    columns["feature_terms"] = ranked
    return columns


def _top_columns_text(schema, order: np.ndarray, n: int):
    """The ``top_columns`` cell of each row: the columns of ``order`` joined by ";"."""
    if order.shape[1] == 0:
        return pa.array([""] * n, type=pa.string())
    names = pa.array(schema.output_names, type=pa.string())
    return pc.binary_join_element_wise(*[names.take(pa.array(j)) for j in order.T], ";")


def _scored_csv(schema, plan, columns) -> bytes:
    """The chunk's output rows as CSV, as ``DataFrame.to_csv`` writes them (``csv_columns``)."""
    if columns is None:
        return b""
    n = len(columns["source_line"])
    passthrough = [quoted(columns[c.name]) for c in schema.by_role("passthrough")]
    source = quoted(pa.array([plan.path], type=pa.string()))[0].as_py()
    return csv_lines(
        [
            *passthrough,
            source,
            int_text(columns["source_line"]),
            float_text(columns["anomaly_score"]),
            float_text(columns["p_value"]),
            bool_text(columns["is_anomaly"]),
            quoted(_top_columns_text(schema, columns["top_order"], n)),
        ]
    )


def _scored_frame(schema, plan, columns, positions=None) -> pd.DataFrame:
    """The chunk's output rows (those at ``positions``, or all) as a DataFrame: for
    Parquet, and for the alert records of the flagged rows."""
    passthrough = [c.name for c in schema.by_role("passthrough")]
    if columns is None:
        frame = pd.DataFrame({name: np.empty(0, dtype=object) for name in passthrough})
        frame["source_file"] = plan.path
        frame["source_line"] = np.empty(0, dtype=np.int64)
        for name in SCORE_COLUMNS:
            frame[name] = pd.Series(dtype=object)
        return frame
    if positions is None:
        positions = np.arange(len(columns["source_line"]))
    take = pa.array(positions, type=pa.int64())
    frame = pd.DataFrame(
        {
            name: np.array(columns[name].take(take).to_pylist(), dtype=object)
            for name in passthrough
        },
        index=range(len(positions)),
    )
    frame["source_file"] = plan.path
    frame["source_line"] = columns["source_line"][positions]
    for name in ("anomaly_score", "p_value", "is_anomaly"):
        frame[name] = columns[name][positions]
    top = _top_columns_text(schema, columns["top_order"][positions], len(positions))
    frame["top_columns"] = np.array(top.to_pylist(), dtype=object)
    return frame


def _alerts(detector, schema, settings, flagged, feature_terms) -> list[dict]:
    """Alert records of the flagged rows (``flagged``: their output rows; ``feature_terms``:
    their per-column log-likelihood terms)."""
    if len(flagged) == 0:
        return []
    if settings.id_column and settings.id_column in flagged:
        row_ids = flagged[settings.id_column].to_numpy()
    else:
        file_names = {f: Path(f).name for f in flagged["source_file"].unique()}
        row_ids = np.array(
            [
                f"{file_names[f]}:{line}"
                for f, line in zip(flagged["source_file"], flagged["source_line"], strict=True)
            ],
            dtype=object,
        )
    p_values = (
        None if not hasattr(detector, "calibration_scores_") else flagged["p_value"].to_numpy()
    )
    return flagged_records(
        row_ids,
        flagged["anomaly_score"].to_numpy(),
        -detector.offset_,
        p_values,
        feature_terms,
        schema.output_names,
        settings.top_columns,
    )


# ----------------------------------------------------------------------------- the job


def score_job(
    model_dir,
    inputs,
    output,
    rejects,
    report,
    alerts=None,
    *,
    config: JobConfig | None = None,
    resume: bool = False,
    engine: str = "local",
    scheduler: str | None = None,
    progress: bool | None = None,
    html=None,
    labels=None,
) -> tuple[dict, ExitStatus]:
    """Run the scoring job; returns (report, exit status: OK, or ALERTS if rows were flagged).

    Before any work: the paths are checked (``jobs.paths``: no two name one file, no output
    is a folder or lies in the model directory), and every output is locked
    (``locks.JobLock``) until the job ends, so a second job writing the same output
    is refused instead of deleting this one's parts. ``html``: also write the HTML report
    (``vae_anomaly.report.score_report``; needs matplotlib, checked first), with ROC and
    precision-recall curves against the ``labels`` file when given.
    """
    check_alerts_path(alerts)
    if html is not None:
        require_matplotlib()
    paths = expand_inputs(inputs)
    outputs = score_outputs(output, rejects, report, alerts, html)
    labelled = [("--labels", labels)]
    with guarded(
        paths, outputs, model_dir=model_dir, other_inputs=labelled, patterns=input_globs(inputs)
    ):
        started = time.perf_counter()
        model_dir = str(Path(model_dir).resolve())
        fingerprint = model_fingerprint(model_dir)
        detector, schema, document = cached_model(model_dir, fingerprint)
        check_passthrough_names(schema, Path(model_dir) / SCHEMA_FILE)  # fitted before refused
        settings = config or JobConfig.from_saved(document, Path(model_dir) / SCHEMA_FILE)
        if labels is not None:
            check_labels(labels, settings.id_column)
        if settings.format == "parquet":
            try:
                import pyarrow  # noqa: F401
            except ImportError as error:
                raise ImportError(
                    "--format parquet needs pyarrow: pip install 'vae-anomaly[parquet]'."
                ) from error
        output, rejects, report = Path(output), Path(rejects), Path(report)
        for target in (output, rejects, report) + ((Path(alerts),) if alerts else ()):
            target.parent.mkdir(parents=True, exist_ok=True)
        plans, inputs = [], []
        for i, path in enumerate(paths):
            file_plans, digest = scan_file(path, settings.chunk_rows, settings.delimiter)
            plans += [(i, plan) for plan in file_plans]
            inputs.append({"path": str(path.resolve()), "sha256": digest})
        parts = _prepare_parts(
            output,
            resume,
            {
                "model": fingerprint,
                "inputs": inputs,
                "settings": asdict(settings),
                "layout": PARTS_LAYOUT,
            },
        )
        committed = _committed(parts, plans)
        header = _scored_header(schema).encode()
        if settings.format == "csv":  # chunks whose rows the log lost are scored again
            lost = reconcile(parts, committed, header)
            committed = {stem: stats for stem, stats in committed.items() if stem not in lost}
        done = set(committed)
        in_log = engine == "local" and settings.format == "csv"
        tasks = [
            {
                "plan": asdict(plan),
                "file_index": i,
                "settings": asdict(settings),
                "model_dir": model_dir,
                "fingerprint": fingerprint,
                "parts_dir": str(parts),
                "scored_log": str(parts / SCORED_LOG) if in_log else None,
            }
            for i, plan in plans
            if _part_stem(plan, i) not in done
        ]
        meter = Progress(sum(p.n_lines for _, p in plans), unit="rows", enabled=progress)
        meter.advance(sum(p.n_lines for i, p in plans if _part_stem(p, i) in done))
        if engine == "local":
            done_chunks = run_pipeline(tasks, prepare_chunk, score_prepared, commit_chunk)
        else:
            done_chunks = run_tasks(score_chunk, tasks, engine, scheduler)
        with contextlib.closing(done_chunks):  # its threads end before the lock is let go
            for stats in done_chunks:
                meter.advance(stats["rows_read"])
        meter.close()

        stems = [_part_stem(plan, i) for i, plan in plans]
        all_stats = [json.loads((parts / f"{stem}.stats.json").read_text()) for stem in stems]
        # The report is written last, as the mark of a finished run: an earlier run's goes
        # before the first output is replaced, so that a job killed between the renames
        # never leaves new scores beside the old report (--resume finishes the run).
        report.unlink(missing_ok=True)
        if html is not None:
            Path(html).unlink(missing_ok=True)
        if settings.format == "csv":
            join(parts, stems, all_stats, output, header)
        else:
            _join_parquet(parts, stems, output, schema)
        _join_csv(parts, stems, "rejects.csv", rejects, ",".join(REJECT_FIELDS) + "\n")
        n_alerts = sum(s["rows_flagged"] for s in all_stats)
        if alerts:
            _join_alerts(parts, stems, Path(alerts))
        document = _report(all_stats, paths, detector) | {
            "engine": engine,
            "chunks": len(plans),
            "chunks_resumed": len(plans) - len(tasks) if resume else 0,
            "elapsed_seconds": round(time.perf_counter() - started, 3),
            "outputs": {
                "scored": str(output),
                "rejects": str(rejects),
                "alerts": str(alerts) if alerts else None,
            },
        }
        if html is not None:
            page = _html_report(parts, stems, detector, document, model_dir, labels, settings)
            write_bytes_atomically(html, page.encode())
        write_bytes_atomically(report, json.dumps(document, indent=2, allow_nan=False).encode())
        (parts / "job.json").unlink()  # first: a removal cut short is never resumed
        shutil.rmtree(parts, ignore_errors=True)
        return document, ExitStatus.ALERTS if n_alerts else ExitStatus.OK


def _rejects_csv(path: str, rejected) -> bytes:
    """The reject rows (``REJECT_FIELDS``) of a chunk's (line, reason, raw) tuples as CSV,
    quoted as the scored output is (``csv_columns``)."""
    if not rejected:
        return b""
    rows = [reject_row(path, line, reason, raw) for line, reason, raw in rejected]
    files, lines, reasons, raws, lengths = zip(*rows, strict=True)
    return csv_lines(
        [
            quoted(pa.array(files, pa.string())),
            int_text(np.array(lines)),
            quoted(pa.array(reasons, pa.string())),
            quoted(pa.array(raws, pa.string())),
            int_text(np.array(lengths)),
        ]
    )


def _committed(parts: Path, plans) -> dict[str, dict]:
    """The stats of the chunks committed in ``parts`` whose bytes are those planned now
    (the SHA-256 recorded in their stats file equals the plan's), by stem.

    ValueError when a committed chunk's file was named otherwise (``in/a.csv`` against
    ``/data/in/a.csv``): the name is in every row it wrote (``source_file``, ``file``)
    and in the report, so a resumed run must name its inputs as the interrupted one did."""
    done = {}
    for i, plan in plans:
        stats_file = parts / f"{_part_stem(plan, i)}.stats.json"
        if stats_file.is_file():
            stats = json.loads(stats_file.read_text())
            if stats.get("sha256") == plan.sha256:
                if stats.get("file", str(plan.path)) != str(plan.path):
                    raise ValueError(
                        f"--resume: the input {plan.path} was named {stats['file']} in the "
                        "interrupted run, and that name is written in every row it scored "
                        "(source_file); name it the same way to resume, or rerun without "
                        "--resume to start over."
                    )
                done[_part_stem(plan, i)] = stats
    return done


def _prepare_parts(output: Path, resume: bool, job: dict) -> Path:
    """The part directory of this job: kept on --resume if it is the same job, else fresh."""
    parts = output.with_name(f".{output.name}.parts")
    job_file = parts / "job.json"
    job = json.loads(json.dumps(job, allow_nan=False))  # as stored: tuples become lists
    if resume and job_file.is_file():
        previous = json.loads(job_file.read_text())
        if "layout" not in previous:  # layout 1: its part files are joined as before
            previous["layout"] = job["layout"]
        if previous != job:
            changed = [key for key in job if previous.get(key) != job[key]]
            raise ValueError(
                f"--resume: {parts} belongs to a different job ({' and '.join(changed)} "
                "changed since it started: inputs are compared by the SHA-256 of their "
                "content); rerun without --resume to start over."
            )
        return parts
    if parts.exists():
        shutil.rmtree(parts)
    parts.mkdir(parents=True)
    write_bytes_atomically(job_file, json.dumps(job, allow_nan=False).encode())
    return parts


def _join_csv(parts: Path, stems, suffix: str, target: Path, header: str) -> None:
    with atomic_open(target, "wb") as handle:
        handle.write(header.encode())
        for stem in stems:
            with open(parts / f"{stem}.{suffix}", "rb") as part:
                shutil.copyfileobj(part, handle)


def _output_columns(schema) -> list[str]:
    passthrough = [c.name for c in schema.by_role("passthrough")]
    return passthrough + list(SOURCE_COLUMNS) + list(SCORE_COLUMNS)


def _scored_header(schema) -> str:
    """The header line of the scored CSV output."""
    return pd.DataFrame(columns=_output_columns(schema)).to_csv(index=False)


def _join_parquet(parts: Path, stems, output: Path, schema) -> None:
    import pyarrow.parquet as pq

    with atomic_path(output) as temporary:
        writer = None
        for stem in stems:
            table = pq.read_table(parts / f"{stem}.scored.parquet")
            if table.num_rows == 0:
                continue
            if writer is None:
                writer = pq.ParquetWriter(temporary, table.schema)
            writer.write_table(table.cast(writer.schema))
        if writer is None:  # no row was scored: an empty file with the columns
            pd.DataFrame(columns=_output_columns(schema)).to_parquet(temporary, index=False)
        else:
            writer.close()


def _join_alerts(parts: Path, stems, target: Path) -> None:
    if target.suffix in (".jsonl", ".json"):
        _join_csv(parts, stems, "alerts.jsonl", target, "")
        return
    with AlertSink(target) as sink:  # one chunk's records at a time
        for stem in stems:
            with open(parts / f"{stem}.alerts.jsonl") as part:
                sink.write(json.loads(line) for line in part if line.strip())


def _report(all_stats, paths, detector) -> dict:
    """Accounting per file and in total, from the chunks' stats; the threshold used."""
    files = []
    for path in paths:
        mine = [s for s in all_stats if s["file"] == str(path)]
        unknown, reasons = Counter(), Counter()
        for s in mine:
            unknown.update(s["unknown_categories"])
            reasons.update(s["reject_reasons"])
        files.append(
            {
                "path": str(path),
                "rows_read": sum(s["rows_read"] for s in mine),
                "rows_scored": sum(s["rows_scored"] for s in mine),
                "rows_rejected": sum(s["rows_rejected"] for s in mine),
                "rows_flagged": sum(s["rows_flagged"] for s in mine),
                "unknown_categories": dict(unknown),
                "reject_reasons": dict(reasons),
            }
        )
    totals = {
        key: sum(f[key] for f in files)
        for key in ("rows_read", "rows_scored", "rows_rejected", "rows_flagged")
    }
    unknown = Counter()
    for f in files:
        unknown.update(f["unknown_categories"])
    return {
        **totals,
        "alerts": totals["rows_flagged"],
        "unknown_categories": dict(unknown),
        "files": files,
        "threshold": threshold_info(detector),
        "score_method": detector.score_method,
    }


def _html_report(parts: Path, stems, detector, document: dict, model_dir, labels, settings) -> str:
    """The HTML report of the run, from the chunks' summaries (read one at a time) and the
    report's accounting; with ``labels``, the labelled rows' scores from the output."""
    from ..report import score_report
    from .labels import labelled_scores

    summary, without = ScoreSummary(), 0
    for stem in stems:
        part = parts / f"{stem}.summary.json"
        if part.is_file():
            summary.merge(ScoreSummary.from_dict(json.loads(part.read_text())))
        else:  # committed by a version without summaries, kept by --resume
            without += 1
    reasons = Counter()
    for file in document["files"]:
        reasons.update(file["reject_reasons"])
    accounting = {
        "read": document["rows_read"],
        "scored": document["rows_scored"],
        "rejected": document["rows_rejected"],
        "flagged": document["rows_flagged"],
        "rejected_by_reason": dict(reasons),
    }
    details = {
        "model": model_dir,
        "inputs": ", ".join(file["path"] for file in document["files"]),
        **{f"{name} file": path for name, path in document["outputs"].items()},
        "chunks": document["chunks"],
        "chunks without a summary (resumed from an older version; not in the figures)": (
            without or None
        ),
        "seconds": document["elapsed_seconds"],
    }
    labelled = None
    if labels is not None:
        output = document["outputs"]["scored"]
        labelled = labelled_scores(output, labels, settings.id_column)
    return score_report(detector, summary, accounting, details=details, labels=labelled)
