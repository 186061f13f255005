"""Checks on the paths of a job, made before any work is done.

- No two of a job's paths (its inputs after glob expansion, outputs, model directory) may
  name the same file or folder: a job must never write over its input, nor two of its
  outputs over each other. Existing paths are compared by device and inode (so links and
  hard links count), others by their resolved path.
- No output may lie inside the model directory, nor inside an input folder or where an
  input glob reaches (it, a folder above it, or a file the job writes inside it matches
  the glob, as ``glob`` matches): the job would read it as an input, on this run or the
  next. No input may lie inside an output folder, which the job replaces.
- An output file must not name an existing directory; an output folder must not name an
  existing file.

Each failure is a ``UsageError`` (exit status 2) naming both flags.
"""

from __future__ import annotations

import fnmatch
import glob
import os
from contextlib import contextmanager
from pathlib import Path

from ..atomic import recover_directory, remove_stale_temporaries
from ..errors import UsageError
from ..locks import locked


def _identity(path: Path) -> tuple:
    try:
        status = os.stat(path)
    except OSError:
        return ("path", os.path.realpath(path))
    return ("inode", status.st_dev, status.st_ino)


def check_distinct(named) -> None:
    """``named``: (flag, path) pairs, None paths skipped; refuse two naming one path."""
    seen: dict[tuple, str] = {}
    for flag, path in named:
        if path is None:
            continue
        key = _identity(Path(path))
        if key in seen:
            raise UsageError(
                f"{seen[key]} and {flag} name the same path ({path}): every input and output "
                "of a job must be a different path, so that nothing is overwritten. "
                f"Choose another {flag}."
            )
        seen[key] = flag


def check_outputs(files, folders=(), model_dir=None) -> None:
    """``files``/``folders``: (flag, path) pairs (None paths skipped) of what the job will
    write; refuse kinds that cannot be written, and outputs inside ``model_dir``."""
    model = Path(os.path.realpath(model_dir)) if model_dir is not None else None
    for flag, path, want_folder in [(f, p, False) for f, p in files] + [
        (f, p, True) for f, p in folders
    ]:
        if path is None:
            continue
        path = Path(path)
        if path.is_dir() and not want_folder:
            raise UsageError(f"{flag} {path} is a directory; {flag} must name a file.")
        if path.exists() and not path.is_dir() and want_folder:
            raise UsageError(f"{flag} {path} is a file; {flag} must name a folder.")
        for parent in path.parents:
            if parent.exists() and not parent.is_dir():
                raise UsageError(f"{flag} {path}: {parent} is a file, not a folder.")
        resolved = Path(os.path.realpath(path))
        if model is not None and resolved.is_relative_to(model):
            raise UsageError(
                f"{flag} {path} lies inside --model-dir {model_dir}; write outputs elsewhere "
                "(the model directory holds only what the fit job wrote)."
            )


def check_outside_input_folders(inputs, named, patterns=(), inside=None) -> None:
    """UsageError when an output of ``named`` ((flag, path) pairs, None skipped) lies inside
    a folder among ``inputs`` or where a glob of ``patterns`` (``input_globs``) reaches
    (the output, or a file the job writes inside an output folder: ``inside`` maps a
    flag to those names, relative to the folder):
    the job reads every file below an input folder, so it would write over one of its
    inputs, or read its own output on the next run. Also when an input lies inside an
    output folder, which the job replaces whole."""
    folders = [(Path(os.path.realpath(item)), item) for item in inputs if Path(item).is_dir()]
    for flag, path in named:
        if path is None:
            continue
        resolved = Path(os.path.realpath(path))
        if resolved.is_dir():
            for item in inputs:
                if Path(os.path.realpath(item)).is_relative_to(resolved):
                    raise UsageError(
                        f"--input {item} lies inside the {flag} folder {path}, which the job "
                        f"replaces: move the input, or choose another {flag}."
                    )
        for folder, given in folders:
            if resolved.is_relative_to(folder):
                raise UsageError(
                    f"{flag} {path} lies inside the input folder {given}, whose every file "
                    f"is read as an input: write {flag} outside it."
                )
        probes = [Path(path)] + [Path(path) / name for name in (inside or {}).get(flag, ())]
        for pattern in patterns:
            if any(_glob_reaches(pattern, probe) for probe in probes):
                raise UsageError(
                    f"{flag} {path} is reached by the input glob {pattern}, whose matches "
                    f"(and the files below a matched folder) are read as inputs, on this run "
                    f"or the next: write {flag} elsewhere."
                )


