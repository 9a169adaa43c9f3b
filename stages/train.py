"""train: labels-only fine-tuning (``finetune``) and reasoning distillation (``rd``, ``sert_rd``).

Each variant is one entry of ``sert.variants.VARIANT_INPUTS``: the model it starts from and the
data it learns from; dvc.yaml's ``train`` foreach mirrors that table (a test keeps them in step).
Self-training (the ``sert`` variant) is the ``train-sert`` stage (stages/train_sert.py): with
``sert.rounds > 1`` it also samples and filters, which reads params and files these variants do not.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import typer

from sert import paths
from sert.errors import EmptyResultError, ParamsError
from sert.io import read_jsonl
from sert.training import LiveLossCurve, is_main_process
from sert.variants import (VARIANT_INPUTS, distill_texts, finetune_texts, train_on_texts, write_not_trained,
                           write_trained)
from stages.common import ParamsOption, load_params, read_examples, stage

NO_TEACHER = "no teacher rationales (teacher.backend: none)"


@stage
def main(variant: str = typer.Argument(..., help=f"One of: {', '.join(VARIANT_INPUTS)}."),
         params: Path = ParamsOption) -> None:
    """Fine-tune a variant's starting model on its data; write models/<variant> and metrics/train/<variant>.json.

    With ``teacher.backend: none`` the distillation variants are not trained: models/<variant>
    then holds only why (not_trained.json), and evaluation and the report say so."""
    if variant == "sert":
        raise ParamsError("variant 'sert' has a stage of its own: run `sert train-sert`")
    if variant not in VARIANT_INPUTS:
        raise ParamsError(f"unknown variant {variant!r}; expected one of {', '.join(VARIANT_INPUTS)}")
    p = load_params(params)
    init, _ = VARIANT_INPUTS[variant]
    examples = read_examples(paths.TRAIN)
    if variant == "finetune":
        texts = finetune_texts(examples, p.prompts)
    elif p.teacher.backend == "none":
        out = write_not_trained(variant, NO_TEACHER)
        typer.echo(f"train {variant}: not trained, {NO_TEACHER} -> {out}")
        return
    else:
        rationales = read_jsonl(paths.TEACHER, required=("id", "rationale", "correct"))
        texts = distill_texts(examples, rationales, p.prompts, p.teacher.only_correct)
    if not texts:
        raise EmptyResultError(f"train {variant}: no training examples (teacher.only_correct keeps correct rationales only)")
    started = time.time()
    checkpoints = paths.CHECKPOINTS / f"train-{variant}"
    live = LiveLossCurve(paths.loss_curve(variant))  # the curve so far, while training runs
    model, tokenizer, encoded, losses = train_on_texts(init, texts, p.train, f"train {variant}", checkpoints,
                                                       p.student.trust_remote_code, on_step=live)
    if not is_main_process():  # `accelerate launch`: one process writes the outputs
        return
    out = write_trained(variant, model, tokenizer, len(encoded), losses, losses)
    shutil.rmtree(checkpoints, ignore_errors=True)
    typer.echo(f"train {variant}: {len(encoded)} examples, {len(losses)} steps in "
               f"{time.time() - started:.1f} s -> {out}")
