"""What the jobs promise a careless or hostile user: no input overwritten, no user file
deleted, no model loaded that was changed after fitting, one writer per output, resumes
known by content, long lines capped in the rejects."""

import dataclasses
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import ROOT, eagerly

from vae_anomaly.cli import main
from vae_anomaly.errors import ModelFileError, UsageError
from vae_anomaly.exit_status import ExitStatus
from vae_anomaly.images.jobs import score_images
from vae_anomaly.integrity import INTEGRITY_FILE, KEY_VARIABLE
from vae_anomaly.jobs.rejects import MAX_RAW_CHARS, MAX_REASON_CHARS
from vae_anomaly.locks import JobLock, JobLockedError, lock_path
from vae_anomaly.tabular import score_job as score_job_module
from vae_anomaly.tabular.config import JobConfig
from vae_anomaly.tabular.fit_job import fit_job
from vae_anomaly.tabular.saved import read_model_dir, saved_settings
from vae_anomaly.tabular.score_job import score_job

CONFIG = JobConfig(
    model={"epochs": 2, "hidden_units": (8,), "random_state": 0},
    calibration_fraction=0.4,
    chunk_rows=50,
)


def write_table(path: Path, n: int = 300, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    a = rng.normal(size=n)
    frame = pd.DataFrame({"a": a, "b": 2 * a + 0.1 * rng.normal(size=n), "c": rng.normal(size=n)})
    frame.to_csv(path, index=False)
    return path


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    return write_table(tmp_path_factory.mktemp("data") / "train.csv")


@pytest.fixture(scope="module")
def model_dir(data, tmp_path_factory) -> Path:
    target = tmp_path_factory.mktemp("model") / "m"
    with eagerly():  # a two-epoch fit: plumbing, not quality
        fit_job([data], target, CONFIG)
    return target


def score_args(model_dir, data, out: Path, **changes) -> list[str]:
    flags = {
        "--model-dir": str(model_dir),
        "--input": str(data),
        "--output": str(out / "scored.csv"),
        "--rejects": str(out / "rejects.csv"),
        "--report": str(out / "report.json"),
        "--alerts": str(out / "alerts.jsonl"),
    } | {key: str(value) for key, value in changes.items()}
    return ["score", *[part for item in flags.items() for part in item]]


# ----------------------------------------------------------------------------- item 2


@pytest.mark.parametrize(
    "changes, first, second",
    [
        ({"--output": "INPUT"}, "--input", "--output"),
        ({"--rejects": "INPUT"}, "--input", "--rejects"),
        ({"--rejects": "OUT/scored.csv"}, "--output", "--rejects"),
        ({"--alerts": "OUT/report.json"}, "--report", "--alerts"),
        ({"--report": "MODEL"}, "--report", "--model-dir"),
    ],
)
def test_score_refuses_two_flags_naming_one_path_before_any_work(
    model_dir, data, tmp_path, capsys, changes, first, second
):
    before = data.read_bytes()
    replace = {"INPUT": str(data), "MODEL": str(model_dir), "OUT": str(tmp_path)}
    changes = {
        key: replace.get(value, value.replace("OUT", str(tmp_path)))
        for key, value in changes.items()
    }
    status = main(score_args(model_dir, data, tmp_path, **changes))
    assert status == ExitStatus.USAGE
    message = capsys.readouterr().err
    assert f"{first} and {second} name the same path" in message
    assert data.read_bytes() == before
    assert list(tmp_path.iterdir()) == []  # nothing written, not even a lock


def test_score_refuses_an_output_its_input_glob_would_read(model_dir, data, tmp_path, capsys):
    # The first run would write runs/scored.csv, and the next read it as an input and
    # write over it: refused on the first run, before any work.
    (tmp_path / "runs").mkdir()
    shutil.copy(data, tmp_path / "runs" / "new.csv")
    pattern = tmp_path / "runs" / "*.csv"
    argv = score_args(model_dir, pattern, tmp_path / "runs")
    assert main(argv) == ExitStatus.USAGE
    assert f"--output {tmp_path}/runs/scored.csv is reached by the input glob {pattern}" in (
        capsys.readouterr().err
    )
    assert sorted(p.name for p in (tmp_path / "runs").iterdir()) == ["new.csv"]


def test_an_input_reached_through_a_link_is_still_the_input(model_dir, data, tmp_path):
    link = tmp_path / "link.csv"
    link.symlink_to(data)
    with pytest.raises(UsageError, match="--input and --output name the same path"):
        score_job(model_dir, [data], link, tmp_path / "r.csv", tmp_path / "r.json")


def test_score_images_refuses_the_same_paths_before_loading_the_model(tmp_path):
    folder = tmp_path / "images"
    folder.mkdir()
    (folder / "a.png").write_bytes(b"not really")
    out = tmp_path / "out"
    with pytest.raises(UsageError, match="--input and --heatmaps name the same path"):
        score_images(
            tmp_path / "no-model",
            [folder],
            out / "o.csv",
            out / "r.csv",
            out / "r.json",
            heatmaps=folder,
        )
    with pytest.raises(UsageError, match="--output and --rejects name the same path"):
        score_images(tmp_path / "no-model", [folder], out / "o.csv", out / "o.csv", out / "r.json")
    assert not out.exists()


def test_a_heatmap_folder_holding_other_files_is_not_replaced(tmp_path):
    folder = tmp_path / "maps"
    folder.mkdir()
    (folder / "notes.txt").write_text("mine")
    with pytest.raises(UsageError, match=r"notes.txt, which is not a heat map"):
        score_images(
            tmp_path / "m",
            [tmp_path / "x.png"],
            tmp_path / "o.csv",
            tmp_path / "r.csv",
            tmp_path / "r.json",
            heatmaps=folder,
        )
    assert (folder / "notes.txt").read_text() == "mine"


# ----------------------------------------------------------------------------- item 10


def test_an_output_naming_a_directory_is_refused_before_the_first_chunk(
    model_dir, data, tmp_path, capsys, monkeypatch
):
    (tmp_path / "scored.csv").mkdir()
    scored = []
    monkeypatch.setattr(score_job_module, "prepare_chunk", lambda task: scored.append(task))
    status = main(score_args(model_dir, data, tmp_path))
    assert status == ExitStatus.USAGE
    assert f"--output {tmp_path / 'scored.csv'} is a directory" in capsys.readouterr().err
    assert scored == []
    assert sorted(p.name for p in tmp_path.iterdir()) == ["scored.csv"]  # no .parts, no locks


def test_an_output_inside_the_model_directory_is_refused(model_dir, data, tmp_path):
    with pytest.raises(UsageError, match="lies inside --model-dir"):
        score_job(
            model_dir, [data], model_dir / "scored.csv", tmp_path / "r.csv", tmp_path / "r.json"
        )
    assert not (model_dir / "scored.csv").exists()


# ----------------------------------------------------------------------------- item 3, 13


@pytest.mark.slow  # fits end to end; the default suite's 5-minute budget
def test_refit_never_deletes_a_file_the_job_did_not_write(data, tmp_path, eager_functions):
    target = tmp_path / "m"
    fit_job([data], target, CONFIG)
    (target / "notes.txt").write_text("my notes")
    with pytest.raises(FileExistsError, match=r"notes.txt, which vae-anomaly did not write"):
        fit_job([data], target, CONFIG)
    assert (target / "notes.txt").read_text() == "my notes"
    (target / "notes.txt").unlink()
    fit_job([data], target, CONFIG)  # a directory holding only what the job wrote is replaced


def test_fit_images_refuses_a_directory_with_a_users_file(tmp_path):
    from PIL import Image

    from vae_anomaly.images.config import ImageJobConfig
    from vae_anomaly.images.jobs import fit_images

    images = tmp_path / "images"
    images.mkdir()
    for i in range(3):
        Image.fromarray(np.full((8, 8), 40 * i, np.uint8)).save(images / f"{i}.png")
    target = tmp_path / "m"
    target.mkdir()
    (target / "images.json").write_text("{}")  # looks like an old image model directory
    (target / "thesis.tex").write_text("do not delete")
    with pytest.raises(FileExistsError, match=r"thesis.tex, which vae-anomaly did not write"):
        fit_images([images], target, ImageJobConfig(model={"epochs": 1}))
    assert (target / "thesis.tex").read_text() == "do not delete"


@pytest.mark.slow  # fits end to end; the default suite's 5-minute budget
def test_fit_through_a_symlink_replaces_what_it_points_to_and_keeps_the_link(
    data, tmp_path, eager_functions
):
    real = tmp_path / "models" / "v1"
    fit_job([data], real, CONFIG)
    link = tmp_path / "current"
    link.symlink_to(real)
    fit_job([data], link, CONFIG)
    assert link.is_symlink() and link.resolve() == real.resolve()
    read_model_dir(link)  # a complete, sealed model
    leftovers = [p.name for p in tmp_path.rglob(".*")]
    assert leftovers == []  # no .current.old-*, no .v1.tmp-*, no lock


# ----------------------------------------------------------------------------- item 4


def copy_model(model_dir: Path, tmp_path: Path) -> Path:
    target = tmp_path / "copy"
    for path in model_dir.rglob("*"):
        if path.is_file():
            (target / path.relative_to(model_dir)).parent.mkdir(parents=True, exist_ok=True)
            (target / path.relative_to(model_dir)).write_bytes(path.read_bytes())
    return target


def edit_json(path: Path, change) -> None:
    document = json.loads(path.read_text())
    change(document)
    path.write_text(json.dumps(document, indent=2))


@pytest.mark.parametrize(
    "relative, change",
    [
        ("detector/manifest.json", lambda d: d["fitted"].update(offset_=-1e9)),
        ("schema.json", lambda d: d["columns"][0].update(role="ignore")),
    ],
)
def test_an_edited_document_of_the_model_directory_is_named_on_load(
    model_dir, tmp_path, relative, change
):
    target = copy_model(model_dir, tmp_path)
    edit_json(target / relative, change)
    with pytest.raises(ModelFileError, match=rf"{relative}.*does not match the SHA-256"):
        read_model_dir(target)


def test_damaged_added_or_removed_files_are_named(model_dir, tmp_path):
    target = copy_model(model_dir, tmp_path)
    with open(target / "fit_rejects.csv", "a") as handle:
        handle.write("x\n")
    with pytest.raises(ModelFileError, match=r"fit_rejects.csv does not match"):
        read_model_dir(target)
    target = copy_model(model_dir, tmp_path / "2")
    (target / "extra.txt").write_text("?")
    with pytest.raises(ModelFileError, match=r"extra.txt was not written with the model"):
        read_model_dir(target)
    (target / "extra.txt").unlink()
    (target / "detector" / "model.keras").unlink()
    with pytest.raises(ModelFileError, match=r"model.keras is missing"):
        read_model_dir(target)
    edit_json(target / INTEGRITY_FILE, lambda d: d["files"].pop("detector/model.keras"))
    with pytest.raises(ModelFileError, match=r"integrity.json is damaged"):
        read_model_dir(target)


def test_a_chunk_task_refuses_a_model_directory_replaced_since_the_job_planned(model_dir, tmp_path):
    # What a Dask worker loads: the directory by its path, with the job's fingerprint.
    # After a refit (here: a file changed and the directory sealed again, as a fit
    # seals it) it is another model, which must not score the job's remaining chunks.
    from vae_anomaly.integrity import seal_directory
    from vae_anomaly.tabular.saved import model_fingerprint

    target = copy_model(model_dir, tmp_path)
    planned = model_fingerprint(target)
    score_job_module._loaded_models.clear()
    score_job_module.cached_model(str(target), planned)  # the planned model loads
    score_job_module._loaded_models.clear()
    with open(target / "fit_rejects.csv", "a") as handle:
        handle.write("x\n")
    seal_directory(target)
    with pytest.raises(ModelFileError, match=r"is not the model this job started with"):
        score_job_module.cached_model(str(target), planned)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda d: d.pop("settings"), r"schema\.json is damaged: 'settings'"),
        (
            lambda d: d["settings"].update(chunk_rows=-5),
            r"schema\.json, entry 'settings': chunk_rows must be",
        ),
    ],
)
def test_damaged_saved_settings_are_named_as_the_model_files_not_a_traceback(
    model_dir, tmp_path, capsys, change, message
):
    # Rewritten with their checksums: read, and refused with the file named (exit 1).
    # Before, a missing entry was a KeyError's traceback, and a bad value was blamed on
    # the command line.
    from vae_anomaly.integrity import seal_directory

    target = copy_model(model_dir, tmp_path)
    edit_json(target / "schema.json", change)
    seal_directory(target)
    with pytest.raises(ModelFileError, match=message):
        JobConfig.from_saved(
            json.loads((target / "schema.json").read_text()), target / "schema.json"
        )
    args = score_args(target, tmp_path / "in.csv", tmp_path / "out")
    write_table(tmp_path / "in.csv", n=20)
    assert main(args) == ExitStatus.FAILED
    err = capsys.readouterr().err
    assert re.search(message, err) and "Traceback" not in err


