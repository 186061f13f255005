"""Job settings files: TOML with known sections and keys, every error naming the file.

Each job (``tabular.config``, ``images.config``) declares its sections; a ``[model]``
section holds VAEAnomalyDetector parameters, checked by ``check_model_params``. Unknown
sections or keys are errors: a typo must not be silently ignored.
"""

from __future__ import annotations

import ast
import functools
import tomllib
from pathlib import Path


def read_sections(path, sections: dict) -> dict:
    """Flat {key: value} of the TOML file ``path``; the ``[model]`` table as ``model``.

    ``sections`` maps each allowed section to its allowed keys (None for ``model``).
    """
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as error:
        raise FileNotFoundError(f"--config {path}: no such file.") from error
    except tomllib.TOMLDecodeError as error:
        raise ValueError(f"{path}: not valid TOML: {error}.") from error
    values = {}
    for section, entries in data.items():
        if section not in sections:
            raise ValueError(f"{path}: unknown section [{section}]; known: {sorted(sections)}.")
        if not isinstance(entries, dict):
            raise ValueError(f"{path}: [{section}] must be a table.")
        if sections[section] is None:
            values[section] = dict(entries)
            continue
        for key, value in entries.items():
            if key not in sections[section]:
                raise ValueError(
                    f"{path}: unknown key {key!r} in [{section}]; known: "
                    f"{sorted(sections[section])}."
                )
            values[key] = value
    return values


@functools.cache
def detector_parameters() -> frozenset[str]:
    """The names of VAEAnomalyDetector's parameters, read without importing TensorFlow.

    scikit-learn's ``get_params`` lists the keyword arguments of ``__init__``; reading that
    signature from the source of ``detector.py`` gives the same names without importing
    the module, which would start TensorFlow (seconds, most of a gigabyte) just to check a
    settings file.
    """
    source = Path(__file__).with_name("detector.py")
    try:
        text = source.read_text(encoding="utf-8")
    except OSError:  # installed without sources: ask the class itself
        from .detector import VAEAnomalyDetector

        return frozenset(VAEAnomalyDetector().get_params())
    for node in ast.walk(ast.parse(text, str(source))):
        if isinstance(node, ast.ClassDef) and node.name == "VAEAnomalyDetector":
            for item in node.body:
                if isinstance(item, ast.FunctionDef) and item.name == "__init__":
                    arguments = item.args.posonlyargs + item.args.args + item.args.kwonlyargs
                    return frozenset(a.arg for a in arguments[1:])  # without self
    raise RuntimeError(f"{source}: VAEAnomalyDetector.__init__ not found.")


def check_model_params(model: dict, source: str, job_owned: set, owner: str) -> None:
    """Every key of ``model`` is a VAEAnomalyDetector parameter the job does not set."""
    known = detector_parameters()
    for key in model:
        if key not in known:
            raise ValueError(f"{source}: [model] {key!r} is not a VAEAnomalyDetector parameter.")
        if key in job_owned:
            raise ValueError(f"{source}: [model] {key!r} is set by the job ({owner}).")
