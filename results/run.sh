#!/usr/bin/env bash
# Run one preset end to end in a fresh clone of this repository and copy what it measured into
# results/<preset>/: the metrics directory (report, figure, funnel, filter examples, per-variant
# metrics), the test predictions, the self-training and distillation sets, the params and dvc.lock (the content hash of every data and model output, so two runs
# compare with `diff`). The clone sits in a scratch directory beside a link to ../shared, which the
# presets read by relative path. torch runs on one thread (OMP_NUM_THREADS, default 1): float
# results can differ between thread counts, and one thread keeps a shared 2-core box steady.
#
# Further arguments are training seeds: after the preset's own run, `sert sweep run` retrains and
# re-evaluates the four trained variants once per seed (train.seed; sampling and the teacher come
# from the DVC cache), `sert sweep show` aggregates all seeds into metrics/sweep.md, and each extra
# seed's metrics and predictions land in results/<preset>/seed<N>/.
#
#   results/run.sh strategyqa-smollm2-cpu          # then: git diff results/
#   results/run.sh strategyqa-smollm2-cpu 1        # the preset's seed (0) and seed 1
set -euo pipefail
name=${1:?usage: results/run.sh PRESET [SEED...] (PRESET: a file presets/PRESET.yaml)}
shift
seeds=("$@")
root=$(git rev-parse --show-toplevel)
[ -f "$root/presets/$name.yaml" ] || { echo "error: presets/$name.yaml not found" >&2; exit 1; }
[ -d "$root/../shared/data" ] || { echo "error: $root/../shared/data not found (the presets read it)" >&2; exit 1; }
work=$(mktemp -d)
git clone -q "$root" "$work/sert"
ln -s "$(cd "$root/../shared" && pwd)" "$work/shared"
cd "$work/sert"
cp "presets/$name.yaml" params.yaml
export PYTHONPATH=$PWD OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
start=$(date +%s)
dvc repro
echo "results/run.sh: $name took $(( $(date +%s) - start )) s with OMP_NUM_THREADS=$OMP_NUM_THREADS in $work/sert"
out="$root/results/$name"
rm -rf "$out.tmp" && mkdir -p "$out.tmp"
if [ ${#seeds[@]} -gt 0 ]; then
  base_seed=$(python -c "import yaml; print(yaml.safe_load(open('params.yaml'))['train']['seed'])")
  git add -A && git -c user.name=results/run.sh -c user.email=run@localhost commit -qm "results/run.sh: $name"  # experiments start from HEAD
  sert sweep run "$base_seed" "${seeds[@]}" --param train.seed --prefix seeds
  echo "results/run.sh: $name with seeds ${seeds[*]} took $(( $(date +%s) - start )) s"
  for seed in "${seeds[@]}"; do
    [ "$seed" != "$base_seed" ] || continue
    dvc exp apply "seeds-seed$seed" && dvc checkout -q
    mkdir -p "$out.tmp/seed$seed"
    cp -r metrics "$out.tmp/seed$seed/metrics" && rm -f "$out.tmp/seed$seed/metrics"/sweep.*
    cp -r data/predictions "$out.tmp/seed$seed/predictions"
  done
  dvc exp apply "seeds-seed$base_seed" && dvc checkout -q
  sert sweep show --prefix seeds --out metrics   # metrics/sweep.md: every variant's metrics across the seeds
fi
cp -r metrics "$out.tmp/metrics"
cp -r data/predictions "$out.tmp/predictions"          # per test question: output, prediction, correct
cp data/self_train.jsonl data/teacher.jsonl "$out.tmp/"   # what SERT and RD were trained on
cp params.yaml dvc.lock "$out.tmp/"
[ ! -f "$out/README.md" ] || cp "$out/README.md" "$out.tmp/"   # the findings, written by hand, stay
rm -rf "$out" && mv "$out.tmp" "$out"
echo "results/run.sh: wrote $out"
