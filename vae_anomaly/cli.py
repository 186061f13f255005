"""The ``vae-anomaly`` command.

    vae-anomaly fit --input TRAIN.csv [--input MORE.csv ...] --model-dir DIR
                    [--config pipelines/tabular.toml] [--epochs N] [--seed S] [--fpr F]
                    [--strategy default|mirrored|multi-worker]
        Infer column roles, fit and calibrate a mixed-type detector, save it to DIR
        (with DIR/report.html when matplotlib is installed).
        --strategy trains under tf.distribute: all local GPUs, or the workers of TF_CONFIG.
    vae-anomaly score --model-dir DIR --input NEW.csv (or a glob) --output OUT.csv
                      --rejects REJECTS.csv --report REPORT.json [--alerts ALERTS.jsonl]
                      [--resume] [--engine local|dask] [--scheduler ADDRESS]
                      [--config FILE] [--chunk-rows N] [--format csv|parquet]
                      [--labels LABELS.csv] [--html REPORT.html]
        Score CSVs chunk by chunk; every line is scored or rejected with its reason.
        Exit 3 when any row was flagged.

    vae-anomaly fit-images --input DIR [--input MORE ...] --model-dir DIR
                           [--config pipelines/images.toml] [--epochs N] [--seed S] [--fpr F]
                           [--strategy default|mirrored|multi-worker]
        Fit and calibrate a VAE on a folder of PNG/JPEG images (or .npy/.npz).
    vae-anomaly score-images --model-dir DIR --input DIR (or files, globs) --output OUT.csv
                             --rejects REJECTS.csv --report REPORT.json
                             [--heatmaps HEATMAP_DIR] [--alerts ALERTS.jsonl]
                             [--config FILE] [--batch-size N] [--labels LABELS.csv]
                             [--html REPORT.html]
        Score images in bounded batches; unreadable files are rejected with the reason.
        Exit 3 when any image was flagged.

    vae-anomaly rank --input FILE.csv [--id-column ID] [--top N] [--labels LABELS.csv]
                     [--alerts ALERTS.jsonl|.csv]
        Fit a detector on the CSV's numeric columns and print the N most anomalous rows,
        each with its anomaly score (-log p(x) bound) and the column that contributes most.
        With --alerts, write an alert record per flagged row. Exit status 3 when a row was
        flagged, as every job.
    vae-anomaly make-sample-data [--output-dir sample_data]
        Regenerate the bundled sample data.

    vae-anomaly --verbose COMMAND ...
        Also show TensorFlow's own messages (start-up notes, tracing warnings), which are
        hidden otherwise.

Exit statuses are those of ``exit_status.ExitStatus``: 0 OK, 1 FAILED (the message says
why), 2 USAGE (malformed command line, paths that cannot work together), 3 ALERTS (rows
were flagged).

Parsing the command line imports neither TensorFlow nor pandas: ``--help`` and usage
errors answer at once. Each command imports what it needs, and TensorFlow (through
``quiet.import_tensorflow_quietly``) only once its inputs and settings have been checked.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
from pathlib import Path

from .exit_status import ExitStatus
from .jobs.strategy import STRATEGIES


def _tensorflow(args: argparse.Namespace) -> None:
    """Before a command's first TensorFlow import: keep its chatter off stderr unless --verbose."""
    if not args.verbose:
        from .quiet import import_tensorflow_quietly

        import_tensorflow_quietly()


def rank(args: argparse.Namespace) -> int:
    from .tabular.rank_job import rank_job

    lines, status = rank_job(
        args.input,
        args.id_column,
        args.top,
        args.labels,
        args.alerts,
        args.epochs,
        args.seed,
        before_tensorflow=lambda: _tensorflow(args),
    )
    for line in lines:
        print(line)
    return status


def make_sample_data(args: argparse.Namespace) -> int:
    from .images.samples import check_parts_folders, write_parts
    from .machine_records import write_machine_records
    from .sample_data import write_sample_data

    check_parts_folders(args.output_dir)  # before any file is written
    written = (
        write_sample_data(args.output_dir)
        + write_machine_records(args.output_dir)
        + write_parts(args.output_dir)
    )
    for path in written:
        print(f"wrote {path}")
    return ExitStatus.OK


def _model_overrides(args: argparse.Namespace) -> dict:
    """[model] entries given as flags: --epochs, --seed."""
    model = {}
    if getattr(args, "epochs", None) is not None:
        model["epochs"] = args.epochs
    if getattr(args, "seed", None) is not None:
        model["random_state"] = args.seed
    return model


