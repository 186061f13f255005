"""Files of a saved detector: a directory holding the Keras model and a JSON manifest.

    DIR/model.keras     Keras native format, loaded with ``safe_mode=True``
    DIR/manifest.json   format name and version, package version, estimator parameters,
                        fitted attributes, and the SHA-256 and size of model.keras

The directory is written under a temporary name beside the target and renamed into
place, so a crash never leaves a half-written model behind. This module knows nothing of
the estimator: ``detector.py`` builds the manifest and rebuilds itself from it.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import uuid
import warnings
from contextlib import contextmanager
from pathlib import Path

import keras

from . import model as _model  # noqa: F401  (registers the custom Keras objects)
from ._version import __version__
from .errors import ModelFileError, VersionMismatchWarning

MODEL_FILE = "model.keras"
MANIFEST_FILE = "manifest.json"
FORMAT = "vae-anomaly-detector"
FORMAT_VERSION = 1


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _fsync_file(path: Path) -> None:
    with open(path, "rb") as handle:
        os.fsync(handle.fileno())


def write_bundle(path, model: keras.Model, manifest: dict) -> Path:
    """Write ``model`` and ``manifest`` as the directory ``path``, atomically.

    An existing directory is replaced only if it is a saved detector or empty.
    """
    target = Path(path)
    if target.exists() and not target.is_dir():
        raise FileExistsError(f"Cannot save a detector to {target}: it is a file.")
    if target.is_dir() and any(target.iterdir()) and not (target / MANIFEST_FILE).is_file():
        raise FileExistsError(
            f"Cannot save a detector to {target}: the directory is not empty and holds no "
            f"{MANIFEST_FILE}, so it is not a saved detector that may be replaced."
        )
    with staged(target) as staging:
        model_path = staging / MODEL_FILE
        model.save(model_path)
        _fsync_file(model_path)
        manifest = dict(manifest)
        manifest.update(
            format=FORMAT,
            format_version=FORMAT_VERSION,
            package_version=__version__,
            keras_version=keras.__version__,
            files={MODEL_FILE: {"sha256": _sha256(model_path), "bytes": model_path.stat().st_size}},
        )
        manifest_path = staging / MANIFEST_FILE
        manifest_path.write_text(json.dumps(manifest, indent=2, sort_keys=True))
        _fsync_file(manifest_path)
    return target


@contextmanager
def staged(target: Path):
    """Yield a temporary sibling directory of ``target`` that replaces it when the block
    succeeds (``move_into_place``) and is removed when the block fails: the directory is
    written whole or not at all."""
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-", dir=target.parent))
    try:
        yield staging
        move_into_place(staging, target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def move_into_place(staging: Path, target: Path) -> None:
    """Rename the finished directory ``staging`` to ``target``, replacing an old one."""
    if not target.exists():
        staging.rename(target)
        return
    retired = target.with_name(f".{target.name}.old-{uuid.uuid4().hex[:8]}")
    target.rename(retired)
    staging.rename(target)
    shutil.rmtree(retired, ignore_errors=True)


def read_manifest(path) -> dict:
    """The manifest of the saved detector at ``path``, checked for format and version."""
    manifest_path = Path(path) / MANIFEST_FILE
    if not Path(path).is_dir():
        raise FileNotFoundError(f"No saved detector at {path}: the directory does not exist.")
    if not manifest_path.is_file():
        raise FileNotFoundError(f"No saved detector at {path}: {manifest_path} is missing.")
    try:
        manifest = json.loads(manifest_path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ModelFileError(f"{manifest_path} is not valid JSON: {error}.") from error
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise ModelFileError(f"{manifest_path} is not a {FORMAT} manifest.")
    if manifest.get("format_version") != FORMAT_VERSION:
        raise ModelFileError(
            f"{manifest_path} has format_version {manifest.get('format_version')!r}; this "
            f"version of vae-anomaly ({__version__}) reads format_version {FORMAT_VERSION}."
        )
    for key in ("params", "fitted", "files", "package_version"):
        if key not in manifest:
            raise ModelFileError(f"{manifest_path} lacks the entry {key!r}.")
    if manifest["package_version"] != __version__:
        warnings.warn(
            f"{path} was saved by vae-anomaly {manifest['package_version']} and is loaded by "
            f"{__version__}; scores may differ. Refit or re-save it with this version.",
            VersionMismatchWarning,
            stacklevel=3,
        )
    return manifest


def read_bundle(path) -> tuple[keras.Model, dict]:
    """Load the model and manifest saved at ``path``, checking the model's checksum."""
    manifest = read_manifest(path)
    model_path = Path(path) / MODEL_FILE
    if not model_path.is_file():
        raise FileNotFoundError(f"Saved detector {path} is incomplete: {model_path} is missing.")
    expected = manifest["files"].get(MODEL_FILE, {})
    if _sha256(model_path) != expected.get("sha256"):
        raise ModelFileError(
            f"{model_path} does not match the SHA-256 recorded in {Path(path) / MANIFEST_FILE} "
            f"({model_path.stat().st_size} bytes, {expected.get('bytes')} when saved): the file "
            "was truncated or changed after saving."
        )
    return load_model_file(model_path), manifest


def load_model_file(model_path) -> keras.Model:
    """Load a ``.keras`` file in safe mode, naming the file in any error."""
    try:
        return keras.saving.load_model(model_path, safe_mode=True, compile=False)
    except Exception as error:  # Keras raises many types for a damaged archive.
        raise ModelFileError(f"Cannot load the Keras model {model_path}: {error}") from error


def model_to_bytes(model: keras.Model) -> bytes:
    """The model as the bytes of a ``.keras`` file (used for pickling)."""
    with tempfile.TemporaryDirectory() as folder:
        model_path = Path(folder) / MODEL_FILE
        model.save(model_path)
        return model_path.read_bytes()


def model_from_bytes(data: bytes) -> keras.Model:
    """Inverse of ``model_to_bytes``."""
    with tempfile.TemporaryDirectory() as folder:
        model_path = Path(folder) / MODEL_FILE
        model_path.write_bytes(data)
        return load_model_file(model_path)
