"""train: self-training (``sert``), labels-only fine-tuning and reasoning distillation.

Each variant is one entry of VARIANT_INPUTS: the model it starts from and the data it learns
from. dvc.yaml's ``train`` foreach and its ``train_sert`` stage mirror this table (a test keeps
them in step). ``sert`` has a stage of its own because with ``sert.rounds > 1`` it also samples,
filters and self-trains again from its latest model (sert/rounds.py), which reads params and
files the other variants do not.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import time
from pathlib import Path

import torch
import typer

from sert.errors import EmptyResultError, ParamsError
from sert.filtering import filter_samples, format_funnel
from sert.formats import distill_text, fill_prompt, finetune_text, self_train_text
from sert.io import atomic_path, read_json, read_jsonl, write_json, write_text
from sert.modeling import load_student, save_student
from sert.sampling import resolve_device, sample_latent_paths
from sert.tasks import Example, get_task
from sert.training import LiveLossCurve, is_main_process, prompt_target, train_causal_lm
from stages.common import METRICS, PREPARED, SELF_TRAIN, TEACHER, ParamsOption, load_params, read_examples, stage

VARIANT_INPUTS = {
    "sert": ("models/base", str(SELF_TRAIN)),
    "finetune": ("models/base", str(PREPARED / "train.jsonl")),
    "rd": ("models/base", str(TEACHER)),
    "sert_rd": ("models/sert", str(TEACHER)),
}
CHECKPOINTS = Path(".sert-cache/checkpoints")
"""Training checkpoints live outside DVC's outputs (DVC deletes a stage's outs before running it,
and caching optimizer state would be waste): a gitignored work directory per stage, removed
once the stage's outputs are written. See sert/checkpoint.py."""
PLOTS = METRICS / "plots"
"""Loss curves (DVC plots: step,loss CSV files)."""
ROUNDS = Path("models/sert_rounds")
"""Iterated SERT: the models of rounds 1..N-1 (``round-<k>``) and ``rounds.json``, the sampling
and filter counts of every round (evaluated by the ``rounds`` stage)."""


def write_loss_curve(path: Path, losses: list[float]) -> None:
    """One row per optimizer step, for `dvc plots show`."""
    write_text(path, "step,loss\n" + "".join(f"{i},{loss:.6g}\n" for i, loss in enumerate(losses, 1)))


def training_texts(variant: str, p) -> list[tuple[str, str]]:
    """(prompt, target) texts for ``variant`` in the paper's formats."""
    if variant == "sert":
        records = read_jsonl(SELF_TRAIN, required=("id", "question", "answer", "reasoning"))
        return [self_train_text(Example(r["id"], r["question"], r["answer"]), r["reasoning"], p.prompts)
                for r in records]
    examples = read_examples(PREPARED / "train.jsonl")
    if variant == "finetune":
        return [finetune_text(ex, p.prompts) for ex in examples]
    by_id = {ex.id: ex for ex in examples}
    rationales = read_jsonl(TEACHER, required=("id", "rationale", "correct"))
    kept = [r for r in rationales if r["id"] in by_id and (r["correct"] or not p.teacher.only_correct)]
    return [distill_text(by_id[r["id"]], r["rationale"], p.prompts) for r in kept]


def encode(tokenizer, texts: list[tuple[str, str]]):
    eos = [tokenizer.eos_token_id]
    return [prompt_target(tokenizer(prompt)["input_ids"], tokenizer(target)["input_ids"] + eos)
            for prompt, target in texts]


def next_round_texts(model, tokenizer, p, round_: int) -> tuple[list[tuple[str, str]], dict]:
    """Sample the train questions from ``model`` with the training prompt, filter with the same
    params, and return the self-training texts of the selected paths and the filter funnel."""
    examples = read_examples(PREPARED / "train.jsonl")
    by_id = {ex.id: ex for ex in examples}
    task = get_task(p.task)
    # The self-trained model reasons after the prompt it was trained with, not the zero-shot one.
    prompts = [(ex.id, fill_prompt(p.prompts.train, ex.question)) for ex in examples]
    # A fresh seed per round, so rounds do not reuse one stream of random draws.
    cfg = dataclasses.replace(p.sample, seed=p.sample.seed + round_ - 1)
    samples = list(sample_latent_paths(model, tokenizer, prompts, cfg))
    selected, funnel = filter_samples(
        samples, p.filter, lambda s: task.is_correct(task.extract_answer(s.text), by_id[s.id]))
    if not selected:
        raise EmptyResultError(f"train sert round {round_}: no sample survived the filters "
                               f"({format_funnel(funnel)}); loosen the filter params or lower sert.rounds")
    return [self_train_text(by_id[s.id], s.text, p.prompts) for s in selected], funnel


