# Round 20 (docs/experiments.md): run from a copy of commit 3aee285 in /tmp/snap30 under flock /tmp/bench.lock.
# lr_split.py: python lr_split.py ring contaminated 0.001 (the screening fit at 1e-3, the sharp fit at 3e-3)
set -x
export PYTHONPATH=/tmp/snap30
cd /tmp/snap30
P='{"learning_rate": 0.003}'
python benchmarks/structure.py --detectors vae --seeds 0 1 2 --vae-params "$P" --out /tmp/q31/lr3_structure
python benchmarks/quality.py --data /work/shared/data/adbench --detectors vae --seeds 0 1 2 --vae-params "$P" --out /tmp/q31/lr3_unsup
python benchmarks/sample_job.py --seeds 0 1 2 3 4 5 6 7 8 9 --model-params "$P" --out /tmp/q31/lr3_sample
python benchmarks/quality.py --data /work/shared/data/adbench --setting normal-only --detectors vae --seeds 0 1 2 --vae-params "$P" --out /tmp/q31/lr3_normal
