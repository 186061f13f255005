"""Files of a saved detector: a directory holding the Keras model and a JSON manifest.

    DIR/model.keras     Keras native format, loaded with ``safe_mode=True``
    DIR/manifest.json   format name and version, package version, estimator parameters,
                        fitted attributes, and the SHA-256 and size of model.keras

The directory is written under a temporary name beside the target and renamed into
place, so a crash never leaves a half-written model behind. This module knows nothing of
the estimator: ``detector.py`` builds the manifest and rebuilds itself from it.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
import warnings
from pathlib import Path

import keras

from . import model as _model  # noqa: F401  (registers the custom Keras objects)
from ._version import __version__
from .atomic import move_into_place, recover_directory, retired_directories, staged  # noqa: F401  (staged: used by the jobs)
from .errors import ModelFileError, VersionMismatchWarning
from .integrity import check_only_our_files, file_sha256, seal_directory, verify_directory
from .locks import JobLock

MODEL_FILE = "model.keras"
MANIFEST_FILE = "manifest.json"
FORMAT = "vae-anomaly-detector"
FORMAT_VERSION = 1
# The files of a saved detector (beside integrity.json; all of them before it existed).
_DETECTOR_FILES = frozenset({MODEL_FILE, MANIFEST_FILE})


def _fsync_file(path: Path) -> None:
    with open(path, "rb") as handle:
        os.fsync(handle.fileno())


def write_bundle(path, model: keras.Model, manifest: dict) -> Path:
    """Write ``model`` and ``manifest`` as the directory ``path``, atomically.

    An existing directory is replaced only if it is empty or holds only the files of a
    saved detector (``integrity.check_only_our_files``). Saves of one path take turns
    (its lock, ``locks.JobLock``, waited for), and what an earlier save killed midway
    left beside it is cleaned up first (``atomic.recover_directory``: its staging folder
    removed, an old model renamed aside put back). Every file is then listed with its
    SHA-256 in integrity.json, signed when ``VAE_ANOMALY_SIGNING_KEY`` is set.
    """
    target = Path(path)
    with _replacing(target) as staging:
        model_path = staging / MODEL_FILE
        model.save(model_path)
        _fsync_file(model_path)
        manifest = dict(manifest)
        manifest.update(
            format=FORMAT,
            format_version=FORMAT_VERSION,
            package_version=__version__,
            keras_version=keras.__version__,
            files={
                MODEL_FILE: {"sha256": file_sha256(model_path), "bytes": model_path.stat().st_size}
            },
        )
        manifest_path = staging / MANIFEST_FILE
        manifest_path.write_text(json.dumps(manifest, indent=2, sort_keys=True, allow_nan=False))
        _fsync_file(manifest_path)
        seal_directory(staging)
    return target


@contextlib.contextmanager
def _replacing(target: Path):
    """Hold ``target``'s lock (``locks.JobLock``, waiting while another save or a fit job
    holds it); clean up what a save killed midway left beside it
    (``atomic.recover_directory``); refuse a directory that is not a saved detector's;
    then yield a staging folder that replaces ``target`` when the block succeeds."""
    with JobLock(target, "save()", wait=True):
        recover_directory(target)
        check_only_our_files(
            target, "Cannot save a detector to", _DETECTOR_FILES, kind=_DETECTOR_FILES
        )
        with staged(target) as staging:
            yield staging


def _no_directory(path) -> FileNotFoundError:
    """The error for a missing saved detector, naming the old model a killed save left
    renamed aside, if any."""
    retired = retired_directories(Path(path))
    return FileNotFoundError(
        f"No saved detector at {path}: the directory does not exist."
        + (
            f" A save killed while replacing it left the previous model at {retired[-1]}; "
            "saving again puts it back first, or rename it."
            if retired
            else ""
        )
    )


def read_manifest(path) -> dict:
    """The manifest of the saved detector at ``path``, checked for format and version."""
    manifest_path = Path(path) / MANIFEST_FILE
    if not Path(path).is_dir():
        raise _no_directory(path)
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
    """Load the model and manifest saved at ``path``, every file checked against
    integrity.json (and its signature, when a key is set) before anything is parsed."""
    if not Path(path).is_dir():
        raise _no_directory(path)
    verify_directory(path)
    manifest = read_manifest(path)
    model_path = Path(path) / MODEL_FILE
    if not model_path.is_file():
        raise FileNotFoundError(f"Saved detector {path} is incomplete: {model_path} is missing.")
    expected = manifest["files"].get(MODEL_FILE, {})
    if file_sha256(model_path) != expected.get("sha256"):
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
