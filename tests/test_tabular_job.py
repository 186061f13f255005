"""The tabular batch jobs: roles, accounting of every line, atomic outputs, resume, engines."""

import dataclasses
import io
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import eagerly

from vae_anomaly.cli import main
from vae_anomaly.exit_status import ExitStatus
from vae_anomaly.machine_records import make_machine_records, write_machine_records
from vae_anomaly.schema import Column, infer_column
from vae_anomaly.tabular import score_job as score_job_module
from vae_anomaly.tabular.config import JobConfig, load_config
from vae_anomaly.tabular.fit_job import fit_job
from vae_anomaly.tabular.saved import saved_settings
from vae_anomaly.tabular.score_job import score_job

ROOT = Path(__file__).resolve().parents[1]
SAMPLE_DATA = ROOT / "sample_data"


@pytest.fixture(scope="module")
def model_dir(machines_model):
    """One model fitted on the bundled training file (few epochs: tests check plumbing)."""
    return machines_model[0]


def run_score(model_dir, inputs, folder: Path, name="run", **options):
    folder.mkdir(parents=True, exist_ok=True)
    paths = {key: folder / f"{name}.{key}" for key in ("csv", "rejects.csv", "json", "jsonl")}
    report, status = score_job(
        model_dir,
        inputs,
        paths["csv"],
        paths["rejects.csv"],
        paths["json"],
        paths["jsonl"],
        progress=False,
        **options,
    )
    return report, status, paths


def test_bundled_machine_records_are_what_the_generator_writes(tmp_path):
    for path in write_machine_records(tmp_path):
        assert path.read_bytes() == (SAMPLE_DATA / path.name).read_bytes(), path.name


def test_fit_infers_roles_and_stores_the_report(model_dir):
    document = json.loads((model_dir / "schema.json").read_text())
    roles = {c["name"]: c["role"] for c in document["columns"]}
    assert roles == {
        "record_id": "passthrough",
        "timestamp": "passthrough",
        "machine_type": "categorical",
        "site": "categorical",
        "load_pct": "numeric",
        "rpm": "numeric",
        "power_kw": "numeric",
        "temperature_c": "numeric",
        "runtime_h": "numeric",
        "maintenance_due": "boolean",
    }
    report = document["fit_report"]
    assert report["rows_read"] == 3000 == report["rows_used"] + report["rows_rejected"]
    assert report["layout"] == [
        ["gaussian", 5],
        ["categorical", 4],
        ["categorical", 4],
        ["bernoulli", 1],
    ]
    assert report["threshold"]["calibrated"] and report["threshold"]["calibration_rows"] == 600


def test_roles_are_inferred_without_a_config(tmp_path):
    train, _, _ = make_machine_records(n_train=300, n_new=10, n_per_kind=0)
    (tmp_path / "t.csv").write_text(train)
    config = JobConfig(model={"epochs": 1, "random_state": 0}, calibration_fraction=0.0)
    with eagerly():  # one epoch: the roles are what is tested
        report = fit_job([tmp_path / "t.csv"], tmp_path / "m", config)
    inferred = {c["column"]: (c["role"], c["reason"]) for c in report["columns"]}
    assert inferred["record_id"] == ("passthrough", "distinct integers named like an id")
    assert inferred["timestamp"][0] == "passthrough"  # its reason: see the tests below
    assert inferred["maintenance_due"][0] == "boolean"
    assert inferred["site"] == ("categorical", "3 levels")


def test_a_column_of_few_timestamps_is_passed_through_as_timestamps():
    stamps = np.array([f"2026-01-0{day}T00:00" for day in range(1, 8)] * 5, dtype=object)
    assert infer_column("when", stamps, max_levels=50) == Column(
        "when", "passthrough", reason="timestamps"
    )


def test_a_column_of_distinct_timestamps_is_passed_through_as_timestamps():
    train, _, _ = make_machine_records(n_train=300, n_new=10, n_per_kind=0)
    frame = pd.read_csv(io.StringIO(train), dtype=str, keep_default_na=False)
    column = infer_column("timestamp", frame["timestamp"].to_numpy(), max_levels=50)
    assert (column.role, column.reason) == ("passthrough", "timestamps")