def test_a_scoring_config_says_which_of_its_keys_the_fit_fixed(model_dir, tmp_path, capsys):
    # The fit's own settings file (its epochs given as a flag at fit, so not in the
    # file): nothing to say. Then a threshold and a scoring estimator the fit did not
    # use: the job cannot apply them, and says so.
    write_table(tmp_path / "in.csv", n=20)
    fitted = tmp_path / "fitted.toml"
    fitted.write_text(
        "[model]\nhidden_units = [8]\nrandom_state = 0\n"
        "[threshold]\ncalibration_fraction = 0.4\n[score]\nchunk_rows = 7\n"
    )
    args = score_args(model_dir, tmp_path / "in.csv", tmp_path / "a", **{"--config": fitted})
    assert main(args) in (ExitStatus.OK, ExitStatus.ALERTS)
    assert "warning" not in capsys.readouterr().err  # chunk_rows is the job's own key
    other = tmp_path / "other.toml"
    other.write_text(
        fitted.read_text()
        .replace("[threshold]\n", "[threshold]\nfpr = 0.2\n")
        .replace("random_state = 0\n", 'random_state = 0\nscore_method = "iwae"\n')
    )
    args = score_args(model_dir, tmp_path / "in.csv", tmp_path / "b", **{"--config": other})
    assert main(args) in (ExitStatus.OK, ExitStatus.ALERTS)
    err = capsys.readouterr().err
    assert f"warning: {other} sets fpr = 0.2 (the model's: 0.01); it is fixed" in err
    assert "sets [model] score_method = 'iwae' (the model's: None)" in err
    report = json.loads((tmp_path / "b" / "report.json").read_text())
    assert report["score_method"] == "elbo"  # the model's, as the warning says