def _settings(args: argparse.Namespace, load, base=None, *flags: str):
    """The job's settings: ``base`` (a scoring job's: ``_scoring_base``), else --config,
    else ``load()``'s defaults; then --epochs, --seed, --fpr and the ``flags`` given
    (e.g. "batch_size")."""
    if base is not None:
        config = base
    else:
        config = load(args.config) if args.config else load()
    return config.with_overrides(
        model=_model_overrides(args),
        fpr=getattr(args, "fpr", None),
        **{flag: getattr(args, flag, None) for flag in flags},
    )


def _image_config(args: argparse.Namespace, base=None):
    from .images.config import load_image_config

    return _settings(args, load_image_config, base, "batch_size", "strategy")


def _scoring_base(args: argparse.Namespace, saved):
    """A scoring job's settings before its flags: those saved at fit, with the scoring
    keys of --config applied (``JobSettings.over_saved``). The keys of --config the fit
    fixed (the threshold, the model, the columns' roles, ...) are named on stderr, never
    ignored silently."""
    if not args.config:
        return saved
    config, ignored = type(saved).over_saved(args.config, saved)
    for difference in ignored:
        print(
            f"vae-anomaly {args.command}: warning: {args.config} sets {difference}; it is "
            "fixed when the model is fitted, so this job uses the model's (fit again to "
            "change it).",
            file=sys.stderr,
        )
    return config


def _print_fit(
    command: str, report: dict, unit: str, model_dir, *, shape: str = "", details=()
) -> None:
    """The summary of ``fit`` and ``fit-images``: the {unit} used and rejected, the image
    ``shape``, the epochs, ``details`` lines, and the threshold: its false-alarm rate when
    calibrated (on how many held-out rows, for rows), else the reason it is not."""
    lines = [
        f"{command}: {report[f'{unit}_used']} of {report[f'{unit}_read']} {unit} used "
        f"({report[f'{unit}_rejected']} rejected, see {Path(model_dir) / 'fit_rejects.csv'}); "
        + (f"{shape}; " if shape else "")
        + f"{report['n_epochs']} epochs in {report['seconds']:.1f} s.",
        *(f"{command}: {detail}." for detail in details),
    ]
    threshold = report["threshold"]
    if threshold["calibrated"]:
        how = f" for a false-alarm rate of {threshold['fpr']}"
        if unit == "rows":
            how += f" on {threshold['calibration_rows']} held-out rows"
    else:
        if threshold["fpr"] is not None:
            how = f" at the {1 - threshold['fpr']:g} quantile of the training scores"
        else:
            how = ""
        how += f", not calibrated: {threshold['reason'].rstrip('.')}"
    lines.append(
        f"{command}: threshold {threshold['anomaly_score']:.2f} (anomaly score){how}; "
        f"model saved to {model_dir}."
    )
    if report.get("html_report_skipped"):
        lines.append(f"{command}: report.html not written: {report['html_report_skipped']}.")
    print("\n".join(lines))


def _strategy_lines(report: dict) -> list[str]:
    if report["strategy"] == "default":
        return []
    return [f"trained with --strategy {report['strategy']} on {report['n_replicas']} replica(s)"]


def fit_images(args: argparse.Namespace) -> int:
    config = _image_config(args)
    _tensorflow(args)
    from .images.jobs import fit_images as fit_images_job

    report = fit_images_job(args.input, args.model_dir, config)
    height, width, channels = report["image_shape"]
    _print_fit(
        "fit-images",
        report,
        "images",
        args.model_dir,
        shape=f"{height}x{width}x{channels}",
        details=_strategy_lines(report),
    )
    return ExitStatus.OK


def _check_html(args: argparse.Namespace) -> None:
    """--html needs matplotlib: say so at once (exit status 2), before any work."""
    if args.html is not None:
        from .report import require_matplotlib

        require_matplotlib("--html")


def _html_note(args: argparse.Namespace) -> str:
    return f" HTML report: {args.html}." if args.html else ""


def score_images(args: argparse.Namespace) -> int:
    _check_html(args)
    _tensorflow(args)
    from .images.jobs import saved_image_settings
    from .images.jobs import score_images as score_images_job

    config = _image_config(args, base=_scoring_base(args, saved_image_settings(args.model_dir)))
    report, status = score_images_job(
        args.model_dir,
        args.input,
        args.output,
        args.rejects,
        args.report,
        heatmaps=args.heatmaps,
        alerts=args.alerts,
        config=config,
        html=args.html,
        labels=args.labels,
    )
    print(
        f"score-images: {report['images_read']} read, {report['images_scored']} scored, "
        f"{report['images_rejected']} rejected ({args.rejects}: "
        f"{report['rejected_by_reason']}), {report['anomalies']} flagged (anomaly score > "
        f"{report['threshold']['anomaly_score']:.2f}) in {report['seconds']:.1f} s."
        + (f" Heat maps: {args.heatmaps}." if args.heatmaps else "")
        + f" Report: {args.report}."
        + _html_note(args)
    )
    if args.labels:
        from .images.labels import compare_image_labels

        print(compare_image_labels(args.output, args.labels))
    return status


