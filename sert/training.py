"""The training loop: next-token cross-entropy on the tokens marked for loss only.

One loop serves pretraining the tiny student (documents whose context segments carry no
loss), self-training, fine-tuning and distillation (no loss on the prompt). It is a plain
nanoGPT-style loop, readable in one sitting:

- Batches are padded to their own longest sequence (dynamic padding), never to a global
  maximum; optionally similar lengths are grouped into the same batch (``length_grouping``),
  or a batch's examples are packed into fewer rows (``packing``: transformers' own
  packed-sequence masking, from position ids that restart at each example, keeps them apart).
- An optimizer step sees ``batch_size`` examples (the paper's 8), split into ``grad_accum``
  micro-batches when memory is short. The loss is the per-token mean over the whole effective
  batch (each micro-batch contributes its token-loss *sum* divided by the effective batch's
  token count), so the gradient is the same however the batch is split: averaging
  per-micro-batch means instead would weight a token in a short micro-batch more than one in a
  long micro-batch.
- The output projection runs only at the label positions (prompt, context and padding
  positions produce no logits): on GPT-2 the 50,257-way head is about a third of the FLOPs.
- bf16 autocast (fp32 master weights) where the device computes bf16 natively (``precision``:
  ``auto``; sert/runtime.py), and ``accelerate`` for devices and several processes:
  ``accelerate launch`` runs the same stage on several GPUs, each process taking its share of
  every effective batch (DDP averages gradients; the loss is scaled so the result is still the
  per-token mean over the whole batch).
- Checkpoints every ``checkpoint_every`` steps (sert/checkpoint.py) with optimizer, scheduler,
  data-order state and every process's RNG state; a rerun with the same number of processes
  resumes from the latest one and ends with the same weights.
"""

from __future__ import annotations

import math
import os
import random
import signal
import sys
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from sert.checkpoint import Checkpoints, rng_state, run_key
from sert.config import TrainConfig
from sert.errors import ParamsError
from sert.io import write_text
from sert.runtime import resolve_precision

IGNORE = -100
GROUP_BATCHES = 50
"""Length grouping sorts windows of this many batches by length (as Hugging Face's length-grouped sampler)."""


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


def encode_documents(tokenizer, documents: list[list[tuple[str, bool]]]) -> list[TrainExample]:
    """:func:`encode_segments` for many documents: the same ids, with each distinct segment text
    tokenized once, in one batched call (a generated corpus repeats its segments: the tiny world's
    60,000 documents have 120,000 segments but 15,500 distinct texts; 7 s -> 0.8 s)."""
    distinct = list(dict.fromkeys(text for segments in documents for text, _ in segments))
    encoded = dict(zip(distinct, tokenizer(distinct, add_special_tokens=False)["input_ids"])) if distinct else {}
    examples = []
    for segments in documents:
        ids: list[int] = []
        mask: list[bool] = []
        for text, trained in segments:
            ids += encoded[text]
            mask += [trained] * len(encoded[text])
        examples.append((ids + [tokenizer.eos_token_id], mask + [True]))
    return examples


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


def pack(lengths: list[int], width: int) -> list[list[int]]:
    """Indices into ``lengths`` grouped into rows of at most ``width`` tokens, first fit by
    decreasing length (each length at most ``width``); every index in exactly one row."""
    rows: list[list[int]] = []
    room: list[int] = []
    for i in sorted(range(len(lengths)), key=lambda i: -lengths[i]):
        for r, free in enumerate(room):
            if lengths[i] <= free:
                rows[r].append(i)
                room[r] -= lengths[i]
                break
        else:
            rows.append([i])
            room.append(width - lengths[i])
    return rows


