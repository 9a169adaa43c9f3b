"""train: self-training (``sert``), labels-only fine-tuning and reasoning distillation.

Each variant is one entry of VARIANT_INPUTS: the model it starts from and the data it learns
from. dvc.yaml's ``train`` foreach mirrors this table (a test keeps them in step).
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import torch
import typer

from sert.errors import EmptyResultError, ParamsError
from sert.formats import distill_text, finetune_text, self_train_text
from sert.io import atomic_path, read_jsonl, write_json, write_text
from sert.modeling import load_student, save_student
from sert.tasks import Example
from sert.training import is_main_process, prompt_target, train_causal_lm
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


@stage
def main(variant: str = typer.Argument(..., help=f"One of: {', '.join(VARIANT_INPUTS)}."),
         params: Path = ParamsOption) -> None:
    """Fine-tune a variant's starting model on its data; write models/<variant> and metrics/train/<variant>.json."""
    if variant not in VARIANT_INPUTS:
        raise ParamsError(f"unknown variant {variant!r}; expected one of {', '.join(VARIANT_INPUTS)}")
    p = load_params(params)
    init, _ = VARIANT_INPUTS[variant]
    texts = training_texts(variant, p)
    if not texts:
        raise EmptyResultError(f"train {variant}: no training examples (teacher.only_correct keeps correct rationales only)")
    torch.manual_seed(p.train.seed)
    model, tokenizer = load_student(init)
    eos = [tokenizer.eos_token_id]
    examples = [prompt_target(tokenizer(prompt)["input_ids"], tokenizer(target)["input_ids"] + eos)
                for prompt, target in texts]
    started = time.time()
    checkpoints = CHECKPOINTS / f"train-{variant}"
    losses = train_causal_lm(model, examples, p.train, tokenizer.pad_token_id, desc=f"train {variant}",
                             checkpoint_dir=checkpoints)
    out = Path("models") / variant
    if not is_main_process():  # `accelerate launch`: one process writes the outputs
        return
    with atomic_path(out, directory=True) as tmp:
        save_student(model, tokenizer, tmp)
    tail = losses[-max(1, len(losses) // 20):]
    write_loss_curve(PLOTS / "train" / f"{variant}.csv", losses)
    # Wall time goes to stdout only: in a metrics file it would make every `dvc metrics diff` noisy.
    write_json(METRICS / "train" / f"{variant}.json", {
        "examples": len(examples), "steps": len(losses), "final_loss": round(sum(tail) / len(tail), 4),
    })
    shutil.rmtree(checkpoints, ignore_errors=True)
    typer.echo(f"train {variant}: {len(examples)} examples, {len(losses)} steps in "
               f"{time.time() - started:.1f} s -> {out}")