def _job_config(args: argparse.Namespace, base=None):
    from .tabular.config import load_config

    return _settings(args, load_config, base, "chunk_rows", "format", "strategy")


def fit(args: argparse.Namespace) -> int:
    config = _job_config(args)
    _tensorflow(args)
    from .tabular.fit_job import fit_job

    report = fit_job(args.input, args.model_dir, config)
    roles = ", ".join(f"{c['column']}={c['role']}" for c in report["columns"])
    details = [f"columns: {roles}"]
    if report.get("streamed"):
        details.append(
            f"streamed: {report['rows_train']} rows trained on, {report['rows_validation']} "
            f"for early stopping, {report['rows_calibration']} for the threshold"
        )
    if "rows_screened_out" in report:
        details.append(
            f"screening: {report['rows_screened_out']} training rows beyond the robust "
            "fit's fence were left out of training (screen_outliers)"
        )
    details += _strategy_lines(report)
    _print_fit("fit", report, "rows", args.model_dir, details=details)
    return ExitStatus.OK


def score(args: argparse.Namespace) -> int:
    _check_html(args)
    _tensorflow(args)
    from .tabular.saved import saved_settings
    from .tabular.score_job import score_job

    if args.format is None and Path(args.output).suffix == ".parquet":
        args.format = "parquet"
    config = _job_config(args, base=_scoring_base(args, saved_settings(args.model_dir)))
    workers = contextlib.nullcontext()
    if args.engine == "dask" and not args.verbose:
        from .quiet import dask_workers_quiet

        workers = dask_workers_quiet()
    with workers:
        report, status = score_job(
            args.model_dir,
            args.input,
            args.output,
            args.rejects,
            args.report,
            args.alerts,
            config=config,
            resume=args.resume,
            engine=args.engine,
            scheduler=args.scheduler,
            html=args.html,
            labels=args.labels,
        )
    unknown = report["unknown_categories"]
    print(
        f"score: {report['rows_read']} rows read, {report['rows_scored']} scored, "
        f"{report['rows_rejected']} rejected ({args.rejects}), {report['alerts']} alerts "
        f"(anomaly score > {report['threshold']['anomaly_score']:.2f}) in "
        f"{report['elapsed_seconds']:.1f} s."
        + (f" Unseen categories: {unknown}." if unknown else "")
        + f" Report: {args.report}."
        + _html_note(args)
    )
    if args.labels:
        from .tabular.labels import compare_with_labels

        print(compare_with_labels(args.output, args.labels, config.id_column))
    return status


def _number(text: str, kind: type, wanted: str, fits) -> int | float:
    """``kind(text)`` if ``fits`` it, else the error argparse reports (exit status 2)."""
    try:
        value = kind(text)
    except ValueError:
        value = None
    if value is None or not fits(value):
        raise argparse.ArgumentTypeError(f"must be {wanted}, got {text!r}")
    return value


def _count(text: str) -> int:
    """An argparse type: an integer of at least 1."""
    return _number(text, int, "an integer of 1 or more", lambda v: v >= 1)


def _seed(text: str) -> int:
    """An argparse type: a random_state, an integer in [0, 2**32 - 1]."""
    return _number(text, int, "an integer in [0, 4294967295]", lambda v: 0 <= v < 2**32)


def _rate(text: str) -> float:
    """An argparse type: a rate strictly between 0 and 1."""
    return _number(text, float, "a number between 0 and 1 (not included)", lambda v: 0 < v < 1)


def _fit_command(commands, name: str, run, what: str, inputs: str, config: str):
    """A fit command (``fit``, ``fit-images``): inputs, a model directory, settings;
    returned for its own arguments."""
    command = commands.add_parser(name, help=f"fit a detector on {what}")
    command.add_argument("--input", required=True, action="append", help=inputs)
    command.add_argument("--model-dir", required=True, help="directory to save the model in")
    command.add_argument("--config", help=f"job settings (TOML), e.g. {config}")
    command.add_argument("--epochs", type=_count, help="overrides [model] epochs")
    command.add_argument("--seed", type=_seed, help="overrides [model] random_state")
    command.add_argument("--fpr", type=_rate, help="overrides [threshold] fpr")
    command.add_argument(
        "--strategy",
        choices=STRATEGIES,
        help="overrides [training] strategy: mirrored = all local GPUs (one CPU replica "
        "without a GPU), multi-worker = the cluster in TF_CONFIG (default: default)",
    )
    command.set_defaults(run=run)
    return command


