"""The training loop: next-token cross-entropy on the tokens marked for loss only.

One loop serves pretraining the tiny student (documents whose context segments carry no
loss), self-training, fine-tuning and distillation (no loss on the prompt). Batches are padded to their own longest
sequence (dynamic padding), never to a global maximum.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from dataclasses import dataclass

import torch
from tqdm.auto import tqdm

IGNORE = -100


@dataclass
class TrainConfig:
    """Optimisation settings (paper: Adam, lr 3e-4, batch 8, 20 epochs)."""

    epochs: int = 20
    """Passes over the training set."""
    batch_size: int = 8
    """Examples per optimizer step."""
    lr: float = 3e-4
    """Adam learning rate."""
    schedule: str = "constant"
    """Learning-rate schedule: ``constant`` (paper) or ``cosine`` (linear warmup, cosine decay)."""
    weight_decay: float = 0.0
    """Decoupled weight decay (AdamW); 0 is plain Adam, as in the paper."""
    warmup_steps: int = 0
    """Linear warmup steps (cosine schedule only)."""
    max_length: int = 512
    """Sequences longer than this many tokens are cut from the right."""
    seed: int = 0
    """Seed for data order."""


TrainExample = tuple[list[int], list[bool]]
"""(token ids, loss mask): the loss covers the tokens whose mask is True."""


def prompt_target(prompt_ids: list[int], target_ids: list[int]) -> TrainExample:
    """A fine-tuning example: no loss on the prompt, loss on the target."""
    return prompt_ids + target_ids, [False] * len(prompt_ids) + [True] * len(target_ids)


def encode_segments(tokenizer, segments: list[tuple[str, bool]]) -> TrainExample:
    """Tokenize a document given as (text, trained) segments, and close it with EOS (trained)."""
    ids: list[int] = []
    mask: list[bool] = []
    for text, trained in segments:
        piece = tokenizer(text, add_special_tokens=False)["input_ids"]
        ids += piece
        mask += [trained] * len(piece)
    return ids + [tokenizer.eos_token_id], mask + [True]


def collate(examples: list[TrainExample], pad_id: int, max_length: int) -> dict[str, torch.Tensor]:
    """Right-pad a batch to its own longest sequence; labels are -100 where no loss is taken."""
    width = min(max_length, max(len(ids) for ids, _ in examples))
    input_ids = torch.full((len(examples), width), pad_id, dtype=torch.long)
    labels = torch.full((len(examples), width), IGNORE, dtype=torch.long)
    attention = torch.zeros((len(examples), width), dtype=torch.long)
    for row, (ids, mask) in enumerate(examples):
        ids, mask = ids[:width], mask[:width]
        input_ids[row, : len(ids)] = torch.tensor(ids, dtype=torch.long)
        attention[row, : len(ids)] = 1
        labels[row, : len(ids)] = torch.where(torch.tensor(mask, dtype=torch.bool), input_ids[row, : len(ids)], IGNORE)
    return {"input_ids": input_ids, "attention_mask": attention, "labels": labels}


def lr_lambda(schedule: str, warmup: int, total: int) -> Callable[[int], float]:
    if schedule == "constant":
        return lambda step: 1.0
    if schedule == "cosine":
        def cosine(step: int) -> float:
            if step < warmup:
                return (step + 1) / warmup
            progress = (step - warmup) / max(1, total - warmup)
            return 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))
        return cosine
    raise ValueError(f"schedule: expected 'constant' or 'cosine', got {schedule!r}")


def train_causal_lm(
    model, examples: list[TrainExample], cfg: TrainConfig, pad_id: int, *, total_steps: int | None = None,
    desc: str = "train", on_step: Callable[[int, float], None] | None = None,
) -> list[float]:
    """Train ``model`` in place; returns the loss of every step.

    ``total_steps`` overrides ``cfg.epochs`` (pretraining counts steps, not epochs).
    """
    if not examples:
        raise ValueError("no training examples")
    rng = random.Random(cfg.seed)
    per_epoch = math.ceil(len(examples) / cfg.batch_size)
    total = total_steps if total_steps is not None else cfg.epochs * per_epoch
    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_lambda(cfg.schedule, cfg.warmup_steps, total))
    model.train()
    losses: list[float] = []
    order: list[int] = []
    with tqdm(total=total, desc=desc, unit="step") as bar:
        for step in range(total):
            if len(order) < cfg.batch_size:
                fresh = list(range(len(examples)))
                rng.shuffle(fresh)
                order.extend(fresh)
            batch = collate([examples[i] for i in order[: cfg.batch_size]], pad_id, cfg.max_length)
            del order[: cfg.batch_size]
            loss = model(**batch).loss
            loss.backward()
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            losses.append(loss.item())
            if on_step is not None:
                on_step(step, losses[-1])
            bar.set_postfix(loss=f"{losses[-1]:.3f}", refresh=False)
            bar.update()
    model.eval()
    return losses