def malformed_file(path: Path) -> dict[int, str]:
    """A new-records file with every kind of bad line; returns line -> expected reason kind."""
    _, new, _ = make_machine_records(n_train=10, n_new=60, n_per_kind=0, seed=5)
    lines = [line.encode() for line in new.splitlines()[:41]]  # header + lines 2..41
    good = lines[2].decode().split(",")

    def variant(index: int, value: str) -> bytes:
        return ",".join([*good[:index], value, *good[index + 1 :]]).encode()

    extra = [  # (line number, text, expected reason kind or None when it is scored)
        (42, ",".join(good[:-1]).encode(), "wrong field count"),
        (43, ",".join([*good, "1", "2"]).encode(), "wrong field count"),
        (44, variant(5, "fast"), "not a number"),
        (45, variant(6, "-inf"), "infinite value"),
        (46, variant(9, "perhaps"), "not a boolean (true/false, yes/no, 1/0)"),
        (47, b"", "blank line"),
        (48, variant(4, "1e999"), "infinite value"),
        (49, variant(3, '"north'), "cannot split"),
        (50, variant(3, "café"), None),  # a new category, scored
        (51, variant(3, "sou").replace(b"sou", b"sou\xffth"), "not valid UTF-8"),
        (52, variant(3, '"north, quoted"'), None),  # a quoted delimiter, scored
    ]
    path.write_bytes(b"\n".join(lines + [text for _, text, _ in extra]) + b"\n")
    return {line: kind for line, _, kind in extra if kind}


def test_every_line_is_scored_or_rejected_with_its_reason(model_dir, tmp_path):
    expected = malformed_file(tmp_path / "bad.csv")
    report, _, paths = run_score(model_dir, [tmp_path / "bad.csv"], tmp_path / "out")
    per_file = report["files"][0]
    assert per_file["rows_read"] == 51  # lines 2..52
    assert per_file["rows_read"] == per_file["rows_scored"] + per_file["rows_rejected"]
    rejects = pd.read_csv(paths["rejects.csv"], keep_default_na=False)
    scored = pd.read_csv(paths["csv"])
    kinds = dict(zip(rejects["line"], rejects["reason"].str.split(":").str[0], strict=True))
    assert kinds == expected
    assert sorted(set(scored["source_line"]) | set(rejects["line"])) == list(range(2, 53))
    assert not set(scored["source_line"]) & set(rejects["line"])
    raw = (tmp_path / "bad.csv").read_bytes().decode("utf-8", "replace").split("\n")
    for line, text in zip(rejects["line"], rejects["raw_line"], strict=True):
        assert text == raw[line - 1]
    assert report["unknown_categories"] == {"site": 2}  # café and "north, quoted"
    assert per_file["reject_reasons"]["wrong field count"] == 2


def test_a_file_without_a_required_column_is_rejected_line_by_line(model_dir, tmp_path):
    _, new, _ = make_machine_records(n_train=10, n_new=20, n_per_kind=0, seed=6)
    frame = pd.read_csv(pd.io.common.StringIO(new), dtype=str, keep_default_na=False)
    frame.drop(columns="rpm").to_csv(tmp_path / "no_rpm.csv", index=False)
    report, _, paths = run_score(model_dir, [tmp_path / "no_rpm.csv"], tmp_path / "out")
    assert report["rows_read"] == 20 == report["rows_rejected"]
    rejects = pd.read_csv(paths["rejects.csv"])
    assert rejects["reason"].str.startswith("required column missing: ['rpm']").all()


def test_scores_do_not_depend_on_the_chunk_size(model_dir, tmp_path):
    new = SAMPLE_DATA / "machines_new.csv"
    settings = saved_settings(model_dir)
    _, _, small = run_score(
        model_dir, [new], tmp_path, "small", config=settings.with_overrides(chunk_rows=7)
    )
    _, _, large = run_score(model_dir, [new], tmp_path, "large")
    assert small["csv"].read_bytes() == large["csv"].read_bytes()
    assert small["rejects.csv"].read_bytes() == large["rejects.csv"].read_bytes()