def test_signed_models_need_the_key_and_unsigned_ones_are_refused_with_a_key(
    data, tmp_path, monkeypatch, eager_functions
):
    monkeypatch.setenv(KEY_VARIABLE, "correct horse battery staple")
    signed = tmp_path / "signed"
    fit_job([data], signed, CONFIG)
    assert "signature" in json.loads((signed / INTEGRITY_FILE).read_text())
    read_model_dir(signed)  # the right key

    monkeypatch.setenv(KEY_VARIABLE, "another key")
    with pytest.raises(ModelFileError, match="signature does not match"):
        read_model_dir(signed)
    monkeypatch.delenv(KEY_VARIABLE)
    with pytest.raises(ModelFileError, match=f"is signed, but {KEY_VARIABLE} is not set"):
        read_model_dir(signed)

    # Tampering, then rewriting every checksum without the key, is refused under the key.
    from vae_anomaly.integrity import seal_directory

    edit_json(signed / "detector" / "manifest.json", lambda d: d["fitted"].update(offset_=-1e9))
    seal_directory(signed / "detector")
    seal_directory(signed)
    monkeypatch.setenv(KEY_VARIABLE, "correct horse battery staple")
    with pytest.raises(ModelFileError, match=r"is not signed, and .* is set"):
        read_model_dir(signed)