def collate_packed(examples: list[TrainExample], pad_id: int, max_length: int) -> dict[str, torch.Tensor]:
    """A batch of packed rows (``pack``): each example cut to ``max_length``, its positions counted
    from 0 and no attention mask, so that transformers' packed-sequence masking (a new sequence
    wherever the positions restart) keeps every example to itself. The padding after a row's last
    example is one more such sequence, with no loss; so is each example's first token, which
    nothing predicts.

    Rows are as wide as the batch's longest example, not ``max_length``: attention runs over a
    row's full width, so many narrow rows cost less than a few wide ones holding the same tokens
    (the tiny pretraining's batches: about 13 rows of 46 instead of 5 of 127, 10% less time per
    step; benchmarks/tiny_step.py)."""
    cut = [(ids[:max_length], mask[:max_length]) for ids, mask in examples]
    lengths = [len(ids) for ids, _ in cut]
    rows = pack(lengths, max(lengths))
    width = max(sum(len(cut[i][0]) for i in row) for row in rows)
    input_ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    labels = torch.full((len(rows), width), IGNORE, dtype=torch.long)
    positions = torch.zeros((len(rows), width), dtype=torch.long)
    for r, row in enumerate(rows):
        at = 0
        for i in row:
            ids, mask = cut[i]
            n = len(ids)
            input_ids[r, at:at + n] = torch.tensor(ids, dtype=torch.long)
            labels[r, at + 1:at + n] = torch.where(torch.tensor(mask[1:], dtype=torch.bool),
                                                   input_ids[r, at + 1:at + n], IGNORE)
            positions[r, at:at + n] = torch.arange(n)
            at += n
        positions[r, at:] = torch.arange(width - at)
    return {"input_ids": input_ids, "position_ids": positions, "labels": labels}


def label_count(example: TrainExample, max_length: int) -> int:
    """Tokens of ``example`` that carry loss after truncation (the first token never does: nothing predicts it)."""
    return sum(example[1][1:max_length])


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
    raise ValueError(f"schedule: expected 'constant' or 'cosine', got {schedule!r}")  # TrainConfig allows only these


class LabelLoss(torch.nn.Module):
    """Summed next-token cross-entropy over the label positions of a batch.

    Wraps the causal LM so that ``accelerate``/DDP sees one module whose forward computes the
    loss. The output head runs on the label positions only; models whose logits need more than
    the output embedding (e.g. Gemma-2's soft-capping) take the full forward pass instead.
    """

    def __init__(self, model):
        super().__init__()
        self.model = model
        head = model.get_output_embeddings()
        self.selective = head is not None and not getattr(model.config, "final_logit_softcapping", None) \
            and model.base_model is not model

    def forward(self, input_ids, attention_mask=None, labels=None, position_ids=None):
        targets = labels[:, 1:]
        keep = targets != IGNORE
        inputs = {"input_ids": input_ids, "attention_mask": attention_mask}
        if position_ids is not None:  # packed rows: transformers masks packed sequences only without a cache
            inputs |= {"position_ids": position_ids, "use_cache": False}
        if self.selective:
            hidden = self.model.base_model(**inputs).last_hidden_state
            logits = self.model.get_output_embeddings()(hidden[:, :-1][keep])
        else:
            logits = self.model(**inputs).logits[:, :-1][keep]
        return F.cross_entropy(logits.float(), targets[keep], reduction="sum")


def group_by_length(indices: list[int], lengths: list[int], batch_size: int, rng: random.Random) -> list[int]:
    """Reorder shuffled ``indices`` so each run of ``batch_size`` holds similar lengths.

    Windows of GROUP_BATCHES batches are sorted by length and cut into batches; the batches
    are then shuffled, so training sees no long-to-short curriculum.
    """
    window = batch_size * GROUP_BATCHES
    batches = []
    for start in range(0, len(indices), window):
        chunk = sorted(indices[start: start + window], key=lambda i: -lengths[i])
        batches += [chunk[i: i + batch_size] for i in range(0, len(chunk), batch_size)]
    rng.shuffle(batches)
    return [i for batch in batches for i in batch]


def split_batch(batch: list[int], lengths: list[int], parts: int) -> list[list[int]]:
    """Cut an effective batch into ``parts`` micro-batches of similar lengths (sorted, contiguous).

    Sorting only changes which rows share padding: with the loss normalised over the whole
    effective batch, the gradient does not depend on the split.
    """
    if parts == 1:
        return [batch]
    ordered = sorted(batch, key=lambda i: -lengths[i])
    size, extra = divmod(len(ordered), parts)
    out, start = [], 0
    for k in range(parts):
        end = start + size + (k < extra)
        out.append(ordered[start:end])
        start = end
    return out