@stage
def main(variant: str = typer.Argument(..., help=f"One of: {', '.join(VARIANT_INPUTS)}."),
         params: Path = ParamsOption) -> None:
    """Fine-tune a variant's starting model on its data; write models/<variant> and metrics/train/<variant>.json."""
    if variant not in VARIANT_INPUTS:
        raise ParamsError(f"unknown variant {variant!r}; expected one of {', '.join(VARIANT_INPUTS)}")
    p = load_params(params)
    init, _ = VARIANT_INPUTS[variant]
    rounds = p.sert.rounds if variant == "sert" else 1
    if rounds > 1 and int(os.environ.get("WORLD_SIZE", "1")) > 1:
        raise ParamsError("sert.rounds: more than 1 round runs in one process; run `sert train sert` "
                          "without `accelerate launch`")
    texts = training_texts(variant, p)
    if not texts:
        raise EmptyResultError(f"train {variant}: no training examples (teacher.only_correct keeps correct rationales only)")
    torch.manual_seed(p.train.seed)
    model, tokenizer = load_student(init)
    examples = encode(tokenizer, texts)
    started = time.time()
    checkpoints = CHECKPOINTS / f"train-{variant}"
    live = LiveLossCurve(PLOTS / "train" / f"{variant}.csv")  # the curve so far, while training runs
    losses = train_causal_lm(model, examples, p.train, tokenizer.pad_token_id, desc=f"train {variant}",
                             checkpoint_dir=checkpoints, on_step=live)
    out = Path("models") / variant
    curve = list(losses)
    if variant == "sert" and is_main_process():  # (several processes only with rounds == 1, checked above)
        funnel = read_json(METRICS / "filter.json")
        stats = [{"round": 1, "samples": funnel["samples"], "selected": len(examples)}]
        with atomic_path(ROUNDS, directory=True) as tmp:
            for round_ in range(2, rounds + 1):
                save_student(model, tokenizer, tmp / f"round-{round_ - 1}")
                # Sample where the sample stage samples (sample.device).
                texts, funnel = next_round_texts(model.to(resolve_device(p.sample.device)), tokenizer, p, round_)
                examples = encode(tokenizer, texts)
                torch.manual_seed(p.train.seed)
                losses = train_causal_lm(model, examples, p.train, tokenizer.pad_token_id,
                                         desc=f"train sert round {round_}",
                                         checkpoint_dir=CHECKPOINTS / f"train-sert-round{round_}",
                                         on_step=live.shifted(len(curve)))
                curve += losses
                stats.append({"round": round_, "samples": funnel["samples"], "selected": funnel["selected"]})
                typer.echo(f"train sert round {round_}: {format_funnel(funnel)}; {len(losses)} steps")
            write_json(tmp / "rounds.json", stats)
    if not is_main_process():  # `accelerate launch`: one process writes the outputs
        return
    with atomic_path(out, directory=True) as tmp:
        save_student(model, tokenizer, tmp)
    tail = losses[-max(1, len(losses) // 20):]  # with several rounds: the last round's
    write_loss_curve(PLOTS / "train" / f"{variant}.csv", curve)  # all rounds, one after the other
    # Wall time goes to stdout only: in a metrics file it would make every `dvc metrics diff` noisy.
    write_json(METRICS / "train" / f"{variant}.json", {
        "examples": len(examples), "steps": len(losses), "final_loss": round(sum(tail) / len(tail), 4),
    })
    shutil.rmtree(checkpoints, ignore_errors=True)
    for round_ in range(2, rounds + 1):
        shutil.rmtree(CHECKPOINTS / f"train-sert-round{round_}", ignore_errors=True)
    typer.echo(f"train {variant}: {len(examples)} examples, {len(losses)} steps in "
               f"{time.time() - started:.1f} s -> {out}")