def test_a_local_run_links_its_scored_log_into_place_without_copying_rows(
    model_dir, tmp_path, monkeypatch
):
    from vae_anomaly.tabular import scored_log

    def no_copy(*args, **kwargs):
        raise AssertionError("the scored rows were copied to a new file")

    linked = []

    def link(source, target):
        linked.append(Path(source).name)
        return real_link(source, target)

    real_link = os.link
    monkeypatch.setattr(scored_log, "atomic_open", no_copy)
    monkeypatch.setattr(os, "link", link)
    new = SAMPLE_DATA / "machines_new.csv"
    settings = saved_settings(model_dir).with_overrides(chunk_rows=100)
    report, _, paths = run_score(model_dir, [new], tmp_path, config=settings)
    assert linked == ["scored.csv.log"]
    scored = pd.read_csv(paths["csv"])
    assert len(scored) == report["rows_scored"] > 0 and report["chunks"] > 5
    assert scored["source_line"].is_monotonic_increasing  # the chunks in plan order
    assert paths["csv"].stat().st_nlink == 1  # the log went with the part directory
    assert not (tmp_path / ".run.csv.parts").exists()


def failing_once(monkeypatch, module, name, when):
    """Make ``module.name`` raise OSError on the call for which ``when(args)`` is true
    first; calls before and after it run."""
    real, state = getattr(module, name), {"failed": False}

    def fail(*args, **kwargs):
        if not state["failed"] and when(args):
            state["failed"] = True
            raise OSError("disk on fire")
        return real(*args, **kwargs)

    monkeypatch.setattr(module, name, fail)


def interrupted_at_the_fourth_commit(model_dir, tmp_path, monkeypatch):
    """Score the sample file in 100-row chunks into ``tmp_path/whole``, then again into
    ``tmp_path/out``, failing once where the fourth chunk's rejects part is written (its
    rows already in the log, its stats not). (input, settings, the whole run's paths)."""
    new = SAMPLE_DATA / "machines_new.csv"
    settings = saved_settings(model_dir).with_overrides(chunk_rows=100)
    _, _, whole = run_score(model_dir, [new], tmp_path / "whole", config=settings)
    failing_once(
        monkeypatch,
        score_job_module,
        "write_bytes_atomically",
        lambda args: str(args[0]).endswith("00000-0000003.rejects.csv"),
    )
    with pytest.raises(OSError, match="disk on fire"):
        run_score(model_dir, [new], tmp_path / "out", config=settings)
    return new, settings, whole


def test_resume_after_a_failure_between_append_and_commit_gives_the_whole_output(
    model_dir, tmp_path, monkeypatch
):
    """The fourth chunk's rows are in the log, its rejects part cannot be written, so it
    is not committed: the resumed run cuts its rows off and appends them again."""
    new, settings, whole = interrupted_at_the_fourth_commit(model_dir, tmp_path, monkeypatch)
    log = tmp_path / "out" / ".run.csv.parts" / "scored.csv.log"
    stats = json.loads((log.parent / "00000-0000002.stats.json").read_text())
    assert log.stat().st_size > stats["scored_log"][1]  # the fourth chunk's rows
    report, _, resumed = run_score(model_dir, [new], tmp_path / "out", config=settings, resume=True)
    assert report["chunks_resumed"] >= 3
    for key in ("csv", "rejects.csv"):
        assert resumed[key].read_bytes() == whole[key].read_bytes()


def test_resume_refuses_an_input_named_otherwise_and_keeps_its_parts(
    model_dir, tmp_path, monkeypatch
):
    """Each scored row names its file as the command did (source_file): a resumed run that
    names it another way (relative, not absolute) would mix two names in one output."""
    new, settings, whole = interrupted_at_the_fourth_commit(model_dir, tmp_path, monkeypatch)
    renamed = Path(os.path.relpath(new))
    assert renamed.resolve() == new.resolve() and str(renamed) != str(new)
    with pytest.raises(
        ValueError, match=rf"--resume: the input {re.escape(str(renamed))} was named"
    ):
        run_score(model_dir, [renamed], tmp_path / "out", config=settings, resume=True)
    report, _, resumed = run_score(model_dir, [new], tmp_path / "out", config=settings, resume=True)
    assert report["chunks_resumed"] >= 3  # the parts were kept for the right name
    for key in ("csv", "rejects.csv"):
        assert resumed[key].read_bytes() == whole[key].read_bytes()


