"""Image folder scoring: peak memory stays flat as the folder grows; images per second.

    python benchmarks/image_stream.py --out benchmarks/results/image_stream --files 2000 100000
    python benchmarks/image_stream.py --quick --out /tmp/image_stream               # smoke test

Fits the image job on the bundled washers (``sample_data/parts/train``, few epochs: the
scoring cost does not depend on them), writes folders of the given numbers of files
(the 68 files of ``sample_data/parts/new`` repeated, a truncated PNG and a text file
among each 68, in subfolders of 1,000), and runs ``score-images`` on each, every run in a
fresh process so its peak resident memory (VmHWM) is its own. ``images_per_s`` is files
read per second, leaving out the start-up (importing TensorFlow; loading the model is
counted). The peer, in the same run,
is what a script without batching does: decode every image of the folder into one
array (reading only, no scoring), whose memory grows with the folder. ``ours, loading
only`` runs the job's loader (``image_batches``) without the model: the same work as the
peer, batched, so the two rates compare the loaders. Writes OUT/runs.csv and
OUT/table.md.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))
from isolated import peak_rss_mb, run_isolated, write_results  # noqa: E402

SAMPLE_NEW = ROOT / "sample_data" / "parts" / "new"
FILES_PER_FOLDER = 1000
LOADING_ONLY = "ours, loading only"


def write_folder(folder: Path, n_files: int) -> None:
    """``n_files`` files: the sample's new files repeated, FILES_PER_FOLDER per subfolder."""
    sources = sorted(p for p in SAMPLE_NEW.iterdir() if p.is_file())
    contents = [(p.suffix, p.read_bytes()) for p in sources]
    for i in range(n_files):
        suffix, data = contents[i % len(contents)]
        sub = folder / f"{i // FILES_PER_FOLDER:05d}"
        if i % FILES_PER_FOLDER == 0:
            sub.mkdir(parents=True)
        (sub / f"{i:07d}{suffix}").write_bytes(data)


def worker(task: dict) -> None:
    """Run one measurement in this (fresh) process and print its JSON result."""
    started = time.perf_counter()
    if task["kind"] == "ours":
        from vae_anomaly.images.jobs import score_images

        startup = time.perf_counter() - started  # the import; the model loads inside
        started = time.perf_counter()
        out = Path(task["out"])
        report, _ = score_images(
            task["model_dir"],
            [task["folder"]],
            out / "scored.csv",
            out / "rejects.csv",
            out / "report.json",
            progress=False,
        )
        extra = {
            "images_scored": report["images_scored"],
            "images_rejected": report["images_rejected"],
        }
        images = report["images_read"]
    elif task["kind"] == LOADING_ONLY:
        from vae_anomaly.images.config import ImageJobConfig
        from vae_anomaly.images.jobs import IMAGES_FILE, read_image_transform
        from vae_anomaly.images.loader import image_batches, iter_image_inputs

        startup = time.perf_counter() - started
        started = time.perf_counter()
        transform, document = read_image_transform(task["model_dir"])  # no model loaded
        saved = Path(task["model_dir"]) / IMAGES_FILE
        batch_size = ImageJobConfig.from_saved(document, saved).batch_size
        images = rejected = 0
        for batch in image_batches(iter_image_inputs([task["folder"]]), transform, batch_size):
            images += len(batch.ids) + len(batch.rejects)
            rejected += len(batch.rejects)
        extra = {"images_scored": None, "images_rejected": rejected}
    else:  # the peer: every image of the folder decoded into one array
        import numpy as np
        from PIL import Image

        startup = time.perf_counter() - started
        started = time.perf_counter()
        decoded, images = [], 0
        for path in sorted(p for p in Path(task["folder"]).rglob("*") if p.is_file()):
            images += 1
            try:
                with Image.open(path) as image:
                    decoded.append(np.asarray(image.convert("L"), np.float32) / 255.0)
            except OSError:
                continue
        pixels = np.stack(decoded)
        # Not scored; "rejected": the files it could not decode and skipped.
        extra = {"images_scored": None, "images_rejected": images - len(pixels)}
    seconds = time.perf_counter() - started
    result = {
        "images": images,
        "seconds": seconds,
        "startup_seconds": startup,
        "images_per_s": images / seconds,
        "peak_rss_mb": peak_rss_mb(),
        **extra,
    }
    print(json.dumps(result))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/image_stream"))
    parser.add_argument("--files", type=int, nargs="+", default=[2000, 100_000])
    parser.add_argument("--work", type=Path, help="folder for the generated files (default: temp)")
    parser.add_argument("--quick", action="store_true", help="small folders, few epochs")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        worker(json.loads(args.worker))
        return 0
    from vae_anomaly.images.config import load_image_config
    from vae_anomaly.images.jobs import fit_images

    sizes = [100, 300] if args.quick else args.files
    with tempfile.TemporaryDirectory(dir=args.work) as folder:
        work = Path(folder)
        config = load_image_config(ROOT / "pipelines" / "images.toml")
        config = config.with_overrides(model={"epochs": 2 if args.quick else 20})
        fit_images([ROOT / "sample_data" / "parts" / "train"], work / "model", config)
        runs = []
        for n_files in sizes:
            images = work / f"images_{n_files}"
            write_folder(images, n_files)
            for kind in ("ours", LOADING_ONLY, "decode all into one array"):
                (work / "out").mkdir(exist_ok=True)
                task = {
                    "kind": kind,
                    "folder": str(images),
                    "model_dir": str(work / "model"),
                    "out": str(work / "out"),
                }
                result = {**run_isolated(__file__, task), "files": n_files}
                runs.append(result)
                print(
                    f"{kind}, {n_files} files: {result['images']} images, "
                    f"{result['images_per_s']:.0f} images/s, peak {result['peak_rss_mb']:.0f} MB",
                    file=sys.stderr,
                    flush=True,
                )
    columns = ["kind", "files", "images", "images_scored", "images_rejected"]
    columns += ["startup_seconds", "seconds", "images_per_s", "peak_rss_mb"]
    write_results(runs, columns, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
