"""Images, hardened (issue 14, items 1 and 8): heat maps stay in their folder whatever
the input names hold."""

import csv
import dataclasses
import hashlib
import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from vae_anomaly.images import heatmaps
from vae_anomaly.images.config import ImageJobConfig
from vae_anomaly.images.jobs import fit_images, saved_image_settings, score_images

SIZE = 8
# The name: legal on Linux; the old naming turned it into x/../../../../evil.png.
NESTED_ESCAPE = r"x\....\\....\\....\\....\\evil.png"
LONG_NAME = "n" * 240 + ".png"  # 244 characters: with ".heatmap.png", over NAME_MAX (255)
HEATMAP_NAME = re.compile(r"[A-Za-z0-9._-]{0,100}-[0-9a-f]{12}\.heatmap\.png")


def _save_png(path: Path, seed: int) -> None:
    pixels = np.random.default_rng(seed).integers(0, 60, size=(SIZE, SIZE), dtype=np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels).save(path, format="PNG")


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    """A tiny image model (40 noise images of 8x8, 2 epochs): these tests check names and
    rejects, not detection."""
    root = tmp_path_factory.mktemp("hardening")
    for i in range(40):
        _save_png(root / "train" / f"{i:02d}.png", seed=i)
    config = ImageJobConfig(
        normalize="none",
        model={"random_state": 0, "epochs": 2, "latent_dim": 2, "hidden_units": (8,)},
        fpr=0.2,
        calibration_fraction=0.25,
    )
    fit_images([root / "train"], root / "model", config)
    return root / "model"