# ----------------------------------------------------------------------------- item 5

HOLDER = textwrap.dedent(
    """
    import sys, time
    from vae_anomaly.locks import JobLock
    with JobLock(sys.argv[1], "--output"):
        print("locked", flush=True)
        time.sleep(120)
    """
)


def test_a_second_job_on_the_same_output_is_refused_and_a_killed_holder_is_taken_over(
    model_dir, data, tmp_path, capsys
):
    out = tmp_path / "out"
    out.mkdir()
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(out / "scored.csv")],
        stdout=subprocess.PIPE,
        text=True,
        env=os.environ | {"PYTHONPATH": str(Path(__file__).resolve().parents[1])},
    )
    try:
        assert holder.stdout.readline().strip() == "locked"
        parts = out / ".scored.csv.parts"
        parts.mkdir()
        (parts / "job.json").write_text("{}")  # the first job's work in progress
        status = main(score_args(model_dir, data, out))
        message = capsys.readouterr().err
        assert status == ExitStatus.FAILED
        assert f"process {holder.pid} on host {socket.gethostname()}" in message
        assert (parts / "job.json").read_text() == "{}"  # untouched
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
        holder.stdout.close()
    assert lock_path(out / "scored.csv").exists()  # left behind by the killed job: stale
    assert main(score_args(model_dir, data, out)) in (ExitStatus.OK, ExitStatus.ALERTS)
    assert not lock_path(out / "scored.csv").exists()


def test_a_lock_held_in_this_process_refuses_a_second_holder(tmp_path):
    with JobLock(tmp_path / "o.csv", "--output"):
        with pytest.raises(JobLockedError, match=f"process {os.getpid()}"):
            JobLock(tmp_path / "o.csv", "--output").__enter__()
    assert not lock_path(tmp_path / "o.csv").exists()


# ----------------------------------------------------------------------------- item 6


def test_resume_refuses_an_input_edited_in_place_with_size_and_mtime_kept(
    model_dir, tmp_path, monkeypatch
):
    source = write_table(tmp_path / "new.csv", n=200, seed=3)
    out = tmp_path / "out"
    calls = []
    real = score_job_module.commit_chunk

    def dies_after_two(scored):
        if len(calls) == 2:
            raise KeyboardInterrupt  # the job is killed after committing two chunks
        calls.append(scored)
        return real(scored)

    monkeypatch.setattr(score_job_module, "commit_chunk", dies_after_two)
    args = (model_dir, [source], out / "o.csv", out / "r.csv", out / "r.json")
    with pytest.raises(KeyboardInterrupt):
        score_job(*args, config=CONFIG, progress=False)
    monkeypatch.setattr(score_job_module, "commit_chunk", real)

    status = source.stat()
    text = source.read_text()
    edited = text.replace(text.splitlines()[5], text.splitlines()[5][::-1].replace("-", "9"), 1)
    edited = edited[: len(text)].ljust(len(text), "0")  # the same size
    source.write_text(edited)
    os.utime(source, ns=(status.st_atime_ns, status.st_mtime_ns))  # the same mtime
    assert source.stat().st_size == status.st_size
    with pytest.raises(ValueError, match=r"--resume: .* \(inputs changed"):
        score_job(*args, config=CONFIG, resume=True, progress=False)


