"""Every file of a saved directory under one checksum list, optionally signed.

    DIR/integrity.json
        {"format": "vae-anomaly-integrity", "version": 1,
         "files":  {relative path: {"sha256": hex digest, "bytes": size}, ...},
         "digest": SHA-256(listing),
         "signature": HMAC-SHA256(key, listing)      (only when a key was set)}

    listing = the canonical JSON of {"files": ...} (sorted keys, no spaces), UTF-8

What it protects:

- *Accidental damage* (a truncated copy, an edited value, a file added or removed): every
  file below DIR, subfolders included, is listed with its SHA-256 and size, and
  ``verify_directory`` refuses a directory where any listed file is missing or differs, or
  where a file is not listed. ``digest`` covers the list itself.
- *Deliberate tampering*, when the environment variable ``VAE_ANOMALY_SIGNING_KEY`` is
  set: the listing is signed with HMAC-SHA256 under that key when the directory is written,
  and ``verify_directory`` then refuses a directory whose signature is absent or made with
  another key. Without the key, anyone who can write the directory can also rewrite
  integrity.json: checksums alone detect accidents, not attacks.

Standard library only (no TensorFlow), so the jobs can check a directory before loading
anything heavy.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
from pathlib import Path

from .errors import ModelFileError

INTEGRITY_FILE = "integrity.json"
FORMAT = "vae-anomaly-integrity"
VERSION = 1
KEY_VARIABLE = "VAE_ANOMALY_SIGNING_KEY"


def file_sha256(path) -> str:
    """SHA-256 of a file's bytes, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def signing_key() -> bytes | None:
    """The key of ``VAE_ANOMALY_SIGNING_KEY`` as UTF-8 bytes, or None when unset or empty."""
    value = os.environ.get(KEY_VARIABLE, "")
    return value.encode("utf-8") if value else None


def files_below(directory) -> list[str]:
    """Relative POSIX paths of every file below ``directory`` (integrity.json excluded)."""
    directory = Path(directory)
    found = []
    for path in sorted(directory.rglob("*")):
        relative = path.relative_to(directory).as_posix()
        if relative != INTEGRITY_FILE and not path.is_dir():
            found.append(relative)
    return found


def _listing(files: dict) -> bytes:
    return json.dumps(
        {"files": files}, sort_keys=True, separators=(",", ":"), allow_nan=False
    ).encode()


def _signature(key: bytes, listing: bytes) -> str:
    return hmac.new(key, listing, hashlib.sha256).hexdigest()


def seal_directory(directory, key: bytes | None = None) -> dict:
    """Write ``DIR/integrity.json`` listing every file below ``directory``; sign it with
    ``key`` (default: ``signing_key()``). Returns the document written."""
    directory = Path(directory)
    key = signing_key() if key is None else key
    files = {}
    for relative in files_below(directory):
        path = directory / relative
        if path.is_symlink():
            raise ModelFileError(f"{path} is a symbolic link; a model directory holds files.")
        files[relative] = {"sha256": file_sha256(path), "bytes": path.stat().st_size}
    listing = _listing(files)
    document = {
        "format": FORMAT,
        "version": VERSION,
        "files": files,
        "digest": hashlib.sha256(listing).hexdigest(),
    }
    if key:
        document["signature"] = _signature(key, listing)
    path = directory / INTEGRITY_FILE
    path.write_text(json.dumps(document, indent=2, sort_keys=True, allow_nan=False) + "\n")
    with open(path, "rb") as handle:
        os.fsync(handle.fileno())
    return document


def read_listing(directory) -> dict[str, dict]:
    """The files listed in ``DIR/integrity.json``, the list itself checked against its
    digest (not the files, nor the signature: see ``verify_directory``)."""
    path = Path(directory) / INTEGRITY_FILE
    if not path.is_file():
        raise ModelFileError(
            f"{path} is missing: the directory is incomplete, or was written by a version of "
            "vae-anomaly that did not checksum every file; refit or re-save the model."
        )
    try:
        document = json.loads(path.read_text())
        files = document["files"]
        digest = document["digest"]
    except (json.JSONDecodeError, UnicodeDecodeError, KeyError, TypeError) as error:
        raise ModelFileError(f"{path} is damaged: {error!r}.") from error
    if document.get("format") != FORMAT or document.get("version") != VERSION:
        raise ModelFileError(f"{path} is not a {FORMAT} document of version {VERSION}.")
    if not isinstance(files, dict) or hashlib.sha256(_listing(files)).hexdigest() != digest:
        raise ModelFileError(f"{path} is damaged: its file list does not match its digest.")
    for relative, entry in files.items():
        if not (
            isinstance(entry, dict)
            and isinstance(entry.get("sha256"), str)
            and isinstance(entry.get("bytes"), int)
        ):
            raise ModelFileError(
                f"{path} is damaged: the entry of {relative!r} is not "
                f'{{"sha256": digest, "bytes": size}}, got {entry!r}.'
            )
    return files


