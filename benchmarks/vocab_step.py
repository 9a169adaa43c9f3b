"""A decode step's work over the whole vocabulary: the next token of every row and its log-probability.

After the output head, every step of ``sert.samplers.hf`` converts the head's logits to fp32, takes
each row's top-k and its logsumexp over the vocabulary. This script times that step on random
logits of a decode batch (rows x vocabulary, the output head's dtype) two ways, with the engine's
own ``_pick_in_blocks`` and its top-k/top-p pick:

- whole: one fp32 tensor of rows x vocabulary (``VOCAB_BLOCK_BYTES`` larger than the batch);
- blocks: a block of rows at a time (the default ``VOCAB_BLOCK_BYTES``, about one core's L2).

Settings alternate over ``--rounds``; each figure is the median. Both must pick the same tokens
with the same log-probabilities (checked, bit for bit). Last line of output: one JSON object.

    python benchmarks/vocab_step.py                  # ~1 minute
    python benchmarks/vocab_step.py --rows 200 400 --vocab 50257 49152 --rounds 5
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time

from sert.runtime import apply_thread_policy

apply_thread_policy()

import torch  # noqa: E402

import sert.samplers.hf as hf  # noqa: E402


def time_pick(logits: torch.Tensor, uniforms: torch.Tensor, block_bytes: int, repeats: int) -> tuple[float, tuple]:
    """Median seconds of one pick over all rows, and the (tokens, log-probabilities) it gave."""
    hf.VOCAB_BLOCK_BYTES = block_bytes
    rows = torch.arange(logits.shape[0])

    def pick(part, part_rows, step):
        return hf.top_k_top_p(part, 10, 0.95, 1.0, uniforms[part_rows])

    out = hf._pick_in_blocks(logits, pick, rows, 1)  # warm-up, and the result to compare
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        hf._pick_in_blocks(logits, pick, rows, 1)
        times.append(time.perf_counter() - start)
    return statistics.median(times), out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, nargs="+", default=[200, 400], help="decode rows (8 or 16 questions x 25)")
    parser.add_argument("--vocab", type=int, nargs="+", default=[50257, 49152], help="GPT-2's, SmolLM2's")
    parser.add_argument("--dtypes", nargs="+", default=["bf16", "fp32"], choices=("bf16", "fp32"))
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=10, help="picks timed per setting and round")
    args = parser.parse_args()
    default_block = hf.VOCAB_BLOCK_BYTES
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, torch {torch.__version__} "
          f"with {torch.get_num_threads()} threads; load {os.getloadavg()[0]:.2f}")
    results = []
    for vocab in args.vocab:
        for rows in args.rows:
            for dtype in args.dtypes:
                generator = torch.Generator().manual_seed(0)
                logits = (torch.randn(rows, vocab, generator=generator) * 3).to(
                    torch.bfloat16 if dtype == "bf16" else torch.float32)
                uniforms = torch.rand(rows, generator=generator, dtype=torch.float64)
                times: dict[str, list[float]] = {"whole": [], "blocks": []}
                outs = {}
                for _ in range(args.rounds):
                    for name, block in (("whole", 1 << 40), ("blocks", default_block)):
                        seconds, outs[name] = time_pick(logits, uniforms, block, args.repeats)
                        times[name].append(seconds)
                same = all(torch.equal(a, b) for a, b in zip(outs["whole"], outs["blocks"]))
                row = {"vocab": vocab, "rows": rows, "dtype": dtype,
                       "whole_ms": round(1e3 * statistics.median(times["whole"]), 2),
                       "blocks_ms": round(1e3 * statistics.median(times["blocks"]), 2), "same_picks": same}
                row["speedup"] = round(row["whole_ms"] / row["blocks_ms"], 2)
                print(f"vocab {vocab}, {rows} rows, {dtype}: whole {row['whole_ms']} ms, blocks {row['blocks_ms']} ms "
                      f"({row['speedup']}x); same picks and log-probabilities: {same}")
                results.append(row)
    hf.VOCAB_BLOCK_BYTES = default_block
    print(json.dumps({"threads": torch.get_num_threads(), "block_bytes": default_block, "results": results}))


if __name__ == "__main__":
    main()
