"""Ways a CPU training step could be faster, against the engine's own (sert.training.LabelLoss).

GPT-2-small shape (random weights, seed 0, dropout off so that every variant computes the same
function), the SERT-like texts and length-grouped batches of 8 of ``benchmarks/training.py``,
``--steps`` timed optimizer steps after one warm-up step. Each ``--mode``:

- ``engine``: the engine's step: the batch in one forward/backward under bf16 autocast (fp32 weights).
- ``bf16-weights``: forward and backward on a bf16 copy of the model (no autocast casts, bf16
  gradients), AdamW on the fp32 weights, the copy refreshed after each step.
- ``micro-seq``: the batch cut into two micro-batches (``sert.training.split_batch``), one after
  the other, each with gradients of its own, summed in a fixed order.
- ``micro-threads``: the same two micro-batches on two threads at once (one OpenMP thread each,
  as the decode workers; ``torch.autograd.grad`` keeps each thread's gradients apart). The same
  losses as ``micro-seq`` bit for bit.

Set ``OMP_NUM_THREADS``/``OMP_WAIT_POLICY`` in the environment for the engine on more threads.
Prints one JSON line: real tokens/s, seconds per step, the per-step losses.

    python benchmarks/training_variants.py --mode engine
"""

from __future__ import annotations

import argparse
import copy
import json
import random
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from sert.runtime import apply_thread_policy

apply_thread_policy()  # before torch loads OpenMP

import torch  # noqa: E402
from transformers import GPT2Config, GPT2LMHeadModel  # noqa: E402

from sert.training import LabelLoss, collate, group_by_length, split_batch  # noqa: E402

sys.path.insert(0, str(Path(__file__).parent))
from training import BATCH, MAX_LENGTH, gpt2_tokenizer, sert_like_examples  # noqa: E402

PAD = 50256


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mode", choices=("engine", "bf16-weights", "micro-seq", "micro-threads"), default="engine")
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--examples", type=int, default=400)
    args = parser.parse_args()

    examples = sert_like_examples(gpt2_tokenizer(), args.examples)
    lengths = [len(ids) for ids, _ in examples]
    rng = random.Random(0)
    order = list(range(len(examples)))
    rng.shuffle(order)
    order = group_by_length(order, lengths, BATCH, rng)
    batches = [order[i:i + BATCH] for i in range(0, BATCH * (args.steps + 1), BATCH)]

    torch.manual_seed(0)
    model = GPT2LMHeadModel(GPT2Config(resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0)).train()
    master = list(model.parameters())
    optimizer = torch.optim.AdamW(master, lr=5e-5, fused=True)
    work = copy.deepcopy(model).to(torch.bfloat16).train() if args.mode == "bf16-weights" else model
    work_params = list(work.parameters())
    loss_module = LabelLoss(work)
    autocast = args.mode != "bf16-weights"
    pool = ThreadPoolExecutor(2) if args.mode == "micro-threads" else None

    def micro(rows: list[int], n_tokens: int):
        inputs = collate([examples[i] for i in rows], PAD, MAX_LENGTH)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
            loss_sum = loss_module(**inputs)
        grads = torch.autograd.grad(loss_sum / n_tokens, work_params)
        return loss_sum.item(), grads, int(inputs["attention_mask"].sum())

    losses, seconds, tokens = [], [], 0
    for step, batch in enumerate(batches):
        start = time.perf_counter()
        n_tokens = sum(sum(examples[i][1][1:MAX_LENGTH]) for i in batch)
        parts = split_batch(batch, lengths, 2 if args.mode.startswith("micro") else 1)
        outs = list(pool.map(lambda rows: micro(rows, n_tokens), parts)) if pool else [micro(r, n_tokens) for r in parts]
        with torch.no_grad():
            for k, param in enumerate(master):
                grad = outs[0][1][k]
                for out in outs[1:]:
                    grad = grad + out[1][k]
                param.grad = grad.float()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        if work is not model:
            with torch.no_grad():
                for w, m in zip(work_params, master):
                    w.copy_(m)
        losses.append(round(sum(out[0] for out in outs) / n_tokens, 5))
        if step > 0:  # the first step warms up
            seconds.append(time.perf_counter() - start)
            tokens += sum(out[2] for out in outs)
    print(json.dumps({"mode": args.mode, "threads": torch.get_num_threads(), "tokens_per_s": round(tokens / sum(seconds), 1),
                      "seconds_per_step": round(sum(seconds) / len(seconds), 2), "losses": losses}))


if __name__ == "__main__":
    main()
