"""The tabular batch jobs behind ``vae-anomaly fit`` and ``vae-anomaly score``.

schema.py     column roles (inferred or configured) and the encoding of text cells
reader.py     CSV files in independently readable chunks, bad lines with reasons
rejects.py    the reject file: file, line, reason, raw line
config.py     job settings from TOML (pipelines/tabular.toml) and flags
fit_job.py    training CSV(s) -> model directory (detector + schema)
score_job.py  model directory + CSV(s) -> scored output, rejects, alerts, report
engines.py    run chunk tasks locally or on Dask
"""
