# Round 22 (docs/experiments.md): run from a copy of commit f12688c in /tmp/snap40 under flock /tmp/bench.lock.
set -x
export PYTHONPATH=/tmp/snap40 BUDGET_STEPS=6000
cd /tmp/snap40
D=benchmarks/results/round22/budget_driver.py
python $D benchmarks/structure.py --detectors vae --seeds 0 1 2 --out /tmp/q41/budget6k_structure
python $D benchmarks/quality.py --data /work/shared/data/adbench --detectors vae --seeds 0 1 2 --out /tmp/q41/budget6k_unsup
python $D benchmarks/sample_job.py --seeds 0 1 2 3 4 5 6 7 8 9 --out /tmp/q41/budget6k_sample
python $D benchmarks/quality.py --data /work/shared/data/adbench --setting normal-only --detectors vae --seeds 0 1 2 --out /tmp/q41/budget6k_normal
python $D benchmarks/quality.py --data /work/shared/data/adbench --detectors vae --seeds 3 4 5 6 7 --out /tmp/q41/budget6k_unsup_s3to7
