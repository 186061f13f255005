"""Exceptions and warnings raised by vae_anomaly, each with the situation it names."""

from __future__ import annotations


class ModelFileError(ValueError):
    """A saved detector is truncated, tampered with or not a vae-anomaly model."""


class TrainingDivergedError(FloatingPointError):
    """The training loss or the weights became NaN or infinite."""


class VersionMismatchWarning(UserWarning):
    """A saved detector was written by another version of vae-anomaly."""


class UsageError(ValueError):
    """The paths or options of a job cannot work together (exit status 2, like argparse)."""


class CalibrationWarning(UserWarning):
    """Too few held-out rows to certify the false-positive rate: the threshold is not calibrated."""
