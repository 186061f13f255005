"""Where a small training step's time goes: d = 10, batch 32 (issue 17).

    python benchmarks/step_profile.py --out benchmarks/results/step_profile

Every measurement runs in a fresh process (``isolated.run_isolated``). For the model of
benchmarks/speed.py's small case (n = 20,000 rows, d = 10, layers 128-64-32, latent 2,
batch 32) it reports:

- ``steps_per_execution``: microseconds per optimiser step for 1, 32 and 128 steps per
  call into the graph (median of epochs 2 .. 4): what one call costs besides its steps;
- ``compute floor``: the step's dense-layer FLOPs at the matmul rate measured here:
  what the step would cost if only its arithmetic counted;
- ``graph ops``: the operations TensorFlow runs per step (the traced train step);
- ``input pipeline``: microseconds per batch, at batch 32 and 1024, to draw epochs from
  a training dataset alone, from one iterator (Python's ``next``, the same cost per
  batch for every pipeline; before issue 17's rebuild this was ``Dataset.reduce``):
  rows shuffled one by one through ``Dataset.shuffle`` (training before issue 17),
  indices shuffled one by one and gathered per batch (tried for issue 17), or one
  permutation per epoch sliced into batches of positions and gathered
  (``batching.index_batches``, what training does now); and the milliseconds
  to make a new iterator and draw its first batch, which ``keras.Model.fit`` pays every
  epoch for a finite dataset (training now reads one endless stream instead);
- ``cProfile``: a fit's wall time split into the C++ runtime running graphs
  (the self time of ``TFE_Py_Execute``) and everything in Python around it.
"""

from __future__ import annotations

import argparse
import cProfile
import json
import pstats
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from isolated import run_isolated
from speed import _data, matmul_gflops, vae_flops

N, D, BATCH, HIDDEN, LATENT = 20_000, 10, 32, (128, 64, 32), 2
TIMED_EPOCHS = 3


def _detector(epochs: int):
    from vae_anomaly import VAEAnomalyDetector

    return VAEAnomalyDetector(
        hidden_units=HIDDEN,
        latent_dim=LATENT,
        batch_size=BATCH,
        validation_fraction=0.0,
        epochs=epochs,
        random_state=0,
    )


def _steps_per_execution(task: dict) -> dict:
    from vae_anomaly import training

    training.STEPS_PER_EXECUTION = task["steps_per_execution"]
    detector = _detector(1 + TIMED_EPOCHS).fit(_data(N, D))
    steps = -(-N // BATCH)
    seconds = float(np.median(detector.history_["epoch_seconds"][1:]))
    return {"us_per_step": 1e6 * seconds / steps}


def _graph_ops(task: dict) -> dict:
    import tensorflow as tf

    detector = _detector(1).fit(_data(2000, D))
    model = detector.model_
    step = tf.function(model.train_step)
    graph = step.get_concrete_function(tf.TensorSpec([BATCH, D], tf.float32)).graph
    kinds: dict[str, int] = {}
    for op in graph.get_operations():
        kinds[op.type] = kinds.get(op.type, 0) + 1
    top = sorted(kinds.items(), key=lambda item: -item[1])[:8]
    return {"ops": len(graph.get_operations()), "most_frequent": top}


def _pipeline(task: dict) -> dict:
    import tensorflow as tf

    from vae_anomaly import training
    from vae_anomaly.batching import epoch_plan, gathered_rows, index_batches

    rows, batch = _data(N, D).astype(np.float32), task.get("batch", BATCH)
    batches = -(-N // batch)
    if task["pipeline"] == "rows":
        data = tf.data.Dataset.from_tensor_slices(rows).shuffle(N, seed=0).batch(batch)
    elif task["pipeline"] == "gather":
        constant = tf.constant(rows)
        data = (
            tf.data.Dataset.range(N)
            .shuffle(N, seed=0)
            .batch(batch)
            .map(lambda index: tf.gather(constant, index))
        )
    else:
        plan = epoch_plan(N, batch, training.STEPS_PER_EXECUTION)
        data = gathered_rows(rows, index_batches(plan, shuffle_seed=0))
        batches = plan.batches
    data = data.prefetch(tf.data.AUTOTUNE)
    starts = []  # what keras.Model.fit pays per epoch for a finite dataset: a new iterator
    for _ in range(12):
        started = time.perf_counter()
        next(iter(data))
        starts.append(time.perf_counter() - started)
    if task["pipeline"] != "permutation":
        data = data.repeat()  # one iterator for every epoch, as for the endless stream
    batches_of = iter(data)
    timings = []
    for _ in range(1 + TIMED_EPOCHS):
        started = time.perf_counter()
        for _ in range(batches):
            next(batches_of)
        timings.append(time.perf_counter() - started)
    return {
        "us_per_batch": 1e6 * float(np.median(timings[1:])) / batches,
        "new_iterator_ms": 1e3 * float(np.median(starts[2:])),
    }


def _profile(task: dict) -> dict:
    X = _data(N, D)
    _detector(1).fit(X[:2000])  # imports and first traces outside the profile
    profiler = cProfile.Profile()
    started = time.perf_counter()
    profiler.enable()
    _detector(1 + TIMED_EPOCHS).fit(X)
    profiler.disable()
    total = time.perf_counter() - started
    stats = pstats.Stats(profiler)
    runtime = sum(
        timing[2]  # self time: the C++ runtime running a compiled graph
        for (_, _, name), timing in stats.stats.items()
        if "TFE_Py_Execute" in name
    )
    by_self = sorted(stats.stats.items(), key=lambda item: -item[1][2])[:8]
    return {
        "fit_seconds": total,
        "runtime_seconds": runtime,
        "python_seconds": total - runtime,
        "top_self_time": [
            [f"{Path(path).name}:{name}", round(timing[2], 3)]
            for (path, _, name), timing in by_self
        ],
    }


KINDS = {
    "steps_per_execution": _steps_per_execution,
    "graph_ops": _graph_ops,
    "pipeline": _pipeline,
    "profile": _profile,
}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/step_profile"))
    parser.add_argument("--only", nargs="+", choices=sorted(KINDS), help="these kinds only")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        task = json.loads(args.worker)
        print(json.dumps(KINDS[task["kind"]](task)))
        return 0
    peak = matmul_gflops(2048)
    flops = vae_flops(D, HIDDEN, LATENT)["train"] * BATCH
    results = {"matmul_gflops": peak, "compute_floor_us_per_step": 1e6 * flops / (peak * 1e9)}
    tasks = [{"kind": "steps_per_execution", "steps_per_execution": s} for s in (1, 32, 128)]
    tasks += [
        {"kind": "pipeline", "pipeline": p, "batch": b}
        for b in (BATCH, 1024)
        for p in ("rows", "gather", "permutation")
    ]
    tasks += [{"kind": "graph_ops"}, {"kind": "profile"}]
    tasks = [task for task in tasks if not args.only or task["kind"] in args.only]
    for task in tasks:
        results.setdefault("runs", []).append(run_isolated(__file__, task))
        print(json.dumps(results["runs"][-1]), file=sys.stderr, flush=True)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "profile.json").write_text(json.dumps(results, indent=2))
    print(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