def is_glob(item) -> bool:
    """Whether an input is a glob: it names no existing path and holds glob characters
    (an existing "export [1].csv" is that file)."""
    return not os.path.lexists(item) and glob.has_magic(str(item))


def input_globs(inputs) -> list[str]:
    """The inputs that are globs (``is_glob``)."""
    return [str(i) for i in inputs if is_glob(i)]


def _glob_reaches(pattern: str, path: Path) -> bool:
    """Whether the glob ``pattern`` reads ``path``: it matches the path or a folder above
    it (a matched folder is read whole), as ``glob.glob(pattern, recursive=True)`` would
    (``**``: any number of folders; names starting with "." only when the pattern's
    part does). The pattern's fixed folder and the path are compared resolved."""
    parts = Path(os.path.abspath(pattern)).parts
    fixed = next((i for i, part in enumerate(parts) if glob.has_magic(part)), len(parts))
    root = Path(os.path.realpath(Path(*parts[:fixed]))).parts
    target = Path(os.path.realpath(path)).parts
    if target[: len(root)] != root:
        return False
    rest, wanted = target[len(root) :], parts[fixed:]
    return any(_parts_match(rest[:n], wanted) for n in range(len(rest) + 1))


def _parts_match(names: tuple, wanted: tuple) -> bool:
    """Whether the path names match the glob parts, one part a name, ``**`` any number."""
    if not wanted:
        return not names
    if wanted[0] == "**":
        return any(
            _parts_match(names[n:], wanted[1:])
            for n in range(len(names) + 1)
            if not any(name.startswith(".") for name in names[:n])
        )
    return (
        bool(names)
        and (not names[0].startswith(".") or wanted[0].startswith("."))
        and fnmatch.fnmatchcase(names[0], wanted[0])
        and _parts_match(names[1:], wanted[1:])
    )


def score_outputs(output, rejects, report, alerts, html=None) -> list[tuple[str, object]]:
    """The (flag, path) pairs of the files every scoring job writes (None: not written)."""
    return [
        ("--output", output),
        ("--rejects", rejects),
        ("--report", report),
        ("--alerts", alerts),
        ("--html", html),
    ]


@contextmanager
def guarded(inputs, files, folders=(), model_dir=None, other_inputs=(), patterns=(), inside=None):
    """Check a job's paths (``check_distinct`` over the ``inputs`` paths (globs expanded;
    the globs themselves in ``patterns``, and ``inside``, for
    ``check_outside_input_folders``), the
    ``other_inputs`` (flag, path) pairs it only reads, such as ``--labels``, the ``files``
    and ``folders`` (flag, path) pairs and ``model_dir``; then ``check_outputs``), and hold
    the lock of every output for the block. Under the locks, what a job killed while
    writing an output left beside it is removed: temporary files, and an output folder's
    staging folders (an old folder left renamed aside with none in its place is put back:
    ``atomic.recover_directory``)."""
    check_distinct(
        [("--input", path) for path in inputs]
        + [*other_inputs, *files, *folders]
        + [("--model-dir", model_dir)]
    )
    check_outputs(files, folders, model_dir=model_dir)
    check_outside_input_folders(inputs, [*files, *folders], patterns, inside)
    with locked([*files, *folders]):
        for _, path in files:
            if path is not None:
                remove_stale_temporaries(path)
        for _, path in folders:
            if path is not None:
                recover_directory(path)
        yield