def final_loss(losses: list[float]) -> float:
    """A run's final loss: the mean of its last 5% of steps (at least one), rounded to 4 decimals; one
    step's loss is too noisy to compare runs by."""
    if not losses:
        raise ValueError("final_loss: no steps")
    tail = losses[-max(1, len(losses) // 20):]
    return round(sum(tail) / len(tail), 4)


def is_main_process() -> bool:
    """True unless this is a non-zero rank of a multi-process launch (``accelerate launch``/torchrun
    set RANK): only the main process writes a stage's outputs."""
    return int(os.environ.get("RANK", "0")) == 0


class LiveLossCurve:
    """A ``step,loss`` CSV that grows as training goes, for ``dvc plots show`` during a long run:
    pass it as ``train_causal_lm``'s ``on_step``. Each step appends one row (and closes the file,
    so a reader sees every finished step); rows are numbered from 1, plus ``offset`` (a curve that
    continues over several runs, as iterated SERT's rounds do: ``curve.shifted(steps_so_far)``).

    Steps restored from a checkpoint are not replayed, so after a resume the file starts at the
    resumed step; the stage rewrites the whole curve from the returned losses when training ends,
    which is what makes the final file the same byte for byte however the run went. Writes nothing
    on the non-main processes of a multi-process launch.
    """

    def __init__(self, path: str | os.PathLike, offset: int = 0, *, start: bool = True):
        self.path, self.offset = Path(path), offset
        if start and is_main_process():
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.path.write_text("step,loss\n")

    def __call__(self, step: int, loss: float) -> None:
        if is_main_process():
            with open(self.path, "a", encoding="utf-8") as f:
                f.write(f"{self.offset + step + 1},{loss:.6g}\n")

    def shifted(self, steps: int) -> LiveLossCurve:
        """The same file, continued after ``steps`` rows (the next round of a multi-round run)."""
        return LiveLossCurve(self.path, self.offset + steps, start=False)


def write_loss_curve(path: Path, losses: list[float]) -> None:
    """The finished curve: one ``step,loss`` row per optimizer step (the same rows ``LiveLossCurve``
    writes as they come), written atomically."""
    write_text(path, "step,loss\n" + "".join(f"{i},{loss:.6g}\n" for i, loss in enumerate(losses, 1)))


PR_SET_PDEATHSIG = 1
"""prctl(2) option: the signal the kernel sends this process when its parent exits (linux/prctl.h)."""


def die_with_launcher() -> None:
    """In a worker of torchrun or ``accelerate launch`` (both set TORCHELASTIC_RUN_ID), have Linux
    SIGKILL this process when its launcher exits. The launcher starts each worker in a session of
    its own and passes SIGINT and SIGTERM on, but a launcher killed with SIGKILL passes nothing on:
    its workers would go on training, orphaned, and race a rerun for the same checkpoints and
    outputs. Elsewhere (one process, another launcher, not Linux) this does nothing."""
    if "TORCHELASTIC_RUN_ID" not in os.environ or not sys.platform.startswith("linux"):
        return
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) != 0:
        print(f"warning: prctl(PR_SET_PDEATHSIG) failed ({os.strerror(ctypes.get_errno())}): this process "
              "outlives a killed launcher", file=sys.stderr)
    elif os.getppid() == 1:  # the launcher died before the request: nothing will send the signal
        os.kill(os.getpid(), signal.SIGKILL)


def make_accelerator(device: str, section: str = "train"):
    """An ``accelerate.Accelerator`` for ``device``; mixed precision is our own autocast (see below).
    ``section``: the params section the config came from, for the error's key. A worker of a
    multi-process launch dies with its launcher (:func:`die_with_launcher`)."""
    from accelerate import Accelerator

    die_with_launcher()

    cpu = device == "cpu" or (device == "auto" and not torch.cuda.is_available())
    if device == "cuda" and not torch.cuda.is_available():
        raise ParamsError(f"{section}.device: cuda requested but no CUDA device is available")
    # mixed_precision="no": autocast is applied explicitly around the forward pass, so that the
    # precision is a param (not accelerate's process-wide state, which cannot change once set).
    return Accelerator(cpu=cpu, mixed_precision="no")


def make_optimizer(model, cfg: TrainConfig) -> torch.optim.Optimizer:
    """AdamW, fused where this torch has it: one kernel over all parameters instead of a loop over
    tensors (on CPU the optimizer step of GPT-2 small went from ~6 s to ~2.4 s, a loaded 2-core box)."""
    try:
        return torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay, fused=True)
    except (RuntimeError, TypeError, ValueError):  # older torch, or parameters on a device without it
        return torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)