# ----------------------------------------------------------------------------- item 14


def test_a_huge_line_is_capped_in_the_rejects_with_its_length(model_dir, data, tmp_path):
    source = tmp_path / "huge.csv"
    cell = "x" * 2_000_000
    source.write_text(f"a,b,c\n1,2,3\n{cell},2,3\n")
    _, _ = score_job(
        model_dir,
        [source],
        tmp_path / "o.csv",
        tmp_path / "r.csv",
        tmp_path / "r.json",
        progress=False,
    )
    rejects = pd.read_csv(tmp_path / "r.csv")
    assert rejects["line"].tolist() == [3]
    assert rejects["raw_length"].tolist() == [len(cell) + 4]
    assert len(rejects["raw_line"][0]) == MAX_RAW_CHARS
    assert len(rejects["reason"][0]) <= MAX_REASON_CHARS
    assert (tmp_path / "r.csv").stat().st_size < 5_000


# ----------------------------------------------------------------------------- item 9


def _strict(text: str):
    def refuse(constant):
        raise ValueError(f"not JSON: {constant}")

    return json.loads(text, parse_constant=refuse)


def test_values_that_overflow_are_rejected_and_every_json_output_is_strict(
    model_dir, data, tmp_path
):
    source = tmp_path / "new.csv"
    lines = data.read_text().splitlines()
    source.write_text("\n".join([*lines[:40], "1e308,2,3", "1,-1e308,3", *lines[40:60]]) + "\n")
    out = tmp_path / "out"
    report, _ = score_job(
        model_dir, [source], out / "o.csv", out / "r.csv", out / "r.json", out / "a.jsonl",
        progress=False,
    )  # fmt: skip
    rejects = pd.read_csv(out / "r.csv")
    assert rejects["line"].tolist() == [41, 42]
    assert rejects["reason"].str.startswith("value out of range").all()
    assert report["rows_scored"] == 59 and report["rows_rejected"] == 2
    _strict((out / "r.json").read_text())
    for line in (out / "a.jsonl").read_text().splitlines():
        _strict(line)
    scores = pd.read_csv(out / "o.csv")["anomaly_score"]
    assert np.isfinite(scores).all()
    for path in model_dir.rglob("*.json"):
        _strict(path.read_text())


# ----------------------------------------------------------------------------- item 12


@pytest.mark.slow
def test_a_diverging_fit_names_the_file_and_the_column(tmp_path, capfd):
    from vae_anomaly.errors import TrainingDivergedError

    rng = np.random.default_rng(3)
    source = tmp_path / "wild.csv"
    frame = pd.DataFrame({"calm": rng.normal(size=200), "wild": rng.normal(size=200) * 1e30})
    frame.to_csv(source, index=False)
    config = JobConfig(
        model={"epochs": 3, "hidden_units": (8,), "learning_rate": 1e12, "scaling": None},
        calibration_fraction=0.0,
    )
    capfd.readouterr()
    with pytest.raises(TrainingDivergedError) as error:
        fit_job([source], tmp_path / "m", config)
    assert str(error.value).startswith(f"{source}: Training diverged")
    assert "most extreme scaled values are in column 'wild'" in str(error.value)
    captured = capfd.readouterr()
    assert "Invalid loss" not in captured.out + captured.err
    assert not (tmp_path / "m").exists()


# ----------------------------------------------------------------------------- issue 15


@pytest.mark.slow  # fits end to end; the default suite's 5-minute budget
def test_a_categorical_latent_goes_through_the_batch_jobs(data, tmp_path, eager_functions):
    config = JobConfig(
        model={"epochs": 2, "hidden_units": (8,), "latent": "categorical", "latent_dim": 2,
               "latent_categories": 3, "score_method": "exact", "random_state": 0},
        calibration_fraction=0.4,
    )  # fmt: skip
    fit_job([data], tmp_path / "m", config)
    detector, _, _ = read_model_dir(tmp_path / "m")
    assert (detector.latent, detector.score_method) == ("categorical", "exact")
    report, _ = score_job(
        tmp_path / "m", [data], tmp_path / "o.csv", tmp_path / "r.csv", tmp_path / "r.json",
        progress=False,
    )  # fmt: skip
    assert report["rows_scored"] == 300 and report["score_method"] == "exact"
    assert np.isfinite(pd.read_csv(tmp_path / "o.csv")["anomaly_score"]).all()


