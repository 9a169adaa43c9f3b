"""The tiny pretraining step's two cheap choices: the GELU form and the width of packed rows.

Part 1 times torch's GELU, tanh form (GPT-2's) against the exact (erf) form, forward and
forward + backward, on a 920 x 512 activation (a batch's MLP hidden state). Part 2 times the
tiny world's pretraining step (``params.yaml``'s corpus, model and batch size, AdamW, the
``base`` stage's packed batches) in four settings: rows packed to ``n_positions`` or to the
batch's longest document (what ``sert.training.collate_packed`` does), and either GELU form.
Settings alternate over ``--rounds`` so that a drift of the machine's speed hits all of them;
each figure is the median over rounds. Needs the prepared splits (``dvc repro prepare``). Last
line of output: one JSON object.

    python benchmarks/tiny_step.py                 # ~3 minutes on one core
    python benchmarks/tiny_step.py --steps 100 --rounds 2
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import random
import statistics
import time
from pathlib import Path

from sert.runtime import apply_thread_policy

apply_thread_policy()

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from transformers.activations import ACT2FN  # noqa: E402

import sert.training as training  # noqa: E402
from pretrain import tiny_corpus  # noqa: E402  (benchmarks/pretrain.py: this script's directory is on sys.path)
from sert.modeling import build_tiny_model  # noqa: E402
from stages.common import load_params  # noqa: E402

GELUS = {"tanh": "gelu_pytorch_tanh", "exact": "gelu"}


def op_ms(fn, repeats: int = 200) -> float:
    for _ in range(10):
        fn()
    times = []
    for _ in range(repeats):
        began = time.perf_counter()
        fn()
        times.append(time.perf_counter() - began)
    return 1e3 * statistics.median(times)


def gelu_ops() -> dict:
    x = torch.randn(920, 512, requires_grad=True)
    grad = torch.randn(920, 512)
    out = {}
    for name, approximate in (("tanh", "tanh"), ("exact", "none")):
        out[name] = {"forward_ms": op_ms(lambda: F.gelu(x, approximate=approximate)),
                     "forward_backward_ms": op_ms(lambda: torch.autograd.grad(F.gelu(x, approximate=approximate), x, grad))}
    return out


def packed_to_full_width(batch, pad_id: int, width: int) -> dict:
    """``collate_packed`` with rows filled up to ``width`` tokens instead of the longest example's."""
    pack = training.pack
    training.pack = lambda lengths, _width: pack(lengths, width)
    try:
        return training.collate_packed(batch, pad_id, width)
    finally:
        training.pack = pack


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=150, help="timed steps per setting and round")
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds over the settings")
    parser.add_argument("--params", type=Path, default=Path("params.yaml"))
    args = parser.parse_args()
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, torch "
          f"{torch.__version__}, {torch.get_num_threads()} thread(s); load {os.getloadavg()}")
    ops = gelu_ops()
    for name, t in ops.items():
        print(f"gelu {name}: forward {t['forward_ms']:.3f} ms, forward + backward {t['forward_backward_ms']:.3f} ms")

    p = load_params(args.params)
    cfg = p.pretrain
    tokenizer, examples = tiny_corpus(p)  # the base stage's corpus and tokenizer
    rng = random.Random(cfg.seed)
    picks = [[examples[rng.randrange(len(examples))] for _ in range(cfg.batch_size)] for _ in range(args.steps + 10)]
    batching = {
        "longest": [training.collate_packed(b, tokenizer.pad_token_id, cfg.n_positions) for b in picks],
        "n_positions": [packed_to_full_width(b, tokenizer.pad_token_id, cfg.n_positions) for b in picks],
    }
    for name, batches in batching.items():
        shape = batches[0]["input_ids"].shape
        mean = statistics.mean(b["input_ids"].numel() for b in batches)
        print(f"rows packed to {name}: first batch {shape[0]} x {shape[1]}, {mean:.0f} positions per batch on average")

    def step_ms(gelu: str, batches: list) -> float:
        model = build_tiny_model(dataclasses.replace(cfg, seed=0), tokenizer)
        for block in model.transformer.h:
            block.mlp.act = ACT2FN[GELUS[gelu]]
        model.train()
        optimizer = training.make_optimizer(model, cfg)
        loss_module = training.LabelLoss(model)

        def step(batch):
            loss = loss_module(**batch) / (batch["labels"] != training.IGNORE).sum()
            loss.backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)

        for batch in batches[:10]:
            step(batch)
        began = time.perf_counter()
        for batch in batches[10:]:
            step(batch)
        return 1e3 * (time.perf_counter() - began) / args.steps

    settings = [(gelu, width) for gelu in GELUS for width in batching]
    times: dict[str, list[float]] = {f"{g}:{w}": [] for g, w in settings}
    for _ in range(args.rounds):
        for gelu, width in settings:
            times[f"{gelu}:{width}"].append(step_ms(gelu, batching[width]))
    medians = {k: round(statistics.median(v), 2) for k, v in times.items()}
    for key, ms in medians.items():
        print(f"step, gelu {key.split(':')[0]}, rows to {key.split(':')[1]}: {ms:.2f} ms (rounds: "
              f"{', '.join(f'{t:.2f}' for t in times[key])}); load {os.getloadavg()}")
    print(json.dumps({"gelu_ms": {k: {m: round(v, 3) for m, v in t.items()} for k, t in ops.items()},
                      "step_ms": medians, "steps": args.steps, "rounds": args.rounds}))


if __name__ == "__main__":
    main()
