"""What the batch jobs share: locks, path checks and reject rows.

Standard library only: the CLI checks its arguments with these before TensorFlow loads.
"""