def test_resume_after_a_failure_past_the_join_scores_nothing_again(
    model_dir, tmp_path, monkeypatch
):
    new = SAMPLE_DATA / "machines_new.csv"
    settings = saved_settings(model_dir).with_overrides(chunk_rows=100)
    failing_once(monkeypatch, score_job_module, "_join_csv", lambda args: True)  # rejects
    with pytest.raises(OSError, match="disk on fire"):
        run_score(model_dir, [new], tmp_path, config=settings)
    whole = (tmp_path / "run.csv").read_bytes()  # joined before the failure
    scored = []
    real_commit = score_job_module.commit_chunk
    monkeypatch.setattr(
        score_job_module, "commit_chunk", lambda item: scored.append(1) or real_commit(item)
    )
    report, _, resumed = run_score(model_dir, [new], tmp_path, config=settings, resume=True)
    assert scored == [] and report["chunks_resumed"] == report["chunks"]
    assert resumed["csv"].read_bytes() == whole
    assert not (tmp_path / ".run.csv.parts").exists()


def test_parquet_output_holds_the_same_rows_as_csv(model_dir, tmp_path):
    new = SAMPLE_DATA / "machines_new.csv"
    settings = saved_settings(model_dir)
    _, _, csv_paths = run_score(model_dir, [new], tmp_path, "csv")
    out = tmp_path / "scored.parquet"
    score_job(
        model_dir,
        [new],
        out,
        tmp_path / "r.csv",
        tmp_path / "r.json",
        config=settings.with_overrides(format="parquet", chunk_rows=300),
        progress=False,
    )
    from_csv = pd.read_csv(csv_paths["csv"], dtype={"record_id": str, "timestamp": str})
    pd.testing.assert_frame_equal(pd.read_parquet(out), from_csv, check_dtype=False)


def test_a_failed_job_leaves_no_output_behind(model_dir, tmp_path, monkeypatch):
    calls = {"n": 0}
    real = score_job_module.commit_chunk

    def failing(scored):  # the third chunk's parts cannot be written
        calls["n"] += 1
        if calls["n"] == 3:
            raise OSError("disk on fire")
        return real(scored)

    monkeypatch.setattr(score_job_module, "commit_chunk", failing)
    settings = saved_settings(model_dir)
    with pytest.raises(OSError, match="disk on fire"):
        run_score(
            model_dir,
            [SAMPLE_DATA / "machines_new.csv"],
            tmp_path,
            config=settings.with_overrides(chunk_rows=100),
        )
    # No output and no temporary file; only the committed parts, kept for --resume.
    assert sorted(p.name for p in tmp_path.iterdir()) == [".run.csv.parts"]


def test_exit_statuses_and_messages_of_the_cli(model_dir, tmp_path, capsys):
    args = [
        "score",
        "--model-dir",
        str(model_dir),
        "--input",
        str(SAMPLE_DATA / "machines_new.csv"),
        "--output",
        str(tmp_path / "o.csv"),
        "--rejects",
        str(tmp_path / "r.csv"),
        "--report",
        str(tmp_path / "r.json"),
    ]
    assert main(args) == ExitStatus.ALERTS  # the new file has planted anomalies
    summary = capsys.readouterr().out
    assert "1000 rows read, 995 scored, 5 rejected" in summary
    clean = tmp_path / "clean.csv"
    scored = pd.read_csv(tmp_path / "o.csv")
    calm = scored.nsmallest(5, "anomaly_score")["source_line"].to_list()
    lines = (SAMPLE_DATA / "machines_new.csv").read_text().splitlines()
    clean.write_text("\n".join([lines[0]] + [lines[i - 1] for i in calm]) + "\n")
    args[args.index("--input") + 1] = str(clean)
    assert main(args) == ExitStatus.OK
    args[args.index("--model-dir") + 1] = str(tmp_path / "nowhere")
    assert main(args) == ExitStatus.FAILED
    assert "nowhere" in capsys.readouterr().err


def test_glob_inputs_are_accounted_per_file(model_dir, tmp_path):
    lines = (SAMPLE_DATA / "machines_new.csv").read_text().splitlines()
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "a.csv").write_text("\n".join(lines[:301]) + "\n")
    (tmp_path / "in" / "b.csv").write_text("\n".join([lines[0], *lines[301:]]) + "\n")
    report, _, _ = run_score(model_dir, [str(tmp_path / "in" / "*.csv")], tmp_path / "out")
    assert [Path(f["path"]).name for f in report["files"]] == ["a.csv", "b.csv"]
    assert [f["rows_read"] for f in report["files"]] == [300, 700]
    for f in report["files"]:
        assert f["rows_read"] == f["rows_scored"] + f["rows_rejected"]
    assert report["rows_scored"] == 995


