"""Tiny-world pretraining speed: fp32 vs bf16 autocast, padded vs packed batches.

The ``base`` stage's own code path (``sert.training.train_causal_lm``) on the corpus, tokenizer and
model that ``params.yaml`` describes (``pretrain``), for the first ``--steps`` optimizer steps of
each setting, under the project's thread policy. Needs the prepared splits (``dvc repro prepare``),
which the corpus leaves out. Last line of output: one JSON object with the steps/s of each setting.

    python benchmarks/pretrain.py                      # ~1.5 minutes on one core
    python benchmarks/pretrain.py --steps 100 --settings fp32:packed bf16:packed
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import time
from pathlib import Path

from sert.runtime import apply_thread_policy

apply_thread_policy()

import torch  # noqa: E402

from sert import paths  # noqa: E402
from sert.config import TrainConfig  # noqa: E402
from sert.modeling import build_tiny_model, tiny_tokenizer  # noqa: E402
from sert.tasks import get_task  # noqa: E402
from sert.training import encode_documents, train_causal_lm  # noqa: E402
from stages.common import load_params, read_examples  # noqa: E402

SETTINGS = ("fp32:padded", "fp32:packed", "bf16:padded", "bf16:packed")


def tiny_corpus(p):
    """(tokenizer, encoded documents) as the ``base`` stage builds them from the prepared splits."""
    cfg = p.pretrain
    splits = {split: read_examples(paths.PREPARED / f"{split}.jsonl") for split in ("train", "test")}
    held_out = {ex.question for examples in splits.values() for ex in examples}
    task = get_task(p.task)
    docs = task.pretraining_corpus(random.Random(cfg.seed), cfg.documents, cfg.worked_fraction,
                                   cfg.fact_fraction, held_out, splits["train"])
    tokenizer = tiny_tokenizer(task, docs, cfg.vocab_size)
    return tokenizer, encode_documents(tokenizer, docs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=200, help="timed optimizer steps per setting")
    parser.add_argument("--settings", nargs="+", choices=SETTINGS, default=list(SETTINGS))
    parser.add_argument("--params", type=Path, default=Path("params.yaml"))
    args = parser.parse_args()
    p = load_params(args.params)
    cfg = p.pretrain
    tokenizer, examples = tiny_corpus(p)
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, torch "
          f"{torch.__version__}, {torch.get_num_threads()} thread(s); load {os.getloadavg()}")
    rates = {}
    for setting in args.settings:
        precision, batching = setting.split(":")
        model = build_tiny_model(cfg, tokenizer)
        train = TrainConfig(lr=cfg.lr, batch_size=cfg.batch_size, schedule=cfg.schedule,
                            warmup_steps=min(cfg.warmup_steps, args.steps), weight_decay=cfg.weight_decay,
                            max_length=cfg.n_positions, seed=cfg.seed, packing=batching == "packed",
                            precision=precision, device="cpu", checkpoint_every=0)
        began = time.perf_counter()
        losses = train_causal_lm(model, examples, train, tokenizer.pad_token_id, total_steps=args.steps,
                                 desc=setting)
        rates[setting] = args.steps / (time.perf_counter() - began)
        print(f"{setting}: {rates[setting]:.1f} steps/s, loss at the last step {losses[-1]:.4f}; "
              f"load {os.getloadavg()}")
    print(json.dumps({"steps": args.steps, "steps_per_s": {k: round(v, 2) for k, v in rates.items()}}))


if __name__ == "__main__":
    main()