def test_a_job_removes_the_temporaries_a_killed_job_left_beside_its_outputs(tmp_path):
    from vae_anomaly.jobs.paths import guarded

    output, other = tmp_path / "out.csv", tmp_path / "other.csv"
    left = [tmp_path / ".out.csv.tmp-vae0123abcd", tmp_path / ".out.csv.tmp-vaefedcba98"]
    kept = [
        tmp_path / ".other.csv.tmp-vae0123abcd",  # not an output of this job
        tmp_path / ".out.csv.tmp-notmine",  # not a name atomic_path writes
        tmp_path / ".out.csv.tmp-20261129",  # a user's, dated: no tag
        tmp_path / ".xout.csv.tmp-vae0123abcd",
    ]
    for path in [*left, *kept]:
        path.write_text("half")
    with guarded([], [("--output", output), ("--alerts", None)]):
        assert not any(path.exists() for path in left)
    assert all(path.exists() for path in kept) and not other.exists()


def test_a_model_directory_is_swapped_in_one_step_where_the_system_can(tmp_path, monkeypatch):
    import vae_anomaly.atomic as atomic

    target, staging = tmp_path / "model", tmp_path / ".model.tmp-new"
    for folder, text in ((target, "old"), (staging, "new")):
        folder.mkdir()
        (folder / "manifest.json").write_text(text)
    probe = [tmp_path / "probe_a", tmp_path / "probe_b"]
    for folder in probe:
        folder.mkdir()
    if not atomic._exchange(*probe):
        pytest.skip("no renameat2(RENAME_EXCHANGE) here: the two-rename path is tested below")
    renames = []
    monkeypatch.setattr(Path, "rename", lambda self, to: renames.append(self) or to)
    atomic.move_into_place(staging, target)  # renameat2(RENAME_EXCHANGE) on Linux
    assert renames == []  # no moment without a model: one exchange, no rename
    assert (target / "manifest.json").read_text() == "new" and not staging.exists()


def test_the_next_fit_restores_a_model_a_killed_replacement_left_aside(tmp_path, monkeypatch):
    """Without the exchange, the old model is renamed aside first: a kill before the new
    one is renamed in leaves no model, which the next fit's recovery renames back."""
    import vae_anomaly.atomic as atomic
    from vae_anomaly.jobs.model_dir import staged_directory

    target = tmp_path / "model"
    with staged_directory(target, "schema.json") as staging:
        (staging / "schema.json").write_text("old")
    monkeypatch.setattr(atomic, "_exchange", lambda first, second: False)
    real_rename, calls = Path.rename, []

    def killed_after_the_first(self, to):
        calls.append(self)
        if len(calls) == 2:
            raise KeyboardInterrupt  # the process dies between the two renames
        return real_rename(self, to)

    monkeypatch.setattr(Path, "rename", killed_after_the_first)
    with pytest.raises(KeyboardInterrupt), staged_directory(target, "schema.json") as staging:
        (staging / "schema.json").write_text("new")
    monkeypatch.setattr(Path, "rename", real_rename)
    assert not target.exists() and list(tmp_path.glob(".model.old-*"))
    (tmp_path / ".model.tmp-vaek1ll3d_x").mkdir()  # a staging folder of a fit killed earlier
    users = (".model.old-backup", ".model.old-20261129", ".model.tmp-20261129", ".model.tmp-mine")
    for yours in users:  # folders we never name so: no "vae" tag
        (tmp_path / yours).mkdir()
        (tmp_path / yours / "notes.txt").write_text("mine")
    atomic.recover_directory(target)
    assert (target / "schema.json").read_text() == "old"
    left = sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".model."))
    assert left == [
        ".model.old-20261129",
        ".model.old-backup",
        ".model.tmp-20261129",
        ".model.tmp-mine",
    ]


# ----------------------------------------------------------------------------- helper-36


def _score_files(model_dir, inputs, out: Path, **kwargs):
    """score_job into ``out``; (output rows, {line: reason} of the rejects)."""
    out.mkdir(parents=True, exist_ok=True)
    score_job(model_dir, inputs, out / "s.csv", out / "r.csv", out / "p.json", **kwargs)
    rejects = pd.read_csv(out / "r.csv", dtype=str, keep_default_na=False)
    reasons = dict(zip(rejects["line"].astype(int), rejects["reason"], strict=True))
    return pd.read_csv(out / "s.csv"), reasons