def directory_digest(directory) -> str:
    """The digest of the directory's file list: one name for every file's content."""
    return hashlib.sha256(_listing(read_listing(directory))).hexdigest()


def verify_directory(directory, key: bytes | None = None) -> None:
    """Raise ``ModelFileError`` naming the file unless every file below ``directory`` is
    exactly as listed in its integrity.json, and the signature matches ``key`` (default:
    ``signing_key()``) when either a key is set or the directory is signed."""
    directory = Path(directory)
    files = read_listing(directory)
    document = json.loads((directory / INTEGRITY_FILE).read_text())
    key = signing_key() if key is None else key
    signature = document.get("signature")
    if signature is not None and key is None:
        raise ModelFileError(
            f"{directory} is signed, but {KEY_VARIABLE} is not set: set it to the key the "
            "model was signed with."
        )
    if key is not None:
        if signature is None:
            raise ModelFileError(
                f"{directory} is not signed, and {KEY_VARIABLE} is set: while a key is set, "
                "only models signed with it are loaded (refit or re-save with the key set, "
                f"or unset {KEY_VARIABLE} to load unsigned models)."
            )
        if not hmac.compare_digest(signature, _signature(key, _listing(files))):
            raise ModelFileError(
                f"{directory / INTEGRITY_FILE}: the signature does not match {KEY_VARIABLE}: "
                "the model was signed with another key, or changed after it was signed."
            )
    present = set(files_below(directory))
    for relative, expected in files.items():
        path = directory / relative
        if relative not in present:
            raise ModelFileError(f"{path} is missing (listed in {INTEGRITY_FILE}).")
        if path.is_symlink():  # its bytes live outside the directory that was checked
            raise ModelFileError(
                f"{path} is a symbolic link; a model directory holds files (copy the file "
                "itself into the directory)."
            )
        size = path.stat().st_size
        if size != expected.get("bytes") or file_sha256(path) != expected.get("sha256"):
            raise ModelFileError(
                f"{path} does not match the SHA-256 recorded in {directory / INTEGRITY_FILE} "
                f"({size} bytes, {expected.get('bytes')} when saved): the file was truncated "
                "or changed after saving."
            )
    for relative in sorted(present - set(files)):
        raise ModelFileError(
            f"{directory / relative} was not written with the model (it is not listed in "
            f"{INTEGRITY_FILE}); move it out of the model directory."
        )


def check_only_our_files(
    target, what: str, legacy: frozenset[str] = frozenset(), kind: frozenset[str] | None = None
) -> None:
    """Refuse to replace ``target`` unless it is missing, empty, or holds only files a
    vae-anomaly job wrote there: those its integrity.json lists, else the ``legacy`` names
    (relative paths) of a directory written before integrity.json existed. With ``kind``
    (the relative paths a directory of this kind holds), a listed file outside it is
    refused too: ``save`` does not replace a fit job's model directory, sealed as well.
    A folder holding none of those files (an empty folder of the user's) is refused.

    The error names the first file or folder that is not ours, so refitting never
    deletes a user's file.
    """
    target = Path(target)
    if not target.exists():
        return
    if not target.is_dir():
        raise FileExistsError(
            f"{what} {target} is a file, not a directory; refusing to replace it."
        )
    sealed = (target / INTEGRITY_FILE).exists()
    try:
        ours = set(read_listing(target)) | {INTEGRITY_FILE} if sealed else set(legacy)
    except ModelFileError:  # a damaged list vouches for nothing
        ours = set()
    for relative in files_below(target) + ([INTEGRITY_FILE] if sealed else []):
        if relative not in ours:
            raise FileExistsError(
                f"{what} {target} holds {target / relative}, which vae-anomaly did not write "
                "there; refusing to replace the directory (move that file out, or choose "
                "another directory)."
            )
        if kind is not None and relative != INTEGRITY_FILE and relative not in kind:
            raise FileExistsError(
                f"{what} {target} holds {target / relative}, which is not a file of this "
                "kind of directory (is it another job's model directory?); refusing to "
                "replace it (choose another directory)."
            )
    folders_of_ours = {Path(relative).parent.as_posix() for relative in ours}
    for path in sorted(target.rglob("*")):
        relative = path.relative_to(target).as_posix()
        if path.is_dir() and not any(
            held == relative or held.startswith(f"{relative}/") for held in folders_of_ours
        ):
            raise FileExistsError(
                f"{what} {target} holds the folder {path}, which vae-anomaly did not write "
                "there; refusing to replace the directory (move it out, or choose another "
                "directory)."
            )