def train_causal_lm(
    model, examples: list[TrainExample], cfg: TrainConfig, pad_id: int, *, total_steps: int | None = None,
    desc: str = "train", on_step: Callable[[int, float], None] | None = None,
    checkpoint_dir: Path | None = None, section: str = "train",
) -> list[float]:
    """Train ``model`` in place; returns the loss of every step (per-token mean over the effective batch).

    ``total_steps`` overrides ``cfg.epochs`` (pretraining counts steps, not epochs).
    ``checkpoint_dir`` with ``cfg.checkpoint_every > 0`` saves checkpoints there and resumes
    from the latest one of the same run. ``cfg`` checked its own values when it was built
    (``sert.config.TrainConfig``); what is checked here depends on the machine, and the errors
    name ``section`` (``pretrain`` for the tiny student's pretraining).
    """
    from accelerate.utils import gather_object

    if not examples:
        raise ValueError("no training examples")
    accelerator = make_accelerator(cfg.device, section)
    world, rank = accelerator.num_processes, accelerator.process_index
    if cfg.batch_size < cfg.grad_accum * world:
        raise ParamsError(f"{section}.batch_size: {cfg.batch_size} is smaller than grad_accum x processes "
                          f"({cfg.grad_accum} x {world})")
    precision = resolve_precision(cfg.precision, accelerator.device, section)
    lengths = [min(len(ids), cfg.max_length) for ids, _ in examples]
    rng = random.Random(cfg.seed)
    per_epoch = math.ceil(len(examples) / cfg.batch_size)
    total = total_steps if total_steps is not None else cfg.epochs * per_epoch
    optimizer = make_optimizer(model, cfg)
    # The scheduler stays outside accelerator.prepare: prepared schedulers step once per process.
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_lambda(cfg.schedule, cfg.warmup_steps, total))
    losses: list[float] = []
    order: list[int] = []
    start = 0
    ckpt = None
    if checkpoint_dir is not None and cfg.checkpoint_every > 0:
        settings = {k: v for k, v in asdict(cfg).items() if k not in ("checkpoint_every", "device")}
        key = run_key({"cfg": settings, "precision": precision, "total": total, "pad": pad_id, "world": world},
                      examples, model)
        ckpt = Checkpoints(checkpoint_dir, key)
        if accelerator.is_main_process:
            ckpt.prepare()
        accelerator.wait_for_everyone()
        resumed = ckpt.load_latest(model, optimizer, scheduler, rank=rank)
        if resumed is not None:
            start, order, losses = resumed.step, resumed.order, resumed.losses
            rng.setstate(resumed.python_rng)
            print(f"{desc}: resumed from step {start} ({ckpt.dir})")
    loss_module = LabelLoss(model)
    loss_module, optimizer = accelerator.prepare(loss_module, optimizer)
    model.train()
    with tqdm(total=total, initial=start, desc=desc, unit="step", disable=not accelerator.is_main_process) as bar:
        for step in range(start, total):
            if len(order) < cfg.batch_size:
                fresh = list(range(len(examples)))
                rng.shuffle(fresh)
                if cfg.length_grouping:
                    fresh = group_by_length(fresh, lengths, cfg.batch_size, rng)
                order.extend(fresh)
            batch = order[: cfg.batch_size]
            del order[: cfg.batch_size]
            n_tokens = max(1, sum(label_count(examples[i], cfg.max_length) for i in batch))
            micro = split_batch(batch, lengths, cfg.grad_accum * world)[rank::world]
            step_loss = torch.zeros((), device=accelerator.device)
            for k, rows in enumerate(micro):
                if not rows:
                    continue
                make_batch = collate_packed if cfg.packing else collate
                inputs = {name: t.to(accelerator.device) for name, t in
                          make_batch([examples[i] for i in rows], pad_id, cfg.max_length).items()}
                with torch.autocast(accelerator.device.type, dtype=torch.bfloat16, enabled=precision == "bf16"):
                    loss_sum = loss_module(**inputs)
                # x world: DDP averages the processes' gradients; the sum over them is what we want.
                loss = loss_sum * world / n_tokens
                if k < len(micro) - 1:
                    with accelerator.no_sync(loss_module):
                        accelerator.backward(loss)
                else:
                    accelerator.backward(loss)
                step_loss += loss_sum.detach()
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            losses.append(accelerator.reduce(step_loss, reduction="sum").item() / n_tokens)
            if on_step is not None:
                on_step(step, losses[-1])
            bar.set_postfix(loss=f"{losses[-1]:.3f}", refresh=False)
            bar.update()
            done = step + 1
            if ckpt is not None and (done % cfg.checkpoint_every == 0 or done == total):
                # Every process's torch RNG (its own dropout masks), gathered to the one that saves.
                states = gather_object([rng_state()])
                if accelerator.is_main_process:
                    ckpt.save(done, accelerator.unwrap_model(loss_module).model, optimizer, scheduler, order,
                              rng.getstate(), losses, states)
                accelerator.wait_for_everyone()
    model.eval()
    return losses