def test_a_row_of_empty_cells_is_rejected_not_scored_as_the_most_normal(model_dir, tmp_path):
    path = tmp_path / "commas.csv"
    path.write_text("a,b,c\n0.1,0.2,0.3\n,,\n , NA,\n")
    scored, rejects = _score_files(model_dir, [path], tmp_path / "out")
    assert scored["source_line"].tolist() == [2]
    reason = "no value in any modelled column (every one is empty or missing)"
    assert rejects == {3: reason, 4: reason}


def test_categorical_cells_are_read_without_the_spaces_around_them(machines_model, tmp_path):
    model_dir, _ = machines_model
    rows = (ROOT / "sample_data" / "machines_new.csv").read_text().splitlines()[:21]
    spaced = [rows[0]] + [", ".join(line.split(",")) for line in rows[1:]]
    (tmp_path / "plain.csv").write_text("\n".join(rows) + "\n")
    (tmp_path / "spaced.csv").write_text("\n".join(spaced) + "\n")
    plain, _ = _score_files(model_dir, [tmp_path / "plain.csv"], tmp_path / "p")
    spaced_scores, _ = _score_files(model_dir, [tmp_path / "spaced.csv"], tmp_path / "s")
    np.testing.assert_array_equal(spaced_scores["anomaly_score"], plain["anomaly_score"])
    report = json.loads((tmp_path / "s" / "p.json").read_text())
    assert not report.get("unseen_categories")


def test_a_file_named_with_glob_characters_is_that_file(model_dir, data, tmp_path):
    # "export [1].csv" was read as a pattern: refused, or another file ("export 1.csv")
    # scored in its place.
    shutil.copy(data, tmp_path / "export [1].csv")
    write_table(tmp_path / "export 1.csv", n=7, seed=5)
    scored, _ = _score_files(model_dir, [tmp_path / "export [1].csv"], tmp_path / "out")
    assert set(scored["source_file"]) == {str(tmp_path / "export [1].csv")}
    assert len(scored) == 300


def test_inputs_that_are_not_files_or_not_utf8_names_are_named_for_what_they_are(
    model_dir, data, tmp_path
):
    os.mkfifo(tmp_path / "fifo.csv")
    (tmp_path / "folder.csv").mkdir()
    odd = os.fsdecode(bytes(tmp_path) + b"/caf\xe9.csv")
    shutil.copy(data, odd)
    for name, message in [
        ("folder.csv", r"folder\.csv: is a folder; the tabular jobs read CSV files"),
        ("fifo.csv", r"fifo\.csv: is not a regular file \(a FIFO, socket or device\)"),
    ]:
        with pytest.raises(FileNotFoundError, match=message):
            score_job(model_dir, [tmp_path / name], tmp_path / "s.csv", tmp_path / "r.csv",
                      tmp_path / "p.json")  # fmt: skip
    with pytest.raises(ValueError, match=r"caf\\xe9\.csv: the file name is not UTF-8"):
        score_job(model_dir, [odd], tmp_path / "s.csv", tmp_path / "r.csv", tmp_path / "p.json")
    assert not (tmp_path / "s.csv").exists()


def test_a_quoted_field_longer_than_the_csv_modules_default_limit_is_read(model_dir, tmp_path):
    table = tmp_path / "long.csv"
    table.write_text('a,b,c,note\n0.1,0.2,0.3,"' + "x, " * 60_000 + '"\n0.2,0.1,0.0,short\n')
    scored, rejects = _score_files(model_dir, [table], tmp_path / "out")
    assert rejects == {} and scored["source_line"].tolist() == [2, 3]


def test_a_passthrough_column_named_as_an_output_column_is_refused_at_fit(tmp_path):
    table = write_table(tmp_path / "t.csv")
    frame = pd.read_csv(table)
    frame["is_anomaly"] = 0  # a label column kept, whose name the score job writes
    frame.to_csv(table, index=False)
    config = CONFIG.with_overrides(roles={"is_anomaly": "passthrough"})
    with pytest.raises(ValueError, match=r"pass-through column\(s\) \['is_anomaly'\] have the"):
        fit_job([table], tmp_path / "m", config)
    assert not (tmp_path / "m").exists()


def test_an_alerts_path_of_another_suffix_is_refused_before_any_work(
    model_dir, data, tmp_path, capsys
):
    argv = score_args(model_dir, data, tmp_path, **{"--alerts": tmp_path / "alerts.txt"})
    assert main(argv) == ExitStatus.USAGE
    assert "--alerts" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []  # nothing scored, nothing written


