"""Job settings: one frozen dataclass per job, read from a TOML file, overridden by flags.

Each field of a job's settings class is declared with ``setting(section, ...)``, which
records its TOML section and what it accepts (``choices``, an integer ``at_least``, a
``boolean``). From that the one loader here knows every section and key, refuses unknown
ones, and checks every value, naming the file (or "command line"), the key and what is
allowed. A ``[model]`` table holds VAEAnomalyDetector parameters: its keys are checked
against the estimator's parameters and its values against the estimator's own
constraints (``parameters.PARAMETER_CONSTRAINTS``), when the file is read, before any
data is, and without importing TensorFlow. A job adds what no declaration can say in its
``check`` method.
"""

from __future__ import annotations

import dataclasses
import tomllib
from pathlib import Path
from typing import ClassVar

from ..errors import ModelFileError
from ..parameters import PARAMETER_CONSTRAINTS, check_model_values


def setting(section: str, default=dataclasses.MISSING, *, factory=dataclasses.MISSING, **rule):
    """A field of a settings class: its TOML ``section`` and the ``rule`` its value obeys
    (``choices=(...)``, ``at_least=n`` for an integer, ``boolean=True``, ``fraction="open"``
    for a number in (0, 1) or ``"from_zero"`` for one in [0, 1))."""
    return dataclasses.field(
        default=default, default_factory=factory, metadata={"section": section, **rule}
    )


def detector_parameters() -> frozenset[str]:
    """The names of VAEAnomalyDetector's parameters (those of its constraints table)."""
    return frozenset(PARAMETER_CONSTRAINTS)


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


def check_model_params(model: dict, source: str, job_owned: set, owner: str) -> None:
    """Every key of ``model`` is a VAEAnomalyDetector parameter the job does not set, and
    every value satisfies the estimator's constraint for it."""
    known = detector_parameters()
    for key in model:
        if key not in known:
            raise ValueError(f"{source}: [model] {key!r} is not a VAEAnomalyDetector parameter.")
        if key in job_owned:
            raise ValueError(f"{source}: [model] {key!r} is set by the job ({owner}).")
    check_model_values(model, source)


def _check_rule(source: str, name: str, value, rule: dict) -> None:
    if "choices" in rule and value not in rule["choices"]:
        raise ValueError(f"{source}: {name} must be one of {rule['choices']}, got {value!r}.")
    if "at_least" in rule and (
        isinstance(value, bool) or not isinstance(value, int) or value < rule["at_least"]
    ):
        raise ValueError(
            f"{source}: {name} must be an integer >= {rule['at_least']}, got {value!r}."
        )
    if rule.get("boolean") and not isinstance(value, bool):
        raise ValueError(f"{source}: {name} must be true or false, got {value!r}.")
    if "fraction" in rule:  # "open": in (0, 1); "from_zero": in [0, 1)
        open_low = rule["fraction"] == "open"
        number = isinstance(value, (int, float)) and not isinstance(value, bool)
        if not number or not ((value > 0 if open_low else value >= 0) and value < 1):
            interval = "(0, 1)" if open_low else "[0, 1)"
            raise ValueError(f"{source}: {name} must be a number in {interval}, got {value!r}.")


class JobSettings:
    """Base of the jobs' settings dataclasses (``tabular.config.JobConfig``,
    ``images.config.ImageJobConfig``): loading, overriding and checking, once."""

    # Estimator parameters the job sets itself, and where it takes them from.
    JOB_OWNED: ClassVar[frozenset] = frozenset()
    JOB_OWNED_FROM: ClassVar[str] = ""
    # The fields a scoring job reads; every other one is fixed when the model is fitted.
    SCORING_FIELDS: ClassVar[frozenset] = frozenset()

    @classmethod
    def sections(cls) -> dict:
        """{section: keys} of the TOML file; ``model`` (None: any estimator parameter)."""
        sections: dict = {}
        for item in dataclasses.fields(cls):
            section = item.metadata["section"]
            if section == "model":
                sections["model"] = None
            else:
                sections.setdefault(section, set()).add(item.name)
        return sections

    @classmethod
    def load(cls, path=None):
        """The settings of the TOML file ``path``, or the defaults when path is None."""
        if path is None:
            return cls()
        values = read_sections(path, cls.sections())
        if "model" in values:
            values["model"] = dict(cls().model, **values["model"])
        return cls(**cls.from_toml(values)).checked(str(path))

    @classmethod
    def from_saved(cls, document: dict, path):
        """The settings a fit job recorded in its model directory's document ``path``
        (its ``settings`` entry), checked as a settings file is: a damaged or missing
        entry is a ``ModelFileError`` naming the file, not a traceback or a value blamed
        on the command line."""
        try:
            values = cls.from_toml(dict(document["settings"]))
            return cls(**values).checked(f"{path}, entry 'settings'")
        except (KeyError, TypeError, ValueError) as error:
            raise ModelFileError(f"{path} is damaged: {error}") from error

    @classmethod
    def from_toml(cls, values: dict) -> dict:
        """Hook: convert TOML values to the fields' types (TOML has arrays, not tuples)."""
        return values

    def with_overrides(self, **values):
        """A copy with the non-None values replaced (``model`` entries are merged)."""
        values = {key: value for key, value in values.items() if value is not None}
        model = dict(self.model, **values.pop("model", {}))
        return dataclasses.replace(self, model=model, **values).checked("command line")

    @classmethod
    def over_saved(cls, path, saved) -> tuple:
        """The settings of a scoring job given ``--config path``: ``saved`` (the fit's),
        with the ``SCORING_FIELDS`` the file sets replaced by its values; and what the
        file sets otherwise than the fit outside them, which the job cannot apply (the
        fit fixed it), as "key = value (the model's: value)" lines. Keys the file does
        not set keep the fit's values, so a file of scoring keys alone changes nothing
        else, and the fit's own file says nothing."""
        values = cls.from_toml(read_sections(path, cls.sections()))  # unknown keys: errors
        file_model = values.pop("model", {})
        # Every value checked as in any settings file, in the model's context (the saved
        # settings with the file's values), not merged with the defaults.
        dataclasses.replace(saved, **values, model=dict(saved.model, **file_model)).checked(
            str(path)
        )
        ignored = [
            f"[model] {key} = {value!r} (the model's: {saved.model.get(key)!r})"
            for key, value in sorted(file_model.items())
            if saved.model.get(key) != value
        ]
        ignored += [
            f"{key} = {value!r} (the model's: {getattr(saved, key)!r})"
            for key, value in values.items()
            if key not in cls.SCORING_FIELDS and getattr(saved, key) != value
        ]
        scoring = {key: value for key, value in values.items() if key in cls.SCORING_FIELDS}
        return dataclasses.replace(saved, **scoring).checked(str(path)), ignored

    def checked(self, source: str):
        """``self`` if every value is allowed, else a ValueError naming ``source``."""
        check_model_params(self.model, source, self.JOB_OWNED, self.JOB_OWNED_FROM)
        for item in dataclasses.fields(self):
            _check_rule(source, item.name, getattr(self, item.name), item.metadata)
        self.check(source)
        return self

    def check(self, source: str) -> None:
        """Hook: what the declarations cannot say (a job's own rules)."""