def _score(model_dir, inputs, out: Path, heatmap_dir="maps", which="all"):
    """Run score_images into ``out``; (report, output rows, {path: reject reason})."""
    config = dataclasses.replace(saved_image_settings(model_dir), heatmaps=which)
    report, _ = score_images(
        model_dir,
        inputs,
        out / "scored.csv",
        out / "rejects.csv",
        out / "report.json",
        heatmaps=None if heatmap_dir is None else out / heatmap_dir,
        config=config,
    )
    with open(out / "scored.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    with open(out / "rejects.csv", newline="") as handle:
        rejects = {row["path"]: row["reason"] for row in csv.DictReader(handle)}
    return report, rows, rejects


def _check_heatmap_column(rows, folder: Path) -> None:
    """The heatmap column names exactly the files in the folder, one per named row."""
    assert [p.name for p in folder.iterdir() if not p.is_file()] == []  # flat: no sub-folders
    named = [row["heatmap"] for row in rows if row["heatmap"]]
    assert len(set(named)) == len(named)
    assert sorted(p.name for p in folder.iterdir()) == sorted(named)


# ----------------------------------------------------------------------------- names


def test_heatmap_name_is_one_short_safe_component_with_the_hash_of_the_id():
    for item in [
        f"in/sub/{NESTED_ESCAPE}",
        "/etc/cron.d/evil.png",
        "../../../etc/passwd",
        "in/\\etc\\evil.png",
        "C:\\Windows\\evil.png",
        f"in/{LONG_NAME}",
        "in/...hidden",
        "in/arrays.npz:../k#3",
        "in/pärt 1 ★.png",
    ]:
        name = heatmaps.heatmap_name(item)
        assert HEATMAP_NAME.fullmatch(name), (item, name)
        assert not name.startswith(".") and len(name) <= 125, (item, name)
        digest = hashlib.sha256(item.encode()).hexdigest()[:12]
        assert name.endswith(f"-{digest}{heatmaps.HEATMAP_SUFFIX}"), item
    assert heatmaps.heatmap_name("in/a b#1.png") == (
        f"a_b_1.png-{hashlib.sha256(b'in/a b#1.png').hexdigest()[:12]}.heatmap.png"
    )
    assert heatmaps.heatmap_name(f"in/{LONG_NAME}").startswith("n" * 100 + "-")


def test_heatmap_path_refuses_a_name_that_resolves_outside_the_folder(tmp_path):
    folder = tmp_path / "maps"
    folder.mkdir()
    (tmp_path / "elsewhere").mkdir()
    (folder / "link").symlink_to(tmp_path / "elsewhere")
    assert heatmaps.heatmap_path(folder, "a.heatmap.png") == folder.resolve() / "a.heatmap.png"
    for name in ["../a.heatmap.png", "/etc/a.heatmap.png", "link/a.heatmap.png", "."]:
        with pytest.raises(ValueError, match="outside the heat-map folder"):
            heatmaps.heatmap_path(folder, name)


# ----------------------------------------------------------------------------- the job


def test_a_nested_name_of_dots_and_backslashes_cannot_leave_the_heatmap_folder(
    model_dir, tmp_path, monkeypatch
):
    monkeypatch.chdir(tmp_path)  # relative paths, as a user types them
    _save_png(Path("in") / "sub" / NESTED_ESCAPE, seed=100)
    _save_png(Path("in") / "sub" / "good.png", seed=101)
    out = Path("out")
    _, rows, rejects = _score(model_dir, [Path("in")], out)
    assert rejects == {} and len(rows) == 2
    written = {p.relative_to(tmp_path) for p in tmp_path.rglob("*") if p.is_file()}
    outputs = {out / "scored.csv", out / "rejects.csv", out / "report.json"}
    assert {p for p in written if p.parts[0] != "in" and p.parent != out / "maps"} == outputs
    _check_heatmap_column(rows, out / "maps")
    (row,) = [r for r in rows if r["path"].endswith("evil.png")]
    assert row["heatmap"] == heatmaps.heatmap_name(row["path"])


def test_absolute_looking_and_dotted_names_get_flat_heatmaps_in_the_folder(model_dir, tmp_path):
    names = ["\\etc\\cron.d\\evil.png", "C:\\Windows\\evil.png", "a..b.png", "-rf.png"]
    for seed, name in enumerate(names):
        _save_png(tmp_path / "in" / "deep" / name, seed=200 + seed)
    report, rows, _ = _score(model_dir, [tmp_path / "in"], tmp_path / "out")
    assert report["heatmaps"] == len(rows) == len(names)
    _check_heatmap_column(rows, tmp_path / "out" / "maps")
    for row in rows:
        assert HEATMAP_NAME.fullmatch(row["heatmap"]), row


def test_a_244_character_file_name_gets_a_shortened_heatmap_name(model_dir, tmp_path):
    assert len(LONG_NAME) == 244
    _save_png(tmp_path / "in" / LONG_NAME, seed=300)
    report, rows, rejects = _score(model_dir, [tmp_path / "in"], tmp_path / "out")
    assert rejects == {} and report["heatmaps"] == 1
    _check_heatmap_column(rows, tmp_path / "out" / "maps")
    assert rows[0]["heatmap"].startswith("n" * 100 + "-")


def test_names_that_differ_only_in_sanitised_characters_do_not_collide(model_dir, tmp_path):
    names = ["part 1.png", "part_1.png", "part:1.png", "part#1.png", "part?1.png"]
    for seed, name in enumerate(names):
        _save_png(tmp_path / "in" / name, seed=400 + seed)
    report, rows, _ = _score(model_dir, [tmp_path / "in"], tmp_path / "out")
    assert report["heatmaps"] == len(rows) == len(names)
    maps = [p for p in (tmp_path / "out" / "maps").rglob("*") if p.is_file()]
    assert len(maps) == len(names)  # none overwritten
    _check_heatmap_column(rows, tmp_path / "out" / "maps")
    assert {row["heatmap"].split("-")[0] for row in rows} == {"part_1.png"}


def test_the_heatmap_column_is_empty_where_no_heatmap_was_drawn(model_dir, tmp_path):
    _save_png(tmp_path / "in" / "normal.png", seed=500)
    Image.fromarray(np.full((SIZE, SIZE), 255, np.uint8)).save(tmp_path / "in" / "white.png")
    report, rows, _ = _score(model_dir, [tmp_path / "in"], tmp_path / "out", which="flagged")
    assert report["anomalies"] >= 1 and report["heatmaps"] == report["anomalies"]
    for row in rows:
        assert bool(row["heatmap"]) == (row["is_anomaly"] == "1"), row
    _check_heatmap_column(rows, tmp_path / "out" / "maps")
    _, rows, _ = _score(model_dir, [tmp_path / "in"], tmp_path / "out2", heatmap_dir=None)
    assert list(rows[0]) == ["path", "anomaly_score", "p_value", "is_anomaly", "heatmap"]
    assert [row["heatmap"] for row in rows] == ["", ""]
