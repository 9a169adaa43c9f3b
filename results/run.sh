#!/usr/bin/env bash
# Run one preset end to end in a fresh clone of this repository and copy what it measured into
# results/<preset>/: the metrics directory (report, figure, funnel, filter examples, per-variant
# metrics), the test predictions, the self-training and distillation sets, the params and dvc.lock (the content hash of every data and model output, so two runs
# compare with `diff`). The clone sits in a scratch directory beside a link to ../shared, which the
# presets read by relative path. torch runs on one thread (OMP_NUM_THREADS, default 1): float
# results can differ between thread counts, and one thread keeps a shared 2-core box steady.
#
#   results/run.sh strategyqa-smollm2-cpu          # then: git diff results/
set -euo pipefail
name=${1:?usage: results/run.sh PRESET (a file presets/PRESET.yaml)}
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
cp -r metrics "$out.tmp/metrics"
cp -r data/predictions "$out.tmp/predictions"          # per test question: output, prediction, correct
cp data/self_train.jsonl data/teacher.jsonl "$out.tmp/"   # what SERT and RD were trained on
cp params.yaml dvc.lock "$out.tmp/"
[ ! -f "$out/README.md" ] || cp "$out/README.md" "$out.tmp/"   # the findings, written by hand, stay
rm -rf "$out" && mv "$out.tmp" "$out"
echo "results/run.sh: wrote $out"
