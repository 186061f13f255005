"""Sample images: washers (a bright ring on a dark plate), some with planted defects.

    sample_data/parts/train/     500 normal washers (PNG), to fit on (100 are held out
                                 to calibrate the threshold at fpr = 0.01)
    sample_data/parts/new/       60 normal (50 PNG, 10 JPEG), 6 defective (2 each of
                                 scratch, spot, notch), a truncated PNG and a text file
    sample_data/parts/new_labels.csv   path, defect ("" for normal, "unreadable" for the
                                 two files that are not images)

Normal washers vary in position (+-1.5 px), radii, brightness and lighting; defects:

    scratch  a dark line, 2.4 pixels wide, across the ring
    spot     a bright blob, 5 pixels across, on the plate outside the ring
    notch    a 60-degree wedge missing from the ring

``render_part`` returns the image and the boolean mask of its defect (for tests).
"""

from __future__ import annotations

import csv
import re
from pathlib import Path

import numpy as np

SIZE = 32
DEFECTS = ("scratch", "spot", "notch")


def _smooth_step(distance: np.ndarray) -> np.ndarray:
    """1 inside (distance < 0), 0 outside, linear over one pixel: anti-aliased edges."""
    return np.clip(0.5 - distance, 0.0, 1.0)


def render_part(rng: np.random.Generator, defect: str | None = None):
    """(image [SIZE, SIZE] float in [0, 1], defect mask [SIZE, SIZE] bool)."""
    rows, cols = np.mgrid[0:SIZE, 0:SIZE].astype(np.float64) + 0.5
    cy, cx = SIZE / 2 + rng.uniform(-1.5, 1.5, size=2)
    outer, inner = rng.uniform(10.0, 11.5), rng.uniform(4.5, 5.5)
    radius = np.hypot(rows - cy, cols - cx)
    ring = _smooth_step(radius - outer) * _smooth_step(inner - radius)
    plate, metal = rng.uniform(0.08, 0.14), rng.uniform(0.7, 0.82)
    light = 1.0 + 0.08 * ((cols - SIZE / 2) / SIZE) * rng.choice([-1, 1])
    image = plate + (metal - plate) * ring * light
    mask = np.zeros((SIZE, SIZE), dtype=bool)
    if defect == "scratch":
        angle = rng.uniform(0, np.pi)
        offset = rng.uniform(-3, 3)
        distance = np.abs((rows - cy) * np.cos(angle) - (cols - cx) * np.sin(angle) - offset)
        line = _smooth_step(distance - 1.2) * (radius < outer + 0.5)
        image = image * (1 - line) + 0.15 * line
        mask = line > 0.25
    elif defect == "spot":
        angle = rng.uniform(0, 2 * np.pi)
        distance_from_centre = min(outer + 3.0, SIZE / 2 - 3.0)
        sy, sx = (
            cy + distance_from_centre * np.sin(angle),
            cx + distance_from_centre * np.cos(angle),
        )
        blob = _smooth_step(np.hypot(rows - sy, cols - sx) - 2.5)
        image = image * (1 - blob) + 0.95 * blob
        mask = blob > 0.25
    elif defect == "notch":
        start = rng.uniform(0, 2 * np.pi)
        angle = np.mod(np.arctan2(rows - cy, cols - cx) - start, 2 * np.pi)
        wedge = (angle < np.deg2rad(60)) & (ring > 0)
        image = np.where(wedge, plate, image)
        mask = wedge
    elif defect is not None:
        raise ValueError(f"defect must be one of {DEFECTS} or None, got {defect!r}.")
    image = image + rng.normal(0.0, 0.015, size=image.shape)
    return np.clip(image, 0.0, 1.0), mask


def make_parts(n: int, defect: str | None = None, seed: int = 0):
    """n images [n, SIZE, SIZE] and their defect masks, reproducible from ``seed``."""
    rng = np.random.default_rng(seed)
    pairs = [render_part(rng, defect) for _ in range(n)]
    return np.stack([p[0] for p in pairs]), np.stack([p[1] for p in pairs])


def _save(image: np.ndarray, path: Path, **options) -> None:
    from PIL import Image

    Image.fromarray((255 * image + 0.5).astype(np.uint8)).save(path, **options)


# The files write_parts writes into parts/train and parts/new.
_OURS = re.compile(r"washer_[a-z0-9_]+\.(png|jpg)|notes\.txt")


def _listing(directory: Path) -> list[Path]:
    return sorted(directory.iterdir()) if directory.is_dir() else []


def check_parts_folders(output_dir) -> None:
    """ValueError if ``output_dir/parts/train`` or ``parts/new`` holds a file that
    ``write_parts`` does not write: it empties those folders of an earlier sample set."""
    for directory in (Path(output_dir) / "parts" / "train", Path(output_dir) / "parts" / "new"):
        foreign = [p for p in _listing(directory) if not _OURS.fullmatch(p.name)]
        if foreign:
            raise ValueError(
                f"{directory} holds {foreign[0]}, which make-sample-data does not write; it "
                "replaces the sample images there, so choose another --output-dir."
            )


def write_parts(
    output_dir, n_train: int = 500, n_new: int = 60, n_per_defect: int = 2
) -> list[Path]:
    """Write the sample image set under ``output_dir/parts``; returns the paths written."""
    check_parts_folders(output_dir)  # before anything is removed
    root = Path(output_dir) / "parts"
    train_dir, new_dir = root / "train", root / "new"
    for directory in (train_dir, new_dir):
        directory.mkdir(parents=True, exist_ok=True)
        for old in directory.iterdir():  # an earlier sample set's images
            old.unlink()
    train, _ = make_parts(n_train, seed=1)
    for i, image in enumerate(train):
        _save(image, train_dir / f"washer_{i:04d}.png")
    labels = []
    normal, _ = make_parts(n_new, seed=2)
    for i, image in enumerate(normal):
        if i % 6 == 5:  # every sixth new image as JPEG
            name = f"washer_{i:03d}.jpg"
            _save(image, new_dir / name, quality=95)
        else:
            name = f"washer_{i:03d}.png"
            _save(image, new_dir / name)
        labels.append((name, ""))
    for k, defect in enumerate(DEFECTS):
        images, _ = make_parts(n_per_defect, defect=defect, seed=10 + k)
        for j, image in enumerate(images):
            name = f"washer_{defect}_{j}.png"
            _save(image, new_dir / name)
            labels.append((name, defect))
    whole = (new_dir / "washer_000.png").read_bytes()
    (new_dir / "washer_truncated.png").write_bytes(whole[: len(whole) // 2])
    (new_dir / "notes.txt").write_text("Shift notes: camera 2 was cleaned at 06:00.\n")
    labels += [("washer_truncated.png", "unreadable"), ("notes.txt", "unreadable")]
    with open(root / "new_labels.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(("path", "defect"))
        writer.writerows((str(new_dir / name), defect) for name, defect in labels)
    return [train_dir, new_dir, root / "new_labels.csv"]
