# Round 25 (docs/experiments.md): a learned mixture-of-Gaussians prior, K = 10, a probe on
# normal-only ADBench. Run from a copy of commit eff576d in /tmp/snapC under flock /tmp/bench.lock.
export PYTHONPATH=/tmp/snapC
cd /tmp/snapC
D=/work/main/benchmarks/results/round25/mog_driver.py
python $D benchmarks/quality.py --data /work/shared/data/adbench --setting normal-only --detectors vae --seeds 0 --out /tmp/p16/mog10_normal_s0
python $D benchmarks/quality.py --data /work/shared/data/adbench --setting normal-only --detectors vae --seeds 1 2 --out /tmp/p16/mog10_normal_s12