@pytest.mark.parametrize(
    "text, message",
    [
        ("[columns]\nrolez = {}\n", "unknown key 'rolez' in \\[columns\\]"),
        ("[modle]\n", "unknown section \\[modle\\]"),
        ("[model]\nlikelihood = 'gaussian'\n", "'likelihood' is set by the job"),
        ("[model]\nepoch = 3\n", "'epoch' is not a VAEAnomalyDetector parameter"),
        ("[columns]\nroles = { a = 'numerical' }\n", "role of column 'a' must be one of"),
        ("[score]\nformat = 'xlsx'\n", "format must be one of"),
        ("[score\n", "not valid TOML"),
        ("[threshold]\nfpr = 1.5\n", r"fpr must be a number in \(0, 1\), got 1.5"),
        ("[threshold]\nfpr = 'low'\n", r"fpr must be a number in \(0, 1\)"),
        ("[threshold]\ncalibration_fraction = 1.0\n", r"calibration_fraction must be .* \[0, 1\)"),
        ("[model]\nhidden_units = [0, -3]\n", r"\[model\] each of hidden_units must be >= 1"),
        ("[model]\nhidden_units = ['wide']\n", r"\[model\] each of hidden_units must be an int"),
        ("[model]\nconv_filters = [0]\n", r"\[model\] each of conv_filters must be >= 1"),
        (
            "[model]\nscore_method = 'exact'\n",
            r"\[model\] score_method='exact' .*latent='categorical'",
        ),
        ("[model]\nepochs = true\n", r"\[model\] epochs: must be a number, got True"),
        ("[model]\nbeta = true\n", r"\[model\] beta: must be a number, got True"),
        ("[columns]\nroles = 'passthrough'\n", "roles must be a table of column = role"),
        ("[columns]\nid_column = 5\n", r"id_column must be a column name \(text\), got 5"),
    ],
)
def test_config_errors_name_the_file_and_the_key(tmp_path, text, message):
    path = tmp_path / "job.toml"
    path.write_text(text)
    with pytest.raises(ValueError, match=message) as error:
        load_config(path)
    assert str(path) in str(error.value)


@pytest.mark.parametrize("in_memory_mb", [16, 0])  # in memory, and streamed
def test_an_id_column_not_in_the_header_stops_fit_before_any_row_is_read(tmp_path, in_memory_mb):
    train = tmp_path / "train.csv"
    train.write_text((SAMPLE_DATA / "machines_train.csv").read_text())
    config = JobConfig(id_column="nosuch", in_memory_mb=in_memory_mb)
    with pytest.raises(ValueError, match=rf"{re.escape(str(train))}, line 1: \[columns\] id_co"):
        fit_job([train], tmp_path / "model", config)
    assert not (tmp_path / "model").exists()


def big_new_file(path: Path, n: int = 12_000) -> Path:
    _, new, _ = make_machine_records(n_train=10, n_new=n, n_per_kind=2, seed=7)
    path.write_text(new)
    return path


@pytest.mark.slow  # end to end: a CLI subprocess killed midway, 12,000 rows
def test_resume_after_a_kill_gives_the_uninterrupted_output(model_dir, tmp_path):
    new = big_new_file(tmp_path / "new.csv")
    settings = saved_settings(model_dir)
    settings = settings.with_overrides(chunk_rows=100)
    _, _, whole = run_score(model_dir, [new], tmp_path / "whole", config=settings)

    out = tmp_path / "killed"
    out.mkdir()
    command = [
        sys.executable,
        "-m",
        "vae_anomaly.cli",
        "score",
        "--model-dir",
        str(model_dir),
        "--input",
        str(new),
        "--output",
        str(out / "run.csv"),
        "--rejects",
        str(out / "run.rejects.csv"),
        "--report",
        str(out / "run.json"),
        "--alerts",
        str(out / "run.jsonl"),
        "--chunk-rows",
        "100",
    ]
    job = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    parts = out / ".run.csv.parts"
    deadline = time.monotonic() + 120
    while len(list(parts.glob("*.stats.json"))) < 5 and time.monotonic() < deadline:
        assert job.poll() is None, "the job ended before it could be killed"
        time.sleep(0.005)
    os.kill(job.pid, signal.SIGKILL)
    job.wait()
    committed = len(list(parts.glob("*.stats.json")))
    assert 5 <= committed < 120  # killed midway: 120 chunks in all
    assert not (out / "run.csv").exists() and not (out / "run.json").exists()

    report, _, resumed = run_score(model_dir, [new], out, config=settings, resume=True)
    assert report["chunks_resumed"] >= committed
    for key in ("csv", "rejects.csv", "jsonl"):
        if key == "jsonl":  # alert times differ between runs
            strip = [
                {k: v for k, v in json.loads(line).items() if k != "scored_at"}
                for line in resumed[key].read_text().splitlines()
            ]
            assert strip == [
                {k: v for k, v in json.loads(line).items() if k != "scored_at"}
                for line in whole[key].read_text().splitlines()
            ]
        else:
            assert resumed[key].read_bytes() == whole[key].read_bytes()
    assert report["rows_read"] == 12_000 == report["rows_scored"] + report["rows_rejected"]
    assert not parts.exists()


