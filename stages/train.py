"""train: labels-only fine-tuning (``finetune``) and reasoning distillation (``rd``, ``sert_rd``).

Each variant is one entry of VARIANT_INPUTS: the model it starts from and the data it learns
from; dvc.yaml's ``train`` foreach mirrors this table (a test keeps them in step). Self-training
(the ``sert`` variant) is the ``train-sert`` stage (stages/train_sert.py): with ``sert.rounds > 1``
it also samples and filters, which reads params and files these variants do not.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import typer

from sert import paths
from sert.errors import EmptyResultError, ParamsError
from sert.formats import distill_text, finetune_text
from sert.io import read_jsonl
from sert.training import LiveLossCurve, is_main_process
from stages.common import ParamsOption, load_params, read_examples, stage
from stages.train_common import train_on_texts, write_outputs

VARIANT_INPUTS = {
    "finetune": (str(paths.BASE_MODEL), str(paths.TRAIN)),
    "rd": (str(paths.BASE_MODEL), str(paths.TEACHER)),
    "sert_rd": (str(paths.model("sert")), str(paths.TEACHER)),
}


def training_texts(variant: str, p) -> list[tuple[str, str]]:
    """(prompt, target) texts for ``variant`` in the paper's formats."""
    examples = read_examples(paths.TRAIN)
    if variant == "finetune":
        return [finetune_text(ex, p.prompts) for ex in examples]
    by_id = {ex.id: ex for ex in examples}
    rationales = read_jsonl(paths.TEACHER, required=("id", "rationale", "correct"))
    kept = [r for r in rationales if r["id"] in by_id and (r["correct"] or not p.teacher.only_correct)]
    return [distill_text(by_id[r["id"]], r["rationale"], p.prompts) for r in kept]


@stage
def main(variant: str = typer.Argument(..., help=f"One of: {', '.join(VARIANT_INPUTS)}."),
         params: Path = ParamsOption) -> None:
    """Fine-tune a variant's starting model on its data; write models/<variant> and metrics/train/<variant>.json."""
    if variant == "sert":
        raise ParamsError("variant 'sert' has a stage of its own: run `sert train-sert`")
    if variant not in VARIANT_INPUTS:
        raise ParamsError(f"unknown variant {variant!r}; expected one of {', '.join(VARIANT_INPUTS)}")
    p = load_params(params)
    init, _ = VARIANT_INPUTS[variant]
    texts = training_texts(variant, p)
    if not texts:
        raise EmptyResultError(f"train {variant}: no training examples (teacher.only_correct keeps correct rationales only)")
    started = time.time()
    checkpoints = paths.CHECKPOINTS / f"train-{variant}"
    live = LiveLossCurve(paths.loss_curve(variant))  # the curve so far, while training runs
    model, tokenizer, examples, losses = train_on_texts(init, texts, p.train, f"train {variant}", checkpoints,
                                                        p.student.trust_remote_code, on_step=live)
    if not is_main_process():  # `accelerate launch`: one process writes the outputs
        return
    out = write_outputs(variant, model, tokenizer, len(examples), losses, losses)
    shutil.rmtree(checkpoints, ignore_errors=True)
    typer.echo(f"train {variant}: {len(examples)} examples, {len(losses)} steps in "
               f"{time.time() - started:.1f} s -> {out}")