def _score_command(commands, name: str, run, what: str, inputs: str, output: str, items: str):
    """A scoring command (``score``, ``score-images``) with the arguments both share;
    returned for its own."""
    command = commands.add_parser(name, help=f"score {what} with a saved model")
    command.add_argument("--model-dir", required=True)
    command.add_argument("--input", required=True, action="append", help=inputs)
    command.add_argument("--output", required=True, help=output)
    command.add_argument("--rejects", required=True, help=f"CSV of {items} not scored")
    command.add_argument("--report", required=True, help="JSON run report")
    command.add_argument("--alerts", help="alert records of flagged items (.jsonl or .csv)")
    command.add_argument("--config", help="job settings (TOML); default: those saved at fit")
    command.add_argument(
        "--html",
        metavar="REPORT.html",
        help='HTML report with plots (needs pip install "vae-anomaly[report]")',
    )
    command.set_defaults(run=run)
    return command


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(prog="vae-anomaly", description=__doc__.split("\n")[0])
    root.add_argument(
        "--verbose",
        action="store_true",
        help="also show TensorFlow's messages (start-up notes, tracing warnings)",
    )
    commands = root.add_subparsers(dest="command", required=True)

    ranking = commands.add_parser("rank", help="fit on a CSV and print its most anomalous rows")
    ranking.add_argument("--input", required=True, help="CSV file with a header row")
    ranking.add_argument("--id-column", help="column carried through as the row identifier")
    ranking.add_argument("--top", type=_count, default=10, help="rows to print (default 10)")
    ranking.add_argument("--labels", help="CSV with the id column and is_anomaly, to compare")
    ranking.add_argument("--epochs", type=_count, default=None, help="default: from a step budget")
    ranking.add_argument("--seed", type=_seed, default=0, help="random_state (default 0)")
    ranking.add_argument("--alerts", help="write alert records (.jsonl or .csv)")
    ranking.set_defaults(run=rank)

    _fit_command(
        commands, "fit", fit, "training CSV(s)", "CSV (repeatable)", "pipelines/tabular.toml"
    )
    scoring = _score_command(
        commands, "score", score, "CSV(s)", "CSV or glob", "scored rows (.csv or .parquet)", "lines"
    )
    scoring.add_argument("--resume", action="store_true", help="continue an interrupted run")
    scoring.add_argument("--engine", choices=("local", "dask"), default="local")
    scoring.add_argument("--scheduler", help="Dask scheduler address (default: a local cluster)")
    scoring.add_argument("--chunk-rows", type=_count, help="lines per chunk (memory bound)")
    scoring.add_argument(
        "--format", choices=("csv", "parquet"), help="output format (default: by --output suffix)"
    )
    scoring.add_argument("--labels", help="CSV of id_column and is_anomaly, to compare")

    _fit_command(
        commands,
        "fit-images",
        fit_images,
        "image folders",
        "folder, file or glob (repeatable)",
        "pipelines/images.toml",
    )
    image_score = _score_command(
        commands,
        "score-images",
        score_images,
        "images",
        "folder, file or glob",
        "CSV: path, anomaly_score, p_value, is_anomaly, heatmap",
        "files",
    )
    image_score.add_argument("--heatmaps", help="folder for heat-map PNGs (image | map)")
    image_score.add_argument("--batch-size", type=_count, help="images in memory at once")
    image_score.add_argument("--labels", help="CSV of path and defect, to compare")

    sample = commands.add_parser("make-sample-data", help="regenerate the bundled sample data")
    sample.add_argument("--output-dir", default="sample_data")
    sample.set_defaults(run=make_sample_data)
    return root


def main(argv=None) -> int:
    from .errors import UsageError
    from .locks import JobLockedError

    args = parser().parse_args(argv)
    try:
        return args.run(args)
    except UsageError as error:  # paths that cannot work together: a command-line error
        print(f"vae-anomaly {args.command}: error: {error}", file=sys.stderr)
        return ExitStatus.USAGE
    except (
        ValueError,
        TypeError,
        OSError,
        FloatingPointError,
        ImportError,
        JobLockedError,
    ) as error:
        print(f"vae-anomaly {args.command}: error: {error}", file=sys.stderr)
        return ExitStatus.FAILED


if __name__ == "__main__":
    sys.exit(main())