def test_resume_takes_a_part_directory_written_before_the_scored_log(
    model_dir, tmp_path, monkeypatch
):
    """Layout 1 (no "layout" in job.json; scored rows in part files) is resumed, its
    part files joined with the rows the resumed run appends to the log."""
    new, settings, whole = interrupted_at_the_fourth_commit(model_dir, tmp_path, monkeypatch)
    parts = tmp_path / "out" / ".run.csv.parts"
    job = json.loads((parts / "job.json").read_text())
    assert job.pop("layout") == 3
    (parts / "job.json").write_text(json.dumps(job))
    log = (parts / "scored.csv.log").read_bytes()
    for stem in ("00000-0000000", "00000-0000001", "00000-0000002"):  # as layout 1 wrote them
        stats = json.loads((parts / f"{stem}.stats.json").read_text())
        start, end = stats.pop("scored_log")
        (parts / f"{stem}.scored.csv").write_bytes(log[start:end])
        (parts / f"{stem}.stats.json").write_text(json.dumps(stats))
    (parts / "scored.csv.log").unlink()
    report, _, resumed = run_score(model_dir, [new], tmp_path / "out", config=settings, resume=True)
    assert report["chunks_resumed"] == 3
    assert resumed["csv"].read_bytes() == whole["csv"].read_bytes()


def test_labels_that_cannot_be_matched_stop_score_before_any_output(model_dir, tmp_path):
    labels = tmp_path / "labels.csv"
    labels.write_text("record_id,planted\n100001,1\n")  # no is_anomaly column
    settings = saved_settings(model_dir)
    with pytest.raises(ValueError, match="needs the columns 'record_id' and 'is_anomaly'"):
        run_score(
            model_dir, [SAMPLE_DATA / "machines_new.csv"], tmp_path / "out", config=settings,
            labels=labels,
        )  # fmt: skip
    assert list((tmp_path / "out").iterdir()) == []
    labels.write_text("record_id,is_anomaly\n100001,1\n,0\n100002,0\n,1\n")
    with pytest.raises(ValueError, match=r"labels\.csv, line 3: the record_id is empty"):
        run_score(
            model_dir, [SAMPLE_DATA / "machines_new.csv"], tmp_path / "out", config=settings,
            labels=labels,
        )  # fmt: skip
    labels.write_text("record_id,is_anomaly\n100001,1\n100002,0\n100001,1\n")
    with pytest.raises(ValueError, match="'100001' is labelled on lines 2 and 4"):
        run_score(
            model_dir, [SAMPLE_DATA / "machines_new.csv"], tmp_path / "out", config=settings,
            labels=labels,
        )  # fmt: skip


def test_resume_refuses_a_different_job(model_dir, tmp_path):
    new = big_new_file(tmp_path / "new.csv", n=500)
    settings = saved_settings(model_dir)
    parts = tmp_path / "out" / ".run.csv.parts"
    parts.mkdir(parents=True)
    (parts / "job.json").write_text(json.dumps({"model": "another"}))
    with pytest.raises(ValueError, match="belongs to a different job"):
        run_score(model_dir, [new], tmp_path / "out", config=settings, resume=True)


