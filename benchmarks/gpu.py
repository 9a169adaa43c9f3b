"""GPU throughput of the sampling engine and the training loop, for the paper-scale estimates in
docs/performance.md. Needs CUDA; random weights with GPT-2's real architecture and tokenizer (offline).

For each GPT-2 size: latent-path sampling (the paper's 5 x 5 samples per prompt, ~60-token
prompts, --new-tokens per sample without early stop) in bf16 and fp32, and training (batch 8,
texts of 40-200 tokens, bf16 autocast). Prints one JSON object per measurement; the last line
is all of them.

    PYTHONPATH=$PWD python benchmarks/gpu.py --sizes gpt2 gpt2-medium gpt2-large
"""

from __future__ import annotations

import argparse
import json
import random
import time

import torch

SIZES = {"gpt2": dict(n_layer=12, n_embd=768, n_head=12), "gpt2-medium": dict(n_layer=24, n_embd=1024, n_head=16),
         "gpt2-large": dict(n_layer=36, n_embd=1280, n_head=20)}


def model_of(size: str):
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(0)
    return GPT2LMHeadModel(GPT2Config(**SIZES[size], bos_token_id=50256, eos_token_id=50256, pad_token_id=50256))


def prompts(tokenizer, n: int, length: int, rng: random.Random) -> list[tuple[str, str]]:
    out = []
    for i in range(n):
        ids = [rng.randrange(256, 50000) for _ in range(length)]
        out.append((f"q{i}", "Question: " + tokenizer.decode(ids) + "\nAnswer:"))
    return out


def bench_sampling(size, dtype, tokenizer, args) -> dict:
    from sert.config import SampleConfig
    from sert.samplers import sample_latent_paths

    model = model_of(size).to("cuda", dtype=dtype).eval()
    cfg = SampleConfig(branches=5, samples_per_branch=5, top_k=10, top_p=0.95, max_new_tokens=args.new_tokens,
                       batch_size=args.batch_questions, seed=0)
    batch = prompts(tokenizer, args.prompts, 60, random.Random(0))
    list(sample_latent_paths(model, tokenizer, batch[: cfg.batch_size], cfg, stop_at_eos=False))  # warm-up
    torch.cuda.synchronize()
    start = time.perf_counter()
    samples = list(sample_latent_paths(model, tokenizer, batch, cfg, stop_at_eos=False))
    torch.cuda.synchronize()
    seconds = time.perf_counter() - start
    tokens = sum(s.n_tokens for s in samples)
    del model
    torch.cuda.empty_cache()
    return {"what": "sampling", "size": size, "dtype": str(dtype).split(".")[-1], "sequences": len(samples),
            "tokens": tokens, "seconds": round(seconds, 2), "tokens_per_s": round(tokens / seconds)}


def bench_training(size, tokenizer, args) -> dict:
    from sert.config import TrainConfig
    from sert.training import prompt_target, train_causal_lm

    rng = random.Random(0)
    examples = []
    for _ in range(8 * args.train_steps):
        n = rng.randint(40, 200)
        ids = [rng.randrange(256, 50000) for _ in range(n)]
        examples.append(prompt_target(ids[: n // 3], ids[n // 3 :]))
    model = model_of(size)
    cfg = TrainConfig(epochs=1, batch_size=8, lr=3e-4, max_length=256, precision="bf16", device="cuda", seed=0,
                      checkpoint_every=0)
    train_causal_lm(model, examples[:16], cfg, 50256, desc="warm-up")
    torch.cuda.synchronize()
    start = time.perf_counter()
    losses = train_causal_lm(model, examples, cfg, 50256, desc=f"train {size}")
    torch.cuda.synchronize()
    seconds = time.perf_counter() - start
    tokens = sum(len(ids) for ids, _ in examples)
    del model
    torch.cuda.empty_cache()
    return {"what": "training", "size": size, "dtype": "bf16-autocast", "steps": len(losses), "tokens": tokens,
            "seconds": round(seconds, 2), "tokens_per_s": round(tokens / seconds),
            "loss_first_last": [round(losses[0], 3), round(losses[-1], 3)]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", nargs="+", default=list(SIZES), choices=list(SIZES))
    parser.add_argument("--prompts", type=int, default=64, help="prompts sampled (25 sequences each)")
    parser.add_argument("--batch-questions", type=int, default=32, help="questions per sampling batch")
    parser.add_argument("--new-tokens", type=int, default=64)
    parser.add_argument("--train-steps", type=int, default=30)
    args = parser.parse_args()
    from sert.modeling import offline_gpt2_tokenizer

    tokenizer = offline_gpt2_tokenizer()
    print(json.dumps({"gpu": torch.cuda.get_device_name(), "torch": torch.__version__}), flush=True)
    results = []
    for size in args.sizes:
        for job in (lambda: bench_sampling(size, torch.bfloat16, tokenizer, args),
                    lambda: bench_sampling(size, torch.float32, tokenizer, args),
                    lambda: bench_training(size, tokenizer, args)):
            try:
                result = job()
            except Exception as err:  # one failing measurement must not hide the others
                result = {"size": size, "error": f"{type(err).__name__}: {err}"[:300]}
            print(json.dumps(result), flush=True)
            results.append(result)
    print(json.dumps(results))


if __name__ == "__main__":
    main()