def test_the_old_report_goes_before_the_first_output_is_replaced(
    model_dir, data, tmp_path, monkeypatch
):
    # Killed between the renames, a run left new scores beside the old run's report,
    # which a consumer reads as the mark of a finished run.
    out = tmp_path / "out"
    _score_files(model_dir, [data], out)
    before = (out / "s.csv").read_bytes()

    def killed(*args, **kwargs):
        raise KeyboardInterrupt  # as a job stopped while joining its outputs

    monkeypatch.setattr(score_job_module, "join", killed)
    with pytest.raises(KeyboardInterrupt):
        _score_files(model_dir, [data], out)
    assert not (out / "p.json").exists()
    assert (out / "s.csv").read_bytes() == before


def test_fit_refuses_an_input_inside_its_model_directory_as_a_usage_error(data, tmp_path, capsys):
    # It was refused with status 1 by the model directory's own check, after the inputs
    # were planned; the README's table gives paths that cannot work together status 2.
    (tmp_path / "fd").mkdir()
    shutil.copy(data, tmp_path / "fd" / "t.csv")
    argv = ["fit", "--input", str(tmp_path / "fd" / "t.csv"), "--model-dir", str(tmp_path / "fd")]
    assert main(argv) == ExitStatus.USAGE
    assert "lies inside the --model-dir folder" in capsys.readouterr().err
    assert sorted(p.name for p in (tmp_path / "fd").iterdir()) == ["t.csv"]


@pytest.mark.parametrize("chunk_rows", [2, 50])
def test_a_bare_quote_inside_an_unquoted_field_is_read_as_a_character(
    model_dir, tmp_path, chunk_rows
):
    # 'monitor,27",199': a measurement in inches, read by the csv module, pandas and both
    # of our readers. (A rule that rejected every line of odd quotes rejected it too.)
    table = tmp_path / "inches.csv"
    table.write_text('a,b,c,size\n0.1,0.2,0.3,27"\n0.3,0.2,0.1,"24"""\n')
    config = dataclasses.replace(saved_settings(model_dir), chunk_rows=chunk_rows)
    scored, rejects = _score_files(model_dir, [table], tmp_path / f"out{chunk_rows}", config=config)
    assert rejects == {} and scored["source_line"].tolist() == [2, 3]


@pytest.mark.parametrize(
    ("pattern", "flag", "output", "refused"),
    [
        ("data/**/*.png", "--heatmaps", "data/hm", True),  # its heat maps, next run
        ("data/**/*.csv", "--heatmaps", "data/hm", False),  # heat maps are not *.csv
        ("new/**/*.png", "--output", "new/scored.csv", False),  # glob would not match it
        ("data/*.csv", "--output", "data/.scored.csv", False),  # glob skips hidden names
        ("runs/*.csv", "--output", "runs/scored.csv", True),
        ("alias/*", "--heatmaps", "data/hm", True),  # through a linked folder
        ("d/*/*.csv", "--model-dir", "d/m", True),  # its fit_rejects.csv, next run
        ("d/*.csv", "--model-dir", "d/m", False),
    ],
)
def test_an_output_is_refused_exactly_where_an_input_glob_reaches_it(
    tmp_path, pattern, flag, output, refused
):
    from vae_anomaly.images.heatmaps import HEATMAP_SUFFIX
    from vae_anomaly.jobs.model_dir import model_dir_files
    from vae_anomaly.jobs.paths import check_outside_input_folders
    from vae_anomaly.tabular.saved import SCHEMA_FILE

    (tmp_path / "data").mkdir()
    (tmp_path / "alias").symlink_to(tmp_path / "data")
    # What the jobs name as written inside their output folders (fit, score-images).
    inside = {"--model-dir": model_dir_files(SCHEMA_FILE), "--heatmaps": ("a" + HEATMAP_SUFFIX,)}
    check = lambda: check_outside_input_folders(  # noqa: E731
        [], [(flag, str(tmp_path / output))], [str(tmp_path / pattern)], inside
    )
    if refused:
        with pytest.raises(UsageError, match="is reached by the input glob"):
            check()
    else:
        check()


@pytest.mark.slow  # two fits; the default suite's 5-minute budget
@pytest.mark.parametrize("in_memory_mb", [16, 0], ids=["in-memory", "streamed"])
def test_fit_reads_categorical_levels_without_the_spaces_around_them(tmp_path, in_memory_mb):
    rng = np.random.default_rng(3)
    kinds = rng.choice([" pump", "pump ", "pump", "fan", " fan "], size=300)
    frame = pd.DataFrame({"a": rng.normal(size=300), "kind": kinds})
    frame.to_csv(tmp_path / "t.csv", index=False)
    config = dataclasses.replace(CONFIG, in_memory_mb=in_memory_mb)
    with eagerly():
        fit_job([tmp_path / "t.csv"], tmp_path / "m", config)
    _, schema, _ = read_model_dir(tmp_path / "m")
    (kind,) = schema.by_role("categorical")
    assert sorted(kind.levels) == ["fan", "pump"]
