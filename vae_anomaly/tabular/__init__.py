"""The tabular batch jobs behind ``vae-anomaly fit``, ``score`` and ``rank``.

Column roles (inferred or configured) and the encoding of text cells are in
``vae_anomaly/schema.py``, which the estimator shares for DataFrames (``frames.py``).

reader.py     CSV files in independently readable chunks, bad lines with reasons
saved.py      a fitted model directory read back, for the score job
config.py     job settings from TOML (pipelines/tabular.toml) and flags
fit_job.py    training CSV(s) -> model directory (detector + schema)
score_job.py  model directory + CSV(s) -> scored output, rejects, alerts, report
engines.py    run chunk tasks locally or on Dask
labels.py     a scored output against planted labels (``score --labels``)
rank_job.py   one numeric CSV -> fitted detector -> its most anomalous rows
"""