@pytest.mark.slow  # end to end: starts a two-worker Dask LocalCluster
def test_dask_engine_gives_the_local_results_row_for_row(model_dir, tmp_path):
    distributed = pytest.importorskip("distributed")
    new = SAMPLE_DATA / "machines_new.csv"
    settings = saved_settings(model_dir)
    settings = settings.with_overrides(chunk_rows=150)
    local_report, _, local = run_score(model_dir, [new], tmp_path, "local", config=settings)
    with distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, dashboard_address=None
    ) as cluster:
        dask_report, _, on_dask = run_score(
            model_dir,
            [new],
            tmp_path,
            "dask",
            config=settings,
            engine="dask",
            scheduler=cluster.scheduler_address,
        )
    assert on_dask["csv"].read_bytes() == local["csv"].read_bytes()
    assert on_dask["rejects.csv"].read_bytes() == local["rejects.csv"].read_bytes()
    for key in ("rows_read", "rows_scored", "rows_rejected", "alerts", "files"):
        assert dask_report[key] == local_report[key]
    assert dask_report["engine"] == "dask"


def test_fit_rejects_bad_training_lines_and_reports_them(tmp_path):
    train, _, _ = make_machine_records(n_train=400, n_new=10, n_per_kind=0)
    lines = train.splitlines()
    lines[10] = lines[10] + ",surplus"
    lines[20] = lines[20].replace(lines[20].split(",")[6], "lots", 1)
    (tmp_path / "t.csv").write_text("\n".join(lines) + "\n")
    config = JobConfig(model={"epochs": 1, "random_state": 0}, calibration_fraction=0.0)
    with eagerly():  # one epoch: the rejects are what is tested
        report = fit_job([tmp_path / "t.csv"], tmp_path / "m", config)
    assert report["rows_read"] == 400 and report["rows_rejected"] == 2
    rejects = pd.read_csv(tmp_path / "m" / "fit_rejects.csv")
    assert rejects["line"].tolist() == [11, 21]
    assert rejects["reason"].str.split(":").str[0].tolist() == ["wrong field count", "not a number"]


def test_fit_refuses_to_replace_a_directory_that_is_not_a_model(tmp_path):
    (tmp_path / "precious").mkdir()
    (tmp_path / "precious" / "thesis.tex").write_text("do not delete")
    with pytest.raises(FileExistsError, match=r"thesis\.tex, which vae-anomaly did not write"):
        fit_job([SAMPLE_DATA / "machines_train.csv"], tmp_path / "precious", JobConfig())
    assert (tmp_path / "precious" / "thesis.tex").read_text() == "do not delete"


def test_progress_shows_rows_and_rate(model_dir, tmp_path, capsys):
    score_job(
        model_dir,
        [SAMPLE_DATA / "machines_new.csv"],
        tmp_path / "o.csv",
        tmp_path / "r.csv",
        tmp_path / "r.json",
        progress=True,
    )
    assert re.search(r"scoring: 1,000/1,000 rows \([\d,]+ rows/s\)", capsys.readouterr().err)


def test_the_same_file_given_twice_is_scored_once(model_dir, tmp_path):
    new = SAMPLE_DATA / "machines_new.csv"
    report, _, _ = run_score(model_dir, [new, str(SAMPLE_DATA / "machines_new.*")], tmp_path)
    assert len(report["files"]) == 1 and report["rows_read"] == 1000


def test_the_clean_data_pipeline_is_the_default_pipeline_without_screening():
    default = load_config(ROOT / "pipelines" / "tabular.toml")
    clean = load_config(ROOT / "pipelines" / "tabular_clean.toml")
    assert clean.model == {**default.model, "screen_outliers": False}
    # Every other setting is the default pipeline's, so the two files cannot drift apart.
    assert dataclasses.replace(clean, model=default.model) == default


@pytest.mark.slow  # fits end to end; the default suite's 5-minute budget
def test_the_clean_data_pipeline_trains_every_row_with_the_default_model(tmp_path):
    from vae_anomaly.tabular.saved import read_model_dir

    train, _, _ = make_machine_records(n_train=400, n_new=10, n_per_kind=0)
    (tmp_path / "t.csv").write_text(train)
    config = load_config(ROOT / "pipelines" / "tabular_clean.toml").with_overrides(
        model={"epochs": 1}, calibration_fraction=0.0
    )
    with eagerly():  # one epoch: the model's settings are what is tested
        report = fit_job([tmp_path / "t.csv"], tmp_path / "m", config)
    detector = read_model_dir(tmp_path / "m")[0]
    assert detector.screen_outliers is False and not hasattr(detector, "n_screened_out_")
    assert "rows_screened_out" not in report
    assert detector.trim_fraction == 0.0 and detector.min_scale == 0.03
    assert detector.hidden_units_ == (128, 128) and detector.n_iter_no_change == 1000
    assert detector.model_.likelihood_head.min_scale == 0.03
